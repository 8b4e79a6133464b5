//! Batch normalisation over the channel axis of (C, B, H, W) tensors, with running statistics
//! kept in the model's variables so that they are saved with the weights.
//!
//! In training the normalisation (and an optional ReLU after it) is one custom op with a
//! hand-written backward: built from candle ops it was a dozen graph nodes over the whole
//! activation, each of whose gradients autograd zero-filled and accumulated.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, Var, bail};
use candle_nn::{Init, VarBuilder};

use crate::conv::contiguous_f32;

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
        self.forward_act(x, train, false)
    }

    /// [`Self::forward`], followed by a ReLU when `relu`.
    pub fn forward_act(&self, x: &Tensor, train: bool, relu: bool) -> Result<Tensor> {
        if x.dim(0)? != self.channels {
            bail!(
                "batch norm over {} channels got {:?}",
                self.channels,
                x.shape()
            );
        }
        if !train {
            let c = self.channels;
            let dims = x.dims().to_vec();
            let flat = x.reshape((c, ()))?;
            let mean = self.running_mean.as_tensor().reshape((c, 1))?;
            let var = self.running_var.as_tensor().reshape((c, 1))?;
            let y = flat
                .broadcast_sub(&mean)?
                .broadcast_div(&(var + EPS)?.sqrt()?)?
                .broadcast_mul(&self.weight.reshape((c, 1))?)?
                .broadcast_add(&self.bias.reshape((c, 1))?)?
                .reshape(dims)?;
            return if relu { y.relu() } else { Ok(y) };
        }
        let stats = Arc::new(Mutex::new(None));
        let op = BatchNormTrain {
            relu,
            stats: stats.clone(),
        };
        let y = x.contiguous()?.apply_op3(&self.weight, &self.bias, op)?;
        let (mean, var) = {
            let guard = stats.lock().expect("batch-norm statistics lock poisoned");
            match guard.as_ref() {
                Some(s) => (s.mean.clone(), s.var.clone()),
                None => bail!("batch norm: forward pass left no statistics"),
            }
        };
        let n = (x.elem_count() / self.channels) as f64;
        let unbiased = n / (n - 1.0).max(1.0);
        let device = x.device();
        let mean = Tensor::from_vec(mean, self.channels, device)?;
        let var = (Tensor::from_vec(var, self.channels, device)? * unbiased)?;
        self.running_mean
            .set(&((self.running_mean.as_tensor() * (1.0 - MOMENTUM))? + (mean * MOMENTUM)?)?)?;
        self.running_var
            .set(&((self.running_var.as_tensor() * (1.0 - MOMENTUM))? + (var * MOMENTUM)?)?)?;
        Ok(y)
    }
}

/// Per-channel batch statistics of one training forward pass.
#[derive(Debug, Clone)]
struct Stats {
    /// Batch mean.
    mean: Vec<f32>,
    /// Biased batch variance (the one that normalises).
    var: Vec<f32>,
}

/// Training-mode batch norm (+ ReLU): `(x (C, …), weight (C), bias (C)) → y`. The forward pass
/// leaves its batch statistics in `stats`, shared with the caller (running averages) and read
/// again by the backward pass.
#[derive(Debug)]
struct BatchNormTrain {
    relu: bool,
    stats: Arc<Mutex<Option<Stats>>>,
}

/// The backward pass of [`BatchNormTrain`]: `(grad, x) → [∂x (C·M) | ∂weight (C) | ∂bias (C)]`
/// in one flat vector.
struct BatchNormTrainGrad {
    relu: bool,
    weight: Vec<f32>,
    bias: Vec<f32>,
    mean: Vec<f32>,
    var: Vec<f32>,
}

fn inv_std(var: f32) -> f32 {
    1.0 / (f64::from(var) + EPS).sqrt() as f32
}

