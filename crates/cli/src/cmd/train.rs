//! `offload train`: trains the Fashion-MNIST split model and its layered codec on the CPU and
//! writes `model.json` + `weights.safetensors`.

use std::path::PathBuf;

use anyhow::Context;
use offload_model::ModelConfig;
use offload_model::data::DEFAULT_FASHION_MNIST_DIR;
use offload_model::save::train_and_save;
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
}

/// Runs `offload train`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (config, mut recipe, name) = if args.tiny {
        (ModelConfig::tiny(), TrainConfig::tiny(), "tiny")
    } else {
        (ModelConfig::fmnist(), TrainConfig::fmnist(), "fmnist")
    };
    if let Some(seed) = args.seed {
        recipe.seed = seed;
    }
    tracing::info!(?config, ?recipe, "training");
    let (model, eval) = train_and_save(&args.data, &args.out, name, &config, &recipe, |s| {
        tracing::info!(
            stage = s.stage,
            step = s.step,
            steps = s.steps,
            loss = format!("{:.4}", s.loss),
            bits_all_layers = format!("{:.1}", s.bits_all_layers),
            elapsed_s = format!("{:.0}", s.elapsed_s),
        );
    })
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
