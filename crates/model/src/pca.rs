//! The PCA layering baseline: the task encoder's features F coded as ordered groups of
//! principal components instead of learnt layers.
//!
//! PCA is fitted across F's channels (F = C×H×W; every spatial position is one C-dimensional
//! sample), which is the linear counterpart of the model's 1×1 channel reductions. Each
//! component's coefficients are quantised with a uniform step and entropy-coded with the
//! codec crate's [`FactorizedPrior`] (one table per component, the histogram of its
//! quantised training coefficients), one stream per group of components, so a prefix of
//! groups is a prefix of layers. The server reconstructs F from the received components and
//! classifies it with the model's local decoder (the decoder trained on uncompressed F).

use candle_core::{Device, Tensor};
use offload_codec::{ChannelPmf, FactorizedPrior};
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, IMAGE_SIDE};
use crate::error::ModelError;
use crate::model::{DecoderKind, Network, images_to_tensor};
use crate::train::accuracy_count;

/// Largest |quantised coefficient| a component's table covers; the rest is escaped.
const MAX_SYMBOL: i32 = 255;

/// Principal axes of F's channel vectors, strongest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PcaBasis {
    /// Mean of each channel over the fitting samples.
    pub mean: Vec<f64>,
    /// `components[k]` is the k-th unit eigenvector of the channel covariance (C entries).
    pub components: Vec<Vec<f64>>,
    /// Variance of the data along each component (the eigenvalues), decreasing.
    pub variances: Vec<f64>,
}

/// Features F of `images` images of `data` (from `start`), as (C, B, H, W).
fn features(net: &Network, data: &Dataset, start: usize, end: usize) -> Result<Tensor, ModelError> {
    let px = IMAGE_SIDE * IMAGE_SIDE;
    let x = images_to_tensor(&data.pixels[start * px..end * px], &Device::Cpu)?;
    Ok(net.encoder().forward(&x, false)?)
}

/// (C, B, H, W) → C rows of B·H·W samples.
fn channel_rows(f: &Tensor) -> Result<(usize, Vec<f32>), ModelError> {
    let c = f.dims4()?.0;
    Ok((c, f.flatten_all()?.to_vec1::<f32>()?))
}

impl PcaBasis {
    /// Fits the basis on the features of the first `images` images of `data` (use the
    /// training split).
    pub fn fit(
        net: &Network,
        data: &Dataset,
        images: usize,
        batch: usize,
    ) -> Result<Self, ModelError> {
        let images = images.min(data.len());
        let batch = batch.max(1);
        let c = net.config().feature_channels();
        let mut sum = vec![0f64; c];
        let mut cross = vec![0f64; c * c];
        let mut count = 0usize;
        for start in (0..images).step_by(batch) {
            let end = (start + batch).min(images);
            let (_, rows) = channel_rows(&features(net, data, start, end)?)?;
            let n = rows.len() / c;
            for s in 0..n {
                for i in 0..c {
                    let a = f64::from(rows[i * n + s]);
                    sum[i] += a;
                    for j in i..c {
                        cross[i * c + j] += a * f64::from(rows[j * n + s]);
                    }
                }
            }
            count += n;
        }
        let n = count.max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let mut cov = vec![0f64; c * c];
        for i in 0..c {
            for j in i..c {
                let v = cross[i * c + j] / n - mean[i] * mean[j];
                cov[i * c + j] = v;
                cov[j * c + i] = v;
            }
        }
        let (variances, components) = symmetric_eigen(&cov, c);
        Ok(Self {
            mean,
            components,
            variances,
        })
    }

    /// Number of channels (and components).
    pub fn channels(&self) -> usize {
        self.mean.len()
    }
}

