//! MobileNetV2 (depth multiplier 1) as the TF object detection API's SSD feature extractor builds
//! it, split at the stride-16 stage.
//!
//! The device half ([`MobileNetV2Encoder`]) runs the stem and inverted-residual blocks 0–12 and
//! ends in one 96×19×19 tensor (for a 300×300 input): the only tensor that crosses the split. The
//! server half ([`MobileNetV2Tail`]) runs blocks 13–16 and `Conv_1`; it exposes block 13's
//! expansion (576×19×19) and `Conv_1` (1280×10×10), the first two SSD feature maps.

use std::cell::RefCell;

use candle_core::Tensor;

use super::conv::{Activation, SameConv};
use super::depthwise::DepthwiseConv;
use super::error::DetectorError;
use super::weights::WeightFile;

/// TF scope of the backbone's layers.
pub const SCOPE: &str = "FeatureExtractor/MobilenetV2";
/// Channels of the split tensor (output of block 12).
pub const SPLIT_CHANNELS: usize = 96;
/// Last block of the device half.
pub const SPLIT_BLOCK: usize = 12;

/// One inverted-residual block: (expansion factor, output channels, stride of its depthwise
/// layer), for blocks `expanded_conv`, `expanded_conv_1`, … `expanded_conv_16`.
const BLOCKS: [(usize, usize, usize); 17] = [
    (1, 16, 1),
    (6, 24, 2),
    (6, 24, 1),
    (6, 32, 2),
    (6, 32, 1),
    (6, 32, 1),
    (6, 64, 2),
    (6, 64, 1),
    (6, 64, 1),
    (6, 64, 1),
    (6, 96, 1),
    (6, 96, 1),
    (6, 96, 1),
    (6, 160, 2),
    (6, 160, 1),
    (6, 160, 1),
    (6, 320, 1),
];
/// Channels of the stem convolution `Conv`.
const STEM_CHANNELS: usize = 32;
/// Channels of `Conv_1`, the last backbone layer.
const LAST_CHANNELS: usize = 1280;

fn block_scope(index: usize) -> String {
    if index == 0 {
        format!("{SCOPE}/expanded_conv")
    } else {
        format!("{SCOPE}/expanded_conv_{index}")
    }
}

/// An inverted residual: 1×1 expansion (absent when the factor is 1), depthwise 3×3, linear 1×1
/// projection, and a skip connection when the block keeps shape.
#[derive(Debug, Clone)]
pub struct InvertedResidual {
    expand: Option<SameConv>,
    depthwise: DepthwiseConv,
    project: SameConv,
    residual: bool,
}

impl InvertedResidual {
    fn load(file: &WeightFile, index: usize, cin: usize) -> Result<Self, DetectorError> {
        let (factor, cout, stride) = BLOCKS[index];
        let scope = block_scope(index);
        let hidden = cin * factor;
        let expand = if factor == 1 {
            None
        } else {
            Some(file.conv_bn(
                &format!("{scope}/expand"),
                1,
                1,
                cin,
                hidden,
                Activation::Relu6,
            )?)
        };
        let depthwise = file.depthwise_bn(&format!("{scope}/depthwise"), stride, hidden)?;
        let project = file.conv_bn(
            &format!("{scope}/project"),
            1,
            1,
            hidden,
            cout,
            Activation::Linear,
        )?;
        Ok(Self {
            expand,
            depthwise,
            project,
            residual: stride == 1 && cin == cout,
        })
    }

    /// The expansion's output (the input itself when the block does not expand).
    pub fn expand(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match &self.expand {
            Some(conv) => conv.forward(x),
            None => Ok(x.clone()),
        }
    }

    /// Depthwise and projection on an expanded tensor; `x` is the block's input, for the skip.
    pub fn finish(&self, x: &Tensor, expanded: &Tensor) -> candle_core::Result<Tensor> {
        let d = self.depthwise.forward(expanded)?;
        if self.residual {
            self.project.forward_residual(&d, x)
        } else {
            self.project.forward(&d)
        }
    }

