//! The matrix product behind every inference convolution of the detector, with the bias, the
//! optional residual and the activation applied while the results are still in registers:
//! `out (M, N) = act(W (M, K) · X (K, N) + bias (M) [+ skip (M, N)])`, all row-major.
//!
//! For a 1×1 convolution on a (C, H, W) map, X is the map itself (K = C, N = H·W) and no copy is
//! made; larger kernels pass their im2col matrix. Computing the epilogue in registers saves the
//! separate read-modify-write pass over the output that a plain matrix product followed by a
//! bias/ReLU6 pass costs, and MobileNetV2's expanded maps (up to 96×150×150) are large enough for
//! that pass to matter. Rows (output channels) are split across the rayon pool.

use rayon::prelude::*;

use super::conv::Activation;

/// Output rows per register tile.
const MR: usize = 6;
/// Output columns per register tile (two 8-lane vectors): 6 × 2 accumulators hide the FMA
/// latency with room to spare, plus two X vectors and one broadcast weight: 15 of the 16 AVX
/// registers (6 × 3 would spill). Most of MobileNetV2's channel counts are multiples of 6.
const NR: usize = 16;
/// Lanes of one AVX vector.
const LANES: usize = 8;

/// A (M, K) weight matrix packed for [`PackedMatrix::multiply`]: row blocks of [`MR`] rows
/// stored column by column (`k`, then the block's rows), zero rows padding the last block.
#[derive(Debug, Clone)]
pub struct PackedMatrix {
    packed: Vec<f32>,
    rows: usize,
    depth: usize,
}

impl PackedMatrix {
    /// Packs a row-major (rows, depth) matrix.
    pub fn new(matrix: &[f32], rows: usize, depth: usize) -> Self {
        assert_eq!(matrix.len(), rows * depth, "matrix is not {rows}×{depth}");
        let blocks = rows.div_ceil(MR);
        let mut packed = vec![0f32; blocks * MR * depth];
        for (b, block) in packed.chunks_exact_mut(MR * depth).enumerate() {
            for r in 0..MR.min(rows - b * MR) {
                let row = &matrix[(b * MR + r) * depth..][..depth];
                for (k, &v) in row.iter().enumerate() {
                    block[k * MR + r] = v;
                }
            }
        }
        Self {
            packed,
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
        if n == 0 {
            return;
        }
        // Blocks of output rows per task: enough tasks for the pool, each large enough that
        // scheduling costs nothing next to its arithmetic.
        let blocks = self.rows.div_ceil(MR);
        let threads = rayon::current_num_threads().max(1);
        let work = self.depth * n * MR;
        let per_task = if threads == 1 || blocks * work < 1 << 16 {
            blocks
        } else {
            blocks.div_ceil(threads * 2).max(1)
        };
        let rows_per_task = per_task * MR;
        let run = |(t, out_rows): (usize, &mut [f32])| {
            let first_block = t * per_task;
            let n_rows = out_rows.len() / n;
            let skip_rows = skip.map(|s| &s[first_block * MR * n..][..n_rows * n]);
            self.multiply_rows(x, n, first_block, bias, skip_rows, activation, out_rows);
        };
        if per_task == blocks {
            run((0, out));
        } else {
            out.par_chunks_mut(rows_per_task * n)
                .enumerate()
                .for_each(run);
        }
    }

    /// The row blocks from `first_block` on into `out` (whole rows, row-major).
    #[allow(clippy::too_many_arguments)]
    fn multiply_rows(
        &self,
        x: &[f32],
        n: usize,
        first_block: usize,
        bias: &[f32],
        skip: Option<&[f32]>,
        activation: Activation,
        out: &mut [f32],
    ) {
        let job = Job {
            x,
            n,
            depth: self.depth,
            activation,
        };
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA, checked just above.
            unsafe { self.rows_avx2(&job, first_block, bias, skip, out) };
            return;
        }
        self.rows_portable(&job, first_block, bias, skip, out);
    }

    fn block(&self, b: usize) -> &[f32] {
        &self.packed[b * MR * self.depth..][..MR * self.depth]
    }

    /// Scalar reference for CPUs without AVX2/FMA (the same products, one column at a time).
    fn rows_portable(
        &self,
        job: &Job,
        first_block: usize,
        bias: &[f32],
        skip: Option<&[f32]>,
        out: &mut [f32],
    ) {
        let n = job.n;
        let out_rows = out.len() / n;
        for local in 0..out_rows.div_ceil(MR) {
            let b = first_block + local;
            let w = self.block(b);
            let rows = MR.min(out_rows - local * MR);
            let mut acc = vec![0f32; MR * n];
            for k in 0..job.depth {
                let xr = &job.x[k * n..][..n];
                for r in 0..rows {
                    let wv = w[k * MR + r];
                    for (a, &xv) in acc[r * n..][..n].iter_mut().zip(xr) {
                        *a += wv * xv;
                    }
                }
            }
            for r in 0..rows {
                let row = local * MR + r;
                let dst = &mut out[row * n..][..n];
                for (j, d) in dst.iter_mut().enumerate() {
                    let mut v = acc[r * n + j] + bias[b * MR + r];
                    if let Some(s) = skip {
                        v += s[row * n + j];
                    }
                    *d = job.activation.apply(v);
                }
            }
        }
    }
}

