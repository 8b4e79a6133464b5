//! Fine-tuning of the two server task decoders of a trained Fashion-MNIST model, and the
//! choice of which decoder serves which layer count, without the test set.
//!
//! The encoder, the codec layers (and so every coded bit) and the local decoder stay frozen.
//! The latents ŷ the server would receive (rounding, not training noise) are computed once
//! for the fine-tuning images and cached, so each step runs only the frozen expansions and the
//! decoders. The low/high-rate switch point is then chosen on a validation split carved from
//! the end of the *training* images: the one that maximises the summed validation accuracy
//! over all layer counts.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Result as CandleResult, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, IMAGE_SIDE};
use crate::error::ModelError;
use crate::eval::{Z_RANGE, evaluate};
use crate::manifest::{
    Manifest, WEIGHTS_FILE, model_files, save_weights, sha256_hex, write_manifest,
};
use crate::model::{DecoderKind, Network, images_to_tensor};
use crate::split::SplitModel;
use crate::train::accuracy_count;

/// The fine-tuning recipe (recorded in the manifest of the model it produces).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FineTuneConfig {
    /// Seed of the batch order.
    pub seed: u64,
    /// Training images held out at the end of the training split for validation.
    pub validation_images: usize,
    /// Fine-tune on only the first this many training images (`None`: every image before the
    /// validation split). Caching their latents is a fixed cost on a 2-core machine.
    #[serde(default)]
    pub fit_images: Option<usize>,
    /// Images drawn per step.
    pub batch_size: usize,
    /// Steps (batches) of fine-tuning.
    pub steps: usize,
    /// Peak learning rate (cosine decay to 5 % of it).
    pub learning_rate: f64,
    /// The low-rate decoder is trained on layer counts `low_min_layers..=low_max_layers`
    /// (1 unless a single-rate model's only layer count is fine-tuned).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub low_min_layers: usize,
    /// The low-rate decoder is trained on layer counts `low_min_layers..=low_max_layers`.
    pub low_max_layers: usize,
    /// The high-rate decoder is trained on layer counts `high_min_layers..=N` (N + 1: not
    /// trained, for models that use one decoder).
    pub high_min_layers: usize,
    /// Serve k ≤ this with the low-rate decoder instead of choosing the switch point on the
    /// validation images: the baselines' single decoder (one-decoder and single-rate models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_low_rate_layers: Option<usize>,
    /// Also train every layer's server-side expansion (conv and BN affine), so that a layer
    /// that hurts a decoder can be weighted down; the coded symbols stay the same.
    #[serde(default)]
    pub train_expansions: bool,
    /// Run the decoders' batch norms with their running statistics while fine-tuning, as the
    /// server does. A decoder serves several layer counts whose summed features differ in
    /// scale, and its running statistics are a mixture over them: trained on per-batch
    /// statistics (false, models before 2026-11-26 16:00), it meets the mixture only at
    /// inference, which costs the layer counts furthest from it (k = 1 and k = N).
    #[serde(default)]
    pub inference_batch_norm: bool,
}

fn one() -> usize {
    1
}

fn is_one(v: &usize) -> bool {
    *v == 1
}

impl FineTuneConfig {
    /// [`FineTuneConfig::fmnist`] for a baseline that serves every layer count with its
    /// low-rate decoder (`--one-decoder`, `--single-rate`; `n_layers` = N): that decoder alone
    /// is fine-tuned, on every k (`every_k`) or on k = N only (a single-rate model), and the
    /// switch point stays N.
    pub fn one_decoder(n_layers: usize, every_k: bool) -> Self {
        Self {
            low_min_layers: if every_k { 1 } else { n_layers },
            low_max_layers: n_layers,
            high_min_layers: n_layers + 1,
            fixed_low_rate_layers: Some(n_layers),
            ..Self::fmnist()
        }
    }