    /// [`expand`](Self::expand) on a (B, C, H, W) batch, differentiable.
    pub fn expand_autograd(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match &self.expand {
            Some(conv) => conv.forward_autograd(x),
            None => Ok(x.clone()),
        }
    }

    /// [`finish`](Self::finish) on a (B, C, H, W) batch, differentiable.
    pub fn finish_autograd(&self, x: &Tensor, expanded: &Tensor) -> candle_core::Result<Tensor> {
        let d = self.depthwise.forward_autograd(expanded)?;
        if self.residual {
            self.project.forward_residual_autograd(&d, x)
        } else {
            self.project.forward_autograd(&d)
        }
    }

    /// The whole block through the inference kernels on a row-major (C, H, W) map `x`, with
    /// `expanded` and `depthwise` as scratch; writes the output to `out` and returns its rows and
    /// columns.
    fn forward_slice(
        &self,
        x: &[f32],
        hw: (usize, usize),
        expanded: &mut Vec<f32>,
        depthwise: &mut Vec<f32>,
        out: &mut Vec<f32>,
    ) -> candle_core::Result<(usize, usize)> {
        let e: &[f32] = match &self.expand {
            Some(conv) => {
                conv.forward_slice(x, hw, None, expanded)?;
                expanded
            }
            None => x,
        };
        let hw = self.depthwise.forward_slice(e, hw, depthwise)?;
        let skip = self.residual.then_some(x);
        self.project.forward_slice(depthwise, hw, skip, out)
    }

    /// The whole block on a (C, H, W) tensor.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let e = self.expand(x)?;
        self.finish(x, &e)
    }
}

/// The maps of one pass of the inference path, kept per thread so that repeated frames reuse
/// them instead of allocating (and page-faulting) megabytes per layer.
#[derive(Debug, Default)]
struct Workspace {
    /// Input of the current block (after the loop: the encoder's output).
    current: Vec<f32>,
    /// Output of the current block.
    next: Vec<f32>,
    /// The block's expansion.
    expanded: Vec<f32>,
    /// The block's depthwise output.
    depthwise: Vec<f32>,
}

thread_local! {
    static WORKSPACE: RefCell<Workspace> = RefCell::new(Workspace::default());
}

/// Device half: stem convolution and blocks 0–12, image (3, 300, 300) → (96, 19, 19).
#[derive(Debug, Clone)]
pub struct MobileNetV2Encoder {
    stem: SameConv,
    blocks: Vec<InvertedResidual>,
}

impl MobileNetV2Encoder {
    /// Loads `Conv` and `expanded_conv` … `expanded_conv_12`.
    pub fn load(file: &WeightFile) -> Result<Self, DetectorError> {
        let stem = file.conv_bn(
            &format!("{SCOPE}/Conv"),
            3,
            2,
            3,
            STEM_CHANNELS,
            Activation::Relu6,
        )?;
        let mut blocks = Vec::with_capacity(SPLIT_BLOCK + 1);
        let mut cin = STEM_CHANNELS;
        for (index, &(_, cout, _)) in BLOCKS.iter().enumerate().take(SPLIT_BLOCK + 1) {
            blocks.push(InvertedResidual::load(file, index, cin)?);
            cin = cout;
        }
        Ok(Self { stem, blocks })
    }

