//! Inference convolutions with TensorFlow's `SAME` padding on (C, H, W) tensors: im2col (none
//! for 1×1) + one matrix product, then one pass for the bias, the optional residual and ReLU6
//! ([`super::pointwise`]).
//!
//! The crate's training convolution ([`crate::conv::Conv2d`]) pads symmetrically; TF's `SAME`
//! puts the odd padding pixel after the image (bottom/right) when a stride-2 convolution meets an
//! even size (300 → 150), so reusing it would shift every stride-2 output by half a pixel. These
//! ops are forward-only: the detector is frozen and BatchNorm is folded at load time.

use std::cell::RefCell;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, bail};

use super::pointwise::PackedMatrix;

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
    /// (out, in·k·k), rows ordered (in channel, ky, kx) like the im2col rows: the
    /// differentiable path's copy.
    weight: Tensor,
    /// The same matrix packed for the inference kernel.
    packed: PackedMatrix,
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
        if weight.len() != out_channels * in_channels * kernel * kernel {
            bail!(
                "convolution: {} weights for {out_channels}×{in_channels}×{kernel}×{kernel}",
                weight.len()
            );
        }
        let packed = PackedMatrix::new(&weight, out_channels, in_channels * kernel * kernel);
        let weight = Tensor::from_vec(
            weight,
            (out_channels, in_channels * kernel * kernel),
            &candle_core::Device::Cpu,
        )?;
        Ok(Self {
            weight,
            packed,
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

    /// Convolves a (C, H, W) tensor, adds the bias and applies the activation.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.contiguous()?.apply_op1_no_bwd(&ConvOp { conv: self })
    }

    /// Convolves, adds the bias and the residual `skip` (same shape as the output), then applies
    /// the activation: the projection of a MobileNetV2 inverted residual block in one pass.
    pub fn forward_residual(&self, x: &Tensor, skip: &Tensor) -> Result<Tensor> {
        x.contiguous()?
            .apply_op2_no_bwd(&skip.contiguous()?, &ConvOp { conv: self })
    }

    /// The inference kernel on a row-major (C, H, W) map `x`: returns the output rows and
    /// columns and writes act(conv + bias [+ skip]) to `out` (resized to Cout·Ho·Wo).
    pub fn forward_slice(
        &self,
        x: &[f32],
        (h, w): (usize, usize),
        skip: Option<&[f32]>,
        out: &mut Vec<f32>,
    ) -> Result<(usize, usize)> {
        let c = self.in_channels;
        if x.len() != c * h * w {
            bail!(
                "convolution expects {c}×{h}×{w} = {} values, got {}",
                c * h * w,
                x.len()
            );
        }
        let rows = SamePadding::new(h, self.kernel, self.stride);
        let cols = SamePadding::new(w, self.kernel, self.stride);
        let n = rows.out_len * cols.out_len;
        if let Some(s) = skip
            && s.len() != self.bias.len() * n
        {
            bail!(
                "residual has {} values, output {}",
                s.len(),
                self.bias.len() * n
            );
        }
        out.resize(self.bias.len() * n, 0.0);
        if self.kernel == 1 && self.stride == 1 {
            self.packed
                .multiply(x, n, &self.bias, skip, self.activation, out);
        } else {
            let mut run = |patches: &mut Vec<f32>| {
                im2col_same(x, (c, h, w), self.kernel, self.stride, rows, cols, patches);
                self.packed
                    .multiply(patches, n, &self.bias, skip, self.activation, out);
            };
            // A rayon task stolen while this thread waits inside `multiply` may convolve
            // too; it then finds the buffer borrowed and uses its own.
            PATCHES.with(|cell| match cell.try_borrow_mut() {
                Ok(mut patches) => run(&mut patches),
                Err(_) => run(&mut Vec::new()),
            });
        }
        Ok((rows.out_len, cols.out_len))
    }
}

/// [`SameConv::forward_slice`] as a candle op on a (C, H, W) tensor, with an optional residual
/// as the second operand.
struct ConvOp<'a> {
    conv: &'a SameConv,
}

impl ConvOp<'_> {
    fn run(&self, x: &[f32], layout: &Layout, skip: Option<&[f32]>) -> Result<(CpuStorage, Shape)> {
        let (c, h, w) = layout.shape().dims3()?;
        if c != self.conv.in_channels {
            bail!(
                "convolution expects {} channels, got {c}",
                self.conv.in_channels
            );
        }
        let mut out = Vec::new();
        let (ho, wo) = self.conv.forward_slice(x, (h, w), skip, &mut out)?;
        Ok((
            CpuStorage::F32(out),
            Shape::from((self.conv.bias.len(), ho, wo)),
        ))
    }
}

impl CustomOp1 for ConvOp<'_> {
    fn name(&self) -> &'static str {
        "same-conv-chw"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(storage, layout, CustomOp1::name(self))?;
        self.run(x, layout, None)
    }
}

impl CustomOp2 for ConvOp<'_> {
    fn name(&self) -> &'static str {
        "same-conv-residual-chw"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, CustomOp2::name(self))?;
        let skip = f32_slice(s2, l2, CustomOp2::name(self))?;
        self.run(x, l1, Some(skip))
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

thread_local! {
    /// The im2col matrix of the last k×k convolution on this thread, reused so that repeated
    /// frames do not allocate (and page-fault) megabytes per layer.
    static PATCHES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// im2col with TF `SAME` padding: (C, H, W) → (C·k·k, Ho·Wo) into `out`, rows ordered
/// (channel, ky, kx).
fn im2col_same(
    x: &[f32],
    (c, h, w): (usize, usize, usize),
    k: usize,
    s: usize,
    rows: SamePadding,
    cols: SamePadding,
    out: &mut Vec<f32>,
) {
    let (ho, wo) = (rows.out_len, cols.out_len);
    let n = ho * wo;
    out.clear();
    out.resize(c * k * k * n, 0.0);
    for ci in 0..c {
        let plane = &x[ci * h * w..(ci + 1) * h * w];
        for ky in 0..k {
            let oy_range = rows.valid_outputs(h, s, ky);
            for kx in 0..k {
                let ox_range = cols.valid_outputs(w, s, kx);
                let row = (ci * k + ky) * k + kx;
                let dst_row = &mut out[row * n..(row + 1) * n];
                for oy in oy_range.clone() {
                    let iy = oy * s + ky - rows.before;
                    let src = &plane[iy * w..(iy + 1) * w];
                    let dst = &mut dst_row[oy * wo..(oy + 1) * wo];
                    let (first, last) = (ox_range.start, ox_range.end);
                    if first < last {
                        let x0 = first * s + kx - cols.before;
                        if s == 1 {
                            dst[first..last].copy_from_slice(&src[x0..x0 + (last - first)]);
                        } else {
                            let taps = src[x0..].iter().step_by(s);
                            for (d, &v) in dst[first..last].iter_mut().zip(taps) {
                                *d = v;
                            }
                        }
                    }
                }
            }
        }
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
