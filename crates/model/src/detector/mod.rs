//! SSD-MobileNetV2 (COCO, 90 classes, 300×300) in candle, loaded from the converted TF1 frozen
//! graph (`offload convert-detector`), split at the stride-16 stage for offloading.
//!
//! The pipeline is the graph's: TF1 bilinear resize to 300×300 and x·2/255 − 1; MobileNetV2 with
//! depthwise convolutions; four SSD extra stages; 3×3 box and class predictors on six maps
//! (19², 10², 5², 3², 2², 1²; 1917 anchors); TF's SSD anchors and Faster R-CNN box coder; sigmoid
//! scores and per-class NMS as the graph's `DetectionOutput` node runs it. BatchNorm is folded
//! into the convolutions at load time and the layers run as inference-only CPU kernels
//! (im2col + one matrix product, a direct depthwise 3×3).
//!
//! The split API: [`Detector::encode_to_split`] is the device half (image → one 96×19×19 tensor),
//! [`Detector::finish_from_split`] the server half (that tensor → detections); a codec sits
//! between them.

pub mod anchors;
pub mod box_coder;
pub mod conv;
pub mod depthwise;
pub mod error;
pub mod extras;
pub mod labels;
pub mod mobilenet_v2;
pub mod nms;
pub mod pointwise;
pub mod preprocess;
pub mod ssd_head;
pub mod weights;

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use anchors::{Anchor, SsdAnchorGenerator};
use box_coder::FasterRcnnBoxCoder;
use conv::SamePadding;
pub use error::DetectorError;
use extras::ExtraLayers;
use mobilenet_v2::{MobileNetV2Encoder, MobileNetV2Tail, SPLIT_CHANNELS};
use nms::{BBox, NmsConfig, multiclass_nms};
pub use preprocess::INPUT_SIZE;
pub use ssd_head::RawPredictions;
use ssd_head::{NUM_CLASSES, SsdHead};
use weights::WeightFile;

/// File name of the converted weights inside a model directory.
pub const WEIGHTS_FILE: &str = "ssd_mobilenet_v2_coco.safetensors";
/// Side of the split tensor (stride 16 of the 300×300 input).
pub const SPLIT_SIZE: usize = 19;
/// Shape of the split tensor, (batch, channels, rows, columns).
pub const SPLIT_SHAPE: [usize; 4] = [1, SPLIT_CHANNELS, SPLIT_SIZE, SPLIT_SIZE];
/// Shape of a preprocessed image, (batch, channels, rows, columns).
pub const INPUT_SHAPE: [usize; 4] = [1, 3, INPUT_SIZE, INPUT_SIZE];

/// Where `scripts/install-detector.sh` puts the converted model: `converted/` in
/// [`crate::tf_import::detector_cache_dir`] (`$OFFLOAD_CACHE/detector`, else
/// `$HOME/.cache/offload/detector`).
pub fn default_model_dir() -> PathBuf {
    crate::tf_import::detector_cache_dir().join("converted")
}

/// One detected object in pixels of the frame it was found in. Boxes are not clipped to the frame
/// (the graph's `DetectionOutput` does not clip); clamp them for display.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// COCO class id (1–90, as in the TF label map; 0 is background and never reported).
    pub class_id: usize,
    /// Sigmoid score.
    pub score: f32,
    /// Left edge, pixels.
    pub x_min: f32,
    /// Top edge, pixels.
    pub y_min: f32,
    /// Right edge, pixels.
    pub x_max: f32,
    /// Bottom edge, pixels.
    pub y_max: f32,
}

/// The loaded detector.
#[derive(Debug, Clone)]
pub struct Detector {
    /// `Preprocessor/mul/x` (2/255).
    input_scale: f32,
    /// `Preprocessor/sub/y` (1).
    input_offset: f32,
    encoder: MobileNetV2Encoder,
    tail: MobileNetV2Tail,
    extras: ExtraLayers,
    head: SsdHead,
    anchors: Vec<Anchor>,
    coder: FasterRcnnBoxCoder,
    nms: NmsConfig,
}

