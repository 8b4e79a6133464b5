//! The factorised learnt density of a hyper-latent z (Ballé et al. 2018, appendix 6.1): per
//! channel, a monotone function built of softplus-weighted 1→3→3→3→1 layers gives the logit of
//! the CDF, and the probability of an integer bin is CDF(z + ½) − CDF(z − ½).

use candle_core::{D, Result, Tensor};
use candle_nn::{Init, VarBuilder};

/// Widths of the CDF network between its scalar input and output.
const FILTERS: [usize; 3] = [3, 3, 3];
/// Initial spread of the density (CompressAI's default).
const INIT_SCALE: f64 = 10.0;
/// Smallest probability of a bin (keeps log finite).
pub const LIKELIHOOD_BOUND: f64 = 1e-9;

/// A learnt univariate density per channel.
#[derive(Debug, Clone)]
pub struct FactorizedDensity {
    matrices: Vec<Tensor>,
    biases: Vec<Tensor>,
    factors: Vec<Tensor>,
    channels: usize,
}

fn softplus(x: &Tensor) -> Result<Tensor> {
    // log(1 + e^x), computed as max(x, 0) + log(1 + e^-|x|) to stay finite.
    let relu = x.relu()?;
    let tail = (x.abs()?.neg()?.exp()? + 1.0)?.log()?;
    relu + tail
}

impl FactorizedDensity {
    /// Builds the density of `channels` channels under `vb` (`matrix_k`, `bias_k`, `factor_k`).
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        let dims: Vec<usize> = std::iter::once(1)
            .chain(FILTERS)
            .chain(std::iter::once(1))
            .collect();
        let scale = INIT_SCALE.powf(1.0 / (FILTERS.len() + 1) as f64);
        let mut matrices = Vec::new();
        let mut biases = Vec::new();
        let mut factors = Vec::new();
        for k in 0..dims.len() - 1 {
            let (d_in, d_out) = (dims[k], dims[k + 1]);
            let init = (1.0 / scale / d_out as f64).exp_m1().ln();
            matrices.push(vb.get_with_hints(
                (channels, d_out, d_in),
                &format!("matrix_{k}"),
                Init::Const(init),
            )?);
            // CompressAI draws these from U(-½, ½); `init::reinitialise` spreads them evenly.
            let bias =
                vb.get_with_hints((channels, d_out, 1), &format!("bias_{k}"), Init::Const(0.))?;
            biases.push(bias);
            if k < dims.len() - 2 {
                factors.push(vb.get_with_hints(
                    (channels, d_out, 1),
                    &format!("factor_{k}"),
                    Init::Const(0.),
                )?);
            }
        }
        Ok(Self {
            matrices,
            biases,
            factors,
            channels,
        })
    }

    /// Logits of the CDF at `x` (C, 1, N).
    fn logits_cumulative(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (k, matrix) in self.matrices.iter().enumerate() {
            h = softplus(matrix)?
                .matmul(&h)?
                .broadcast_add(&self.biases[k])?;
            if let Some(factor) = self.factors.get(k) {
                h = (&h + factor.tanh()?.broadcast_mul(&h.tanh()?)?)?;
            }
        }
        Ok(h)
    }

    /// Likelihood of each element of `z` (C, B, H, W) as an integer bin centred on it.
    pub fn likelihood(&self, z: &Tensor) -> Result<Tensor> {
        let dims = z.dims().to_vec();
        let flat = z.reshape((self.channels, 1, ()))?;
        let lower = self.logits_cumulative(&(&flat - 0.5)?)?;
        let upper = self.logits_cumulative(&(&flat + 0.5)?)?;
        // Subtract in the tail where the sigmoid is least saturated (sign trick of CompressAI).
        let sign = ((&lower + &upper)?.ge(0.0)?.to_dtype(z.dtype())? * -2.0)?.affine(1.0, 1.0)?;
        let sign = sign.detach();
        let lik = (candle_nn::ops::sigmoid(&(&sign * &upper)?)?
            - candle_nn::ops::sigmoid(&(&sign * &lower)?)?)?
        .abs()?;
        lik.maximum(LIKELIHOOD_BOUND)?.reshape(dims)
    }

    /// Probability of every integer in `lo..=hi` for each channel: `channels` rows of
    /// `hi - lo + 1` masses (not renormalised; the codec quantises them).
    pub fn pmfs(&self, lo: i32, hi: i32) -> Result<Vec<Vec<f32>>> {
        let n = (hi - lo + 1) as usize;
        let grid: Vec<f32> = (lo..=hi).map(|s| s as f32).collect();
        let row = Tensor::from_vec(grid, (1, 1, n), self.matrices[0].device())?;
        let x = row.broadcast_as((self.channels, 1, n))?.contiguous()?;
        let lik = self.likelihood(&x.reshape((self.channels, 1, 1, n))?)?;
        lik.squeeze(1)?.squeeze(1)?.to_vec2::<f32>()
    }

    /// Channels.
    pub fn channels(&self) -> usize {
        self.channels
    }
}

/// −Σ log₂ of likelihoods, per batch item: `lik` (C, B, …) → (B).
pub fn bits_per_item(lik: &Tensor) -> Result<Tensor> {
    let (c, b) = (lik.dim(0)?, lik.dim(1)?);
    let nats = lik.log()?.reshape((c, b, ()))?.sum(D::Minus1)?.sum(0)?;
    nats * (-1.0 / std::f64::consts::LN_2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn untrained_density_is_a_distribution() -> Result<()> {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let d = FactorizedDensity::new(2, vb)?;
        let pmfs = d.pmfs(-60, 60)?;
        for pmf in pmfs {
            let total: f32 = pmf.iter().sum();
            // The untrained density is wide; what lies outside the range goes to the codec's
            // escape symbol, so the range need only hold nearly all of the mass.
            assert!(total > 0.99 && total < 1.0 + 1e-4, "mass {total}");
            assert!(pmf.iter().all(|&p| p > 0.0));
        }
        Ok(())
    }
}
