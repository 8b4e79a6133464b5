//! Inference convolutions with TensorFlow's `SAME` padding on (C, H, W) tensors: im2col + one
//! matrix product, with the bias, the optional residual and ReLU6 applied in one in-place pass.
//!
//! The crate's training convolution ([`crate::conv::Conv2d`]) pads symmetrically; TF's `SAME`
//! puts the odd padding pixel after the image (bottom/right) when a stride-2 convolution meets an
//! even size (300 → 150), so reusing it would shift every stride-2 output by half a pixel. These
//! ops are forward-only: the detector is frozen and BatchNorm is folded at load time.

use candle_core::{
    CpuStorage, CustomOp1, InplaceOp1, InplaceOp2, Layout, Result, Shape, Tensor, bail,
};

/// TF `SAME` geometry along one axis: output length `ceil(len / stride)` and the zero padding
/// before the first input element (the rest of the total padding goes after the last one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SamePadding {
    /// Output length.
    pub out_len: usize,
    /// Zero elements before the input.
    pub before: usize,
}

impl SamePadding {
    /// Geometry of a `kernel`-wide window moved by `stride` over `len` elements.
    pub fn new(len: usize, kernel: usize, stride: usize) -> Self {
        let out_len = len.div_ceil(stride);
        let total = ((out_len - 1) * stride + kernel).saturating_sub(len);
        Self {
            out_len,
            before: total / 2,
        }
    }

    /// The range of output indices whose tap `k` of the window lands inside the input, so the
    /// inner loops run without bounds checks on padding.
    pub fn valid_outputs(&self, len: usize, stride: usize, k: usize) -> std::ops::Range<usize> {
        // Input index of output o and tap k: o·stride + k − before, must lie in [0, len).
        let first = if k >= self.before {
            0
        } else {
            (self.before - k).div_ceil(stride)
        };
        let last_plus_one = if len + self.before > k {
            ((len + self.before - k - 1) / stride + 1).min(self.out_len)
        } else {
            0
        };
        first..last_plus_one.max(first)
    }
}

/// What follows the bias of a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Linear output (projections, box and class predictors).
    Linear,
    /// `min(max(x, 0), 6)`, MobileNetV2's nonlinearity.
    Relu6,
}

impl Activation {
    #[inline]
    pub(crate) fn apply(self, v: f32) -> f32 {
        match self {
            Activation::Linear => v,
            Activation::Relu6 => v.clamp(0.0, 6.0),
        }
    }
}

/// A k×k convolution (any stride, TF `SAME` padding) whose BatchNorm, if any, is already folded
/// into `weight` and `bias`.
#[derive(Debug, Clone)]
pub struct SameConv {
    /// (out, in·k·k), rows ordered (in channel, ky, kx) like the im2col rows.
    weight: Tensor,
    bias: Vec<f32>,
    in_channels: usize,
    kernel: usize,
    stride: usize,
    activation: Activation,
}

impl SameConv {
    /// Builds the convolution from a row-major (out, in·k·k) weight matrix and its bias.
    pub fn new(
        weight: Vec<f32>,
        bias: Vec<f32>,
        in_channels: usize,
        kernel: usize,
        stride: usize,
        activation: Activation,
    ) -> Result<Self> {
        let out_channels = bias.len();
        let weight = Tensor::from_vec(
            weight,
            (out_channels, in_channels * kernel * kernel),
            &candle_core::Device::Cpu,
        )?;
        Ok(Self {
            weight,
            bias,
            in_channels,
            kernel,
            stride,
            activation,
        })
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.bias.len()
    }

    /// The weight as (out, in, k, k), for checking against candle's reference convolution.
    pub fn weight_oihw(&self) -> Result<Tensor> {
        self.weight
            .reshape((self.bias.len(), self.in_channels, self.kernel, self.kernel))
    }

    /// The folded bias.
    pub fn bias(&self) -> &[f32] {
        &self.bias
    }

    /// Output length along an axis of `len` input elements.
    pub fn out_len(&self, len: usize) -> usize {
        SamePadding::new(len, self.kernel, self.stride).out_len
    }

