//! 2-D convolution as im2col + one matrix product, on tensors laid out channel-first (C, B, H, W).
//!
//! candle's CPU `conv2d` is a direct loop and its backward pass is slower still; for the small
//! images here an explicit im2col feeding one large GEMM is several times faster, and the
//! (C, B, H, W) layout makes the product's output land in the same layout with no transpose.
//!
//! The whole convolution (im2col, product, bias) is one custom op with a hand-written backward:
//! built from candle ops, the column matrix (C·k·k × B·Ho·Wo, up to 29 MB for a batch of 128)
//! was a graph node, so autograd zero-filled and accumulated a gradient of that size for every
//! convolution; here it is a scratch buffer that never enters the graph.

use std::cell::RefCell;

use candle_core::{
    CpuStorage, CustomOp2, CustomOp3, DType, Layout, Module, Result, Shape, Tensor, bail,
};
use candle_nn::{Init, VarBuilder};

use crate::matmul::{Operand, matmul};

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

    /// A 1×1 stride-1 kernel: the input already is its own column matrix.
    fn is_pointwise(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.padding == 0
    }
}

pub(crate) fn contiguous_f32<'a>(
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

/// im2col: x (C, B, H, W) → `out` (C·k·k, B·Ho·Wo), every element written.
fn im2col(x: &[f32], [c, b, h, w]: [usize; 4], g: Geometry, out: &mut [f32]) {
    let (ho, wo) = (g.out_len(h), g.out_len(w));
    let k = g.kernel;
    let cols = b * ho * wo;
    debug_assert_eq!(out.len(), c * k * k * cols);
    for ci in 0..c {
        for ky in 0..k {
            for kx in 0..k {
                let row = (ci * k + ky) * k + kx;
                let dst_row = &mut out[row * cols..(row + 1) * cols];
                // Output columns whose input column falls inside the image: ox in [lo, hi).
                let lo = g.padding.saturating_sub(kx).div_ceil(g.stride).min(wo);
                let hi = ((w + g.padding).saturating_sub(kx))
                    .div_ceil(g.stride)
                    .min(wo);
                for bi in 0..b {
                    let src = &x[(ci * b + bi) * h * w..(ci * b + bi + 1) * h * w];
                    for oy in 0..ho {
                        let dst = &mut dst_row[(bi * ho + oy) * wo..(bi * ho + oy + 1) * wo];
                        let iy = (oy * g.stride + ky) as isize - g.padding as isize;
                        if iy < 0 || iy >= h as isize || lo >= hi {
                            dst.fill(0.0);
                            continue;
                        }
                        let src_row = &src[iy as usize * w..(iy as usize + 1) * w];
                        dst[..lo].fill(0.0);
                        dst[hi..].fill(0.0);
                        let ix0 = lo * g.stride + kx - g.padding;
                        if g.stride == 1 {
                            dst[lo..hi].copy_from_slice(&src_row[ix0..ix0 + (hi - lo)]);
                        } else {
                            for (j, d) in dst[lo..hi].iter_mut().enumerate() {
                                *d = src_row[ix0 + j * g.stride];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// col2im, the adjoint of [`im2col`]: adds the columns (C·k·k, B·Ho·Wo) back onto `out`
/// (C, B, H, W), which must start zeroed.
fn col2im(cols_data: &[f32], [c, b, h, w]: [usize; 4], g: Geometry, out: &mut [f32]) {
    let (ho, wo) = (g.out_len(h), g.out_len(w));
    let k = g.kernel;
    let cols = b * ho * wo;
    debug_assert_eq!(cols_data.len(), c * k * k * cols);
    for ci in 0..c {
        for ky in 0..k {
            for kx in 0..k {
                let row = (ci * k + ky) * k + kx;
                let src_row = &cols_data[row * cols..(row + 1) * cols];
                let lo = g.padding.saturating_sub(kx).div_ceil(g.stride).min(wo);
                let hi = ((w + g.padding).saturating_sub(kx))
                    .div_ceil(g.stride)
                    .min(wo);
                if lo >= hi {
                    continue;
                }
                let ix0 = lo * g.stride + kx - g.padding;
                for bi in 0..b {
                    let dst = &mut out[(ci * b + bi) * h * w..(ci * b + bi + 1) * h * w];
                    for oy in 0..ho {
                        let iy = (oy * g.stride + ky) as isize - g.padding as isize;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        let src = &src_row[(bi * ho + oy) * wo..(bi * ho + oy + 1) * wo];
                        let dst_row = &mut dst[iy as usize * w..(iy as usize + 1) * w];
                        for (j, s) in src[lo..hi].iter().enumerate() {
                            dst_row[ix0 + j * g.stride] += s;
                        }
                    }
                }
            }
        }
    }
}

thread_local! {
    /// The column matrix of the running convolution, kept between calls: allocating and
    /// zero-filling up to 29 MB per convolution (three times per training step of each) cost
    /// about as much as filling it.
    static COLUMNS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's column scratch buffer, `len` values long (contents unspecified:
/// `f` must overwrite what it reads).
fn with_columns<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    COLUMNS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => {
            if buffer.len() < len {
                buffer.resize(len, 0.0);
            }
            f(&mut buffer[..len])
        }
        // Only a nested convolution on the same thread gets here; it gets its own buffer.
        Err(_) => f(&mut vec![0f32; len]),
    })
}

/// Runs `f` on the input `x` (C, B, H, W) as the (C·k·k) × (B·Ho·Wo) matrix of the convolution's
/// products, `transposed` as [`Operand`] says: `x` itself for a 1×1 stride-1 convolution, else
/// its im2col columns in this thread's scratch buffer.
fn with_input_matrix<R>(
    x: &[f32],
    shape: [usize; 4],
    g: Geometry,
    transposed: bool,
    f: impl FnOnce(Operand<'_>) -> R,
) -> R {
    if g.is_pointwise() {
        return f(Operand {
            data: x,
            transposed,
        });
    }
    let [c, b, h, w] = shape;
    let len = c * g.kernel * g.kernel * b * g.out_len(h) * g.out_len(w);
    with_columns(len, |cols| {
        im2col(x, shape, g, cols);
        f(Operand {
            data: cols,
            transposed,
        })
    })
}

/// The convolution `(x (C, B, H, W), weight (O, C, k, k), bias (O)) → (O, B, Ho, Wo)`.
struct ConvOp {
    geometry: Geometry,
}

/// ∂L/∂x of [`ConvOp`]: `(grad (O, B·Ho·Wo), weight (O, C·k·k)) → (C, B, H, W)`.
struct ConvInputGrad {
    geometry: Geometry,
    input_dims: [usize; 4],
}

/// ∂L/∂weight of [`ConvOp`]: `(grad (O, B·Ho·Wo), x (C, B, H, W)) → (O, C·k·k)`.
struct ConvWeightGrad {
    geometry: Geometry,
}

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        "conv2d-cbhw"
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
        let (c, b, h, w) = xl.shape().dims4()?;
        let (o, wc, k, k2) = wl.shape().dims4()?;
        let g = self.geometry;
        if wc != c || k != g.kernel || k2 != g.kernel || bias.len() != o {
            bail!(
                "conv2d: weight {:?} / bias {:?} do not fit input {:?}",
                wl.shape(),
                bl.shape(),
                xl.shape()
            );
        }
        let (ho, wo) = (g.out_len(h), g.out_len(w));
        let n = b * ho * wo;
        let depth = c * k * k;
        let mut out = vec![0f32; o * n];
        let lhs = Operand {
            data: weight,
            transposed: false,
        };
        with_input_matrix(x, [c, b, h, w], g, false, |rhs| {
            matmul(
                o,
                n,
                depth,
                lhs,
                rhs,
                &mut out,
                candle_core::utils::get_num_threads(),
            )
        });
        for (row, &bv) in out.chunks_exact_mut(n.max(1)).zip(bias) {
            row.iter_mut().for_each(|v| *v += bv);
        }
        Ok((CpuStorage::F32(out), Shape::from((o, b, ho, wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (c, b, h, w) = x.dims4()?;
        let (o, _, k, _) = weight.dims4()?;
        let grad = grad.contiguous()?.reshape((o, ()))?;
        let grad_bias = grad.sum(1)?;
        let grad_weight = grad
            .apply_op2_no_bwd(
                &x.contiguous()?,
                &ConvWeightGrad {
                    geometry: self.geometry,
                },
            )?
            .reshape((o, c, k, k))?;
        let grad_x = grad.apply_op2_no_bwd(
            &weight.contiguous()?,
            &ConvInputGrad {
                geometry: self.geometry,
                input_dims: [c, b, h, w],
            },
        )?;
        Ok((Some(grad_x), Some(grad_weight), Some(grad_bias)))
    }
}

impl CustomOp2 for ConvInputGrad {
    fn name(&self) -> &'static str {
        "conv2d-cbhw-grad-input"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let grad = contiguous_f32(gs, gl, self.name())?;
        let weight = contiguous_f32(ws, wl, self.name())?;
        let [c, b, h, w] = self.input_dims;
        let g = self.geometry;
        let (o, n) = gl.shape().dims2()?;
        let depth = c * g.kernel * g.kernel;
        if n != b * g.out_len(h) * g.out_len(w) || weight.len() != o * depth {
            bail!(
                "conv2d backward: gradient {:?} does not fit the input",
                gl.shape()
            );
        }
        let lhs = Operand {
            data: weight,
            transposed: true,
        };
        let rhs = Operand {
            data: grad,
            transposed: false,
        };
        let out = if g.is_pointwise() {
            let mut out = vec![0f32; depth * n];
            matmul(
                depth,
                n,
                o,
                lhs,
                rhs,
                &mut out,
                candle_core::utils::get_num_threads(),
            );
            out
        } else {
            let mut out = vec![0f32; c * b * h * w];
            with_columns(depth * n, |cols| {
                matmul(
                    depth,
                    n,
                    o,
                    lhs,
                    rhs,
                    cols,
                    candle_core::utils::get_num_threads(),
                );
                col2im(cols, self.input_dims, g, &mut out);
            });
            out
        };
        Ok((CpuStorage::F32(out), Shape::from((c, b, h, w))))
    }
}

impl CustomOp2 for ConvWeightGrad {
    fn name(&self) -> &'static str {
        "conv2d-cbhw-grad-weight"
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
        let (c, b, h, w) = xl.shape().dims4()?;
        let g = self.geometry;
        let (o, n) = gl.shape().dims2()?;
        let depth = c * g.kernel * g.kernel;
        if n != b * g.out_len(h) * g.out_len(w) {
            bail!(
                "conv2d backward: gradient {:?} does not fit the input",
                gl.shape()
            );
        }
        let mut out = vec![0f32; o * depth];
        let lhs = Operand {
            data: grad,
            transposed: false,
        };
        with_input_matrix(x, [c, b, h, w], g, true, |rhs| {
            matmul(
                o,
                depth,
                n,
                lhs,
                rhs,
                &mut out,
                candle_core::utils::get_num_threads(),
            )
        });
        Ok((CpuStorage::F32(out), Shape::from((o, depth))))
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
        let geometry = Geometry {
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
        };
        x.contiguous()?
            .apply_op3(&self.weight, &self.bias, ConvOp { geometry })
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
        // An odd and an even side (square: candle's reference backward assumes H = W): the
        // strided kernels' last window hangs over the edge on one of them.
        for (k, s, side) in [
            (3, 1, 9),
            (3, 2, 9),
            (3, 2, 8),
            (5, 2, 9),
            (5, 2, 8),
            (1, 1, 9),
            (1, 2, 9),
        ] {
            let map = VarMap::new();
            let vb = VarBuilder::from_varmap(&map, DType::F32, &dev);
            let conv = Conv2d::new(3, 4, k, s, vb)?;
            let x = Var::from_tensor(&Tensor::randn(0f32, 1., (2, 3, side, side), &dev)?)?;
            let ours = swap_batch_channel(&conv.forward(&swap_batch_channel(x.as_tensor())?)?)?;
            let reference = x
                .as_tensor()
                .conv2d(&conv.weight, k / 2, s, 1, 1)?
                .broadcast_add(&conv.bias.reshape((1, 4, 1, 1))?)?;
            let diff = (&ours - &reference)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-4, "k={k} s={s}: forward differs by {diff}");
            let g_ours = ours.sqr()?.sum_all()?.backward()?;
            let g_ref = reference.sqr()?.sum_all()?.backward()?;
            for t in [x.as_tensor(), &conv.weight, &conv.bias] {
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
