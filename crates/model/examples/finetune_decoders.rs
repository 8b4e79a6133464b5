//! Fine-tunes the two server task decoders of a trained Fashion-MNIST model on cached latents
//! of its frozen encoder and codec layers, chooses the low/high-rate switch point on held-out
//! training images, and writes the result (see `offload_model::finetune`).
//!
//! `cargo run --release -p offload-model --example finetune_decoders -- <base dir> <out dir>`
//! (Fashion-MNIST from `scripts/install-fashion-mnist.sh`; the recipe is
//! `FineTuneConfig::fmnist()`, `RAYON_NUM_THREADS=1` for one thread).
//!
//! `--one-decoder` (a model trained with `offload train --one-decoder`) fine-tunes only its
//! low-rate decoder, on every k; `--single-rate` (`offload train --single-rate`) only that
//! decoder on k = N; both keep the switch point at N (`FineTuneConfig::one_decoder`).

use std::path::Path;

use offload_model::data::DEFAULT_FASHION_MNIST_DIR;
use offload_model::finetune::{FineTuneConfig, fine_tune_decoders};
use offload_model::{Dataset, Split, SplitModel};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: finetune_decoders [--one-decoder | --single-rate] <base model dir> <output model dir>";
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut take_flag = |flag: &str| match args.iter().position(|a| a == flag) {
        Some(i) => {
            args.remove(i);
            true
        }
        None => false,
    };
    let (one_decoder, single_rate) = (take_flag("--one-decoder"), take_flag("--single-rate"));
    let [base, out] = args.as_slice() else {
        return Err(usage.into());
    };
    if one_decoder && single_rate {
        return Err(usage.into());
    }
    let config = if one_decoder || single_rate {
        let n = SplitModel::load(Path::new(base))?
            .manifest()
            .architecture
            .num_layers();
        FineTuneConfig::one_decoder(n, one_decoder)
    } else {
        FineTuneConfig::fmnist()
    };
    let data = Path::new(DEFAULT_FASHION_MNIST_DIR);
    let train = Dataset::load(data, Split::Train)?;
    let test = Dataset::load(data, Split::Test)?;
    let model = fine_tune_decoders(
        Path::new(base),
        Path::new(out),
        &train,
        &test,
        &config,
        |line| eprintln!("{line}"),
    )?;
    let eval = model
        .manifest()
        .evaluation
        .as_ref()
        .ok_or("the written manifest has no evaluation")?;
    println!("model id {}", model.model_id());
    println!("test local {:.4}", eval.local_accuracy);
    for (k, a) in eval.accuracy.iter().enumerate() {
        println!("test k={} {:.4}", k + 1, a);
    }
    Ok(())
}
