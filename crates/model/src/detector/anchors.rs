//! SSD anchors as the TF object detection API's `ssd_anchor_generator` defines them
//! (`create_ssd_anchors` + `MultipleGridAnchorGenerator`), with the pipeline settings of
//! ssd_mobilenet_v2_coco: 6 layers, scales 0.2–0.95, aspect ratios {1, 2, 0.5, 3, 0.3333}, an extra
//! anchor of scale √(sᵢ·sᵢ₊₁) and ratio 1, and `reduce_boxes_in_lowest_layer`.

/// One anchor in normalised image coordinates (0..1 over the 300×300 input).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anchor {
    /// Centre row.
    pub y_center: f32,
    /// Centre column.
    pub x_center: f32,
    /// Height.
    pub height: f32,
    /// Width.
    pub width: f32,
}

/// Settings of TF's `ssd_anchor_generator`.
#[derive(Debug, Clone, PartialEq)]
pub struct SsdAnchorGenerator {
    /// Number of feature maps.
    pub num_layers: usize,
    /// Scale of the lowest map's anchors.
    pub min_scale: f64,
    /// Scale of the highest map's anchors.
    pub max_scale: f64,
    /// Aspect ratios (width / height) of every map's anchors.
    pub aspect_ratios: Vec<f64>,
    /// Ratio of the extra anchor of scale √(sᵢ·sᵢ₊₁); none when not positive.
    pub interpolated_scale_aspect_ratio: f64,
    /// Lowest map uses only (0.1, 1), (s₀, 2), (s₀, ½).
    pub reduce_boxes_in_lowest_layer: bool,
}

impl SsdAnchorGenerator {
    /// The generator of ssd_mobilenet_v2_coco's pipeline config.
    pub fn ssd_mobilenet_v2_coco() -> Self {
        Self {
            num_layers: 6,
            min_scale: 0.2,
            max_scale: 0.95,
            // 0.3333 as in the pipeline config (the frozen graph's `Sqrt_*/x` constants), not 1/3.
            aspect_ratios: vec![1.0, 2.0, 0.5, 3.0, 0.3333],
            interpolated_scale_aspect_ratio: 1.0,
            reduce_boxes_in_lowest_layer: true,
        }
    }

    /// (scale, aspect ratio) of each anchor per position, for each layer (`create_ssd_anchors`).
    pub fn box_specs(&self) -> Vec<Vec<(f64, f64)>> {
        let steps = (self.num_layers.max(2) - 1) as f64;
        let mut scales: Vec<f64> = (0..self.num_layers)
            .map(|i| self.min_scale + (self.max_scale - self.min_scale) * i as f64 / steps)
            .collect();
        scales.push(1.0);
        (0..self.num_layers)
            .map(|layer| {
                let (scale, next) = (scales[layer], scales[layer + 1]);
                if layer == 0 && self.reduce_boxes_in_lowest_layer {
                    vec![(0.1, 1.0), (scale, 2.0), (scale, 0.5)]
                } else {
                    let mut specs: Vec<(f64, f64)> =
                        self.aspect_ratios.iter().map(|&r| (scale, r)).collect();
                    if self.interpolated_scale_aspect_ratio > 0.0 {
                        specs.push(((scale * next).sqrt(), self.interpolated_scale_aspect_ratio));
                    }
                    specs
                }
            })
            .collect()
    }

    /// Anchors of all layers for feature maps of `grid_sizes` (rows, columns) on a square input,
    /// ordered (layer, row, column, anchor) like the predictors' outputs. Strides are 1/grid and
    /// offsets half a stride, TF's defaults when none are configured.
    pub fn generate(&self, grid_sizes: &[(usize, usize)]) -> Vec<Anchor> {
        let specs = self.box_specs();
        let mut anchors = Vec::new();
        for (&(rows, cols), layer) in grid_sizes.iter().zip(&specs) {
            let (stride_y, stride_x) = (1.0 / rows as f64, 1.0 / cols as f64);
            for r in 0..rows {
                for c in 0..cols {
                    let y_center = r as f64 * stride_y + 0.5 * stride_y;
                    let x_center = c as f64 * stride_x + 0.5 * stride_x;
                    for &(scale, ratio) in layer {
                        let ratio_sqrt = ratio.sqrt();
                        anchors.push(Anchor {
                            y_center: y_center as f32,
                            x_center: x_center as f32,
                            height: (scale / ratio_sqrt) as f32,
                            width: (scale * ratio_sqrt) as f32,
                        });
                    }
                }
            }
        }
        anchors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scales and aspect ratios equal the constants the frozen graph's anchor generator holds
    /// (`MultipleGridAnchorGenerator/div_14/x` … `div_19/x`, `Sqrt/x` … `Sqrt_5/x`).
    #[test]
    fn specs_match_the_frozen_graphs_constants() {
        let g = SsdAnchorGenerator::ssd_mobilenet_v2_coco();
        let specs = g.box_specs();
        let graph_scales: [&[f64]; 6] = [
            &[0.1, 0.2, 0.2],
            &[0.35, 0.35, 0.35, 0.35, 0.35, 0.41833],
            &[0.5, 0.5, 0.5, 0.5, 0.5, 0.570_087_7],
            &[0.65, 0.65, 0.65, 0.65, 0.65, 0.721_110_2],
            &[0.8, 0.8, 0.8, 0.8, 0.8, 0.871_779_8],
            &[0.95, 0.95, 0.95, 0.95, 0.95, 0.974_679_4],
        ];
        for (layer, (specs, scales)) in specs.iter().zip(graph_scales).enumerate() {
            let ratios: &[f64] = if layer == 0 {
                &[1.0, 2.0, 0.5]
            } else {
                &[1.0, 2.0, 0.5, 3.0, 0.3333, 1.0]
            };
            assert_eq!(specs.len(), scales.len());
            for (&(s, r), (&ws, &wr)) in specs.iter().zip(scales.iter().zip(ratios)) {
                assert!(
                    (s - ws).abs() < 1e-5 && (r - wr).abs() < 1e-9,
                    "layer {layer}: {s},{r}"
                );
            }
        }
        let grids = [(19, 19), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)];
        let anchors = g.generate(&grids);
        assert_eq!(anchors.len(), 1917);
        assert!((anchors[0].y_center - 0.5 / 19.0).abs() < 1e-7);
        let last = anchors[anchors.len() - 1];
        assert_eq!((last.y_center, last.x_center), (0.5, 0.5));
    }
}
