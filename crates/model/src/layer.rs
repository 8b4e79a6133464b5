//! One layer of the scalable codec: its reduction of F, its hyperprior and z density, and its
//! expansion back to F's shape on the server.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::batch_norm::BatchNorm;
use crate::config::ModelConfig;
use crate::conv::{Conv2d, crop, upsample2};
use crate::density::{FactorizedDensity, bits_per_item};
use crate::gaussian::gaussian_likelihood;
use crate::hyperprior::Hyperprior;

/// The shapes one codec layer is built for: F (channels × side²) and its latent y.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerGeometry {
    /// Channels of the split-point features F.
    pub feature_channels: usize,
    /// Side of F (square).
    pub feature_side: usize,
    /// Channels of this layer's latent y.
    pub latent_channels: usize,
    /// Side of y: ⌈side/2⌉ for layer 0 (strided), the side of F for the others.
    pub latent_side: usize,
    /// Hidden channels of the hyperprior's transforms.
    pub hyper_channels: usize,
    /// Channels of the hyper-latent z.
    pub z_channels: usize,
}

impl LayerGeometry {
    /// Layer `index` of a Fashion-MNIST [`ModelConfig`].
    pub fn of(config: &ModelConfig, index: usize) -> Self {
        Self {
            feature_channels: config.feature_channels(),
            feature_side: config.feature_side(),
            latent_channels: config.layer_channels[index],
            latent_side: config.latent_side(index),
            hyper_channels: config.hyper_channels,
            z_channels: config.z_channels,
        }
    }
}

/// Reduction, hyperprior, density and expansion of layer `index`.
#[derive(Debug, Clone)]
pub struct CodecLayer {
    index: usize,
    feature_side: usize,
    reduce: Conv2d,
    hyper: Hyperprior,
    density: FactorizedDensity,
    expand: Conv2d,
    expand_bn: BatchNorm,
}

/// What training needs from one layer: the noisy latent's expansion and its rate.
#[derive(Debug)]
pub struct TrainOutput {
    /// BN(conv(ỹ)) at F's shape.
    pub expanded: Tensor,
    /// Estimated bits of y and z per batch item, (B).
    pub bits: Tensor,
}

/// The quantised latents of one layer for a batch, as integer symbols and their coding context.
#[derive(Debug, Clone)]
pub struct Quantised {
    /// ẑ (integers) as f32, (Cz, B, hz, wz).
    pub z_hat: Tensor,
    /// q = round(y − μ) as f32, (C, B, h, w).
    pub y_symbols: Tensor,
    /// Predicted scale σ of every y element, (C, B, h, w).
    pub scales: Tensor,
    /// ŷ = q + μ.
    pub y_hat: Tensor,
}

impl CodecLayer {
    /// Builds layer `index` under `vb` (`reduce`, `hyper`, `density`, `expand`, `expand_bn`).
    pub fn new(config: &ModelConfig, index: usize, vb: VarBuilder) -> Result<Self> {
        Self::with_geometry(&LayerGeometry::of(config, index), index, vb)
    }

    /// Builds layer `index` of the given shapes under `vb` (same variable names as [`Self::new`]).
    pub fn with_geometry(g: &LayerGeometry, index: usize, vb: VarBuilder) -> Result<Self> {
        let f = g.feature_channels;
        let c = g.latent_channels;
        // Layer 0 reduces space and channels (5×5 stride 2), the others channels only (1×1).
        let (reduce, expand) = if index == 0 {
            (
                Conv2d::new(f, c, 5, 2, vb.pp("reduce"))?,
                Conv2d::new(c, f, 3, 1, vb.pp("expand"))?,
            )
        } else {
            (
                Conv2d::new(f, c, 1, 1, vb.pp("reduce"))?,
                Conv2d::new(c, f, 1, 1, vb.pp("expand"))?,
            )
        };
        Ok(Self {
            index,
            feature_side: g.feature_side,
            reduce,
            hyper: Hyperprior::new(
                c,
                g.latent_side,
                g.hyper_channels,
                g.z_channels,
                vb.pp("hyper"),
            )?,
            density: FactorizedDensity::new(g.z_channels, vb.pp("density"))?,
            expand,
            expand_bn: BatchNorm::new(f, vb.pp("expand_bn"))?,
        })
    }

    /// The z density (for the codec's tables).
    pub fn density(&self) -> &FactorizedDensity {
        &self.density
    }

    /// F → y.
    pub fn reduce(&self, features: &Tensor) -> Result<Tensor> {
        self.reduce.forward(features)
    }

    /// y → z.
    pub fn analyse(&self, y: &Tensor) -> Result<Tensor> {
        self.hyper.analyse(y)
    }

    /// ẑ → (μ, σ).
    pub fn synthesise(&self, z_hat: &Tensor) -> Result<(Tensor, Tensor)> {
        self.hyper.synthesise(z_hat)
    }

    /// ŷ → BN(conv(ŷ)) at F's shape.
    pub fn expand(&self, y_hat: &Tensor, train: bool) -> Result<Tensor> {
        let mut e = self.expand.forward(y_hat)?;
        if self.index == 0 {
            // An odd side of F was rounded up by the strided reduction: crop the extra row/column.
            e = crop(&upsample2(&e)?, self.feature_side, self.feature_side)?;
        }
        self.expand_bn.forward(&e, train)
    }

    /// Training pass with additive uniform noise in place of rounding; `noise` draws a tensor of
    /// U(−½, ½) of a given shape.
    pub fn forward_train(
        &self,
        features: &Tensor,
        train_bn: bool,
        noise: &mut dyn FnMut(&[usize]) -> Result<Tensor>,
    ) -> Result<TrainOutput> {
        let y = self.reduce(features)?;
        let z = self.analyse(&y)?;
        let z_tilde = (&z + noise(z.dims())?)?;
        let z_bits = bits_per_item(&self.density.likelihood(&z_tilde)?)?;
        let (mean, scale) = self.synthesise(&z_tilde)?;
        let y_tilde = (&y + noise(y.dims())?)?;
        let y_lik = gaussian_likelihood(&(&y_tilde - &mean)?, &scale)?;
        let y_bits = bits_per_item(&y_lik)?;
        Ok(TrainOutput {
            expanded: self.expand(&y_tilde, train_bn)?,
            bits: (z_bits + y_bits)?,
        })
    }

    /// Inference: rounds z (clamped to the codec's range `z_range`) and y − μ.
    pub fn quantise(&self, features: &Tensor, z_range: (i32, i32)) -> Result<Quantised> {
        let y = self.reduce(features)?;
        let z = self.analyse(&y)?;
        let z_hat = z.round()?.clamp(z_range.0 as f32, z_range.1 as f32)?;
        let (mean, scales) = self.synthesise(&z_hat)?;
        let y_symbols = (&y - &mean)?.round()?;
        let y_hat = (&y_symbols + &mean)?;
        Ok(Quantised {
            z_hat,
            y_symbols,
            scales,
            y_hat,
        })
    }

    /// The model's own estimate of the bits of a quantised layer, per batch item: (y bits, z bits).
    pub fn estimated_bits(&self, q: &Quantised) -> Result<(Tensor, Tensor)> {
        let y_bits = bits_per_item(&gaussian_likelihood(&q.y_symbols, &q.scales)?)?;
        let z_bits = bits_per_item(&self.density.likelihood(&q.z_hat)?)?;
        Ok((y_bits, z_bits))
    }
}