    /// The recipe used for the committed Fashion-MNIST model.
    pub fn fmnist() -> Self {
        // Until 2026-11-26 (model 26af67c3…): every image before the validation split, 800
        // steps at 5e-4 after a 16 000-image stage 3; 1 559 s on one thread here, most of a
        // 30-minute reproduce budget. Now the trainer skips stage 3 and this is the decoders'
        // only training on rounded latents (models/README.md).
        FineTuneConfig {
            seed: 5,
            validation_images: 10_000,
            fit_images: Some(20_000),
            batch_size: 128,
            // 600 since 2026-11-26 16:00 (300 before): on held-out training images (after an
            // 80 000-image stage 2, with `inference_batch_norm`) k = 1..6 gained 0.2–0.5 points.
            steps: 600,
            learning_rate: 1e-3,
            low_min_layers: 1,
            low_max_layers: 3,
            high_min_layers: 2,
            fixed_low_rate_layers: None,
            // Measured with `true` on the same base: test k = 1..6 moved by −0.28/+0.19/+0.07/
            // +0.12/+0.15/+0.13 points and the k = 6 dip stayed (models/README.md), too little
            // to replace the committed model.
            train_expansions: false,
            // Since 2026-11-26 16:00: on the same held-out images and the same stage-2 model,
            // k = 1..6 went from 84.9/89.1/88.6/89.5/89.9/88.8 % (batch statistics) to
            // 87.2/88.7/89.2/89.7/90.2/89.8 %: the dips at k = 1, 3 and 6 were the decoders
            // meeting their mixed running statistics only at inference.
            inference_batch_norm: true,
        }
    }
}

/// What fine-tuning did, as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FineTuning {
    /// The recipe.
    pub config: FineTuneConfig,
    /// Hex SHA-256 of the weights that were fine-tuned.
    pub base_weights_sha256: String,
    /// Validation accuracy (held-out training images) with the low-rate decoder, k = 1..N.
    pub validation_low: Vec<f64>,
    /// Validation accuracy with the high-rate decoder, k = 1..N.
    pub validation_high: Vec<f64>,
    /// The chosen switch point: the low-rate decoder serves k ≤ this.
    pub low_rate_layers: usize,
    /// Wall time of caching, fine-tuning and validation, seconds.
    pub wall_time_s: f64,
}

/// ŷ of every layer for a block of images (rounded, as the server receives them).
fn latents(net: &Network, data: &Dataset, from: usize, to: usize) -> CandleResult<Vec<Tensor>> {
    let px = IMAGE_SIDE * IMAGE_SIDE;
    let mut per_layer: Vec<Vec<Tensor>> = vec![Vec::new(); net.layers().len()];
    for start in (from..to).step_by(500) {
        let end = (start + 500).min(to);
        let x = images_to_tensor(&data.pixels[start * px..end * px], &Device::Cpu)?;
        // Detached: the weights are trainable variables, and a cached ŷ must not keep the graph
        // (the encoder's activations) of its batch alive.
        let f = net.encoder().forward(&x, false)?.detach();
        for (i, layer) in net.layers().iter().enumerate() {
            per_layer[i].push(layer.quantise(&f, Z_RANGE)?.y_hat.detach());
        }
    }
    // Tensors are (C, B, H, W): concatenate along the batch dimension.
    per_layer
        .iter()
        .map(|parts| Tensor::cat(parts, 1))
        .collect()
}

/// Σ of the expansions of layers `0..k`, k = 1..N, for one batch of cached ŷ; `track` keeps
/// the expansions in the graph (when they are trained).
fn prefix_sums(net: &Network, y_hats: &[Tensor], track: bool) -> CandleResult<Vec<Tensor>> {
    let mut sums = Vec::with_capacity(y_hats.len());
    let mut sum: Option<Tensor> = None;
    for (layer, y) in net.layers().iter().zip(y_hats) {
        // BN in inference form: its affine part trains, its statistics stay those of training.
        let e = layer.expand(y, false)?;
        let e = if track { e } else { e.detach() };
        let s = match sum {
            Some(s) => (s + e)?,
            None => e,
        };
        sums.push(s.relu()?);
        sum = Some(s);
    }
    Ok(sums)
}

/// Validation accuracy of both decoders at every k: `(low, high)`.
fn validate(net: &Network, y_hats: &[Tensor], labels: &[u8]) -> CandleResult<(Vec<f64>, Vec<f64>)> {
    let n = labels.len();
    let n_layers = y_hats.len();
    let mut correct = vec![[0usize; 2]; n_layers];
    for start in (0..n).step_by(500) {
        let len = (start + 500).min(n) - start;
        let batch: Vec<Tensor> = y_hats
            .iter()
            .map(|y| y.narrow(1, start, len))
            .collect::<CandleResult<_>>()?;
        for (k, s) in prefix_sums(net, &batch, false)?.iter().enumerate() {
            for (d, kind) in [DecoderKind::LowRate, DecoderKind::HighRate]
                .into_iter()
                .enumerate()
            {
                let logits = net.decoder(kind).forward(s, false)?;
                correct[k][d] += accuracy_count(&logits, &labels[start..start + len])?;
            }
        }
    }
    let acc = |d: usize| correct.iter().map(|c| c[d] as f64 / n as f64).collect();
    Ok((acc(0), acc(1)))
}

