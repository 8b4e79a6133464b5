//! Stage 2 (the scalable codec, jointly with the encoder) and the decoder fine-tuning of the
//! Fashion-MNIST recipe, started from a stage-1 run of `holdout_stage1` on the first 50 000
//! training images, and evaluated on the last 10 000, which neither stage saw: how stage-2
//! variants are chosen without the test set, for the price of stage 2 alone.
//!
//! ```sh
//! holdout_stage1 600000 23 /usr/share/datasets/fashion-mnist /tmp/stage1.safetensors
//! holdout_stage2 --stage1 /tmp/stage1.safetensors --out /tmp/variant [--local-weight 3] ...
//! ```
//!
//! Prints the held-out local accuracy after stage 1, after stage 2 and after fine-tuning, and
//! k = 1..N accuracy and estimated bytes; writes `<out>/trained` (stage 2), `<out>/tuned`
//! (fine-tuned; its manifest's `evaluation` is on the held-out images, not the test set) and
//! `<out>/holdout.json` (all of it). Everything not given is `TrainConfig::fmnist()` and
//! `FineTuneConfig::fmnist()`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use clap::Parser;
use offload_model::data::{DEFAULT_FASHION_MNIST_DIR, IMAGE_SIDE};
use offload_model::eval::{Evaluation, evaluate};
use offload_model::finetune::{FineTuneConfig, fine_tune_decoders};
use offload_model::model::images_to_tensor;
use offload_model::save::{SaveInfo, save_model};
use offload_model::train::{TrainConfig, accuracy_count, train_after_stage1};
use offload_model::{Dataset, DecoderKind, ModelConfig, Network, Split};
use serde::Serialize;

/// Training images kept out of both stages, at the end of the split (as in `holdout_stage1`
/// and the fine-tuning's validation split).
const HELD_OUT: usize = 10_000;

#[derive(Parser, Debug)]
struct Args {
    /// Stage-1 variables saved by `holdout_stage1` (safetensors).
    #[arg(long)]
    stage1: PathBuf,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Directory of the gzipped IDX files.
    #[arg(long, default_value = DEFAULT_FASHION_MNIST_DIR)]
    data: PathBuf,
    /// Seed of the codec's initialisation, shuffling and noise (the stage-1 run's, 23, by
    /// default).
    #[arg(long, default_value_t = 23)]
    seed: u64,
    /// Stage-2 images.
    #[arg(long)]
    stage2_images: Option<usize>,
    /// Stage-2 peak learning rate.
    #[arg(long)]
    lr2: Option<f64>,
    /// Weight of the local path's CE in stage 2 (against 1 for each layer count).
    #[arg(long)]
    local_weight: Option<f64>,
    /// The encoder's stage-2 learning rate as a fraction of the stage's (0 freezes it).
    #[arg(long)]
    encoder_lr_scale: Option<f64>,
    /// Channels of the codec layers, comma-separated (e.g. `4,1,1,2,2,4`; the recipe's
    /// `ModelConfig::fmnist()` otherwise). The encoder and F are unchanged, so the saved stage 1
    /// still applies.
    #[arg(long, value_delimiter = ',')]
    layer_channels: Option<Vec<usize>>,
    /// λ_k for k = 1..N, comma-separated (overrides the recipe's geometric series).
    #[arg(long, value_delimiter = ',')]
    lambdas: Option<Vec<f64>>,
    /// Fine-tuning steps.
    #[arg(long)]
    ft_steps: Option<usize>,
    /// Fine-tune on this many of the first training images.
    #[arg(long)]
    ft_images: Option<usize>,
    /// The low-rate decoder is fine-tuned on k = 1..=this.
    #[arg(long)]
    ft_low_max: Option<usize>,
    /// The high-rate decoder is fine-tuned on k = this..=N.
    #[arg(long)]
    ft_high_min: Option<usize>,
    /// Fine-tune the decoders on per-batch statistics (`inference_batch_norm: false`, the
    /// recipe before 2026-11-26 16:00).
    #[arg(long)]
    ft_batch_stats: bool,
    /// Skip stage 2: fine-tune the stage-2 model already in `<dir>` (an earlier run's
    /// `trained`), writing `<out>/tuned`.
    #[arg(long)]
    trained: Option<PathBuf>,
    /// Stop after stage 2 (a cheaper screen: the local path and k >= 3 change little in the
    /// fine-tuning, which the low-rate k mostly gain from).
    #[arg(long)]
    no_fine_tune: bool,
}

