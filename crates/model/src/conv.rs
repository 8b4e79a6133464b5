//! 2-D convolution as im2col + one matrix product, on tensors laid out channel-first (C, B, H, W).
//!
//! candle's CPU `conv2d` is a direct loop and its backward pass is slower still; for the small
//! images here an explicit im2col feeding one large GEMM is several times faster, and the
//! (C, B, H, W) layout makes the product's output land in the same layout with no transpose.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Module, Result, Shape, Tensor, bail};
use candle_nn::{Init, VarBuilder};

/// Geometry of one im2col: kernel size, stride and zero padding (square).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl Geometry {
    fn out_len(&self, len: usize) -> usize {
        (len + 2 * self.padding - self.kernel) / self.stride + 1
    }
}

/// im2col: (C, B, H, W) → (C·k·k, B·Ho·Wo); backward is col2im.
struct Im2Col {
    geometry: Geometry,
}

/// col2im (adds overlapping patches back): (C·k·k, B·Ho·Wo) → (C, B, H, W).
struct Col2Im {
    geometry: Geometry,
    input_dims: [usize; 4],
}

fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let data = match storage {
        CpuStorage::F32(d) => d,
        _ => bail!("{op}: only f32 is supported"),
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{op}: input must be contiguous"),
    }
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col-cbhw"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(storage, layout, self.name())?;
        let (c, b, h, w) = layout.shape().dims4()?;
        let g = self.geometry;
        let (ho, wo) = (g.out_len(h), g.out_len(w));
        let k = g.kernel;
        let cols = b * ho * wo;
        let mut out = vec![0f32; c * k * k * cols];
        for ci in 0..c {
            for ky in 0..k {
                for kx in 0..k {
                    let row = (ci * k + ky) * k + kx;
                    let dst_row = &mut out[row * cols..(row + 1) * cols];
                    for bi in 0..b {
                        let src = &x[(ci * b + bi) * h * w..(ci * b + bi + 1) * h * w];
                        for oy in 0..ho {
                            let iy = (oy * g.stride + ky) as isize - g.padding as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            let src_row = &src[iy as usize * w..(iy as usize + 1) * w];
                            let dst = &mut dst_row[(bi * ho + oy) * wo..(bi * ho + oy + 1) * wo];
                            for (ox, d) in dst.iter_mut().enumerate() {
                                let ix = (ox * g.stride + kx) as isize - g.padding as isize;
                                if ix >= 0 && ix < w as isize {
                                    *d = src_row[ix as usize];
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((c * k * k, cols))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let (c, b, h, w) = arg.dims4()?;
        let grad = grad_res.contiguous()?.apply_op1_no_bwd(&Col2Im {
            geometry: self.geometry,
            input_dims: [c, b, h, w],
        })?;
        Ok(Some(grad))
    }
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "col2im-cbhw"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let cols_data = contiguous_f32(storage, layout, self.name())?;
        let [c, b, h, w] = self.input_dims;
        let g = self.geometry;
        let (ho, wo) = (g.out_len(h), g.out_len(w));
        let k = g.kernel;
        let cols = b * ho * wo;
        if layout.shape().dims() != [c * k * k, cols] {
            bail!(
                "col2im: gradient shape {:?} does not match the input",
                layout.shape()
            );
        }
        let mut out = vec![0f32; c * b * h * w];
        for ci in 0..c {
            for ky in 0..k {
                for kx in 0..k {
                    let row = (ci * k + ky) * k + kx;
                    let src_row = &cols_data[row * cols..(row + 1) * cols];
                    for bi in 0..b {
                        let dst = &mut out[(ci * b + bi) * h * w..(ci * b + bi + 1) * h * w];
                        for oy in 0..ho {
                            let iy = (oy * g.stride + ky) as isize - g.padding as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            let src = &src_row[(bi * ho + oy) * wo..(bi * ho + oy + 1) * wo];
                            let dst_row = &mut dst[iy as usize * w..(iy as usize + 1) * w];
                            for (ox, s) in src.iter().enumerate() {
                                let ix = (ox * g.stride + kx) as isize - g.padding as isize;
                                if ix >= 0 && ix < w as isize {
                                    dst_row[ix as usize] += s;
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((c, b, h, w))))
    }
}

/// A square 2-D convolution with bias on (C, B, H, W) tensors; weights `weight` (O, C, k, k) and
/// `bias` (O), the same names and shapes as PyTorch and candle-nn.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Tensor,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl Conv2d {
    /// Builds a convolution whose padding keeps `H/stride` (rounded up) for odd kernels.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let fan_in = (in_channels * kernel * kernel) as f64;
        let bound = (1.0 / fan_in).sqrt();
        let init = Init::Uniform {
            lo: -bound * 3f64.sqrt(),
            up: bound * 3f64.sqrt(),
        };
        let weight =
            vb.get_with_hints((out_channels, in_channels, kernel, kernel), "weight", init)?;
        let bias = vb.get_with_hints(
            out_channels,
            "bias",
            Init::Uniform {
                lo: -bound,
                up: bound,
            },
        )?;
        Ok(Self {
            weight,
            bias,
            out_channels,
            kernel,
            stride,
            padding: kernel / 2,
        })
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.out_channels
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (c, b, h, w) = x.dims4()?;
        let geometry = Geometry {
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
        };
        let (ho, wo) = (geometry.out_len(h), geometry.out_len(w));
        let w2 = self
            .weight
            .reshape((self.out_channels, c * self.kernel * self.kernel))?;
        let cols = if self.kernel == 1 && self.stride == 1 {
            x.reshape((c, b * h * w))?
        } else {
            x.contiguous()?.apply_op1(Im2Col { geometry })?
        };
        let y = w2.matmul(&cols)?;
        y.broadcast_add(&self.bias.reshape((self.out_channels, 1))?)?
            .reshape((self.out_channels, b, ho, wo))
    }
}

/// Nearest-neighbour ×2 upsampling of a (C, B, H, W) tensor, differentiable through broadcast.
pub fn upsample2(x: &Tensor) -> Result<Tensor> {
    let (c, b, h, w) = x.dims4()?;
    x.reshape((c, b, h, 1, w, 1))?
        .broadcast_as((c, b, h, 2, w, 2))?
        .reshape((c, b, 2 * h, 2 * w))
}

/// Crops a (C, B, H, W) tensor to its top-left `h`×`w` corner.
pub fn crop(x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let (_, _, xh, xw) = x.dims4()?;
    if xh == h && xw == w {
        return Ok(x.clone());
    }
    x.narrow(2, 0, h)?.narrow(3, 0, w)
}

/// Converts images (B, 1, H, W) or features (B, C, H, W) to the channel-first layout and back.
pub fn swap_batch_channel(x: &Tensor) -> Result<Tensor> {
    x.transpose(0, 1)?.contiguous()
}

/// Checks that a tensor is f32 (the only dtype the custom ops support).
pub fn ensure_f32(x: &Tensor) -> Result<()> {
    if x.dtype() != DType::F32 {
        bail!("expected f32, got {:?}", x.dtype());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use candle_nn::VarMap;

    /// Our im2col convolution must agree with candle's reference conv2d, forward and backward.
    #[test]
    fn matches_candle_conv2d_forward_and_backward() -> Result<()> {
        let dev = Device::Cpu;
        for (k, s) in [(3, 1), (3, 2), (5, 2), (1, 1)] {
            let map = VarMap::new();
            let vb = VarBuilder::from_varmap(&map, DType::F32, &dev);
            let conv = Conv2d::new(3, 4, k, s, vb)?;
            let x = Var::from_tensor(&Tensor::randn(0f32, 1., (2, 3, 9, 9), &dev)?)?;
            let ours = swap_batch_channel(&conv.forward(&swap_batch_channel(x.as_tensor())?)?)?;
            let reference = x
                .as_tensor()
                .conv2d(&conv.weight, k / 2, s, 1, 1)?
                .broadcast_add(&conv.bias.reshape((1, 4, 1, 1))?)?;
            let diff = (&ours - &reference)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-4, "k={k} s={s}: forward differs by {diff}");
            let g_ours = ours.sqr()?.sum_all()?.backward()?;
            let g_ref = reference.sqr()?.sum_all()?.backward()?;
            for t in [x.as_tensor(), &conv.weight] {
                let a = g_ours.get(t).expect("grad");
                let b = g_ref.get(t).expect("grad");
                let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
                assert!(diff < 1e-3, "k={k} s={s}: gradient differs by {diff}");
            }
        }
        Ok(())
    }

    #[test]
    fn upsample_and_crop_shapes() -> Result<()> {
        let x = Tensor::arange(0f32, 8., &Device::Cpu)?.reshape((1, 2, 2, 2))?;
        let up = upsample2(&x)?;
        assert_eq!(up.dims(), [1, 2, 4, 4]);
        let v = up.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(&v[..8], &[0., 0., 1., 1., 0., 0., 1., 1.]);
        assert_eq!(crop(&up, 3, 3)?.dims(), [1, 2, 3, 3]);
        Ok(())
    }
}
