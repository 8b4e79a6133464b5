//! Fine-tunes the two server task decoders of a trained Fashion-MNIST model on cached latents
//! of its frozen encoder and codec layers, chooses the low/high-rate switch point on held-out
//! training images, and writes the result (see `offload_model::finetune`).
//!
//! `cargo run --release -p offload-model --example finetune_decoders -- <base dir> <out dir>`
//! (Fashion-MNIST from `scripts/install-fashion-mnist.sh`; the recipe is
//! `FineTuneConfig::fmnist()`, `RAYON_NUM_THREADS=1` for one thread).

use std::path::Path;

use offload_model::data::DEFAULT_FASHION_MNIST_DIR;
use offload_model::finetune::{FineTuneConfig, fine_tune_decoders};
use offload_model::{Dataset, Split};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, out] = args.as_slice() else {
        return Err("usage: finetune_decoders <base model dir> <output model dir>".into());
    };
    let data = Path::new(DEFAULT_FASHION_MNIST_DIR);
    let train = Dataset::load(data, Split::Train)?;
    let test = Dataset::load(data, Split::Test)?;
    let model = fine_tune_decoders(
        Path::new(base),
        Path::new(out),
        &train,
        &test,
        &FineTuneConfig::fmnist(),
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
