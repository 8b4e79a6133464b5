//! The task encoder that runs on the device: 1×28×28 image → F (C×14×14).

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use crate::blocks::{ConvBn, ResidualBlock};
use crate::config::ModelConfig;

/// stem (3×3 stride 2 → 14×14) → widen (3×3) → one residual conv.
#[derive(Debug, Clone)]
pub struct TaskEncoder {
    stem: ConvBn,
    widen: ConvBn,
    block: ResidualBlock,
}

impl TaskEncoder {
    /// Builds the encoder under `vb` (`stem`, `widen`, `block`).
    pub fn new(config: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        let [c0, c1] = config.encoder_channels;
        Ok(Self {
            stem: ConvBn::new(1, c0, 3, 2, true, vb.pp("stem"))?,
            widen: ConvBn::new(c0, c1, 3, 1, true, vb.pp("widen"))?,
            block: ResidualBlock::new(c1, vb.pp("block"))?,
        })
    }

    /// Images (1, B, 28, 28) in [0, 1] → features (C, B, 14, 14).
    pub fn forward(&self, images: &Tensor, train: bool) -> Result<Tensor> {
        let x = self.stem.forward(images, train)?;
        let x = self.widen.forward(&x, train)?;
        self.block.forward(&x, train)
    }
}
