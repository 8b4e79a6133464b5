//! Distillation of the split codec from the uncompressed detector.
//!
//! Only the codec's modules learn; the detector (both halves) is frozen and there is one server
//! decoder, the detector's own rest. Every step visits every layer count k = 1..N, as the seed
//! does, with the loss averaged over k of
//!
//! * feature matching: ‖F̂_k − F‖² / E‖F‖² (F = the teacher's split tensor, all frames of the
//!   batch);
//! * output matching, through the frozen server half (`predict_from_split_autograd`) on
//!   `output_frames_per_k` frames of the batch per k: the Bernoulli KL of the teacher's class
//!   probabilities against the student's logits (summed over classes, anchors weighted by 0.05 +
//!   the teacher's best class score), plus the squared error of the box encodings on the anchors
//!   where the teacher scores at least `confident_score` (weighted by that score);
//! * λ_k · the estimated bits of the first k layers per frame.
//!
//! A residual layer ([`SplitCodecConfig::is_residual`]) reduces F minus the (noisy) expansions
//! of the layers below; its gradient flows into them too.
//!
//! The server half costs far more than the codec, which is why output matching sees a few
//! frames of each batch and feature matching all of them, and only in the last
//! `output_steps` steps (the first ones match features and rate alone).

use std::time::Instant;

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::codec::SplitCodec;
use super::config::SplitCodecConfig;
use super::teacher::{FEATURE_LEN, NUM_ANCHORS, TeacherSample};
use crate::detector::Detector;
use crate::detector::SPLIT_SHAPE;
use crate::detector::ssd_head::{BOX_CODE_LEN, NUM_CLASSES};
use crate::init::reinitialise;

/// The distillation recipe.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DistillConfig {
    /// Seed of initialisation, batches and quantisation noise.
    pub seed: u64,
    /// Optimiser steps.
    pub steps: usize,
    /// The last `output_steps` steps add output matching (the server half is far costlier than
    /// the codec, so the first steps match features and rate only).
    pub output_steps: usize,
    /// Frames per step (feature matching and rate).
    pub batch_size: usize,
    /// Frames per layer count per step that go through the server half (output matching).
    pub output_frames_per_k: usize,
    /// Peak learning rate (AdamW, cosine decay to 5 %).
    pub learning_rate: f64,
    /// λ_k per bit per frame, k = 1..N.
    pub lambdas: Vec<f64>,
    /// Weight of the feature-matching term.
    pub feature_weight: f64,
    /// Weight of the output-matching term.
    pub output_weight: f64,
    /// Teacher score from which an anchor's box encoding is matched.
    pub confident_score: f64,
}

impl DistillConfig {
    /// The recipe `offload train-detector` uses for [`SplitCodecConfig::ssd_split`]: feature
    /// matching and rate only (output matching costs ~45 s a step on a 2-core CPU; see
    /// models/README.md) and [`SSD_SPLIT_LAMBDAS`].
    pub fn ssd_split() -> Self {
        Self {
            seed: 5,
            steps: 1000,
            output_steps: 0,
            batch_size: 8,
            output_frames_per_k: 1,
            learning_rate: 2e-3,
            lambdas: SSD_SPLIT_LAMBDAS.to_vec(),
            feature_weight: 1.0,
            output_weight: 1.0,
            confident_score: 0.3,
        }
    }
}

/// λ_k (per bit per frame) of [`SplitCodecConfig::ssd_split`]'s layers: ≈ 2e-4·0.45^(k−1) for
/// the seven lower layers, and a ~4× smaller step for the 96-channel residual top layer, which
/// buys the top layer count's fidelity with ~15 KB.
pub const SSD_SPLIT_LAMBDAS: [f64; 8] = [
    2e-4, 9e-5, 4.05e-5, 1.8225e-5, 8.2e-6, 3.69e-6, 1.66e-6, 4e-7,
];

/// The trained variables and the codec that reads them.
pub struct TrainedCodec {
    /// All variables (save with [`VarMap::save`]).
    pub vars: VarMap,
    /// The codec built on `vars`.
    pub codec: SplitCodec,
}

/// Progress over a logging window.
#[derive(Debug, Clone)]
pub struct DistillLog {
    /// Steps done.
    pub step: usize,
    /// Steps in all.
    pub steps: usize,
    /// Mean total loss.
    pub loss: f64,
    /// Mean relative feature error of each k.
    pub feature_error: Vec<f64>,
    /// Mean output-matching loss over k.
    pub output_loss: f64,
    /// Mean estimated bytes per frame of the first k layers, k = 1..N.
    pub bytes: Vec<f64>,
    /// Seconds since training started.
    pub elapsed_s: f64,
}

/// Teacher targets of a few frames for output matching, as tensors.
struct OutputTargets {
    probs: Tensor,
    anchor_weights: Tensor,
    anchor_weight_sum: f64,
    entropy: f64,
    boxes: Tensor,
    box_weights: Tensor,
    box_weight_sum: f64,
}