/// The operands shared by all tiles of one product.
struct Job<'a> {
    x: &'a [f32],
    n: usize,
    depth: usize,
    activation: Activation,
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Activation, Job, LANES, MR, NR, PackedMatrix};

    /// Mask of the first `len` (< 8) lanes, for the last partial vector of a row.
    #[target_feature(enable = "avx2")]
    fn tail_mask(len: usize) -> __m256i {
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(len as i32), lanes)
    }

    impl PackedMatrix {
        /// # Safety
        /// The CPU must support AVX2 and FMA.
        #[target_feature(enable = "avx2,fma")]
        pub(super) unsafe fn rows_avx2(
            &self,
            job: &Job,
            first_block: usize,
            bias: &[f32],
            skip: Option<&[f32]>,
            out: &mut [f32],
        ) {
            let n = job.n;
            let out_rows = out.len() / n;
            let local_blocks = out_rows.div_ceil(MR);
            // X is packed a block of columns at a time: each row of the block is read as one
            // contiguous run (a per-panel copy would read 64 bytes from each of `depth` rows
            // n floats apart, a stride no prefetcher follows), and stored panel by panel
            // (depth × NR, contiguous), so every tile streams its panel sequentially from L1/L2
            // while all row blocks of the weights pass over it. A short last panel is
            // zero-filled, so the inner loop never needs masks.
            let block_cols = ((1 << 16) / job.depth.max(1)).clamp(NR, 256) / NR * NR;
            let mut packed = vec![0f32; job.depth * block_cols];
            let mut col0 = 0;
            while col0 < n {
                let block_width = block_cols.min(n - col0);
                let panels = block_width.div_ceil(NR);
                for k in 0..job.depth {
                    let src = &job.x[k * n + col0..][..block_width];
                    for (p, chunk) in src.chunks(NR).enumerate() {
                        let dst = &mut packed[(p * job.depth + k) * NR..][..NR];
                        if chunk.len() == NR {
                            dst.copy_from_slice(chunk);
                        } else {
                            dst[..chunk.len()].copy_from_slice(chunk);
                            dst[chunk.len()..].fill(0.0);
                        }
                    }
                }
                for p in 0..panels {
                    let panel = &packed[p * job.depth * NR..][..job.depth * NR];
                    let col = col0 + p * NR;
                    let width = NR.min(n - col);
                    for local in 0..local_blocks {
                        let b = first_block + local;
                        let rows = MR.min(out_rows - local * MR);
                        let tile = Tile {
                            w: self.block(b),
                            bias: &bias[b * MR..b * MR + rows],
                            row0: local * MR,
                            rows,
                            col,
                            width,
                        };
                        // SAFETY: AVX2 and FMA are enabled in this function; the tile lies
                        // inside `out` (rows ≤ out_rows − row0, col + width ≤ n); the panel
                        // holds depth × NR values.
                        unsafe { tile.run(job, panel, skip, out) };
                    }
                }
                col0 += block_width;
            }
        }
    }

    /// One MR × NR (or smaller, at the edges) tile of the output.
    struct Tile<'a> {
        w: &'a [f32],
        bias: &'a [f32],
        row0: usize,
        rows: usize,
        col: usize,
        width: usize,
    }

    impl Tile<'_> {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn run(&self, job: &Job, panel: &[f32], skip: Option<&[f32]>, out: &mut [f32]) {
            let n = job.n;
            let vecs = self.width.div_ceil(LANES);
            let full = self.width / LANES;
            let mask = tail_mask(self.width % LANES);
            let mut acc = [[_mm256_setzero_ps(); NR / LANES]; MR];
            let x = panel.as_ptr();
            let w = self.w.as_ptr();
            // SAFETY (all loads): the panel holds depth × NR values, w depth × MR.
            unsafe {
                for k in 0..job.depth {
                    let xr = x.add(k * NR);
                    let x0 = _mm256_loadu_ps(xr);
                    let x1 = _mm256_loadu_ps(xr.add(LANES));
                    for (r, a) in acc.iter_mut().enumerate() {
                        let wv = _mm256_broadcast_ss(&*w.add(k * MR + r));
                        a[0] = _mm256_fmadd_ps(wv, x0, a[0]);
                        a[1] = _mm256_fmadd_ps(wv, x1, a[1]);
                    }
                }
            }
            let zero = _mm256_setzero_ps();
            let six = _mm256_set1_ps(6.0);
            for (r, a) in acc.iter().enumerate().take(self.rows) {
                let row = self.row0 + r;
                let b = _mm256_set1_ps(self.bias[r]);
                let base = row * n + self.col;
                for (v, &av) in a.iter().enumerate().take(vecs) {
                    let at = base + v * LANES;
                    let partial = v >= full;
                    // SAFETY: `at` + 8 ≤ row end for full vectors; masked otherwise.
                    unsafe {
                        let mut y = _mm256_add_ps(av, b);
                        if let Some(s) = skip {
                            let sv = if partial {
                                _mm256_maskload_ps(s.as_ptr().add(at), mask)
                            } else {
                                _mm256_loadu_ps(s.as_ptr().add(at))
                            };
                            y = _mm256_add_ps(y, sv);
                        }
                        if job.activation == Activation::Relu6 {
                            y = _mm256_min_ps(_mm256_max_ps(y, zero), six);
                        }
                        if partial {
                            _mm256_maskstore_ps(out.as_mut_ptr().add(at), mask, y);
                        } else {
                            _mm256_storeu_ps(out.as_mut_ptr().add(at), y);
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

    /// Plain triple loop in f64: the product the kernels must reproduce.
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
                    let mut portable = vec![f32::NAN; m * n];
                    let job = Job {
                        x: &x,
                        n,
                        depth: k,
                        activation,
                    };
                    packed.rows_portable(&job, 0, &bias, s, &mut portable);
                    let diff = portable
                        .iter()
                        .zip(&want)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0f32, f32::max);
                    assert!(diff < 1e-4, "portable {m}×{k}×{n}: differs by {diff}");
                }
            }
        }
    }
}