impl CustomOp3 for BatchNormTrain {
    fn name(&self) -> &'static str {
        "batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(xs, xl, self.name())?;
        let weight = contiguous_f32(ws, wl, self.name())?;
        let bias = contiguous_f32(bs, bl, self.name())?;
        let c = weight.len();
        if c == 0 || bias.len() != c || xl.shape().dims().first() != Some(&c) {
            bail!("batch norm: {:?} does not have {c} channels", xl.shape());
        }
        let m = x.len() / c;
        let mut out = vec![0f32; x.len()];
        let mut mean = Vec::with_capacity(c);
        let mut var = Vec::with_capacity(c);
        for (ch, (row, dst)) in x.chunks_exact(m).zip(out.chunks_exact_mut(m)).enumerate() {
            // Two passes in f64: the variance from centred values, not E[x²] − E[x]².
            let mu = row.iter().map(|&v| f64::from(v)).sum::<f64>() / m as f64;
            let s2 = row
                .iter()
                .map(|&v| (f64::from(v) - mu).powi(2))
                .sum::<f64>()
                / m as f64;
            let (mu, s2) = (mu as f32, s2 as f32);
            let scale = weight[ch] * inv_std(s2);
            let shift = bias[ch] - mu * scale;
            if self.relu {
                for (d, &v) in dst.iter_mut().zip(row) {
                    *d = (v * scale + shift).max(0.0);
                }
            } else {
                for (d, &v) in dst.iter_mut().zip(row) {
                    *d = v * scale + shift;
                }
            }
            mean.push(mu);
            var.push(s2);
        }
        *self
            .stats
            .lock()
            .expect("batch-norm statistics lock poisoned") = Some(Stats { mean, var });
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(stats) = self
            .stats
            .lock()
            .expect("batch-norm statistics lock poisoned")
            .clone()
        else {
            bail!("batch norm backward before its forward pass");
        };
        let c = stats.mean.len();
        let op = BatchNormTrainGrad {
            relu: self.relu,
            weight: weight.to_vec1()?,
            bias: bias.to_vec1()?,
            mean: stats.mean,
            var: stats.var,
        };
        let flat = grad.contiguous()?.apply_op2_no_bwd(&x.contiguous()?, &op)?;
        let total = x.elem_count();
        let grad_x = flat.narrow(0, 0, total)?.reshape(x.shape())?;
        let grad_weight = flat.narrow(0, total, c)?;
        let grad_bias = flat.narrow(0, total + c, c)?;
        Ok((Some(grad_x), Some(grad_weight), Some(grad_bias)))
    }
}

