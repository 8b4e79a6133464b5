//! Direct depthwise 3×3 convolution for inference (TF `SAME` padding, stride 1 or 2), with the
//! folded BatchNorm bias and ReLU6 in the same pass.
//!
//! candle's grouped `conv2d` runs one small convolution per channel; a depthwise layer does only
//! nine multiply-adds per output, so the plain loop below (the stride-1 rows vectorise) is far
//! cheaper than any im2col. It is checked equal to candle's grouped convolution in the tests.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, bail};

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
        if stride == 0 {
            bail!("depthwise: stride 0");
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

    fn channel(
        &self,
        ci: usize,
        src: &[f32],
        h: usize,
        w: usize,
        rows: SamePadding,
        cols: SamePadding,
        dst: &mut [f32],
    ) {
        let s = self.stride;
        let wo = cols.out_len;
        let k = &self.weight[ci * KERNEL * KERNEL..(ci + 1) * KERNEL * KERNEL];
        dst.fill(self.bias[ci]);
        let x_ranges: [std::ops::Range<usize>; KERNEL] =
            std::array::from_fn(|kx| cols.valid_outputs(w, s, kx));
        for ky in 0..KERNEL {
            for oy in rows.valid_outputs(h, s, ky) {
                let iy = oy * s + ky - rows.before;
                let src_row = &src[iy * w..(iy + 1) * w];
                let dst_row = &mut dst[oy * wo..(oy + 1) * wo];
                for (kx, range) in x_ranges.iter().enumerate() {
                    let tap = k[ky * KERNEL + kx];
                    if range.is_empty() {
                        continue;
                    }
                    if s == 1 {
                        // Contiguous on both sides: the compiler vectorises this.
                        let offset = range.start + kx - cols.before;
                        let src_part = &src_row[offset..offset + range.len()];
                        for (d, &v) in dst_row[range.clone()].iter_mut().zip(src_part) {
                            *d += tap * v;
                        }
                    } else {
                        for ox in range.clone() {
                            dst_row[ox] += tap * src_row[ox * s + kx - cols.before];
                        }
                    }
                }
            }
        }
        if self.activation != Activation::Linear {
            for v in dst.iter_mut() {
                *v = self.activation.apply(*v);
            }
        }
    }
}

impl CustomOp1 for DepthwiseConv {
    fn name(&self) -> &'static str {
        "depthwise3x3-same-chw"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(storage, layout, self.name())?;
        let (c, h, w) = layout.shape().dims3()?;
        let rows = SamePadding::new(h, KERNEL, self.stride);
        let cols = SamePadding::new(w, KERNEL, self.stride);
        let plane_out = rows.out_len * cols.out_len;
        let mut out = vec![0f32; c * plane_out];
        for (ci, dst) in out.chunks_exact_mut(plane_out).enumerate() {
            self.channel(ci, &x[ci * h * w..(ci + 1) * h * w], h, w, rows, cols, dst);
        }
        Ok((
            CpuStorage::F32(out),
            Shape::from((c, rows.out_len, cols.out_len)),
        ))
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
