//! Import of a frozen TensorFlow 1 graph (`frozen_inference_graph.pb`): its float constants
//! become a safetensors file with the TensorFlow node names and layouts unchanged, and a JSON
//! manifest records the source, the tensors and the subgraph that uses them.
//!
//! `scripts/install-detector.sh` fetches the SSD-MobileNetV2 COCO graph from the registries and
//! runs `offload convert-detector`, which calls [`convert`] with
//! [`ConvertOptions::ssd_mobilenet_v2`].

pub mod convert;
pub mod error;
pub mod graph;
pub mod graph_def;
pub mod manifest;
pub mod tensor;

use std::path::PathBuf;

pub use convert::{ConvertOptions, Converted, FloatConst, convert, float_constants};
pub use error::TfImportError;
pub use graph::FrozenGraph;
pub use manifest::TfManifest;

/// Where `scripts/install-detector.sh` puts the detector and its sample images:
/// `$OFFLOAD_CACHE/detector`, else `$HOME/.cache/offload/detector`.
pub fn detector_cache_dir() -> PathBuf {
    let base = match std::env::var_os("OFFLOAD_CACHE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(".cache/offload"),
    };
    base.join("detector")
}