    /// Runs the device half on a normalised (3, H, W) image.
    pub fn forward(&self, image: &Tensor) -> candle_core::Result<Tensor> {
        let (c, h, w) = image.dims3()?;
        let pixels = image.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let run = |ws: &mut Workspace| -> candle_core::Result<Tensor> {
            let (cout, ho, wo) = self.forward_slice(&pixels, (c, h, w), ws)?;
            Tensor::from_slice(&ws.current, (cout, ho, wo), image.device())
        };
        // A rayon task stolen while this thread waits inside a kernel may encode too; it then
        // finds the workspace borrowed and uses its own.
        WORKSPACE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut ws) => run(&mut ws),
            Err(_) => run(&mut Workspace::default()),
        })
    }

    /// The device half on a row-major (3, H, W) image through the inference kernels, every
    /// intermediate map in `ws` (reused across frames); the output is left in `ws.current`.
    /// Returns its (channels, rows, columns).
    fn forward_slice(
        &self,
        image: &[f32],
        (c, h, w): (usize, usize, usize),
        ws: &mut Workspace,
    ) -> candle_core::Result<(usize, usize, usize)> {
        if c != 3 {
            candle_core::bail!("encoder expects 3 channels, got {c}");
        }
        let mut hw = self
            .stem
            .forward_slice(image, (h, w), None, &mut ws.current)?;
        let mut channels = self.stem.out_channels();
        for block in &self.blocks {
            hw = block.forward_slice(
                &ws.current,
                hw,
                &mut ws.expanded,
                &mut ws.depthwise,
                &mut ws.next,
            )?;
            std::mem::swap(&mut ws.current, &mut ws.next);
            channels = block.project.out_channels();
        }
        Ok((channels, hw.0, hw.1))
    }

    /// [`forward`](Self::forward) on a (B, 3, H, W) batch with candle's differentiable ops
    /// (`conv2d` on TF-padded inputs): the reference the inference kernels are checked against,
    /// and a path through which gradients reach the image.
    pub fn forward_autograd(&self, images: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = self.stem.forward_autograd(images)?;
        for block in &self.blocks {
            let e = block.expand_autograd(&x)?;
            x = block.finish_autograd(&x, &e)?;
        }
        Ok(x)
    }
}

/// Server half of the backbone: blocks 13–16 and `Conv_1`.
#[derive(Debug, Clone)]
pub struct MobileNetV2Tail {
    blocks: Vec<InvertedResidual>,
    last: SameConv,
}

/// The two SSD feature maps the backbone itself provides.
#[derive(Debug, Clone)]
pub struct BackboneFeatures {
    /// Block 13's expansion, `expanded_conv_13/expand/Relu6` (576, 19, 19): SSD map 0.
    pub stride16: Tensor,
    /// `Conv_1/Relu6` (1280, 10, 10): SSD map 1.
    pub stride32: Tensor,
}

impl MobileNetV2Tail {
    /// Loads `expanded_conv_13` … `expanded_conv_16` and `Conv_1`.
    pub fn load(file: &WeightFile) -> Result<Self, DetectorError> {
        let mut blocks = Vec::new();
        let mut cin = SPLIT_CHANNELS;
        for (index, &(_, cout, _)) in BLOCKS.iter().enumerate().skip(SPLIT_BLOCK + 1) {
            blocks.push(InvertedResidual::load(file, index, cin)?);
            cin = cout;
        }
        let last = file.conv_bn(
            &format!("{SCOPE}/Conv_1"),
            1,
            1,
            cin,
            LAST_CHANNELS,
            Activation::Relu6,
        )?;
        Ok(Self { blocks, last })
    }

    /// Runs the server half on the split tensor.
    pub fn forward(&self, split: &Tensor) -> candle_core::Result<BackboneFeatures> {
        let (first, rest) = self
            .blocks
            .split_first()
            .ok_or_else(|| candle_core::Error::Msg("backbone tail has no blocks".into()))?;
        let stride16 = first.expand(split)?;
        let mut x = first.finish(split, &stride16)?;
        for block in rest {
            x = block.forward(&x)?;
        }
        let stride32 = self.last.forward(&x)?;
        Ok(BackboneFeatures { stride16, stride32 })
    }

    /// [`forward`](Self::forward) on a (B, 96, 19, 19) batch with candle's differentiable ops;
    /// the maps come out (B, C, H, W).
    pub fn forward_autograd(&self, split: &Tensor) -> candle_core::Result<BackboneFeatures> {
        let (first, rest) = self
            .blocks
            .split_first()
            .ok_or_else(|| candle_core::Error::Msg("backbone tail has no blocks".into()))?;
        let stride16 = first.expand_autograd(split)?;
        let mut x = first.finish_autograd(split, &stride16)?;
        for block in rest {
            let e = block.expand_autograd(&x)?;
            x = block.finish_autograd(&x, &e)?;
        }
        let stride32 = self.last.forward_autograd(&x)?;
        Ok(BackboneFeatures { stride16, stride32 })
    }
}