    /// The same convolution on a (B, C, H, W) batch with candle's differentiable ops: slower than
    /// [`forward`](Self::forward), but gradients flow back to the input (the weights are
    /// constants), which distillation through the frozen detector needs.
    pub fn forward_autograd(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.linear_autograd(x)?;
        activation_autograd(y, self.activation)
    }

    /// [`forward_residual`](Self::forward_residual) on a batch, differentiable.
    pub fn forward_residual_autograd(&self, x: &Tensor, skip: &Tensor) -> Result<Tensor> {
        let y = (self.linear_autograd(x)? + skip)?;
        activation_autograd(y, self.activation)
    }

    fn linear_autograd(&self, x: &Tensor) -> Result<Tensor> {
        let padded = pad_same(x, self.kernel, self.stride)?;
        let y = padded.conv2d(&self.weight_oihw()?, 0, self.stride, 1, 1)?;
        let bias = Tensor::from_slice(&self.bias, (1, self.bias.len(), 1, 1), x.device())?;
        y.broadcast_add(&bias)
    }

    fn linear(&self, x: &Tensor) -> Result<(Tensor, usize, usize)> {
        let (c, h, w) = x.dims3()?;
        if c != self.in_channels {
            bail!("convolution expects {} channels, got {c}", self.in_channels);
        }
        let rows = SamePadding::new(h, self.kernel, self.stride);
        let cols = SamePadding::new(w, self.kernel, self.stride);
        let patches = if self.kernel == 1 && self.stride == 1 {
            x.reshape((c, h * w))?
        } else {
            x.contiguous()?.apply_op1_no_bwd(&Im2ColSame {
                kernel: self.kernel,
                stride: self.stride,
                rows,
                cols,
            })?
        };
        Ok((self.weight.matmul(&patches)?, rows.out_len, cols.out_len))
    }

    /// Convolves a (C, H, W) tensor, adds the bias and applies the activation.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (y, ho, wo) = self.linear(x)?;
        y.inplace_op1(&BiasActivation {
            bias: &self.bias,
            activation: self.activation,
        })?;
        y.reshape((self.bias.len(), ho, wo))
    }

    /// Convolves, adds the bias and the residual `skip` (same shape as the output), then applies
    /// the activation: the projection of a MobileNetV2 inverted residual block in one pass.
    pub fn forward_residual(&self, x: &Tensor, skip: &Tensor) -> Result<Tensor> {
        let (y, ho, wo) = self.linear(x)?;
        let skip = skip.contiguous()?.reshape((self.bias.len(), ho * wo))?;
        y.inplace_op2(
            &skip,
            &BiasResidualActivation {
                bias: &self.bias,
                activation: self.activation,
            },
        )?;
        y.reshape((self.bias.len(), ho, wo))
    }
}

/// Zero-pads dims 2 and 3 of a (B, C, H, W) tensor as TF `SAME` does for a `kernel`-wide window
/// moved by `stride` (differentiable: built from candle's own ops).
pub fn pad_same(x: &Tensor, kernel: usize, stride: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let mut x = x.clone();
    for (dim, len) in [(2, h), (3, w)] {
        let geometry = SamePadding::new(len, kernel, stride);
        let total = ((geometry.out_len - 1) * stride + kernel).saturating_sub(len);
        x = x.pad_with_zeros(dim, geometry.before, total - geometry.before)?;
    }
    Ok(x)
}

/// Applies an activation with candle's differentiable ops.
pub(crate) fn activation_autograd(y: Tensor, activation: Activation) -> Result<Tensor> {
    match activation {
        Activation::Linear => Ok(y),
        Activation::Relu6 => y.clamp(0f32, 6f32),
    }
}

/// Borrows the f32 slice a contiguous layout covers.
pub(crate) fn f32_slice<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> Result<&'a [f32]> {
    let data = match storage {
        CpuStorage::F32(d) => d,
        _ => bail!("{op}: only f32 is supported"),
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{op}: input must be contiguous"),
    }
}

fn f32_slice_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
    op: &str,
) -> Result<&'a mut [f32]> {
    let data = match storage {
        CpuStorage::F32(d) => d,
        _ => bail!("{op}: only f32 is supported"),
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&mut data[start..end]),
        None => bail!("{op}: output must be contiguous"),
    }
}

