//! Batch normalisation over the channel axis of (C, B, H, W) tensors, with running statistics
//! kept in the model's variables so that they are saved with the weights.

use candle_core::{Result, Tensor, Var};
use candle_nn::{Init, VarBuilder};

/// Momentum of the running statistics (PyTorch's default).
const MOMENTUM: f64 = 0.1;
const EPS: f64 = 1e-5;

/// Batch norm with learnt `weight`/`bias` and `running_mean`/`running_var` (PyTorch names).
#[derive(Debug, Clone)]
pub struct BatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    channels: usize,
}

impl BatchNorm {
    /// Builds a batch norm over `channels`.
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints(channels, "weight", Init::Const(1.0))?;
        let bias = vb.get_with_hints(channels, "bias", Init::Const(0.0))?;
        let running_mean =
            Var::from_tensor(&vb.get_with_hints(channels, "running_mean", Init::Const(0.0))?)?;
        let running_var =
            Var::from_tensor(&vb.get_with_hints(channels, "running_var", Init::Const(1.0))?)?;
        Ok(Self {
            weight,
            bias,
            running_mean,
            running_var,
            channels,
        })
    }

    /// Normalises `x` (C, B, H, W): with batch statistics (and updates the running ones) when
    /// `train`, with the running statistics otherwise.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let c = self.channels;
        let flat = x.reshape((c, ()))?;
        let (mean, var) = if train {
            let mean = flat.mean_keepdim(1)?;
            let centred = flat.broadcast_sub(&mean)?;
            let var = centred.sqr()?.mean_keepdim(1)?;
            let n = flat.dim(1)? as f64;
            let unbiased = (var.detach() * (n / (n - 1.0).max(1.0)))?;
            self.running_mean.set(
                &((self.running_mean.as_tensor() * (1.0 - MOMENTUM))?
                    + (mean.detach().flatten_all()? * MOMENTUM)?)?,
            )?;
            self.running_var.set(
                &((self.running_var.as_tensor() * (1.0 - MOMENTUM))?
                    + (unbiased.flatten_all()? * MOMENTUM)?)?,
            )?;
            (mean, var)
        } else {
            (
                self.running_mean.as_tensor().reshape((c, 1))?,
                self.running_var.as_tensor().reshape((c, 1))?,
            )
        };
        let normed = flat
            .broadcast_sub(&mean)?
            .broadcast_div(&(var + EPS)?.sqrt()?)?;
        normed
            .broadcast_mul(&self.weight.reshape((c, 1))?)?
            .broadcast_add(&self.bias.reshape((c, 1))?)?
            .reshape(dims)
    }
}
