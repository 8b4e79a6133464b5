//! Per-class non-maximum suppression with the semantics of the graph's `DetectionOutput` node
//! (Caffe SSD, as OpenCV DNN runs it): for every class but the background, anchors scoring above
//! a threshold are stably sorted by score, the best `candidates_per_class` kept, and greedy NMS
//! drops a box overlapping an already kept one by more than the IoU threshold; of all classes'
//! survivors the `max_detections` best remain.
//!
//! The frozen graph's own TF post-processing differs only at the image border: it clips boxes to
//! the image before NMS and keeps scores above 0.3. The reference the detector is tested against
//! (OpenCV DNN on the graph's text form) does not clip, and neither does this.

/// An axis-aligned box in normalised image coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BBox {
    /// Top edge.
    pub y_min: f32,
    /// Left edge.
    pub x_min: f32,
    /// Bottom edge.
    pub y_max: f32,
    /// Right edge.
    pub x_max: f32,
}

impl BBox {
    /// Area; zero for an inverted box.
    pub fn area(&self) -> f32 {
        if self.x_max < self.x_min || self.y_max < self.y_min {
            0.0
        } else {
            (self.x_max - self.x_min) * (self.y_max - self.y_min)
        }
    }

    /// Intersection over union (Caffe's `JaccardOverlap` for normalised boxes).
    pub fn iou(&self, other: &BBox) -> f32 {
        if other.x_min > self.x_max
            || other.x_max < self.x_min
            || other.y_min > self.y_max
            || other.y_max < self.y_min
        {
            return 0.0;
        }
        let inter = BBox {
            y_min: self.y_min.max(other.y_min),
            x_min: self.x_min.max(other.x_min),
            y_max: self.y_max.min(other.y_max),
            x_max: self.x_max.min(other.x_max),
        }
        .area();
        let union = self.area() + other.area() - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }
}

/// Parameters of the suppression (the `detection_out` node's attributes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NmsConfig {
    /// Class id not reported (0, "background").
    pub background_class: usize,
    /// Scores must exceed this to be candidates (`confidence_threshold`).
    pub score_threshold: f32,
    /// Overlap above which the weaker box is dropped (`nms_threshold`).
    pub iou_threshold: f32,
    /// Best candidates per class entering NMS (`top_k`).
    pub candidates_per_class: usize,
    /// Detections kept over all classes (`keep_top_k`).
    pub max_detections: usize,
}

impl NmsConfig {
    /// The settings of ssd_mobilenet_v2_coco's `detection_out`.
    pub fn ssd_mobilenet_v2_coco() -> Self {
        Self {
            background_class: 0,
            score_threshold: 0.01,
            iou_threshold: 0.6,
            candidates_per_class: 100,
            max_detections: 100,
        }
    }
}

/// A kept box: which anchor, which class, what score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Kept {
    /// Anchor index.
    pub anchor: usize,
    /// Class id.
    pub class_id: usize,
    /// Score (sigmoid of the logit).
    pub score: f32,
}

/// Runs the suppression on `boxes` (one per anchor) and `scores` (`num_classes` per anchor);
/// returns the kept boxes, best first.
pub fn multiclass_nms(
    boxes: &[BBox],
    scores: &[f32],
    num_classes: usize,
    config: &NmsConfig,
) -> Vec<Kept> {
    let mut kept = Vec::new();
    let mut candidates: Vec<(f32, usize)> = Vec::new();
    let mut selected: Vec<usize> = Vec::new();
    for class_id in (0..num_classes).filter(|&c| c != config.background_class) {
        candidates.clear();
        candidates.extend(
            boxes
                .iter()
                .enumerate()
                .map(|(i, _)| (scores[i * num_classes + class_id], i))
                .filter(|&(s, _)| s > config.score_threshold),
        );
        // Stable: equal scores keep anchor order, as std::stable_sort does in Caffe/OpenCV.
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
        candidates.truncate(config.candidates_per_class);
        selected.clear();
        for &(score, i) in &candidates {
            if selected
                .iter()
                .all(|&j| boxes[i].iou(&boxes[j]) <= config.iou_threshold)
            {
                selected.push(i);
                kept.push(Kept {
                    anchor: i,
                    class_id,
                    score,
                });
            }
        }
    }
    kept.sort_by(|a, b| b.score.total_cmp(&a.score));
    kept.truncate(config.max_detections);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(x: f32, y: f32, s: f32) -> BBox {
        BBox {
            y_min: y,
            x_min: x,
            y_max: y + s,
            x_max: x + s,
        }
    }

    #[test]
    fn iou_of_known_boxes() {
        let a = bx(0.0, 0.0, 0.2);
        assert!((a.iou(&a) - 1.0).abs() < 1e-6);
        assert_eq!(a.iou(&bx(0.5, 0.5, 0.1)), 0.0);
        // Half overlap along x: inter 0.02, union 0.06.
        assert!((a.iou(&bx(0.1, 0.0, 0.2)) - 1.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn suppresses_per_class_and_skips_background() {
        let boxes = [bx(0.0, 0.0, 0.2), bx(0.01, 0.0, 0.2), bx(0.5, 0.5, 0.2)];
        // 3 classes: background, A, B.
        let scores = [
            0.9, 0.8, 0.1, //
            0.9, 0.7, 0.6, // overlaps box 0: dropped for A, kept for B
            0.9, 0.005, 0.5, // A below threshold
        ];
        let kept = multiclass_nms(&boxes, &scores, 3, &NmsConfig::ssd_mobilenet_v2_coco());
        let got: Vec<(usize, usize)> = kept.iter().map(|k| (k.anchor, k.class_id)).collect();
        // B: anchor 1 (0.6) kept; anchor 0 (0.1) overlaps it; anchor 2 (0.5) kept.
        assert_eq!(got, vec![(0, 1), (1, 2), (2, 2)]);
    }
}