fn output_targets(
    samples: &[&TeacherSample],
    confident: f32,
    device: &Device,
) -> Result<OutputTargets> {
    let m = samples.len();
    let mut probs = Vec::with_capacity(m * NUM_ANCHORS * NUM_CLASSES);
    let mut anchor_w = Vec::with_capacity(m * NUM_ANCHORS);
    let mut box_w = Vec::with_capacity(m * NUM_ANCHORS);
    let mut boxes = Vec::with_capacity(m * NUM_ANCHORS * BOX_CODE_LEN);
    let mut entropy = 0.0f64;
    for s in samples {
        for (a, code) in s.raw.box_encodings.iter().enumerate() {
            let logits = &s.raw.class_logits[a * NUM_CLASSES..(a + 1) * NUM_CLASSES];
            let mut best = 0f32;
            let mut h = 0f64;
            for (c, &l) in logits.iter().enumerate() {
                let p = 1.0 / (1.0 + (-l).exp());
                probs.push(p);
                if c > 0 {
                    best = best.max(p);
                }
                let p = f64::from(p).clamp(1e-12, 1.0 - 1e-12);
                h -= p * p.ln() + (1.0 - p) * (1.0 - p).ln();
            }
            let w = 0.05 + best;
            anchor_w.push(w);
            entropy += h * f64::from(w);
            box_w.push(if best >= confident { best } else { 0.0 });
            boxes.extend_from_slice(code);
        }
    }
    let anchor_weight_sum: f64 = anchor_w.iter().map(|&w| f64::from(w)).sum();
    let box_weight_sum: f64 = box_w.iter().map(|&w| f64::from(w)).sum();
    Ok(OutputTargets {
        probs: Tensor::from_vec(probs, (m, NUM_ANCHORS, NUM_CLASSES), device)?,
        anchor_weights: Tensor::from_vec(anchor_w, (m, NUM_ANCHORS, 1), device)?,
        anchor_weight_sum,
        entropy: entropy / anchor_weight_sum,
        boxes: Tensor::from_vec(boxes, (m, NUM_ANCHORS, BOX_CODE_LEN), device)?,
        box_weights: Tensor::from_vec(box_w, (m, NUM_ANCHORS, 1), device)?,
        box_weight_sum,
    })
}

