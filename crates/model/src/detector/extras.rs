//! The SSD extra feature layers on top of MobileNetV2 (`layer_19_*`): four stages, each a 1×1
//! reduction to half the depth, a stride-2 depthwise 3×3 and a 1×1 expansion to the full depth,
//! all with BatchNorm and ReLU6. They turn `Conv_1` (10×10) into the 5×5, 3×3, 2×2 and 1×1 maps.

use candle_core::Tensor;

use super::conv::{Activation, SameConv};
use super::depthwise::DepthwiseConv;
use super::error::DetectorError;
use super::mobilenet_v2::SCOPE;
use super::weights::WeightFile;

/// Output depth of extra stages 2–5 (the stage numbers in the TF names start at 2).
const DEPTHS: [usize; 4] = [512, 256, 256, 128];
/// Input depth of the first stage (`Conv_1`).
const INPUT_DEPTH: usize = 1280;

/// One extra stage.
#[derive(Debug, Clone)]
struct ExtraStage {
    reduce: SameConv,
    depthwise: DepthwiseConv,
    expand: SameConv,
}

/// The four extra stages.
#[derive(Debug, Clone)]
pub struct ExtraLayers {
    stages: Vec<ExtraStage>,
}

impl ExtraLayers {
    /// Loads `layer_19_1_Conv2d_{2..5}_1x1_*` and `layer_19_2_Conv2d_{2..5}_3x3_s2_*`.
    pub fn load(file: &WeightFile) -> Result<Self, DetectorError> {
        let mut stages = Vec::with_capacity(DEPTHS.len());
        let mut cin = INPUT_DEPTH;
        for (i, &depth) in DEPTHS.iter().enumerate() {
            let n = i + 2;
            let half = depth / 2;
            let reduce = file.conv_bn(
                &format!("{SCOPE}/layer_19_1_Conv2d_{n}_1x1_{half}"),
                1,
                1,
                cin,
                half,
                Activation::Relu6,
            )?;
            let depthwise = file.depthwise_bn(
                &format!("{SCOPE}/layer_19_2_Conv2d_{n}_3x3_s2_{depth}_depthwise"),
                2,
                half,
            )?;
            let expand = file.conv_bn(
                &format!("{SCOPE}/layer_19_2_Conv2d_{n}_3x3_s2_{depth}"),
                1,
                1,
                half,
                depth,
                Activation::Relu6,
            )?;
            stages.push(ExtraStage {
                reduce,
                depthwise,
                expand,
            });
            cin = depth;
        }
        Ok(Self { stages })
    }

    /// The four feature maps, from `Conv_1`'s output.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Vec<Tensor>> {
        let mut maps = Vec::with_capacity(self.stages.len());
        let mut x = x.clone();
        for stage in &self.stages {
            x = stage
                .expand
                .forward(&stage.depthwise.forward(&stage.reduce.forward(&x)?)?)?;
            maps.push(x.clone());
        }
        Ok(maps)
    }

    /// [`forward`](Self::forward) on a (B, C, H, W) batch, differentiable.
    pub fn forward_autograd(&self, x: &Tensor) -> candle_core::Result<Vec<Tensor>> {
        let mut maps = Vec::with_capacity(self.stages.len());
        let mut x = x.clone();
        for stage in &self.stages {
            let r = stage.reduce.forward_autograd(&x)?;
            x = stage
                .expand
                .forward_autograd(&stage.depthwise.forward_autograd(&r)?)?;
            maps.push(x.clone());
        }
        Ok(maps)
    }
}
