//! SSD box and class predictors: on each of the six feature maps, one 3×3 convolution predicts 4
//! box-encoding values and 91 class logits (background + 90 COCO ids) for every anchor at every
//! position. The two convolutions of a map share their input, so they run as one convolution
//! whose output rows are the box rows followed by the class rows.

use candle_core::Tensor;

use super::conv::{Activation, SameConv};
use super::error::DetectorError;
use super::weights::WeightFile;

/// Classes the predictor scores, background (id 0) included.
pub const NUM_CLASSES: usize = 91;
/// Values of one box encoding: (ty, tx, th, tw).
pub const BOX_CODE_LEN: usize = 4;
/// Anchors per position on each feature map (the lowest has 3, `reduce_boxes_in_lowest_layer`).
pub const ANCHORS_PER_POSITION: [usize; 6] = [3, 6, 6, 6, 6, 6];
/// Channels of each feature map.
pub const FEATURE_CHANNELS: [usize; 6] = [576, 1280, 512, 256, 256, 128];
/// Predictor kernel size.
const KERNEL: usize = 3;

/// Raw head outputs for all anchors, in anchor order (map, row, column, anchor).
#[derive(Debug, Clone, PartialEq)]
pub struct RawPredictions {
    /// Box encodings (ty, tx, th, tw) relative to each anchor.
    pub box_encodings: Vec<[f32; BOX_CODE_LEN]>,
    /// Class logits, `NUM_CLASSES` per anchor (before the sigmoid).
    pub class_logits: Vec<f32>,
}

impl RawPredictions {
    /// Number of anchors.
    pub fn len(&self) -> usize {
        self.box_encodings.len()
    }

    /// Whether there are no anchors.
    pub fn is_empty(&self) -> bool {
        self.box_encodings.is_empty()
    }

    /// The logits of anchor `i`.
    pub fn logits(&self, i: usize) -> &[f32] {
        &self.class_logits[i * NUM_CLASSES..(i + 1) * NUM_CLASSES]
    }
}

/// The predictor of one feature map.
#[derive(Debug, Clone)]
struct BoxPredictor {
    conv: SameConv,
    anchors: usize,
}

/// The six predictors.
#[derive(Debug, Clone)]
pub struct SsdHead {
    predictors: Vec<BoxPredictor>,
}

impl SsdHead {
    /// Loads `BoxPredictor_{0..5}/{BoxEncodingPredictor,ClassPredictor}/{weights,biases}`.
    pub fn load(file: &WeightFile) -> Result<Self, DetectorError> {
        let mut predictors = Vec::with_capacity(FEATURE_CHANNELS.len());
        for (i, (&cin, &anchors)) in FEATURE_CHANNELS
            .iter()
            .zip(&ANCHORS_PER_POSITION)
            .enumerate()
        {
            let (mut weight, mut bias) = file.conv_biased(
                &format!("BoxPredictor_{i}/BoxEncodingPredictor"),
                KERNEL,
                cin,
                anchors * BOX_CODE_LEN,
            )?;
            let (class_weight, class_bias) = file.conv_biased(
                &format!("BoxPredictor_{i}/ClassPredictor"),
                KERNEL,
                cin,
                anchors * NUM_CLASSES,
            )?;
            weight.extend_from_slice(&class_weight);
            bias.extend_from_slice(&class_bias);
            predictors.push(BoxPredictor {
                conv: SameConv::new(weight, bias, cin, KERNEL, 1, Activation::Linear)?,
                anchors,
            });
        }
        Ok(Self { predictors })
    }

    /// Predicts on the six feature maps (each (C, H, W)), concatenated in anchor order.
    pub fn forward(&self, maps: &[Tensor]) -> candle_core::Result<RawPredictions> {
        if maps.len() != self.predictors.len() {
            candle_core::bail!(
                "{} feature maps for {} predictors",
                maps.len(),
                self.predictors.len()
            );
        }
        let mut box_encodings = Vec::new();
        let mut class_logits = Vec::new();
        for (map, predictor) in maps.iter().zip(&self.predictors) {
            let y = predictor.conv.forward(map)?;
            let (_, h, w) = y.dims3()?;
            let positions = h * w;
            let values = y.flatten_all()?.to_vec1::<f32>()?;
            let a = predictor.anchors;
            let class_row0 = a * BOX_CODE_LEN;
            // TF's NHWC output reshaped to (positions·anchors, 4 or 91): channel a·4 + k holds
            // coordinate k of anchor a, channel a·91 + c its logit of class c.
            for pos in 0..positions {
                for anchor in 0..a {
                    box_encodings.push(std::array::from_fn(|k| {
                        values[(anchor * BOX_CODE_LEN + k) * positions + pos]
                    }));
                    for c in 0..NUM_CLASSES {
                        class_logits.push(
                            values[(class_row0 + anchor * NUM_CLASSES + c) * positions + pos],
                        );
                    }
                }
            }
        }
        Ok(RawPredictions {
            box_encodings,
            class_logits,
        })
    }

    /// [`forward`](Self::forward) on six (B, C, H, W) maps with candle's differentiable ops:
    /// box encodings (B, anchors, 4) and class logits (B, anchors, 91), in anchor order.
    pub fn forward_autograd(&self, maps: &[Tensor]) -> candle_core::Result<(Tensor, Tensor)> {
        if maps.len() != self.predictors.len() {
            candle_core::bail!(
                "{} feature maps for {} predictors",
                maps.len(),
                self.predictors.len()
            );
        }
        let (mut boxes, mut logits) = (Vec::new(), Vec::new());
        for (map, predictor) in maps.iter().zip(&self.predictors) {
            let y = predictor.conv.forward_autograd(map)?;
            let (b, _, h, w) = y.dims4()?;
            let a = predictor.anchors;
            // NHWC, then (B, H·W·A, 4) and (B, H·W·A, 91): TF's reshape of the predictor output.
            let nhwc = y.permute((0, 2, 3, 1))?;
            let box_part = nhwc.narrow(3, 0, a * BOX_CODE_LEN)?;
            let class_part = nhwc.narrow(3, a * BOX_CODE_LEN, a * NUM_CLASSES)?;
            boxes.push(
                box_part
                    .contiguous()?
                    .reshape((b, h * w * a, BOX_CODE_LEN))?,
            );
            logits.push(
                class_part
                    .contiguous()?
                    .reshape((b, h * w * a, NUM_CLASSES))?,
            );
        }
        Ok((Tensor::cat(&boxes, 1)?, Tensor::cat(&logits, 1)?))
    }
}
