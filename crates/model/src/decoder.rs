//! A task decoder: split-point features F → class logits. The server holds two (low-rate and
//! high-rate); the device's local path holds a third that sees uncompressed F.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::blocks::ConvBn;
use crate::config::ModelConfig;

/// down (3×3 stride 2, 7×7) → down2 (3×3 stride 2, 4×4) → flatten → linear.
#[derive(Debug, Clone)]
pub struct TaskDecoder {
    down: ConvBn,
    down2: ConvBn,
    head: Linear,
}

impl TaskDecoder {
    /// Builds a decoder under `vb` (`down`, `down2`, `head`).
    pub fn new(config: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        let f = config.feature_channels();
        let [d0, d1] = config.decoder_channels;
        let side = config.feature_side().div_ceil(2).div_ceil(2);
        Ok(Self {
            down: ConvBn::new(f, d0, 3, 2, true, vb.pp("down"))?,
            down2: ConvBn::new(d0, d1, 3, 2, true, vb.pp("down2"))?,
            head: candle_nn::linear(d1 * side * side, config.num_classes(), vb.pp("head"))?,
        })
    }

    /// Features (C, B, 14, 14) → logits (B, classes).
    pub fn forward(&self, features: &Tensor, train: bool) -> Result<Tensor> {
        let x = self.down.forward(features, train)?;
        let x = self.down2.forward(&x, train)?;
        let (c, b, h, w) = x.dims4()?;
        // (C, B, H, W) → (B, C·H·W): one transpose of a small tensor.
        let flat = x
            .reshape((c, b, h * w))?
            .transpose(0, 1)?
            .contiguous()?
            .reshape((b, c * h * w))?;
        self.head.forward(&flat)
    }
}