impl CustomOp2 for BatchNormTrainGrad {
    fn name(&self) -> &'static str {
        "batch-norm-train-grad"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        xs: &CpuStorage,
        xl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let grad = contiguous_f32(gs, gl, self.name())?;
        let x = contiguous_f32(xs, xl, self.name())?;
        let c = self.mean.len();
        if grad.len() != x.len() || c == 0 || !x.len().is_multiple_of(c) {
            bail!(
                "batch norm backward: gradient {:?} does not fit input {:?}",
                gl.shape(),
                xl.shape()
            );
        }
        let m = x.len() / c;
        let mut out = vec![0f32; x.len() + 2 * c];
        let (grad_x, grad_params) = out.split_at_mut(x.len());
        let mut masked = vec![0f32; m];
        for ch in 0..c {
            let row = &x[ch * m..(ch + 1) * m];
            let g = &grad[ch * m..(ch + 1) * m];
            let (mu, istd, gamma) = (self.mean[ch], inv_std(self.var[ch]), self.weight[ch]);
            // ∂L/∂(pre-activation): the ReLU passes the gradient where its output was positive.
            if self.relu {
                let (scale, shift) = (gamma * istd, self.bias[ch] - mu * gamma * istd);
                for ((d, &gv), &v) in masked.iter_mut().zip(g).zip(row) {
                    *d = if v * scale + shift > 0.0 { gv } else { 0.0 };
                }
            } else {
                masked.copy_from_slice(g);
            }
            let (mut sum_g, mut sum_gx) = (0f64, 0f64);
            for (&gv, &v) in masked.iter().zip(row) {
                sum_g += f64::from(gv);
                sum_gx += f64::from(gv) * f64::from((v - mu) * istd);
            }
            grad_params[ch] = sum_gx as f32;
            grad_params[c + ch] = sum_g as f32;
            // ∂x = γ·σ⁻¹·(g − mean(g) − x̂·mean(g·x̂)).
            let (mean_g, mean_gx) = ((sum_g / m as f64) as f32, (sum_gx / m as f64) as f32);
            let k = gamma * istd;
            for ((d, &gv), &v) in grad_x[ch * m..(ch + 1) * m]
                .iter_mut()
                .zip(&masked)
                .zip(row)
            {
                *d = k * (gv - mean_g - (v - mu) * istd * mean_gx);
            }
        }
        Ok((CpuStorage::F32(out), Shape::from(x.len() + 2 * c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    /// Training-mode batch norm (+ ReLU) written with candle's own ops, as it was before the
    /// fused op: the reference the fused forward and backward must match.
    fn reference(x: &Tensor, weight: &Tensor, bias: &Tensor, relu: bool) -> Result<Tensor> {
        let c = x.dim(0)?;
        let flat = x.reshape((c, ()))?;
        let mean = flat.mean_keepdim(1)?;
        let centred = flat.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(1)?;
        let y = centred
            .broadcast_div(&(var + EPS)?.sqrt()?)?
            .broadcast_mul(&weight.reshape((c, 1))?)?
            .broadcast_add(&bias.reshape((c, 1))?)?
            .reshape(x.dims())?;
        if relu { y.relu() } else { Ok(y) }
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        (a - b)?.abs()?.max_all()?.to_scalar::<f32>()
    }

    #[test]
    fn fused_training_pass_matches_candle_ops_forward_and_backward() -> Result<()> {
        let dev = Device::Cpu;
        for relu in [false, true] {
            let map = VarMap::new();
            let vb = VarBuilder::from_varmap(&map, DType::F32, &dev);
            let bn = BatchNorm::new(3, vb)?;
            // Non-trivial affine parameters, so that their gradients and the ReLU mask matter.
            let weight = Var::from_tensor(&Tensor::new(&[0.7f32, -1.3, 2.0], &dev)?)?;
            let bias = Var::from_tensor(&Tensor::new(&[0.1f32, 0.5, -0.4], &dev)?)?;
            let bn = BatchNorm {
                weight: weight.as_tensor().clone(),
                bias: bias.as_tensor().clone(),
                ..bn
            };
            let x = Var::from_tensor(&(Tensor::randn(0f32, 1., (3, 4, 5, 5), &dev)? * 3.0)?)?;
            let probe = Tensor::randn(0f32, 1., (3, 4, 5, 5), &dev)?;

            let ours = bn.forward_act(x.as_tensor(), true, relu)?;
            let theirs = reference(x.as_tensor(), weight.as_tensor(), bias.as_tensor(), relu)?;
            let d = max_diff(&ours, &theirs)?;
            assert!(d < 1e-5, "relu={relu}: forward differs by {d}");

            let g_ours = (&ours * &probe)?.sum_all()?.backward()?;
            let g_ref = (&theirs * &probe)?.sum_all()?.backward()?;
            for (name, t) in [
                ("x", x.as_tensor()),
                ("weight", weight.as_tensor()),
                ("bias", bias.as_tensor()),
            ] {
                let a = g_ours.get(t).expect("fused gradient");
                let b = g_ref.get(t).expect("reference gradient");
                let d = max_diff(a, b)?;
                assert!(d < 1e-4, "relu={relu}: ∂{name} differs by {d}");
            }
        }
        Ok(())
    }

    #[test]
    fn running_statistics_follow_the_batch() -> Result<()> {
        let dev = Device::Cpu;
        let map = VarMap::new();
        let bn = BatchNorm::new(2, VarBuilder::from_varmap(&map, DType::F32, &dev))?;
        let x = Tensor::new(&[[1f32, 3.], [10., 20.]], &dev)?.reshape((2, 1, 1, 2))?;
        bn.forward(&x, true)?;
        // mean 2 and 15; unbiased variance 2 and 50; momentum 0.1 from (0, 1).
        let mean = bn.running_mean.as_tensor().to_vec1::<f32>()?;
        let var = bn.running_var.as_tensor().to_vec1::<f32>()?;
        assert!((mean[0] - 0.2).abs() < 1e-6 && (mean[1] - 1.5).abs() < 1e-6);
        assert!((var[0] - 1.1).abs() < 1e-6 && (var[1] - 5.9).abs() < 1e-5);
        Ok(())
    }
}
