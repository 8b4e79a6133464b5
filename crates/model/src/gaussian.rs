//! The conditional Gaussian model of y given the hyperprior's mean and scale.

use candle_core::{Result, Tensor};

use crate::density::LIKELIHOOD_BOUND;

/// Smallest scale the model predicts (the first entry of CompressAI's scale table).
pub const SCALE_BOUND: f64 = 0.11;

/// Probability of the unit bin around each `values` (= ŷ − μ) under N(0, σ²), `scales` = σ.
pub fn gaussian_likelihood(values: &Tensor, scales: &Tensor) -> Result<Tensor> {
    let v = values.abs()?;
    // Evaluate both ends on the left tail, where erf keeps its precision.
    let upper = (v.affine(-1.0, 0.5)? / scales)?;
    let lower = (v.affine(-1.0, -0.5)? / scales)?;
    let inv_sqrt2 = std::f64::consts::FRAC_1_SQRT_2;
    let lik = ((upper * inv_sqrt2)?.erf()? - (lower * inv_sqrt2)?.erf()?)? * 0.5;
    lik?.maximum(LIKELIHOOD_BOUND)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn unit_bins_sum_to_one() -> Result<()> {
        let dev = Device::Cpu;
        let values = Tensor::arange(-40f32, 41., &dev)?;
        for sigma in [0.11f32, 1.0, 7.5] {
            let scales = Tensor::full(sigma, 81, &dev)?;
            let total = gaussian_likelihood(&values, &scales)?
                .sum_all()?
                .to_scalar::<f32>()?;
            assert!((total - 1.0).abs() < 1e-4, "σ={sigma}: {total}");
        }
        Ok(())
    }
}