/// im2col with TF `SAME` padding: (C, H, W) → (C·k·k, Ho·Wo).
struct Im2ColSame {
    kernel: usize,
    stride: usize,
    rows: SamePadding,
    cols: SamePadding,
}

impl CustomOp1 for Im2ColSame {
    fn name(&self) -> &'static str {
        "im2col-same-chw"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(storage, layout, self.name())?;
        let (c, h, w) = layout.shape().dims3()?;
        let (k, s) = (self.kernel, self.stride);
        let (ho, wo) = (self.rows.out_len, self.cols.out_len);
        let n = ho * wo;
        let mut out = vec![0f32; c * k * k * n];
        for ci in 0..c {
            let plane = &x[ci * h * w..(ci + 1) * h * w];
            for ky in 0..k {
                let oy_range = self.rows.valid_outputs(h, s, ky);
                for kx in 0..k {
                    let ox_range = self.cols.valid_outputs(w, s, kx);
                    let row = (ci * k + ky) * k + kx;
                    let dst_row = &mut out[row * n..(row + 1) * n];
                    for oy in oy_range.clone() {
                        let iy = oy * s + ky - self.rows.before;
                        let src = &plane[iy * w..(iy + 1) * w];
                        let dst = &mut dst_row[oy * wo..(oy + 1) * wo];
                        for ox in ox_range.clone() {
                            dst[ox] = src[ox * s + kx - self.cols.before];
                        }
                    }
                }
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((c * k * k, n))))
    }
}

/// Adds a per-row bias and applies the activation to an (out, positions) matrix in place.
struct BiasActivation<'a> {
    bias: &'a [f32],
    activation: Activation,
}

impl InplaceOp1 for BiasActivation<'_> {
    fn name(&self) -> &'static str {
        "bias-activation"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let y = f32_slice_mut(storage, layout, self.name())?;
        let n = y.len() / self.bias.len().max(1);
        for (row, &b) in y.chunks_exact_mut(n).zip(self.bias) {
            for v in row {
                *v = self.activation.apply(*v + b);
            }
        }
        Ok(())
    }
}

/// Adds a per-row bias and a residual matrix, then applies the activation, in place.
struct BiasResidualActivation<'a> {
    bias: &'a [f32],
    activation: Activation,
}

