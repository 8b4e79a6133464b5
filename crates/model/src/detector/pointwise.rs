//! The matrix product behind every inference convolution of the detector:
//! `out (M, N) = act(W (M, K) · X (K, N) + bias (M) [+ skip (M, N)])`, all row-major.
//!
//! For a 1×1 convolution on a (C, H, W) map, X is the map itself (K = C, N = H·W) and no copy is
//! made; larger kernels pass their im2col matrix. The product is the `gemm` crate's (the kernel
//! candle's own matmul calls; a hand-written 6×16 AVX2 tile with the epilogue in registers
//! measured slower here, see docs/results/detector-speed.md), written straight into the
//! caller's buffer, followed by one pass adding the bias and residual and applying the
//! activation.

use rayon::prelude::*;

use super::conv::Activation;
use crate::matmul::{Operand, matmul};

/// A row-major (M, K) weight matrix.
#[derive(Debug, Clone)]
pub struct PackedMatrix {
    matrix: Vec<f32>,
    rows: usize,
    depth: usize,
}

impl PackedMatrix {
    /// Keeps a row-major (rows, depth) matrix.
    pub fn new(matrix: &[f32], rows: usize, depth: usize) -> Self {
        assert_eq!(matrix.len(), rows * depth, "matrix is not {rows}×{depth}");
        Self {
            matrix: matrix.to_vec(),
            rows,
            depth,
        }
    }

    /// Rows of the matrix (output channels).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns of the matrix (input channels × taps).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// `out = act(self · x + bias [+ skip])` for a row-major (depth, n) `x`; `out` and `skip`
    /// are (rows, n).
    pub fn multiply(
        &self,
        x: &[f32],
        n: usize,
        bias: &[f32],
        skip: Option<&[f32]>,
        activation: Activation,
        out: &mut [f32],
    ) {
        assert_eq!(x.len(), self.depth * n, "input is not {}×{n}", self.depth);
        assert_eq!(out.len(), self.rows * n, "output is not {}×{n}", self.rows);
        assert_eq!(bias.len(), self.rows, "bias has {} values", bias.len());
        if let Some(s) = skip {
            assert_eq!(s.len(), out.len(), "residual has {} values", s.len());
        }
        if n == 0 || self.rows == 0 {
            return;
        }
        let threads = rayon::current_num_threads();
        matmul(
            self.rows,
            n,
            self.depth,
            Operand {
                data: &self.matrix,
                transposed: false,
            },
            Operand {
                data: x,
                transposed: false,
            },
            out,
            threads,
        );
        let epilogue = |(r, row): (usize, &mut [f32])| {
            let b = bias[r];
            match skip {
                Some(s) => {
                    for (v, &sv) in row.iter_mut().zip(&s[r * n..(r + 1) * n]) {
                        *v = activation.apply(*v + b + sv);
                    }
                }
                None => {
                    for v in row.iter_mut() {
                        *v = activation.apply(*v + b);
                    }
                }
            }
        };
        if threads > 1 && out.len() >= 1 << 16 {
            out.par_chunks_mut(n).enumerate().for_each(epilogue);
        } else {
            out.chunks_mut(n).enumerate().for_each(epilogue);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// Plain triple loop in f64: the product the kernel must reproduce.
    fn reference(
        w: &[f32],
        x: &[f32],
        (m, k, n): (usize, usize, usize),
        bias: &[f32],
        skip: Option<&[f32]>,
        activation: Activation,
    ) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut v = f64::from(bias[i]);
                for d in 0..k {
                    v += f64::from(w[i * k + d]) * f64::from(x[d * n + j]);
                }
                if let Some(s) = skip {
                    v += f64::from(s[i * n + j]);
                }
                out[i * n + j] = activation.apply(v as f32);
            }
        }
        out
    }

    #[test]
    fn matches_a_plain_product_on_all_edge_shapes() {
        for (m, k, n) in [
            (4, 3, 24),
            (16, 27, 22_500 / 50),
            (5, 7, 1),
            (13, 9, 25),
            (96, 64, 361),
            (273, 40, 9),
            (1, 1, 7),
        ] {
            let w = pseudo_random(m * k, 1);
            let x = pseudo_random(k * n, 2);
            let bias = pseudo_random(m, 3);
            let skip = pseudo_random(m * n, 4);
            let packed = PackedMatrix::new(&w, m, k);
            for activation in [Activation::Linear, Activation::Relu6] {
                for s in [None, Some(skip.as_slice())] {
                    let want = reference(&w, &x, (m, k, n), &bias, s, activation);
                    let mut got = vec![f32::NAN; m * n];
                    packed.multiply(&x, n, &bias, s, activation, &mut got);
                    let diff = got
                        .iter()
                        .zip(&want)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0f32, f32::max);
                    assert!(diff < 1e-4, "{m}×{k}×{n}: differs by {diff}");
                }
            }
        }
    }
}
