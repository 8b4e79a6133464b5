//! `offload convert-detector`: converts the SSD-MobileNetV2 COCO frozen TensorFlow graph
//! (installed by `scripts/install-detector.sh`) into safetensors + a JSON manifest, with the
//! TensorFlow node names and layouts unchanged.

use std::path::PathBuf;

use anyhow::Context;
use offload_model::tf_import::{self, ConvertOptions};

/// Arguments of `offload convert-detector`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The frozen graph (`frozen_inference_graph.pb`).
    #[arg(long, default_value_os_t = tf_import::detector_cache_dir().join("model/frozen_inference_graph.pb"))]
    pub pb: PathBuf,
    /// Output directory for `<name>.safetensors` and `<name>.json`.
    #[arg(long, default_value_os_t = tf_import::detector_cache_dir().join("converted"))]
    pub out: PathBuf,
    /// File stem of the outputs.
    #[arg(long, default_value = "ssd_mobilenet_v2_coco")]
    pub name: String,
}

/// Runs the conversion and prints what was written.
pub fn run(args: Args) -> anyhow::Result<()> {
    let options = ConvertOptions {
        stem: args.name,
        ..ConvertOptions::ssd_mobilenet_v2()
    };
    let converted = tf_import::convert(&args.pb, &args.out, &options)
        .with_context(|| format!("converting {}", args.pb.display()))?;
    let m = &converted.manifest;
    println!(
        "{}: {} tensors, {} parameters (source SHA-256 {})",
        converted.weights_path.display(),
        m.tensor_count,
        m.parameter_count,
        m.source.sha256
    );
    println!(
        "{}: {} graph nodes listed from the outputs {:?}",
        converted.manifest_path.display(),
        m.nodes.len(),
        m.outputs
    );
    Ok(())
}
