//! How closely one set of detections follows a reference set (e.g. the offloaded results against
//! the full detector run locally on the same frames): mean average precision at an IoU
//! threshold, the PASCAL VOC way (all-point interpolation).
//!
//! The reference detections play the part of ground truth here; the number says how much of
//! the reference the other detector reproduces, not how right either is.

use std::collections::BTreeSet;

use crate::result::DetectedObject;

/// One frame's detections under test and the reference's, both in the same box units.
#[derive(Debug, Clone, Default)]
pub struct FramePair {
    /// Detections under test (any scores; ranked by score).
    pub detected: Vec<DetectedObject>,
    /// Reference detections (taken as the truth).
    pub reference: Vec<DetectedObject>,
}

/// Mean over the reference's classes of the average precision of `frames` at `iou`, taking as
/// reference objects those scoring at least `reference_min_score` and ranking the detections
/// scoring at least `detected_min_score`. `None` when no reference object reaches its floor
/// (nothing to measure against).
///
/// Per class: detections of all frames sorted by score (descending; ties by frame order), each
/// matched greedily to the unmatched reference box of its frame and class with the highest IoU
/// ≥ `iou`; AP is the area under the precision envelope over recall.
pub fn mean_average_precision(
    frames: &[FramePair],
    iou: f32,
    reference_min_score: f32,
    detected_min_score: f32,
) -> Option<f64> {
    let keep = |d: &&DetectedObject| d.score >= reference_min_score;
    let classes: BTreeSet<u16> = frames
        .iter()
        .flat_map(|f| f.reference.iter().filter(keep).map(|d| d.class_id))
        .collect();
    if classes.is_empty() {
        return None;
    }
    let aps: Vec<f64> = classes
        .iter()
        .map(|&class| {
            let reference_of_class =
                |d: &&DetectedObject| d.class_id == class && d.score >= reference_min_score;
            let detected_of_class =
                |d: &&DetectedObject| d.class_id == class && d.score >= detected_min_score;
            let references: Vec<Vec<&DetectedObject>> = frames
                .iter()
                .map(|f| f.reference.iter().filter(reference_of_class).collect())
                .collect();
            let total: usize = references.iter().map(Vec::len).sum();
            let mut ranked: Vec<(usize, &DetectedObject)> = frames
                .iter()
                .enumerate()
                .flat_map(|(i, f)| {
                    f.detected
                        .iter()
                        .filter(detected_of_class)
                        .map(move |d| (i, d))
                })
                .collect();
            ranked.sort_by(|a, b| b.1.score.total_cmp(&a.1.score).then(a.0.cmp(&b.0)));
            let mut used: Vec<Vec<bool>> =
                references.iter().map(|r| vec![false; r.len()]).collect();
            let mut hits = Vec::with_capacity(ranked.len());
            for (i, d) in ranked {
                let best = references[i]
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| !used[i][*j])
                    .map(|(j, r)| (j, d.iou(r)))
                    .filter(|&(_, o)| o >= iou)
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                if let Some((j, _)) = best {
                    used[i][j] = true;
                }
                hits.push(best.is_some());
            }
            average_precision(&hits, total)
        })
        .collect();
    Some(aps.iter().sum::<f64>() / aps.len() as f64)
}

/// Area under the interpolated precision–recall curve of a ranked list of hits against `total`
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
    // Precision envelope from the right, then sum precision over each recall step.
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

    fn obj(class_id: u16, score: f32, x: f32) -> DetectedObject {
        DetectedObject {
            class_id,
            score,
            x_min: x,
            y_min: 0.1,
            x_max: x + 0.2,
            y_max: 0.5,
        }
    }

    #[test]
    fn identical_detections_score_one() {
        let frames = vec![
            FramePair {
                detected: vec![obj(1, 0.9, 0.0), obj(3, 0.6, 0.5)],
                reference: vec![obj(1, 0.9, 0.0), obj(3, 0.6, 0.5)],
            },
            FramePair {
                detected: vec![obj(1, 0.8, 0.3)],
                reference: vec![obj(1, 0.8, 0.3)],
            },
        ];
        assert_eq!(mean_average_precision(&frames, 0.5, 0.3, 0.0), Some(1.0));
    }

    #[test]
    fn misses_false_alarms_and_moved_boxes_lower_the_score() {
        // Class 1: two references; one found (rank 1), one moved off (IoU < 0.5).
        // A false alarm of class 1 ranked first: precision 0 then 1/2 at recall 1/2.
        let frames = vec![FramePair {
            detected: vec![obj(1, 0.95, 0.7), obj(1, 0.9, 0.0), obj(1, 0.8, 0.45)],
            reference: vec![obj(1, 0.9, 0.0), obj(1, 0.9, 0.3)],
        }];
        let map = mean_average_precision(&frames, 0.5, 0.3, 0.0).unwrap();
        // Recall reaches 1/2 with precision 1/2; the other reference is never found.
        assert!((map - 0.25).abs() < 1e-12, "{map}");
        // Ranking only the detections above 0.92 leaves the false alarm alone.
        assert_eq!(mean_average_precision(&frames, 0.5, 0.3, 0.92), Some(0.0));
        // Nothing to compare against below the score floor.
        assert_eq!(mean_average_precision(&frames, 0.5, 0.99, 0.0), None);
        // A class only in the reference counts as AP 0.
        let missing = vec![FramePair {
            detected: vec![obj(1, 0.9, 0.0)],
            reference: vec![obj(1, 0.9, 0.0), obj(2, 0.9, 0.0)],
        }];
        assert_eq!(mean_average_precision(&missing, 0.5, 0.3, 0.0), Some(0.5));
    }
}
