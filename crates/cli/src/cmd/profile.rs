//! `offload profile`: measures a trained model on the real Fashion-MNIST test set (real layered
//! coding of every frame, accuracy per layer count, per-stage times on this machine) and writes
//! the operating profile the simulator and controller read.

use std::path::PathBuf;

use anyhow::Context;
use offload_controller::profile::{
    DeviceProfile, LayerProfile, LocalProfile, PROFILE_FORMAT, PROFILE_VERSION, Profile,
};
use offload_model::data::DEFAULT_FASHION_MNIST_DIR;
use offload_model::measure::{rate_accuracy, stage_times};
use offload_model::{Dataset, Split, SplitModel};

/// Arguments of `offload profile`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model directory (model.json + weights.safetensors).
    #[arg(long, default_value = "models/fmnist")]
    pub model: PathBuf,
    /// Output profile (TOML).
    #[arg(long, default_value = "profiles/fmnist.toml")]
    pub out: PathBuf,
    /// Directory of the Fashion-MNIST IDX files.
    #[arg(long, default_value = DEFAULT_FASHION_MNIST_DIR)]
    pub data: PathBuf,
    /// Test images to code and classify (all 10 000 by default).
    #[arg(long, default_value_t = 10_000)]
    pub images: usize,
    /// Frames timed one at a time (medians are reported).
    #[arg(long, default_value_t = 200)]
    pub timing_frames: usize,
    /// Device compute power (W). Not measurable here: an assumption, recorded as such.
    #[arg(long, default_value_t = 3.0)]
    pub compute_power_w: f64,
    /// Leave the per-frame size table out of the profile (smaller file).
    #[arg(long)]
    pub no_frames: bool,
}

/// Runs `offload profile`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let model = SplitModel::load(&args.model)?;
    let test = Dataset::load(&args.data, Split::Test)?.take(args.images);
    tracing::info!(images = test.len(), model = %model.model_id(), "coding and classifying the test set");
    let rate = rate_accuracy(&model, &test, 500)?;
    tracing::info!(frames = args.timing_frames, "timing stages frame by frame");
    let times = stage_times(&model, &test, args.timing_frames)?;

    let n = model.num_layers();
    let mut layers = Vec::with_capacity(n);
    for k in 0..n {
        let mut sizes: Vec<f64> = rate.frame_bytes.iter().map(|f| f[k] as f64).collect();
        sizes.sort_by(f64::total_cmp);
        let median = sizes.get(sizes.len() / 2).copied().unwrap_or(0.0);
        let logs: Vec<f64> = sizes.iter().map(|s| s.ln()).collect();
        let mean = logs.iter().sum::<f64>() / logs.len().max(1) as f64;
        let var = logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / logs.len().max(1) as f64;
        layers.push(LayerProfile {
            k: (k + 1) as u32,
            accuracy: rate.accuracy[k],
            bytes_median: median,
            bytes_sigma: var.sqrt(),
            device_time_s: times.device_layers_s[k],
            server_time_s: times.server_s[k],
        });
    }
    let host_cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let profile = Profile {
        format: PROFILE_FORMAT.into(),
        version: PROFILE_VERSION,
        name: model.manifest().name.clone(),
        illustrative: false,
        description: format!(
            "Measured by `offload profile` on {} real Fashion-MNIST test images: every frame coded \
             with the real layered codec (sizes include the frame header and record headers); \
             accuracy per layer count from the server decoders; times are medians over {} \
             frames run one at a time on this machine's CPU ({host_cpus} logical CPUs, shared), \
             not on a wearable. compute_power_w = {} W is an assumption, not a measurement.",
            rate.images, times.frames, args.compute_power_w
        ),
        model_id: Some(model.model_id().to_string()),
        device: DeviceProfile {
            compute_power_w: args.compute_power_w,
            encoder_time_s: times.encoder_s,
        },
        local: LocalProfile {
            time_s: times.local_s,
            accuracy: rate.local_accuracy,
        },
        layers,
        frames: if args.no_frames {
            Vec::new()
        } else {
            rate.frame_bytes.clone()
        },
    };
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    profile.save(&args.out)?;

    println!("model {}  ({} images)", model.model_id(), rate.images);
    println!(
        "local: accuracy {:.4}, encoder {:.2} ms + local decoder {:.2} ms",
        rate.local_accuracy,
        1e3 * times.encoder_s,
        1e3 * times.local_s
    );
    println!(
        "container: {} B frame header + {} B per layer record (not in payload_bits)",
        rate.frame_header_bytes, rate.record_header_bytes
    );
    println!(
        "k  accuracy  median_B  payload_bits  model_bits (z)    codec_bits (z)    payload/model  device_ms  server_ms"
    );
    for (k, l) in profile.layers.iter().enumerate() {
        println!(
            "{:<2} {:.4}    {:>7.0}   {:>11.1}  {:>9.1} ({:>5.1}) {:>9.1} ({:>5.1}) {:>+12.2} %  {:>9.3}  {:>9.3}",
            k + 1,
            l.accuracy,
            l.bytes_median,
            rate.payload_bits[k],
            rate.model_bits[k],
            rate.model_z_bits[k],
            rate.codec_bits[k],
            rate.codec_z_bits[k],
            100.0 * (rate.payload_bits[k] / rate.model_bits[k] - 1.0),
            1e3 * l.device_time_s,
            1e3 * l.server_time_s
        );
    }
    println!("wrote {}", args.out.display());
    Ok(())
}
