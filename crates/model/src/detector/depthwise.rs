//! Direct depthwise 3×3 convolution for inference (TF `SAME` padding, stride 1 or 2), with the
//! folded BatchNorm bias and ReLU6 in the same pass.
//!
//! candle's grouped `conv2d` runs one small convolution per channel; a depthwise layer does only
//! nine multiply-adds per output, so the plain loop below (the stride-1 rows vectorise) is far
//! cheaper than any im2col. It is checked equal to candle's grouped convolution in the tests.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use super::conv::{Activation, SamePadding, f32_slice};

/// Taps of the depthwise kernel along each axis.
pub const KERNEL: usize = 3;

/// A depthwise 3×3 convolution with one filter per channel and BatchNorm folded in.
#[derive(Debug, Clone)]
pub struct DepthwiseConv {
    /// (C, 3, 3) row-major: channel, ky, kx.
    weight: Vec<f32>,
    bias: Vec<f32>,
    stride: usize,
    activation: Activation,
}

impl DepthwiseConv {
    /// Builds the convolution from (C, 3, 3) filters and a bias of C values.
    pub fn new(
        weight: Vec<f32>,
        bias: Vec<f32>,
        stride: usize,
        activation: Activation,
    ) -> Result<Self> {
        if weight.len() != bias.len() * KERNEL * KERNEL {
            bail!(
                "depthwise: {} weights for {} channels",
                weight.len(),
                bias.len()
            );
        }
        if stride == 0 || stride > 2 {
            bail!("depthwise: stride {stride} is not supported (1 or 2)");
        }
        Ok(Self {
            weight,
            bias,
            stride,
            activation,
        })
    }

    /// Channels in and out.
    pub fn channels(&self) -> usize {
        self.bias.len()
    }

    /// The filters as (C, 1, 3, 3), candle's grouped-convolution layout.
    pub fn weight_tensor(&self) -> Result<Tensor> {
        Tensor::from_slice(
            &self.weight,
            (self.bias.len(), 1, KERNEL, KERNEL),
            &candle_core::Device::Cpu,
        )
    }

    /// The folded bias.
    pub fn bias(&self) -> &[f32] {
        &self.bias
    }

    /// Stride along both axes.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Convolves a (C, H, W) tensor.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (c, _, _) = x.dims3()?;
        if c != self.channels() {
            bail!("depthwise expects {} channels, got {c}", self.channels());
        }
        x.contiguous()?.apply_op1_no_bwd(self)
    }

    /// The same convolution on a (B, C, H, W) batch with candle's differentiable grouped
    /// convolution: slower, but gradients flow back to the input.
    pub fn forward_autograd(&self, x: &Tensor) -> Result<Tensor> {
        let c = self.channels();
        let padded = super::conv::pad_same(x, KERNEL, self.stride)?;
        let y = padded.conv2d(&self.weight_tensor()?, 0, self.stride, 1, c)?;
        let bias = Tensor::from_slice(&self.bias, (1, c, 1, 1), x.device())?;
        super::conv::activation_autograd(y.broadcast_add(&bias)?, self.activation)
    }

    /// One channel: `padded` is the zero-padded plane (`pad_rows` rows of `pad_width`), laid out
    /// for unit-stride taps (see [`pad_plane`]); `dst` the (Ho, Wo) output plane.
    fn channel(&self, ci: usize, padded: &[f32], pad_width: usize, wo: usize, dst: &mut [f32]) {
        let mut k = [0f32; KERNEL * KERNEL];
        k.copy_from_slice(&self.weight[ci * KERNEL * KERNEL..(ci + 1) * KERNEL * KERNEL]);
        let plane = Plane {
            padded,
            pad_width,
            wo,
            stride: self.stride,
        };
        let (bias, activation) = (self.bias[ci], self.activation);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { channel_avx2(&plane, &k, bias, activation, dst) };
            return;
        }
        channel_body(&plane, &k, bias, activation, dst);
    }
}

/// A padded input plane as [`pad_plane`] lays it out.
struct Plane<'a> {
    padded: &'a [f32],
    pad_width: usize,
    wo: usize,
    stride: usize,
}

