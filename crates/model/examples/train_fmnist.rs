//! Trains the Fashion-MNIST model exactly as `offload train` does (same library call), for
//! machines where only this crate is built:
//! `train_fmnist <data dir> <out dir> [stage-1 images] [stage-2 images] [stage-3 images]`.

use std::path::PathBuf;

use offload_model::ModelConfig;
use offload_model::save::train_and_save;
use offload_model::train::TrainConfig;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let data = PathBuf::from(
        args.next()
            .unwrap_or_else(|| offload_model::data::DEFAULT_FASHION_MNIST_DIR.into()),
    );
    let out = PathBuf::from(args.next().unwrap_or_else(|| "models/fmnist".into()));
    let (model, eval) = train_and_save(
        &data,
        &out,
        "fmnist",
        &ModelConfig::fmnist(),
        &TrainConfig::fmnist(),
        |s| {
            println!(
                "stage {} step {}/{} loss {:.4} bits(all layers) {:.1} t={:.0}s",
                s.stage, s.step, s.steps, s.loss, s.bits_all_layers, s.elapsed_s
            )
        },
    )?;
    println!("model id {}", model.model_id());
    println!("{}", serde_json::to_string_pretty(&eval)?);
    Ok(())
}