/// (rows, columns) of the six SSD feature maps for a square input of `size`.
fn feature_grid_sizes(size: usize) -> Vec<(usize, usize)> {
    // Stem and blocks 1, 3, 6 halve the input to stride 16; block 13 and the four extra stages
    // halve again, each a 3×3 stride-2 convolution with SAME padding.
    let mut len = size;
    for _ in 0..4 {
        len = SamePadding::new(len, 3, 2).out_len;
    }
    let mut sizes = vec![(len, len)];
    for _ in 0..5 {
        len = SamePadding::new(len, 3, 2).out_len;
        sizes.push((len, len));
    }
    sizes
}

impl Detector {
    /// Loads `ssd_mobilenet_v2_coco.safetensors` from `dir`, checking every tensor's name and
    /// shape against the architecture.
    pub fn load(dir: &Path) -> Result<Self, DetectorError> {
        let path = dir.join(WEIGHTS_FILE);
        let bytes = std::fs::read(&path).map_err(|source| DetectorError::Io {
            path: path.clone(),
            source,
        })?;
        let file = WeightFile::parse(&path, &bytes)?;
        let anchors =
            SsdAnchorGenerator::ssd_mobilenet_v2_coco().generate(&feature_grid_sizes(INPUT_SIZE));
        Ok(Self {
            input_scale: file.scalar("Preprocessor/mul/x")?,
            input_offset: file.scalar("Preprocessor/sub/y")?,
            encoder: MobileNetV2Encoder::load(&file)?,
            tail: MobileNetV2Tail::load(&file)?,
            extras: ExtraLayers::load(&file)?,
            head: SsdHead::load(&file)?,
            anchors,
            coder: FasterRcnnBoxCoder::ssd_mobilenet_v2_coco(),
            nms: NmsConfig::ssd_mobilenet_v2_coco(),
        })
    }

    /// The anchors, in prediction order.
    pub fn anchors(&self) -> &[Anchor] {
        &self.anchors
    }

    /// Resizes an interleaved RGB frame to the network input and normalises it: (1, 3, 300, 300).
    pub fn preprocess(
        &self,
        rgb: &[u8],
        width: usize,
        height: usize,
    ) -> Result<Tensor, DetectorError> {
        let expected = width
            .checked_mul(height)
            .and_then(|n| n.checked_mul(3))
            .filter(|&n| n > 0);
        if expected != Some(rgb.len()) {
            return Err(DetectorError::ImageSize {
                width,
                height,
                found: rgb.len(),
                expected: expected.unwrap_or(0),
            });
        }
        let mut x = preprocess::resize_bilinear_tf1(rgb, width, height, INPUT_SIZE, INPUT_SIZE);
        for v in &mut x {
            *v = *v * self.input_scale - self.input_offset;
        }
        Ok(Tensor::from_vec(x, INPUT_SHAPE.as_slice(), &Device::Cpu)?)
    }