/// [`channel_body`] compiled for AVX2, so its row loop runs eight lanes wide; the arithmetic and
/// its order are the same, so both paths give identical results.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn channel_avx2(
    plane: &Plane,
    k: &[f32; KERNEL * KERNEL],
    bias: f32,
    activation: Activation,
    dst: &mut [f32],
) {
    channel_body(plane, k, bias, activation, dst)
}

#[inline(always)]
fn channel_body(
    plane: &Plane,
    k: &[f32; KERNEL * KERNEL],
    bias: f32,
    activation: Activation,
    dst: &mut [f32],
) {
    let wo = plane.wo;
    // Column offsets of the three taps inside a padded row: stride 1 reads the row shifted by
    // 0, 1, 2; stride 2 reads the even half at 0 and 1 and the odd half at 0.
    let taps = if plane.stride == 1 {
        [0, 1, 2]
    } else {
        [0, wo + 1, 1]
    };
    for (oy, out) in dst.chunks_exact_mut(wo).enumerate() {
        let row = |ky: usize| {
            &plane.padded[(oy * plane.stride + ky) * plane.pad_width..][..plane.pad_width]
        };
        let (r0, r1, r2) = (row(0), row(1), row(2));
        let [a0, b0, c0] = taps.map(|t| &r0[t..t + wo]);
        let [a1, b1, c1] = taps.map(|t| &r1[t..t + wo]);
        let [a2, b2, c2] = taps.map(|t| &r2[t..t + wo]);
        for i in 0..wo {
            out[i] = bias
                + k[0] * a0[i]
                + k[1] * b0[i]
                + k[2] * c0[i]
                + k[3] * a1[i]
                + k[4] * b1[i]
                + k[5] * c1[i]
                + k[6] * a2[i]
                + k[7] * b2[i]
                + k[8] * c2[i];
        }
        if activation == Activation::Relu6 {
            for v in out.iter_mut() {
                *v = v.clamp(0.0, 6.0);
            }
        }
    }
}

/// Copies one (H, W) plane into `padded` with TF `SAME` zero padding so that every output reads
/// its 3×3 window without bounds checks. For stride 2 each padded row is stored deinterleaved —
/// its `wo + 1` even columns, then its `wo` odd columns — so the taps read contiguous runs.
/// Returns the padded row width.
fn pad_plane(
    src: &[f32],
    h: usize,
    w: usize,
    stride: usize,
    rows: SamePadding,
    cols: SamePadding,
    padded: &mut Vec<f32>,
) -> usize {
    let pad_rows = (rows.out_len - 1) * stride + KERNEL;
    let pad_cols = (cols.out_len - 1) * stride + KERNEL;
    padded.clear();
    padded.resize(pad_rows * pad_cols, 0.0);
    let half = cols.out_len + 1;
    let mut line = vec![0f32; if stride == 1 { 0 } else { pad_cols + 1 }];
    for y in 0..h {
        let py = y + rows.before;
        if py >= pad_rows {
            break;
        }
        let dst = &mut padded[py * pad_cols..(py + 1) * pad_cols];
        let src_row = &src[y * w..(y + 1) * w];
        let n = w.min(pad_cols - cols.before);
        if stride == 1 {
            dst[cols.before..cols.before + n].copy_from_slice(&src_row[..n]);
        } else {
            // Pad the row into `line`, then split it into its even and odd columns.
            line.fill(0.0);
            line[cols.before..cols.before + n].copy_from_slice(&src_row[..n]);
            let (even, odd) = dst.split_at_mut(half);
            for ((pair, e), o) in line
                .chunks_exact(2)
                .zip(even.iter_mut())
                .zip(odd.iter_mut())
            {
                *e = pair[0];
                *o = pair[1];
            }
            even[half - 1] = line[2 * (half - 1)];
        }
    }
    pad_cols
}