#[derive(Serialize)]
struct Report {
    recipe: TrainConfig,
    fine_tune: FineTuneConfig,
    held_out_images: usize,
    stage1_local: f64,
    after_stage2: Evaluation,
    after_fine_tuning: Option<FineTuned>,
    stage2_s: f64,
}

#[derive(Serialize)]
struct FineTuned {
    evaluation: Evaluation,
    low_rate_layers: usize,
    validation_low: Vec<f64>,
    validation_high: Vec<f64>,
    wall_s: f64,
}

/// Local-path accuracy of the stage-1 variables in `weights` on `data`.
fn stage1_local(weights: &Path, config: &ModelConfig, data: &Dataset) -> anyhow::Result<f64> {
    // SAFETY: the file is our own output and is not modified while mapped.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &Device::Cpu)? };
    let net = Network::new(config, vb)?;
    let px = IMAGE_SIDE * IMAGE_SIDE;
    let mut correct = 0;
    for start in (0..data.len()).step_by(500) {
        let end = (start + 500).min(data.len());
        let x = images_to_tensor(&data.pixels[start * px..end * px], &Device::Cpu)?;
        let f = net.encoder().forward(&x, false)?;
        let logits = net.decoder(DecoderKind::Local).forward(&f, false)?;
        correct += accuracy_count(&logits, &data.labels[start..end])?;
    }
    Ok(correct as f64 / data.len() as f64)
}