/// The switch point `s` (low-rate decoder for k ≤ s, `1 <= s <= N`) with the highest summed
/// accuracy over k = 1..N; ties go to the smaller `s`.
pub fn best_switch_point(low: &[f64], high: &[f64]) -> usize {
    let n = low.len();
    let total = |s: usize| -> f64 { low[..s].iter().sum::<f64>() + high[s..].iter().sum::<f64>() };
    let mut best = 1;
    for s in 2..=n {
        if total(s) > total(best) {
            best = s;
        }
    }
    best
}

/// Fine-tunes the low- and high-rate decoders of the model in `base_dir` on the training
/// split `train` (minus its last `validation_images`, kept for validation), picks the switch
/// point on those, evaluates on `test` and writes the model to `out_dir`. `log` receives
/// progress lines.
pub fn fine_tune_decoders(
    base_dir: &Path,
    out_dir: &Path,
    train: &Dataset,
    test: &Dataset,
    config: &FineTuneConfig,
    mut log: impl FnMut(&str),
) -> Result<SplitModel, ModelError> {
    let start = Instant::now();
    let base = SplitModel::load(base_dir)?;
    let (_, base_weights) = model_files(base_dir);
    let mut manifest: Manifest = base.manifest().clone();
    let n_layers = manifest.architecture.num_layers();
    let bad = |m: String| ModelError::Frame(m);
    if config.validation_images == 0 || config.validation_images >= train.len() {
        return Err(bad(format!(
            "validation_images {} must be in 1..{}",
            config.validation_images,
            train.len()
        )));
    }
    if !(1..=config.low_max_layers).contains(&config.low_min_layers)
        || config.low_max_layers > n_layers
        || !(1..=n_layers + 1).contains(&config.high_min_layers)
        || config
            .fixed_low_rate_layers
            .is_some_and(|s| !(1..=n_layers).contains(&s))
    {
        return Err(bad(format!(
            "decoder layer ranges {}..={} (low), {}..={n_layers} (high) and fixed switch point \
             {:?} must lie in 1..={n_layers}",
            config.low_min_layers,
            config.low_max_layers,
            config.high_min_layers,
            config.fixed_low_rate_layers
        )));
    }
    let device = Device::Cpu;
    let mut vars = VarMap::new();
    let net = Network::new(
        &manifest.architecture,
        VarBuilder::from_varmap(&vars, DType::F32, &device),
    )?;
    let weights_error = |e: candle_core::Error| ModelError::Weights {
        path: base_weights.clone(),
        message: e.to_string(),
    };
    vars.load(&base_weights).map_err(weights_error)?;

    let split = train.len() - config.validation_images;
    let fit_len = config.fit_images.unwrap_or(split);
    if fit_len == 0 || fit_len > split {
        return Err(bad(format!(
            "fit_images {fit_len} must be in 1..={split} (the images before the validation split)"
        )));
    }
    let fit = latents(&net, train, 0, fit_len)?;
    let held_out = latents(&net, train, split, train.len())?;
    let fit_labels = Tensor::from_vec(
        train.labels[..fit_len]
            .iter()
            .map(|&l| u32::from(l))
            .collect::<Vec<_>>(),
        fit_len,
        &device,
    )?;
    log(&format!(
        "cached latents of {fit_len} + {} images in {:.1} s",
        train.len() - split,
        start.elapsed().as_secs_f64()
    ));

    let trainable: Vec<_> = {
        let data = vars.data().lock().expect("var map lock poisoned");
        let mut names: Vec<&String> = data
            .keys()
            .filter(|k| {
                let decoder = k.starts_with("decoders.low.") || k.starts_with("decoders.high.");
                let expansion = k.starts_with("layers.") && k.contains(".expand");
                (decoder || (config.train_expansions && expansion)) && !k.contains("running_")
            })
            .collect();
        names.sort();
        names.into_iter().map(|k| data[k].clone()).collect()
    };
    let mut opt = AdamW::new(
        trainable,
        ParamsAdamW {
            lr: config.learning_rate,
            weight_decay: 1e-4,
            ..Default::default()
        },
    )?;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut order: Vec<u32> = (0..fit_len as u32).collect();
    let mut pos = fit_len;
    let batch = config.batch_size.clamp(1, fit_len);
    let terms = (config.low_max_layers + 1 - config.low_min_layers)
        + (n_layers + 1 - config.high_min_layers);
    let mut window = 0.0;
    for step in 0..config.steps {
        let progress = step as f64 / config.steps as f64;
        let lr = config.learning_rate
            * (0.05 + 0.95 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()));
        opt.set_learning_rate(lr);
        if pos + batch > order.len() {
            order.shuffle(&mut rng);
            pos = 0;
        }
        let idx = Tensor::from_slice(&order[pos..pos + batch], batch, &device)?;
        pos += batch;
        let y_hats: Vec<Tensor> = fit
            .iter()
            .map(|y| y.index_select(&idx, 1))
            .collect::<CandleResult<_>>()?;
        let labels = fit_labels.index_select(&idx, 0)?;
        let sums = prefix_sums(&net, &y_hats, config.train_expansions)?;
        let mut loss: Option<Tensor> = None;
        for (k, s) in sums.iter().enumerate() {
            for (kind, used) in [
                (
                    DecoderKind::LowRate,
                    (config.low_min_layers..=config.low_max_layers).contains(&(k + 1)),
                ),
                (DecoderKind::HighRate, k + 1 >= config.high_min_layers),
            ] {
                if !used {
                    continue;
                }
                let logits = net.decoder(kind).forward(s, !config.inference_batch_norm)?;
                let ce = candle_nn::loss::cross_entropy(&logits, &labels)?;
                loss = Some(match loss {
                    Some(l) => (l + ce)?,
                    None => ce,
                });
            }
        }
        let Some(loss) = loss else {
            return Err(bad("no decoder is trained on any layer count".into()));
        };
        let loss = (loss / terms as f64)?;
        opt.backward_step(&loss)?;
        window += f64::from(loss.to_scalar::<f32>()?);
        if (step + 1) % 100 == 0 || step + 1 == config.steps {
            let count = if (step + 1) % 100 == 0 {
                100
            } else {
                (step + 1) % 100
            };
            log(&format!(
                "step {}/{}: loss {:.4} ({:.0} s)",
                step + 1,
                config.steps,
                window / count as f64,
                start.elapsed().as_secs_f64()
            ));
            window = 0.0;
        }
    }

    let (validation_low, validation_high) = validate(&net, &held_out, &train.labels[split..])?;
    let low_rate_layers = config
        .fixed_low_rate_layers
        .unwrap_or_else(|| best_switch_point(&validation_low, &validation_high));
    log(&format!(
        "validation low {validation_low:?} high {validation_high:?} -> low-rate decoder for k <= {low_rate_layers}"
    ));
    manifest.architecture.low_rate_layers = low_rate_layers;

    // Re-read the weights through a network of the chosen configuration for the test set.
    let tuned = Network::new(
        &manifest.architecture,
        VarBuilder::from_varmap(&vars, DType::F32, &device),
    )?;
    let evaluation = evaluate(&tuned, test, 500)?;
    let weights = save_weights(out_dir, &vars)?;
    let (manifest_path, _) = model_files(out_dir);
    let base_sha = manifest.weights_sha256.clone();
    manifest.weights_file = WEIGHTS_FILE.into();
    manifest.weights_sha256 = sha256_hex(&weights);
    manifest.evaluation = Some(evaluation);
    manifest.fine_tuning = Some(FineTuning {
        config: config.clone(),
        base_weights_sha256: base_sha,
        validation_low,
        validation_high,
        low_rate_layers,
        wall_time_s: start.elapsed().as_secs_f64(),
    });
    write_manifest(&manifest_path, &manifest)?;
    SplitModel::load(out_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_point_maximises_summed_accuracy() {
        let low = [0.80, 0.84, 0.86, 0.85];
        let high = [0.70, 0.83, 0.85, 0.88];
        // s=1: .80+.83+.85+.88; s=2: .80+.84+.85+.88 (best); s=3: .80+.84+.86+.88 (best, +0.01).
        assert_eq!(best_switch_point(&low, &high), 3);
        assert_eq!(best_switch_point(&[0.5, 0.5], &[0.9, 0.9]), 1);
        assert_eq!(best_switch_point(&[0.9, 0.9], &[0.5, 0.5]), 2);
    }
}
