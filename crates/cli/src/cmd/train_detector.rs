//! `offload train-detector`: distils the layered codec on SSD-MobileNetV2's stride-16 tensor
//! from the uncompressed detector (frozen) on the training frames, and writes `model.json` +
//! `weights.safetensors`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use offload_model::detector::{Detector, default_model_dir};
use offload_model::detector_split::data::{FrameSplit, load_split};
use offload_model::detector_split::save::{SplitSaveInfo, detector_sha256, save_split};
use offload_model::detector_split::teacher::teacher_samples;
use offload_model::detector_split::train::distill;
use offload_model::detector_split::{DistillConfig, SplitCodecConfig};
use offload_model::tf_import::detector_cache_dir;
use offload_model::train::geometric_lambdas;

/// Ratio between successive λ_k when `--lambda-first`/`--lambda-ratio` or a different layer
/// count ask for a geometric series (the recipe's lower layers use it).
const DEFAULT_LAMBDA_RATIO: f64 = 0.45;

/// Arguments of `offload train-detector`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory of the converted detector (default: the installed one).
    #[arg(long)]
    pub detector: Option<PathBuf>,
    /// Output model directory.
    #[arg(long, default_value = "models/ssd-split")]
    pub out: PathBuf,
    /// Optimiser steps; default: the recipe's.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Seed of initialisation, batches and noise.
    #[arg(long)]
    pub seed: Option<u64>,
    /// λ of the base layer (per bit per frame); λ_k = first · ratio^(k−1) for every layer.
    #[arg(long)]
    pub lambda_first: Option<f64>,
    /// Ratio between successive λ_k (default 0.45).
    #[arg(long)]
    pub lambda_ratio: Option<f64>,
    /// λ_k of every layer, base first (overrides `--lambda-first`/`--lambda-ratio`).
    #[arg(long, value_delimiter = ',')]
    pub lambdas: Option<Vec<f64>>,
    /// How many top layers code the residual of the layers below (default: the architecture's).
    #[arg(long)]
    pub residual_layers: Option<usize>,
    /// Channels of each codec layer, base first (e.g. `8,4,4,8,8,16,32`).
    #[arg(long, value_delimiter = ',')]
    pub layer_channels: Option<Vec<usize>>,
    /// Weight of the output-matching term (0 = feature matching only).
    #[arg(long)]
    pub output_weight: Option<f64>,
    /// The last N steps add output matching; default: the recipe's.
    #[arg(long)]
    pub output_steps: Option<usize>,
    /// Frames per layer count per step through the server half.
    #[arg(long)]
    pub output_frames_per_k: Option<usize>,
}

/// Runs `offload train-detector`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let detector_dir = args.detector.clone().unwrap_or_else(default_model_dir);
    let cache = detector_cache_dir();
    let mut config = SplitCodecConfig::ssd_split();
    if let Some(c) = args.layer_channels {
        config.layer_channels = c;
    }
    if let Some(r) = args.residual_layers {
        config.residual_layers = r;
    }
    config.validate().map_err(anyhow::Error::msg)?;
    let mut recipe = DistillConfig::ssd_split();
    if let Some(s) = args.steps {
        recipe.steps = s;
    }
    if let Some(s) = args.seed {
        recipe.seed = s;
    }
    if let Some(w) = args.output_weight {
        recipe.output_weight = w;
    }
    if let Some(s) = args.output_steps {
        recipe.output_steps = s;
    }
    if let Some(m) = args.output_frames_per_k {
        recipe.output_frames_per_k = m;
    }
    recipe.lambdas = match (args.lambdas, args.lambda_first, args.lambda_ratio) {
        (Some(l), _, _) if l.len() == config.num_layers() => l,
        (Some(l), _, _) => anyhow::bail!("{} lambdas for {} layers", l.len(), config.num_layers()),
        (None, None, None) if recipe.lambdas.len() == config.num_layers() => recipe.lambdas,
        (None, first, ratio) => geometric_lambdas(
            first.unwrap_or(recipe.lambdas[0]),
            ratio.unwrap_or(DEFAULT_LAMBDA_RATIO),
            config.num_layers(),
        ),
    };

    let detector = Arc::new(
        Detector::load(&detector_dir)
            .with_context(|| format!("loading the detector from {}", detector_dir.display()))?,
    );
    let detector_sha = detector_sha256(&detector_dir)?;
    let frames = load_split(&cache, FrameSplit::Train)?;
    tracing::info!(frames = frames.len(), "training frames decoded");
    let teacher_dir = cache.join("split-teacher").join(&detector_sha[..16]);
    let samples = teacher_samples(&detector, &frames, &teacher_dir, |done, total| {
        if done % 50 == 0 || done == total {
            tracing::info!("teacher: {done}/{total} frames");
        }
    })?;
    drop(frames);
    let start = Instant::now();
    let trained = distill(&detector, &config, &recipe, &samples, |l| {
        let bytes: Vec<String> = l.bytes.iter().map(|b| format!("{b:.0}")).collect();
        let err: Vec<String> = l.feature_error.iter().map(|e| format!("{e:.3}")).collect();
        tracing::info!(
            "step {}/{} loss {:.4} output {:.4} bytes/k [{}] rel. feature error/k [{}] {:.0} s",
            l.step,
            l.steps,
            l.loss,
            l.output_loss,
            bytes.join(" "),
            err.join(" "),
            l.elapsed_s
        );
    })?;
    let training_time_s = start.elapsed().as_secs_f64();
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let model = save_split(
        &args.out,
        &trained,
        detector,
        SplitSaveInfo {
            name: "ssd-split".into(),
            detector_sha256: detector_sha,
            training: Some(recipe),
            training_time_s: Some(training_time_s),
            hardware: Some(format!("{} ({threads} threads)", cpu_name())),
        },
    )?;
    println!(
        "trained {} layers in {training_time_s:.0} s; model id {} written to {}",
        model.num_layers(),
        model.model_id(),
        args.out.display()
    );
    Ok(())
}

/// The CPU's model name from /proc/cpuinfo (Linux), else "unknown CPU".
fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|n| n.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