/// Eigenvalues (decreasing) and unit eigenvectors of the symmetric `n`×`n` row-major
/// matrix `a`, by cyclic Jacobi rotations (exact enough and fast for the 16×16 covariance).
pub fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    let mut m = a.to_vec();
    let mut v = vec![0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * n + j] * m[i * n + j])
            .sum();
        let scale: f64 = (0..n).map(|i| m[i * n + i] * m[i * n + i]).sum::<f64>();
        if off <= 1e-24 * scale.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (m[q * n + q] - m[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let cos = 1.0 / (t * t + 1.0).sqrt();
                let sin = t * cos;
                for k in 0..n {
                    let (mkp, mkq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = cos * mkp - sin * mkq;
                    m[k * n + q] = sin * mkp + cos * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = cos * mpk - sin * mqk;
                    m[q * n + k] = sin * mpk + cos * mqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = cos * vkp - sin * vkq;
                    v[k * n + q] = sin * vkp + cos * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&x, &y| m[y * n + y].total_cmp(&m[x * n + x]));
    let values = order.iter().map(|&k| m[k * n + k]).collect();
    let vectors = order
        .iter()
        .map(|&k| (0..n).map(|i| v[i * n + k]).collect())
        .collect();
    (values, vectors)
}

/// A PCA layering codec: basis, component groups (layers), quantisation step and one
/// entropy model per group.
#[derive(Debug, Clone)]
pub struct PcaCodec {
    basis: PcaBasis,
    /// Component count of each layer, strongest components first.
    groups: Vec<usize>,
    step: f64,
    priors: Vec<FactorizedPrior>,
}

/// Rate and accuracy of the PCA codec for every layer count.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PcaRate {
    /// Quantisation step (in units of F).
    pub step: f64,
    /// Components in the first k layers, k = 1..N.
    pub components: Vec<usize>,
    /// Mean stream bytes per frame of the first k layers (no container headers).
    pub payload_bytes: Vec<f64>,
    /// Accuracy of the local decoder on F reconstructed from the first k layers.
    pub accuracy: Vec<f64>,
    /// Images measured.
    pub images: usize,
}

impl PcaCodec {
    /// Projects F (C, B, H, W) onto the basis and quantises: `q[k][b·H·W + p]` for component
    /// `k` of sample `p` of image `b`.
    fn quantise(&self, f: &Tensor) -> Result<(Vec<Vec<i32>>, usize), ModelError> {
        let (c, rows) = channel_rows(f)?;
        let n = rows.len() / c;
        let mut q = vec![vec![0i32; n]; c];
        for s in 0..n {
            for (k, axis) in self.basis.components.iter().enumerate() {
                let a: f64 = (0..c)
                    .map(|i| (f64::from(rows[i * n + s]) - self.basis.mean[i]) * axis[i])
                    .sum();
                q[k][s] = (a / self.step).round() as i32;
            }
        }
        Ok((q, n))
    }

    /// Fits the per-component tables on `images` training images: the histogram of each
    /// component's quantised coefficients over `-MAX_SYMBOL ..= MAX_SYMBOL`, plus one count
    /// everywhere so that no value is impossible.
    pub fn fit(
        net: &Network,
        basis: PcaBasis,
        groups: Vec<usize>,
        step: f64,
        train: &Dataset,
        images: usize,
        batch: usize,
    ) -> Result<Self, ModelError> {
        let c = basis.channels();
        if groups.is_empty() || groups.contains(&0) || groups.iter().sum::<usize>() > c {
            return Err(ModelError::Frame(format!(
                "PCA groups {groups:?} do not partition a prefix of {c} components"
            )));
        }
        let mut codec = Self {
            basis,
            groups,
            step,
            priors: Vec::new(),
        };
        let width = (2 * MAX_SYMBOL + 1) as usize;
        let mut counts = vec![vec![1f64; width + 1]; c];
        let images = images.min(train.len());
        for start in (0..images).step_by(batch.max(1)) {
            let end = (start + batch.max(1)).min(images);
            let (q, _) = codec.quantise(&features(net, train, start, end)?)?;
            for (k, values) in q.iter().enumerate() {
                for &v in values {
                    let slot = if v.abs() <= MAX_SYMBOL {
                        (v + MAX_SYMBOL) as usize
                    } else {
                        width
                    };
                    counts[k][slot] += 1.0;
                }
            }
        }
        let mut first = 0;
        for &size in &codec.groups {
            let pmfs = counts[first..first + size]
                .iter()
                .map(|h| {
                    let total: f64 = h.iter().sum();
                    // The last slot (escapes) is the tail mass the table leaves to its escape.
                    ChannelPmf {
                        min_symbol: -MAX_SYMBOL,
                        pmf: h[..width].iter().map(|&x| (x / total) as f32).collect(),
                    }
                })
                .collect();
            codec.priors.push(FactorizedPrior::from_pmfs(pmfs)?);
            first += size;
        }
        Ok(codec)
    }

    /// Codes every image of `data` one frame at a time (one stream per layer) and classifies
    /// F reconstructed from each prefix of layers with the model's local decoder.
    pub fn evaluate(
        &self,
        net: &Network,
        data: &Dataset,
        batch: usize,
    ) -> Result<PcaRate, ModelError> {
        let layers = self.groups.len();
        let c = self.basis.channels();
        let mut bytes = vec![0f64; layers];
        let mut correct = vec![0usize; layers];
        for start in (0..data.len()).step_by(batch.max(1)) {
            let end = (start + batch.max(1)).min(data.len());
            let f = features(net, data, start, end)?;
            let (fc, b, h, w) = f.dims4()?;
            let hw = h * w;
            let (q, n) = self.quantise(&f)?;
            // Real coded bytes, and the decoded values the server reconstructs from.
            let mut decoded = vec![vec![0i32; n]; c];
            let mut first = 0;
            for (g, &size) in self.groups.iter().enumerate() {
                for item in 0..b {
                    let z: Vec<i32> = (first..first + size)
                        .flat_map(|k| q[k][item * hw..(item + 1) * hw].iter().copied())
                        .collect();
                    let stream = self.priors[g].encode(&z, hw)?;
                    bytes[g] += stream.len() as f64;
                    let back = self.priors[g].decode(&stream, hw)?;
                    for (j, k) in (first..first + size).enumerate() {
                        decoded[k][item * hw..(item + 1) * hw]
                            .copy_from_slice(&back[j * hw..(j + 1) * hw]);
                    }
                }
                first += size;
                // F̂ = mean + Σ_k step·q_k·axis_k over the components received so far.
                let mut rec = vec![0f32; fc * n];
                for i in 0..fc {
                    for s in 0..n {
                        let a: f64 = (0..first)
                            .map(|k| {
                                self.step * f64::from(decoded[k][s]) * self.basis.components[k][i]
                            })
                            .sum();
                        rec[i * n + s] = (self.basis.mean[i] + a) as f32;
                    }
                }
                let f_hat = Tensor::from_vec(rec, (fc, b, h, w), &Device::Cpu)?;
                let logits = net.decoder(DecoderKind::Local).forward(&f_hat, false)?;
                correct[g] += accuracy_count(&logits, &data.labels[start..end])?;
            }
        }
        let images = data.len().max(1) as f64;
        let mut cumulative = 0.0;
        let mut components = Vec::with_capacity(layers);
        let mut total = 0;
        for &size in &self.groups {
            total += size;
            components.push(total);
        }
        Ok(PcaRate {
            step: self.step,
            components,
            payload_bytes: bytes
                .iter()
                .map(|b| {
                    cumulative += b / images;
                    cumulative
                })
                .collect(),
            accuracy: correct.iter().map(|&k| k as f64 / images).collect(),
            images: data.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_recovers_a_known_spectrum() {
        // A = R diag(5, 2, 0.5) Rᵀ for a rotation R about the z axis by 30°.
        let (c, s) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
        let r = [c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0];
        let d = [5.0, 2.0, 0.5];
        let mut a = [0f64; 9];
        for i in 0..3 {
            for j in 0..3 {
                a[i * 3 + j] = (0..3).map(|k| r[i * 3 + k] * d[k] * r[j * 3 + k]).sum();
            }
        }
        let (values, vectors) = symmetric_eigen(&a, 3);
        for (v, want) in values.iter().zip(d) {
            assert!((v - want).abs() < 1e-10, "{values:?}");
        }
        // The first eigenvector is R's first column, up to sign.
        let dot = vectors[0][0] * c + vectors[0][1] * s;
        assert!((dot.abs() - 1.0).abs() < 1e-10, "{vectors:?}");
    }
}
