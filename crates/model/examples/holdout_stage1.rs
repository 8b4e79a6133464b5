//! Stage 1 of `offload train` (the uncompressed split model: encoder + local decoder) on the
//! first 50 000 training images only, then the local path's accuracy on the last 10 000, which
//! it never saw: how a stage-1 budget is chosen without looking at the test set.
//!
//! `holdout_stage1 <stage-1 images> [seed] [data dir] [weights out]`; the rest of the recipe is
//! `TrainConfig::fmnist()`. With `weights out`, the trained variables are saved there
//! (safetensors) for `holdout_stage2`, which runs stage-2 variants from them.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;
use offload_model::data::{DEFAULT_FASHION_MNIST_DIR, IMAGE_SIDE};
use offload_model::model::images_to_tensor;
use offload_model::train::{TrainConfig, accuracy_count, train};
use offload_model::{Dataset, DecoderKind, ModelConfig, Split};

/// Training images kept out of training, at the end of the split (as the decoder fine-tuning's
/// validation split).
const HELD_OUT: usize = 10_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let images: usize = args
        .next()
        .ok_or("usage: holdout_stage1 <stage-1 images> [seed] [data dir] [weights out]")?
        .parse()?;
    let seed: Option<u64> = args.next().map(|s| s.parse()).transpose()?;
    let dir = PathBuf::from(
        args.next()
            .unwrap_or_else(|| DEFAULT_FASHION_MNIST_DIR.into()),
    );
    let weights_out: Option<PathBuf> = args.next().map(PathBuf::from);
    let all = Dataset::load(&dir, Split::Train)?;
    let fit = all
        .len()
        .checked_sub(HELD_OUT)
        .ok_or("fewer than 10 000 images")?;
    let pixels = IMAGE_SIDE * IMAGE_SIDE;
    let held_out = Dataset {
        pixels: all.pixels[fit * pixels..].to_vec(),
        labels: all.labels[fit..].to_vec(),
    };
    let train_set = all.take(fit);

    let config = ModelConfig::fmnist();
    let mut recipe = TrainConfig::fmnist();
    recipe.stage_images = [images, 0, 0];
    if let Some(seed) = seed {
        recipe.seed = seed;
    }
    let start = Instant::now();
    let trained = train(&config, &recipe, &train_set, |s| {
        if s.step % 400 == 0 || s.step == s.steps {
            println!(
                "stage {} step {}/{} loss {:.4} t={:.0}s",
                s.stage, s.step, s.steps, s.loss, s.elapsed_s
            );
        }
    })?;
    let train_s = start.elapsed().as_secs_f64();
    if let Some(path) = &weights_out {
        trained.vars.save(path)?;
        println!("stage-1 weights saved to {}", path.display());
    }

    let net = &trained.network;
    let mut correct = 0;
    for start in (0..held_out.len()).step_by(500) {
        let end = (start + 500).min(held_out.len());
        let x = images_to_tensor(&held_out.pixels[start * pixels..end * pixels], &Device::Cpu)?;
        let f = net.encoder().forward(&x, false)?;
        let logits = net.decoder(DecoderKind::Local).forward(&f, false)?;
        correct += accuracy_count(&logits, &held_out.labels[start..end])?;
    }
    println!(
        "seed {} stage-1 images {images} ({:.2} epochs of {fit}): training {train_s:.0} s \
         ({:.0} images/s); local path on the last {HELD_OUT} training images {:.2} %",
        recipe.seed,
        images as f64 / fit as f64,
        images as f64 / train_s,
        100.0 * correct as f64 / held_out.len() as f64
    );
    Ok(())
}
