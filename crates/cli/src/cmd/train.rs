//! `offload train`: trains the Fashion-MNIST split model and its layered codec on the CPU and
//! writes `model.json` + `weights.safetensors`.

use std::path::PathBuf;

use anyhow::Context;
use offload_model::ModelConfig;
use offload_model::data::DEFAULT_FASHION_MNIST_DIR;
use offload_model::save::{Stage1, train_and_save_from};
use offload_model::train::TrainConfig;

/// Arguments of `offload train`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory of the gzipped IDX files (scripts/install-fashion-mnist.sh installs them).
    #[arg(long, default_value = DEFAULT_FASHION_MNIST_DIR)]
    pub data: PathBuf,
    /// Output model directory.
    #[arg(long, default_value = "models/fmnist")]
    pub out: PathBuf,
    /// Train the tiny smoke-test configuration instead (seconds, not minutes).
    #[arg(long)]
    pub tiny: bool,
    /// Seed of initialisation, shuffling and quantisation noise.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Training images of stages 1, 2 and 3 (e.g. `300000,120000,60000`); default: the recipe's.
    #[arg(long, value_delimiter = ',')]
    pub stage_images: Option<Vec<usize>>,
    /// Peak learning rates of stages 1, 2 and 3; default: the recipe's.
    #[arg(long, value_delimiter = ',')]
    pub learning_rates: Option<Vec<f64>>,
    /// Random translation of the training images, in pixels (0: flips only, as models before
    /// 2026-11-26 13:00 were trained).
    #[arg(long)]
    pub shift_pixels: Option<usize>,
    /// λ of the base layer (per bit per image); λ_k = first · ratio^(k−1).
    #[arg(long)]
    pub lambda_first: Option<f64>,
    /// Ratio between successive λ_k.
    #[arg(long, default_value_t = 0.6)]
    pub lambda_ratio: f64,
    /// Weight of the local path's cross-entropy in stage 2, against 1 for each layer count;
    /// default: the recipe's.
    #[arg(long)]
    pub stage2_local_weight: Option<f64>,
    /// The encoder's stage-2 learning rate as a fraction of the stage's (0 freezes the
    /// encoder); default: the recipe's.
    #[arg(long)]
    pub stage2_encoder_lr_scale: Option<f64>,
    /// Keep only the first K codec layers of the architecture.
    #[arg(long)]
    pub layers: Option<usize>,
    /// One task decoder for every layer count (the baseline of the two-decoder design).
    #[arg(long)]
    pub one_decoder: bool,
    /// Train a single-rate model: only the full layer count, not every prefix.
    #[arg(long)]
    pub single_rate: bool,
    /// Channels of the encoder's stem and of the split features F (e.g. `16,32`).
    #[arg(long, value_delimiter = ',')]
    pub encoder_channels: Option<Vec<usize>>,
    /// Channels of the task decoders' two stages (e.g. `32,64`).
    #[arg(long, value_delimiter = ',')]
    pub decoder_channels: Option<Vec<usize>>,
    /// Save the variables after stage 1 (encoder + local decoder) to this safetensors file, then
    /// run the later stages from it, as `--from-stage1` would.
    #[arg(long, conflicts_with = "from_stage1")]
    pub save_stage1: Option<PathBuf>,
    /// Skip stage 1: take the encoder and local decoder from a file written by `--save-stage1`
    /// and run only the later stages (so models compared against each other share them).
    #[arg(long)]
    pub from_stage1: Option<PathBuf>,
}

/// Runs `offload train`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (mut config, mut recipe, name) = if args.tiny {
        (ModelConfig::tiny(), TrainConfig::tiny(), "tiny")
    } else {
        (ModelConfig::fmnist(), TrainConfig::fmnist(), "fmnist")
    };
    if let Some(seed) = args.seed {
        recipe.seed = seed;
    }
    let lengths = [
        (
            "--stage-images",
            args.stage_images.as_ref().map(Vec::len),
            3,
        ),
        (
            "--learning-rates",
            args.learning_rates.as_ref().map(Vec::len),
            3,
        ),
        (
            "--encoder-channels",
            args.encoder_channels.as_ref().map(Vec::len),
            2,
        ),
        (
            "--decoder-channels",
            args.decoder_channels.as_ref().map(Vec::len),
            2,
        ),
    ];
    for (flag, len, want) in lengths {
        if let Some(len) = len {
            anyhow::ensure!(
                len == want,
                "{flag} takes {want} comma-separated values, got {len}"
            );
        }
    }
    if let Some(v) = &args.stage_images {
        recipe.stage_images = [v[0], v[1], v[2]];
    }
    if let Some(shift) = args.shift_pixels {
        recipe.shift_pixels = shift;
    }
    if let Some(v) = &args.learning_rates {
        recipe.learning_rates = [v[0], v[1], v[2]];
    }
    if let Some(w) = args.stage2_local_weight {
        recipe.stage2_local_weight = w;
    }
    if let Some(s) = args.stage2_encoder_lr_scale {
        recipe.stage2_encoder_lr_scale = s;
    }
    if let Some(v) = &args.encoder_channels {
        config.encoder_channels = [v[0], v[1]];
    }
    if let Some(v) = &args.decoder_channels {
        config.decoder_channels = [v[0], v[1]];
    }
    if let Some(k) = args.layers {
        anyhow::ensure!(
            (1..=config.num_layers()).contains(&k),
            "--layers {k} must be in 1..={}",
            config.num_layers()
        );
        config.layer_channels.truncate(k);
        recipe.lambdas.truncate(k);
        config.low_rate_layers = config.low_rate_layers.min(k);
    }
    if let Some(first) = args.lambda_first {
        recipe.lambdas = offload_model::train::geometric_lambdas(
            first,
            args.lambda_ratio,
            ModelConfig::fmnist().num_layers(),
        );
    }
    if args.single_rate {
        // A single-rate model of k layers is trained at the λ the scalable model uses for k.
        let k = config.num_layers();
        recipe.lambdas = vec![0.0; k - 1]
            .into_iter()
            .chain([recipe.lambdas[k - 1]])
            .collect();
        recipe.single_rate = true;
        config.low_rate_layers = k;
    }
    if args.one_decoder {
        config.low_rate_layers = config.num_layers();
    }
    recipe.lambdas.truncate(config.num_layers());
    let stage1 = match (args.save_stage1, args.from_stage1) {
        (Some(path), _) => Stage1::TrainAndSave(path),
        (None, Some(path)) => Stage1::Load(path),
        (None, None) => Stage1::Train,
    };
    tracing::info!(?config, ?recipe, ?stage1, "training");
    let (model, eval) = train_and_save_from(
        &args.data,
        &args.out,
        name,
        &config,
        &recipe,
        &stage1,
        |s| {
            tracing::info!(
                stage = s.stage,
                step = s.step,
                steps = s.steps,
                loss = format!("{:.4}", s.loss),
                bits_all_layers = format!("{:.1}", s.bits_all_layers),
                elapsed_s = format!("{:.0}", s.elapsed_s),
            );
        },
    )
    .with_context(|| format!("training into {}", args.out.display()))?;
    println!(
        "model {} written to {}",
        model.model_id(),
        args.out.display()
    );
    println!("local path accuracy {:.4}", eval.local_accuracy);
    for (k, (acc, bits)) in eval.accuracy.iter().zip(&eval.estimated_bits).enumerate() {
        println!(
            "k={} accuracy {:.4} estimated {:.1} bytes",
            k + 1,
            acc,
            bits / 8.0
        );
    }
    Ok(())
}