    /// Device half: preprocessed images (B, 3, 300, 300) → split tensors (B, 96, 19, 19), one
    /// image at a time through the inference kernels.
    pub fn encode_to_split(&self, images: &Tensor) -> Result<Tensor, DetectorError> {
        let dims = images.dims();
        if dims.len() != 4
            || dims[0] == 0
            || dims[1..] != INPUT_SHAPE[1..]
            || images.dtype() != candle_core::DType::F32
        {
            return Err(DetectorError::InputShape {
                what: "image",
                found: dims.to_vec(),
                expected: INPUT_SHAPE.to_vec(),
            });
        }
        let features = (0..dims[0])
            .map(|b| self.encoder.forward(&images.get(b)?))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Tensor::stack(&features, 0)?)
    }

    /// [`Self::encode_to_split`] built from candle's own differentiable ops (`conv2d` on
    /// TF-padded inputs, the whole batch at once): much slower, the reference the inference
    /// kernels are checked against, and differentiable w.r.t. `images`.
    pub fn encode_to_split_autograd(&self, images: &Tensor) -> Result<Tensor, DetectorError> {
        let dims = images.dims();
        if dims.len() != 4 || dims[0] == 0 || dims[1..] != INPUT_SHAPE[1..] {
            return Err(DetectorError::InputShape {
                what: "image",
                found: dims.to_vec(),
                expected: INPUT_SHAPE.to_vec(),
            });
        }
        Ok(self.encoder.forward_autograd(images)?)
    }

    /// Server half up to the raw head outputs (box encodings and class logits of all anchors).
    pub fn predict_from_split(&self, features: &Tensor) -> Result<RawPredictions, DetectorError> {
        check_shape("split features", features, &SPLIT_SHAPE)?;
        let backbone = self.tail.forward(&features.squeeze(0)?)?;
        let mut maps = vec![backbone.stride16, backbone.stride32.clone()];
        maps.extend(self.extras.forward(&backbone.stride32)?);
        Ok(self.head.forward(&maps)?)
    }

    /// The server half up to the raw head outputs on a batch of split tensors (B, 96, 19, 19),
    /// built from candle's differentiable ops so that gradients reach `features` (the detector's
    /// weights stay constants): box encodings (B, 1917, 4) and class logits (B, 1917, 91). For
    /// distilling a codec through the frozen detector; [`Self::predict_from_split`] is the fast
    /// inference path and gives the same numbers.
    pub fn predict_from_split_autograd(
        &self,
        features: &Tensor,
    ) -> Result<(Tensor, Tensor), DetectorError> {
        let dims = features.dims();
        if dims.len() != 4 || dims[1..] != SPLIT_SHAPE[1..] {
            return Err(DetectorError::InputShape {
                what: "split features",
                found: dims.to_vec(),
                expected: SPLIT_SHAPE.to_vec(),
            });
        }
        let backbone = self.tail.forward_autograd(features)?;
        let mut maps = vec![backbone.stride16, backbone.stride32.clone()];
        maps.extend(self.extras.forward_autograd(&backbone.stride32)?);
        Ok(self.head.forward_autograd(&maps)?)
    }

    /// Decodes raw predictions into detections in pixels of a `width`×`height` frame.
    pub fn postprocess(&self, raw: &RawPredictions, width: usize, height: usize) -> Vec<Detection> {
        let boxes: Vec<BBox> = raw
            .box_encodings
            .iter()
            .zip(&self.anchors)
            .map(|(code, anchor)| self.coder.decode(code, anchor))
            .collect();
        let scores: Vec<f32> = raw
            .class_logits
            .iter()
            .map(|&l| 1.0 / (1.0 + (-l).exp()))
            .collect();
        let (w, h) = (width as f32, height as f32);
        multiclass_nms(&boxes, &scores, NUM_CLASSES, &self.nms)
            .into_iter()
            .map(|k| {
                let b = boxes[k.anchor];
                Detection {
                    class_id: k.class_id,
                    score: k.score,
                    x_min: b.x_min * w,
                    y_min: b.y_min * h,
                    x_max: b.x_max * w,
                    y_max: b.y_max * h,
                }
            })
            .collect()
    }

    /// Server half: the split tensor → detections in pixels of the `width`×`height` frame.
    pub fn finish_from_split(
        &self,
        features: &Tensor,
        width: usize,
        height: usize,
    ) -> Result<Vec<Detection>, DetectorError> {
        let raw = self.predict_from_split(features)?;
        Ok(self.postprocess(&raw, width, height))
    }

    /// The whole detector on an interleaved RGB frame, detections best first.
    pub fn detect(
        &self,
        rgb: &[u8],
        width: usize,
        height: usize,
    ) -> Result<Vec<Detection>, DetectorError> {
        let x = self.preprocess(rgb, width, height)?;
        let f = self.encode_to_split(&x)?;
        self.finish_from_split(&f, width, height)
    }
}

fn check_shape(what: &'static str, t: &Tensor, expected: &[usize]) -> Result<(), DetectorError> {
    if t.dims() != expected || t.dtype() != candle_core::DType::F32 {
        return Err(DetectorError::InputShape {
            what,
            found: t.dims().to_vec(),
            expected: expected.to_vec(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_sizes_and_anchor_count_of_a_300_input() {
        assert_eq!(
            feature_grid_sizes(300),
            vec![(19, 19), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]
        );
        let n: usize = feature_grid_sizes(300)
            .iter()
            .zip(ssd_head::ANCHORS_PER_POSITION)
            .map(|(&(r, c), a)| r * c * a)
            .sum();
        assert_eq!(n, 1917);
    }
}
