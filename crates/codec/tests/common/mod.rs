//! Fixtures shared by the integration tests: a small layered model and its entropy models.

#![allow(dead_code)]

use offload_codec::{
    ChannelPmf, FactorizedPrior, GaussianConditional, LayerRecord, LayerSpec, ModelId, ModelSpec,
    Shape,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// A deterministic RNG for `seed`.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A 3-layer model shaped like the seed's: an 8-channel base layer, then 4-channel layers.
pub fn spec() -> ModelSpec {
    ModelSpec {
        model_id: ModelId::from_manifest(b"codec test model v1"),
        layers: vec![
            LayerSpec {
                y: Shape::new(8, 8, 8),
                z: Shape::new(8, 2, 2),
            },
            LayerSpec {
                y: Shape::new(4, 8, 8),
                z: Shape::new(4, 2, 2),
            },
            LayerSpec {
                y: Shape::new(4, 8, 8),
                z: Shape::new(4, 2, 2),
            },
        ],
    }
}

/// A discretised logistic pmf over `-radius ..= radius` with the given scale, like the
/// learnt densities of an entropy bottleneck (its tails beyond the range are the tail mass).
pub fn logistic_pmf(radius: i32, scale: f64, shift: f64) -> ChannelPmf {
    let cdf = |x: f64| 1.0 / (1.0 + (-(x - shift) / scale).exp());
    ChannelPmf {
        min_symbol: -radius,
        pmf: (-radius..=radius)
            .map(|v| (cdf(f64::from(v) + 0.5) - cdf(f64::from(v) - 0.5)) as f32)
            .collect(),
    }
}

/// A factorised prior with `channels` channels of varied widths.
pub fn prior(channels: usize) -> FactorizedPrior {
    FactorizedPrior::from_pmfs(
        (0..channels)
            .map(|c| logistic_pmf(12, 0.5 + c as f64 * 0.4, c as f64 * 0.1 - 0.3))
            .collect(),
    )
    .expect("valid pmfs")
}

/// Draws `n` symbols `round(N(0, scale))` with a random scale each; returns symbols and the
/// scales used.
pub fn gaussian_symbols(rng: &mut impl Rng, n: usize, max_scale: f64) -> (Vec<i32>, Vec<f32>) {
    let mut symbols = Vec::with_capacity(n);
    let mut scales = Vec::with_capacity(n);
    for _ in 0..n {
        // Log-uniform between 0.11 and max_scale, like a hyperprior's predictions.
        let scale = (0.11f64.ln() + rng.random::<f64>() * (max_scale.ln() - 0.11f64.ln())).exp();
        let y: f64 = Normal::new(0.0, scale).expect("scale > 0").sample(rng);
        symbols.push(y.round() as i32);
        scales.push(scale as f32);
    }
    (symbols, scales)
}

/// Random symbols for every layer of `spec`, and their coded records.
pub struct CodedFrame {
    pub z: Vec<Vec<i32>>,
    pub y: Vec<Vec<i32>>,
    pub indices: Vec<Vec<u16>>,
    pub records: Vec<LayerRecord>,
}

/// Codes random layers of `spec` (small symbols with a few extreme ones mixed in).
pub fn coded_frame(
    rng: &mut impl Rng,
    spec: &ModelSpec,
    priors: &[FactorizedPrior],
    gaussian: &GaussianConditional,
) -> CodedFrame {
    let mut out = CodedFrame {
        z: vec![],
        y: vec![],
        indices: vec![],
        records: vec![],
    };
    for (index, layer) in spec.layers.iter().enumerate() {
        let mut z: Vec<i32> = (0..layer.z.numel())
            .map(|_| rng.random_range(-4..=4))
            .collect();
        z[0] = i32::MIN;
        let (mut y, scales) = gaussian_symbols(rng, layer.y.numel(), 20.0);
        y[1] = i32::MAX;
        let indices = gaussian.scale_indices(&scales);
        let record = LayerRecord::encode(
            index as u16,
            layer,
            &priors[index],
            gaussian,
            &z,
            &y,
            &indices,
        )
        .expect("encodable");
        out.z.push(z);
        out.y.push(y);
        out.indices.push(indices);
        out.records.push(record);
    }
    out
}

/// The factorised priors of every layer of `spec`.
pub fn priors(spec: &ModelSpec) -> Vec<FactorizedPrior> {
    spec.layers.iter().map(|l| prior(l.z.channels)).collect()
}