fn print_eval(what: &str, e: &Evaluation) {
    let acc: Vec<String> = e
        .accuracy
        .iter()
        .map(|a| format!("{:.2}", 100.0 * a))
        .collect();
    let bytes: Vec<String> = e
        .estimated_bits
        .iter()
        .map(|b| format!("{:.1}", b / 8.0))
        .collect();
    println!(
        "{what}: local {:.2} %, k=1..N {} %, estimated bytes {}",
        100.0 * e.local_accuracy,
        acc.join("/"),
        bytes.join("/")
    );
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let all = Dataset::load(&args.data, Split::Train)?;
    let fit = all
        .len()
        .checked_sub(HELD_OUT)
        .context("fewer than 10 000 training images")?;
    let px = IMAGE_SIDE * IMAGE_SIDE;
    let held_out = Dataset {
        pixels: all.pixels[fit * px..].to_vec(),
        labels: all.labels[fit..].to_vec(),
    };
    let train_set = all.take(fit);

    // The stage-1 file holds every variable of `ModelConfig::fmnist()`, codec layers included
    // (untrained); only its encoder and local decoder are read into the stage-2 network.
    let stage1_config = ModelConfig::fmnist();
    let mut config = stage1_config.clone();
    if let Some(c) = args.layer_channels {
        config.layer_channels = c;
    }
    let mut recipe = TrainConfig::fmnist();
    recipe.seed = args.seed;
    recipe.stage_images[0] = 0;
    if let Some(n) = args.stage2_images {
        recipe.stage_images[1] = n;
    }
    if let Some(lr) = args.lr2 {
        recipe.learning_rates[1] = lr;
    }
    if let Some(w) = args.local_weight {
        recipe.stage2_local_weight = w;
    }
    if let Some(s) = args.encoder_lr_scale {
        recipe.stage2_encoder_lr_scale = s;
    }
    if let Some(l) = args.lambdas {
        recipe.lambdas = l;
    }
    let mut fine_tune_config = FineTuneConfig::fmnist();
    if let Some(s) = args.ft_steps {
        fine_tune_config.steps = s;
    }
    if let Some(n) = args.ft_images {
        fine_tune_config.fit_images = Some(n);
    }
    if args.ft_batch_stats {
        fine_tune_config.inference_batch_norm = false;
    }
    if let Some(k) = args.ft_low_max {
        fine_tune_config.low_max_layers = k;
    }
    if let Some(k) = args.ft_high_min {
        fine_tune_config.high_min_layers = k;
    }
    anyhow::ensure!(
        fine_tune_config.validation_images == HELD_OUT,
        "the fine-tuning must validate on the same held-out images"
    );
    println!("architecture {config:?}");
    println!("recipe {recipe:?}");
    println!("fine-tuning {fine_tune_config:?}");
    if let Some(trained_dir) = &args.trained {
        std::fs::create_dir_all(&args.out)?;
        let tuned = fine_tune(trained_dir, &args.out, &all, &held_out, &fine_tune_config)?;
        std::fs::write(
            args.out.join("holdout.json"),
            serde_json::to_string_pretty(&tuned)?,
        )?;
        return Ok(());
    }

    let stage1 = stage1_local(&args.stage1, &stage1_config, &held_out)?;
    println!("after stage 1: local {:.2} %", 100.0 * stage1);

    let start = Instant::now();
    let trained = train_after_stage1(&config, &recipe, &train_set, &args.stage1, |s| {
        if s.step % 100 == 0 || s.step == s.steps {
            println!(
                "stage {} step {}/{} loss {:.4} bits {:.1} t={:.0}s",
                s.stage, s.step, s.steps, s.loss, s.bits_all_layers, s.elapsed_s
            );
        }
    })?;
    let stage2_s = start.elapsed().as_secs_f64();
    let after_stage2 = evaluate(&trained.network, &held_out, 500)?;
    print_eval("after stage 2 (low = high decoder)", &after_stage2);
    let trained_dir = args.out.join("trained");
    save_model(
        &trained_dir,
        &trained,
        SaveInfo {
            name: "fmnist-holdout".into(),
            training: Some(recipe.clone()),
            evaluation: None,
            training_time_s: Some(stage2_s),
        },
    )?;

    let after_fine_tuning = if args.no_fine_tune {
        None
    } else {
        Some(fine_tune(
            &trained_dir,
            &args.out,
            &all,
            &held_out,
            &fine_tune_config,
        )?)
    };
    let report = Report {
        recipe,
        fine_tune: fine_tune_config,
        held_out_images: HELD_OUT,
        stage1_local: stage1,
        after_stage2,
        after_fine_tuning,
        stage2_s,
    };
    std::fs::write(
        args.out.join("holdout.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    println!("stage 2 {stage2_s:.0} s");
    Ok(())
}

/// Fine-tunes the decoders of `trained_dir` into `<out>/tuned`. The fine-tuning validates on
/// the last 10 000 images of the set it is given and evaluates on its `test` argument: here
/// both are the held-out images.
fn fine_tune(
    trained_dir: &Path,
    out: &Path,
    all: &Dataset,
    held_out: &Dataset,
    config: &FineTuneConfig,
) -> anyhow::Result<FineTuned> {
    let start = Instant::now();
    let tuned = fine_tune_decoders(
        trained_dir,
        &out.join("tuned"),
        all,
        held_out,
        config,
        |l| println!("{l}"),
    )?;
    let manifest = tuned.manifest();
    let evaluation = manifest
        .evaluation
        .clone()
        .context("the fine-tuned manifest has no evaluation")?;
    let ft = manifest
        .fine_tuning
        .clone()
        .context("the fine-tuned manifest has no fine-tuning record")?;
    print_eval(
        &format!(
            "after fine-tuning (low-rate decoder for k <= {})",
            ft.low_rate_layers
        ),
        &evaluation,
    );
    Ok(FineTuned {
        evaluation,
        low_rate_layers: ft.low_rate_layers,
        validation_low: ft.validation_low,
        validation_high: ft.validation_high,
        wall_s: start.elapsed().as_secs_f64(),
    })
}
