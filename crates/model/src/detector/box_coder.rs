//! TF's `FasterRcnnBoxCoder`: box encodings (ty, tx, th, tw) relative to an anchor, divided by
//! scale factors (10, 10, 5, 5 in ssd_mobilenet_v2_coco — the variances 0.1, 0.1, 0.2, 0.2 of
//! OpenCV's DetectionOutput).

use super::anchors::Anchor;
use super::nms::BBox;

/// Decodes box encodings against anchors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FasterRcnnBoxCoder {
    /// Divisors of (ty, tx, th, tw).
    pub scale_factors: [f32; 4],
}

impl FasterRcnnBoxCoder {
    /// The coder of ssd_mobilenet_v2_coco's pipeline config.
    pub fn ssd_mobilenet_v2_coco() -> Self {
        Self {
            scale_factors: [10.0, 10.0, 5.0, 5.0],
        }
    }

    /// The box an encoding describes, in the anchor's normalised coordinates.
    pub fn decode(&self, code: &[f32; 4], anchor: &Anchor) -> BBox {
        let [sy, sx, sh, sw] = self.scale_factors;
        let y_center = code[0] / sy * anchor.height + anchor.y_center;
        let x_center = code[1] / sx * anchor.width + anchor.x_center;
        let height = (code[2] / sh).exp() * anchor.height;
        let width = (code[3] / sw).exp() * anchor.width;
        BBox {
            y_min: y_center - height / 2.0,
            x_min: x_center - width / 2.0,
            y_max: y_center + height / 2.0,
            x_max: x_center + width / 2.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_code_is_the_anchor_and_scales_apply() {
        let coder = FasterRcnnBoxCoder::ssd_mobilenet_v2_coco();
        let a = Anchor {
            y_center: 0.5,
            x_center: 0.25,
            height: 0.2,
            width: 0.4,
        };
        let b = coder.decode(&[0.0; 4], &a);
        assert!((b.y_min - 0.4).abs() < 1e-6 && (b.x_max - 0.45).abs() < 1e-6);
        // ty = 10 moves the centre by one anchor height; th = 5·ln 2 doubles the height.
        let b = coder.decode(&[10.0, 0.0, 5.0 * 2f32.ln(), 0.0], &a);
        assert!(
            (b.y_min - 0.5).abs() < 1e-6 && (b.y_max - 0.9).abs() < 1e-6,
            "{b:?}"
        );
    }
}
