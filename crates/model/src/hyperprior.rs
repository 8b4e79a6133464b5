//! A mean-scale hyperprior (Minnen et al. 2018, CompressAI's `MeanScaleHyperprior` transforms):
//! the analysis maps y to a hyper-latent z at a quarter of its side, the synthesis maps ẑ back to
//! a mean and a scale for every element of y.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::conv::{Conv2d, crop, upsample2};
use crate::gaussian::SCALE_BOUND;

/// Analysis (y → z) and synthesis (ẑ → μ, σ) of one layer.
#[derive(Debug, Clone)]
pub struct Hyperprior {
    analysis: [Conv2d; 3],
    synthesis: [Conv2d; 3],
    latent_channels: usize,
    latent_side: usize,
}

impl Hyperprior {
    /// Builds the transforms under `vb` (`analysis.{0,1,2}`, `synthesis.{0,1,2}`).
    pub fn new(
        latent_channels: usize,
        latent_side: usize,
        hidden: usize,
        z_channels: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let a = vb.pp("analysis");
        let s = vb.pp("synthesis");
        Ok(Self {
            analysis: [
                Conv2d::new(latent_channels, hidden, 3, 1, a.pp("0"))?,
                Conv2d::new(hidden, hidden, 3, 2, a.pp("1"))?,
                Conv2d::new(hidden, z_channels, 3, 2, a.pp("2"))?,
            ],
            synthesis: [
                Conv2d::new(z_channels, hidden, 3, 1, s.pp("0"))?,
                Conv2d::new(hidden, hidden, 3, 1, s.pp("1"))?,
                Conv2d::new(hidden, 2 * latent_channels, 3, 1, s.pp("2"))?,
            ],
            latent_channels,
            latent_side,
        })
    }

    /// y (C, B, H, W) → z (Cz, B, ⌈H/4⌉, ⌈W/4⌉).
    pub fn analyse(&self, y: &Tensor) -> Result<Tensor> {
        let h = self.analysis[0].forward(y)?.relu()?;
        let h = self.analysis[1].forward(&h)?.relu()?;
        self.analysis[2].forward(&h)
    }

    /// ẑ → (mean, scale) of y, each (C, B, H, W); scale ≥ [`SCALE_BOUND`].
    pub fn synthesise(&self, z_hat: &Tensor) -> Result<(Tensor, Tensor)> {
        let h = self.synthesis[0].forward(&upsample2(z_hat)?)?.relu()?;
        let h = self.synthesis[1].forward(&upsample2(&h)?)?.relu()?;
        let h = crop(&h, self.latent_side, self.latent_side)?;
        let params = self.synthesis[2].forward(&h)?;
        let c = self.latent_channels;
        let mean = params.narrow(0, 0, c)?;
        let raw = params.narrow(0, c, c)?;
        // softplus keeps the scale smooth and above the bound.
        let scale = ((raw.relu()? + (raw.abs()?.neg()?.exp()? + 1.0)?.log()?)? + SCALE_BOUND)?;
        Ok((mean, scale))
    }
}