impl DepthwiseConv {
    /// The inference kernel on a row-major (C, H, W) map: returns the output rows and columns
    /// and writes the (C, Ho, Wo) result to `out` (resized to fit). Channels are split across
    /// the rayon pool.
    pub fn forward_slice(
        &self,
        x: &[f32],
        (h, w): (usize, usize),
        out: &mut Vec<f32>,
    ) -> Result<(usize, usize)> {
        let c = self.channels();
        if x.len() != c * h * w || h == 0 || w == 0 {
            bail!(
                "depthwise expects {c}×{h}×{w} = {} values, got {}",
                c * h * w,
                x.len()
            );
        }
        let rows = SamePadding::new(h, KERNEL, self.stride);
        let cols = SamePadding::new(w, KERNEL, self.stride);
        let plane_out = rows.out_len * cols.out_len;
        out.resize(c * plane_out, 0.0);
        let one_channel = |padded: &mut Vec<f32>, (ci, dst): (usize, &mut [f32])| {
            let src = &x[ci * h * w..(ci + 1) * h * w];
            let pad_width = pad_plane(src, h, w, self.stride, rows, cols, padded);
            self.channel(ci, padded, pad_width, cols.out_len, dst);
        };
        if rayon::current_num_threads() <= 1 || c * plane_out < 1 << 14 {
            let mut padded = Vec::new();
            out.chunks_exact_mut(plane_out)
                .enumerate()
                .for_each(|item| one_channel(&mut padded, item));
        } else {
            out.par_chunks_exact_mut(plane_out)
                .enumerate()
                .for_each_init(Vec::new, one_channel);
        }
        Ok((rows.out_len, cols.out_len))
    }
}

impl CustomOp1 for DepthwiseConv {
    fn name(&self) -> &'static str {
        "depthwise3x3-same-chw"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(storage, layout, self.name())?;
        let (c, h, w) = layout.shape().dims3()?;
        let mut out = Vec::new();
        let (ho, wo) = self.forward_slice(x, (h, w), &mut out)?;
        Ok((CpuStorage::F32(out), Shape::from((c, ho, wo))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The direct kernel must equal candle's grouped conv2d on the TF-padded input.
    #[test]
    fn matches_candle_grouped_conv2d() -> Result<()> {
        let dev = Device::Cpu;
        for (s, h, w) in [
            (1, 19, 19),
            (2, 150, 150),
            (2, 75, 75),
            (1, 5, 7),
            (2, 3, 3),
            (2, 2, 2),
            (1, 1, 1),
            (2, 1, 1),
        ] {
            for activation in [Activation::Linear, Activation::Relu6] {
                let c = 6;
                let weight = Tensor::randn(0f32, 1., c * 9, &dev)?.to_vec1::<f32>()?;
                let bias = Tensor::randn(0f32, 1., c, &dev)?.to_vec1::<f32>()?;
                let conv = DepthwiseConv::new(weight, bias, s, activation)?;
                let x = Tensor::randn(0f32, 2., (c, h, w), &dev)?;
                let ours = conv.forward(&x)?;
                let slow = conv.forward_autograd(&x.unsqueeze(0)?)?.squeeze(0)?;
                let diff = (&ours - &slow)?.abs()?.max_all()?.to_scalar::<f32>()?;
                assert!(
                    diff < 1e-4,
                    "autograd path s={s} {h}×{w}: differs by {diff}"
                );

                let rows = SamePadding::new(h, KERNEL, s);
                let cols = SamePadding::new(w, KERNEL, s);
                let total_h = ((rows.out_len - 1) * s + KERNEL).saturating_sub(h);
                let total_w = ((cols.out_len - 1) * s + KERNEL).saturating_sub(w);
                let padded = x
                    .pad_with_zeros(1, rows.before, total_h - rows.before)?
                    .pad_with_zeros(2, cols.before, total_w - cols.before)?;
                let want = padded
                    .unsqueeze(0)?
                    .conv2d(&conv.weight_tensor()?, 0, s, 1, c)?
                    .squeeze(0)?
                    .broadcast_add(&Tensor::from_slice(conv.bias(), (c, 1, 1), &dev)?)?;
                let want = match activation {
                    Activation::Linear => want,
                    Activation::Relu6 => want.clamp(0f32, 6f32)?,
                };
                assert_eq!(ours.dims(), want.dims(), "s={s} {h}×{w}");
                let diff = (&ours - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
                assert!(
                    diff < 1e-4,
                    "s={s} {h}×{w} {activation:?}: differs by {diff}"
                );
            }
        }
        Ok(())
    }
}