impl InplaceOp2 for BiasResidualActivation<'_> {
    fn name(&self) -> &'static str {
        "bias-residual-activation"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        src: &CpuStorage,
        src_l: &Layout,
    ) -> Result<()> {
        let y = f32_slice_mut(dst, dst_l, self.name())?;
        let skip = f32_slice(src, src_l, self.name())?;
        if skip.len() != y.len() {
            bail!("residual has {} values, output {}", skip.len(), y.len());
        }
        let n = y.len() / self.bias.len().max(1);
        for ((row, skip_row), &b) in y
            .chunks_exact_mut(n)
            .zip(skip.chunks_exact(n))
            .zip(self.bias)
        {
            for (v, &r) in row.iter_mut().zip(skip_row) {
                *v = self.activation.apply(*v + b + r);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn same_padding_matches_tensorflow() {
        // TF: out = ceil(in / s), pad_total = max((out − 1)·s + k − in, 0), pad_before = total / 2.
        assert_eq!(
            SamePadding::new(300, 3, 2),
            SamePadding {
                out_len: 150,
                before: 0
            }
        );
        assert_eq!(
            SamePadding::new(75, 3, 2),
            SamePadding {
                out_len: 38,
                before: 1
            }
        );
        assert_eq!(
            SamePadding::new(19, 3, 2),
            SamePadding {
                out_len: 10,
                before: 1
            }
        );
        assert_eq!(
            SamePadding::new(2, 3, 2),
            SamePadding {
                out_len: 1,
                before: 0
            }
        );
        assert_eq!(
            SamePadding::new(19, 3, 1),
            SamePadding {
                out_len: 19,
                before: 1
            }
        );
        assert_eq!(
            SamePadding::new(1, 3, 1),
            SamePadding {
                out_len: 1,
                before: 1
            }
        );
        assert_eq!(
            SamePadding::new(10, 1, 1),
            SamePadding {
                out_len: 10,
                before: 0
            }
        );
    }

    /// Reference: pad explicitly as TF does (asymmetric), then candle's unpadded conv2d.
    fn reference(x: &Tensor, conv: &SameConv, skip: Option<&Tensor>) -> Result<Tensor> {
        let (_, h, w) = x.dims3()?;
        let k = conv.kernel;
        let rows = SamePadding::new(h, k, conv.stride);
        let cols = SamePadding::new(w, k, conv.stride);
        let total_h = ((rows.out_len - 1) * conv.stride + k).saturating_sub(h);
        let total_w = ((cols.out_len - 1) * conv.stride + k).saturating_sub(w);
        let padded = x
            .pad_with_zeros(1, rows.before, total_h - rows.before)?
            .pad_with_zeros(2, cols.before, total_w - cols.before)?;
        let y = padded
            .unsqueeze(0)?
            .conv2d(&conv.weight_oihw()?, 0, conv.stride, 1, 1)?
            .squeeze(0)?;
        let bias = Tensor::from_slice(conv.bias(), (conv.out_channels(), 1, 1), &Device::Cpu)?;
        let mut y = y.broadcast_add(&bias)?;
        if let Some(s) = skip {
            y = (y + s)?;
        }
        match conv.activation {
            Activation::Linear => Ok(y),
            Activation::Relu6 => y.clamp(0f32, 6f32),
        }
    }

    #[test]
    fn autograd_path_equals_the_fast_path_and_passes_gradients() -> Result<()> {
        let dev = Device::Cpu;
        for (k, s) in [(3, 2), (3, 1), (1, 1)] {
            let (cin, cout) = (4, 5);
            let weight = Tensor::randn(0f32, 1., (cout, cin * k * k), &dev)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let bias = Tensor::randn(0f32, 1., cout, &dev)?.to_vec1::<f32>()?;
            let conv = SameConv::new(weight, bias, cin, k, s, Activation::Relu6)?;
            let x =
                candle_core::Var::from_tensor(&Tensor::randn(0f32, 2., (1, cin, 10, 9), &dev)?)?;
            let fast = conv.forward(&x.as_tensor().squeeze(0)?)?;
            let slow = conv.forward_autograd(x.as_tensor())?;
            let diff = (&fast - &slow.squeeze(0)?)?
                .abs()?
                .max_all()?
                .to_scalar::<f32>()?;
            assert!(diff < 1e-4, "k={k} s={s}: differs by {diff}");
            let grads = slow.sum_all()?.backward()?;
            let g = grads
                .get(x.as_tensor())
                .expect("gradient reaches the input");
            assert!(g.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0);
        }
        Ok(())
    }

    #[test]
    fn matches_candle_conv2d_with_tf_same_padding() -> Result<()> {
        let dev = Device::Cpu;
        for (k, s, h, w) in [
            (3, 2, 12, 12),
            (3, 2, 11, 8),
            (3, 1, 7, 5),
            (1, 1, 6, 6),
            (3, 2, 2, 2),
            (3, 1, 1, 1),
        ] {
            for activation in [Activation::Linear, Activation::Relu6] {
                let (cin, cout) = (5, 7);
                let weight = Tensor::randn(0f32, 1., (cout, cin * k * k), &dev)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                let bias = Tensor::randn(0f32, 1., cout, &dev)?.to_vec1::<f32>()?;
                let conv = SameConv::new(weight, bias, cin, k, s, activation)?;
                let x = Tensor::randn(0f32, 2., (cin, h, w), &dev)?;
                let ours = conv.forward(&x)?;
                let want = reference(&x, &conv, None)?;
                assert_eq!(ours.dims(), want.dims(), "k={k} s={s} {h}×{w}");
                let diff = (&ours - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
                assert!(diff < 1e-4, "k={k} s={s} {h}×{w}: differs by {diff}");
                let skip = Tensor::randn(0f32, 1., ours.dims(), &dev)?;
                let ours = conv.forward_residual(&x, &skip)?;
                let want = reference(&x, &conv, Some(&skip))?;
                let diff = (&ours - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
                assert!(
                    diff < 1e-4,
                    "residual k={k} s={s} {h}×{w}: differs by {diff}"
                );
            }
        }
        Ok(())
    }
}
