//! Detection fidelity: mean average precision at IoU 0.5 of detections against reference
//! detections (here the uncompressed detector's own, at a score threshold), PASCAL VOC style
//! with all-point interpolation. The reference plays the part of ground truth: the number says
//! how much of the full detector's output a cheaper path reproduces, not how right either is.

use std::collections::BTreeSet;

use crate::detector::Detection;

/// IoU at which a detection matches a reference box.
pub const MATCH_IOU: f32 = 0.5;

/// One frame's detections under test (all scores, ranked by score) and its reference
/// detections (already filtered to the reference score threshold).
#[derive(Debug, Clone, Default)]
pub struct FramePair {
    /// Detections under test.
    pub detected: Vec<Detection>,
    /// Reference detections.
    pub reference: Vec<Detection>,
}

/// Intersection over union of two boxes (0 when either is empty).
pub fn iou(a: &Detection, b: &Detection) -> f32 {
    let w = (a.x_max.min(b.x_max) - a.x_min.max(b.x_min)).max(0.0);
    let h = (a.y_max.min(b.y_max) - a.y_min.max(b.y_min)).max(0.0);
    let inter = w * h;
    let area = |d: &Detection| (d.x_max - d.x_min).max(0.0) * (d.y_max - d.y_min).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// Mean over the classes present in the references of the average precision at `MATCH_IOU`;
/// `None` when there is no reference object at all.
///
/// Per class: the detections of all frames sorted by score (descending, ties by frame order),
/// each matched greedily to the unmatched reference box of its frame with the highest IoU ≥ 0.5;
/// AP is the area under the precision envelope over recall (VOC 2010+ all-point).
pub fn mean_average_precision(frames: &[FramePair]) -> Option<f64> {
    let classes: BTreeSet<usize> = frames
        .iter()
        .flat_map(|f| f.reference.iter().map(|d| d.class_id))
        .collect();
    if classes.is_empty() {
        return None;
    }
    let aps: Vec<f64> = classes
        .iter()
        .map(|&class| {
            let refs: Vec<Vec<&Detection>> = frames
                .iter()
                .map(|f| f.reference.iter().filter(|d| d.class_id == class).collect())
                .collect();
            let total: usize = refs.iter().map(Vec::len).sum();
            let mut ranked: Vec<(usize, &Detection)> = frames
                .iter()
                .enumerate()
                .flat_map(|(i, f)| {
                    f.detected
                        .iter()
                        .filter(move |d| d.class_id == class)
                        .map(move |d| (i, d))
                })
                .collect();
            ranked.sort_by(|a, b| b.1.score.total_cmp(&a.1.score).then(a.0.cmp(&b.0)));
            let mut used: Vec<Vec<bool>> = refs.iter().map(|r| vec![false; r.len()]).collect();
            let hits: Vec<bool> = ranked
                .iter()
                .map(|&(i, d)| {
                    let best = refs[i]
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| !used[i][*j])
                        .map(|(j, r)| (j, iou(d, r)))
                        .filter(|&(_, o)| o >= MATCH_IOU)
                        .max_by(|a, b| a.1.total_cmp(&b.1));
                    if let Some((j, _)) = best {
                        used[i][j] = true;
                    }
                    best.is_some()
                })
                .collect();
            average_precision(&hits, total)
        })
        .collect();
    Some(aps.iter().sum::<f64>() / aps.len() as f64)
}

/// Area under the all-point interpolated precision–recall curve of ranked hits against `total`
/// reference objects.
fn average_precision(hits: &[bool], total: usize) -> f64 {
    if total == 0 {
        return 0.0;
    }
    let mut tp = 0usize;
    let points: Vec<(f64, f64)> = hits
        .iter()
        .enumerate()
        .map(|(n, &h)| {
            tp += usize::from(h);
            (tp as f64 / total as f64, tp as f64 / (n + 1) as f64)
        })
        .collect();
    let mut ap = 0.0;
    let mut envelope = 0.0f64;
    let mut prev_recall = points.last().map_or(0.0, |p| p.0);
    for &(recall, precision) in points.iter().rev() {
        ap += (prev_recall - recall) * envelope;
        envelope = envelope.max(precision);
        prev_recall = recall;
    }
    ap + prev_recall * envelope
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(class_id: usize, score: f32, x: f32) -> Detection {
        Detection {
            class_id,
            score,
            x_min: x,
            y_min: 10.0,
            x_max: x + 20.0,
            y_max: 50.0,
        }
    }

    #[test]
    fn identical_detections_score_one() {
        let frames = vec![FramePair {
            detected: vec![det(1, 0.9, 0.0), det(3, 0.6, 50.0)],
            reference: vec![det(1, 0.9, 0.0), det(3, 0.6, 50.0)],
        }];
        assert_eq!(mean_average_precision(&frames), Some(1.0));
        assert_eq!(mean_average_precision(&[FramePair::default()]), None);
    }

    #[test]
    fn false_alarms_and_misses_lower_the_score() {
        // A false alarm ranked first, one hit, one reference moved off (IoU < 0.5): recall 1/2
        // reached at precision 1/2.
        let frames = vec![FramePair {
            detected: vec![det(1, 0.95, 70.0), det(1, 0.9, 0.0), det(1, 0.8, 45.0)],
            reference: vec![det(1, 0.9, 0.0), det(1, 0.9, 30.0)],
        }];
        let map = mean_average_precision(&frames).unwrap();
        assert!((map - 0.25).abs() < 1e-12, "{map}");
        // A class only in the reference counts as AP 0.
        let missing = vec![FramePair {
            detected: vec![det(1, 0.9, 0.0)],
            reference: vec![det(1, 0.9, 0.0), det(2, 0.9, 0.0)],
        }];
        assert_eq!(mean_average_precision(&missing), Some(0.5));
    }
}
