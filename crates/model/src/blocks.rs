//! Convolution + batch norm (+ ReLU) and the residual block the encoder and decoders are built of.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::batch_norm::BatchNorm;
use crate::conv::Conv2d;

/// conv → BN → optional ReLU, on (C, B, H, W).
#[derive(Debug, Clone)]
pub struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
    relu: bool,
}

impl ConvBn {
    /// Builds `conv` and `bn` under `vb`.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        relu: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            conv: Conv2d::new(in_channels, out_channels, kernel, stride, vb.pp("conv"))?,
            bn: BatchNorm::new(out_channels, vb.pp("bn"))?,
            relu,
        })
    }

    /// Applies the block; `train` selects batch statistics.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.bn
            .forward_act(&self.conv.forward(x)?, train, self.relu)
    }
}

/// One 3×3 conv-BN with an identity skip: relu(x + bn(conv(x))). One conv rather than two keeps
/// the device's encoder (and CPU training) cheap.
#[derive(Debug, Clone)]
pub struct ResidualBlock {
    conv: ConvBn,
}

impl ResidualBlock {
    /// Builds a block of `channels` under `vb` (`conv`).
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: ConvBn::new(channels, channels, 3, 1, false, vb.pp("conv"))?,
        })
    }

    /// Applies the block.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        (x + self.conv.forward(x, train)?)?.relu()
    }
}