/// Output-matching loss of student logits and boxes against the teacher's.
fn output_loss(boxes: &Tensor, logits: &Tensor, t: &OutputTargets) -> Result<Tensor> {
    // Bernoulli cross-entropy softplus(s) − p·s, minus the teacher's entropy: the KL.
    let softplus = (logits.relu()? + (logits.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    let ce = (softplus - (logits * &t.probs)?)?
        .sum_keepdim(2)?
        .broadcast_mul(&t.anchor_weights)?
        .sum_all()?;
    let kl = ((ce / t.anchor_weight_sum)? - t.entropy)?;
    let box_term = if t.box_weight_sum > 0.0 {
        ((boxes - &t.boxes)?
            .sqr()?
            .sum_keepdim(2)?
            .broadcast_mul(&t.box_weights)?
            .sum_all()?
            / t.box_weight_sum)?
    } else {
        Tensor::zeros((), DType::F32, boxes.device())?
    };
    kl + box_term
}

/// Trains a codec of architecture `config` on `samples` (the teacher's training frames).
pub fn distill(
    detector: &Detector,
    config: &SplitCodecConfig,
    recipe: &DistillConfig,
    samples: &[TeacherSample],
    mut log: impl FnMut(&DistillLog),
) -> Result<TrainedCodec> {
    if recipe.lambdas.len() != config.num_layers() {
        candle_core::bail!(
            "{} lambdas for {} layers",
            recipe.lambdas.len(),
            config.num_layers()
        );
    }
    if samples.is_empty() || recipe.batch_size == 0 {
        candle_core::bail!("distillation needs frames and a batch size ≥ 1");
    }
    let device = Device::Cpu;
    let vars = VarMap::new();
    let codec = SplitCodec::new(config, VarBuilder::from_varmap(&vars, DType::F32, &device))?;
    reinitialise(&vars, recipe.seed)?;
    let trainable: Vec<Var> = {
        let data = vars.data().lock().expect("var map lock poisoned");
        let mut names: Vec<&String> = data.keys().filter(|k| !k.contains("running_")).collect();
        names.sort();
        names.into_iter().map(|k| data[k].clone()).collect()
    };
    let mut opt = AdamW::new(
        trainable,
        ParamsAdamW {
            lr: recipe.learning_rate,
            weight_decay: 1e-4,
            ..Default::default()
        },
    )?;
    let energy = samples
        .iter()
        .flat_map(|s| &s.features)
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        / (samples.len() * FEATURE_LEN) as f64;

    let n = config.num_layers();
    let batch = recipe.batch_size.min(samples.len());
    let mut rng = ChaCha8Rng::seed_from_u64(recipe.seed.wrapping_add(1));
    let mut order: Vec<usize> = (0..samples.len()).collect();
    let mut pos = samples.len();
    let noise = |dims: &[usize], rng: &mut ChaCha8Rng| -> Result<Tensor> {
        let count: usize = dims.iter().product();
        let v: Vec<f32> = (0..count).map(|_| rng.random_range(-0.5f32..0.5)).collect();
        Tensor::from_vec(v, dims, &Device::Cpu)
    };
    let start = Instant::now();
    let mut window = Window::new(n);
    for step in 0..recipe.steps {
        let progress = step as f64 / recipe.steps.max(1) as f64;
        opt.set_learning_rate(
            recipe.learning_rate
                * (0.05 + 0.95 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())),
        );
        if pos + batch > order.len() {
            order.shuffle(&mut rng);
            pos = 0;
        }
        let idx = &order[pos..pos + batch];
        pos += batch;
        let mut flat = Vec::with_capacity(batch * FEATURE_LEN);
        for &i in idx {
            flat.extend_from_slice(&samples[i].features);
        }
        let [_, c, h, w] = SPLIT_SHAPE;
        // The codec works channel-first: (C, B, H, W).
        let target = Tensor::from_vec(flat, (batch, c, h, w), &device)?
            .transpose(0, 1)?
            .contiguous()?;

        let mut sum: Option<Tensor> = None;
        let mut bits: Option<Tensor> = None;
        let mut total: Option<Tensor> = None;
        let mut chosen = Vec::new();
        let mut student = Vec::new();
        for (k, layer) in codec.layers().iter().enumerate() {
            let input = codec.layer_input(k, &target, sum.as_ref())?;
            let out = layer.forward_train(&input, true, &mut |d| noise(d, &mut rng))?;
            let s = match sum {
                Some(s) => (s + out.expanded)?,
                None => out.expanded,
            };
            let b = match bits {
                Some(b) => (b + out.bits.mean(0)?)?,
                None => out.bits.mean(0)?,
            };
            let feature = ((&s - &target)?.sqr()?.mean_all()? / energy)?;
            window.feature[k] += f64::from(feature.to_scalar::<f32>()?);
            window.bits[k] += f64::from(b.to_scalar::<f32>()?);
            let term = ((feature * recipe.feature_weight)? + (&b * recipe.lambdas[k])?)?;
            total = Some(match total {
                Some(t) => (t + term)?,
                None => term,
            });
            let with_output = step + recipe.output_steps >= recipe.steps;
            for _ in 0..recipe.output_frames_per_k.min(batch) * usize::from(with_output) {
                let j = rng.random_range(0..batch);
                chosen.push(&samples[idx[j]]);
                student.push(s.narrow(1, j, 1)?);
            }
            sum = Some(s);
            bits = Some(b);
        }
        let mut loss = total.ok_or_else(|| candle_core::Error::Msg("no layers".into()))?;
        if recipe.output_weight > 0.0 && !student.is_empty() {
            let x = Tensor::cat(&student, 1)?.transpose(0, 1)?.contiguous()?;
            let (boxes, logits) = detector
                .predict_from_split_autograd(&x)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            let targets = output_targets(&chosen, recipe.confident_score as f32, &device)?;
            // Each k contributed the same number of frames: the mean over them is the mean
            // over k of each k's output term.
            let out = (output_loss(&boxes, &logits, &targets)? * n as f64)?;
            window.output += f64::from(out.to_scalar::<f32>()?) / n as f64;
            loss = (loss + (out * recipe.output_weight)?)?;
        }
        let loss = (loss / n as f64)?;
        opt.backward_step(&loss)?;
        window.loss += f64::from(loss.to_scalar::<f32>()?);
        window.count += 1;
        if window.count == 10 || step + 1 == recipe.steps {
            log(&window.report(step + 1, recipe.steps, start.elapsed().as_secs_f64()));
            window = Window::new(n);
        }
    }
    Ok(TrainedCodec { vars, codec })
}

struct Window {
    loss: f64,
    feature: Vec<f64>,
    bits: Vec<f64>,
    output: f64,
    count: usize,
}

impl Window {
    fn new(n: usize) -> Self {
        Self {
            loss: 0.0,
            feature: vec![0.0; n],
            bits: vec![0.0; n],
            output: 0.0,
            count: 0,
        }
    }

    fn report(&self, step: usize, steps: usize, elapsed_s: f64) -> DistillLog {
        let c = self.count.max(1) as f64;
        DistillLog {
            step,
            steps,
            loss: self.loss / c,
            feature_error: self.feature.iter().map(|v| v / c).collect(),
            output_loss: self.output / c,
            bytes: self.bits.iter().map(|v| v / c / 8.0).collect(),
            elapsed_s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recipe_has_one_lambda_per_layer_smallest_at_the_top() {
        let recipe = DistillConfig::ssd_split();
        assert_eq!(
            recipe.lambdas.len(),
            SplitCodecConfig::ssd_split().num_layers()
        );
        assert!(recipe.lambdas.windows(2).all(|w| w[0] > w[1]));
    }
}
