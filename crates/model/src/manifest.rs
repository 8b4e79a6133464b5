//! The model manifest (`model.json`): architecture, latent shapes, the quantised z tables and
//! the weights' hash. The model id that frames carry is the hash of this file's bytes, so it
//! changes whenever the weights or the tables change.

use std::path::{Path, PathBuf};

use offload_codec::{ChannelPmf, FactorizedPrior, LayerSpec, ModelId, ModelSpec, Shape};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::ModelConfig;
use crate::error::ModelError;
use crate::eval::{Evaluation, Z_RANGE};
use crate::finetune::FineTuning;
use crate::layer::CodecLayer;
use crate::train::TrainConfig;

/// The manifest's `format` value.
pub const MANIFEST_FORMAT: &str = "offload-model";
/// The manifest version this code reads and writes.
pub const MANIFEST_VERSION: u32 = 1;
/// Manifest file name inside a model directory.
pub const MANIFEST_FILE: &str = "model.json";
/// Weights file name inside a model directory.
pub const WEIGHTS_FILE: &str = "weights.safetensors";
/// Largest manifest or weights file read (bounds the allocation).
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Shapes of one layer, (C, H, W).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerShapes {
    /// The latent y.
    pub y: [usize; 3],
    /// The hyper-latent z.
    pub z: [usize; 3],
}

/// Everything about a saved model except its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    /// Short name, e.g. `fmnist`.
    pub name: String,
    /// The architecture.
    pub architecture: ModelConfig,
    /// Shapes of every layer (derived from the architecture, written out for readers).
    pub layers: Vec<LayerShapes>,
    /// Weights file name, relative to the manifest.
    pub weights_file: String,
    /// Hex SHA-256 of the weights file.
    pub weights_sha256: String,
    /// Quantised z tables, one per layer (the codec's serialised form).
    pub z_priors: Vec<FactorizedPrior>,
    /// How it was trained.
    pub training: Option<TrainConfig>,
    /// Test-set evaluation at save time (model's own rate estimate).
    pub evaluation: Option<Evaluation>,
    /// Training wall time, seconds.
    pub training_time_s: Option<f64>,
    /// Decoder fine-tuning after training, if any (absent from older manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fine_tuning: Option<FineTuning>,
}

/// The codec's view of a model from its layer shapes: what the container checks frames against.
pub fn spec_of(layers: &[LayerShapes], model_id: ModelId) -> ModelSpec {
    ModelSpec {
        model_id,
        layers: layers
            .iter()
            .map(|l| LayerSpec {
                y: Shape::new(l.y[0], l.y[1], l.y[2]),
                z: Shape::new(l.z[0], l.z[1], l.z[2]),
            })
            .collect(),
    }
}

/// One z table per layer, each with `z_channels` channels; the message names the first mismatch.
pub fn check_z_priors(
    priors: &[FactorizedPrior],
    layers: usize,
    z_channels: usize,
) -> Result<(), String> {
    if priors.len() != layers {
        return Err(format!("{} z tables for {layers} layers", priors.len()));
    }
    for (i, p) in priors.iter().enumerate() {
        if p.channels() != z_channels {
            return Err(format!("z table {i} has {} channels", p.channels()));
        }
    }
    Ok(())
}

impl Manifest {
    /// The codec's view of the model: its id and every layer's shapes.
    pub fn spec(&self, model_id: ModelId) -> ModelSpec {
        spec_of(&self.layers, model_id)
    }

    /// Checks the manifest against itself (shapes derived from the architecture, table counts).
    pub fn validate(&self, path: &Path) -> Result<(), ModelError> {
        let bad = |message: String| ModelError::Manifest {
            path: path.to_owned(),
            message,
        };
        if self.format != MANIFEST_FORMAT || self.version != MANIFEST_VERSION {
            return Err(bad(format!(
                "format {:?} version {}, expected {MANIFEST_FORMAT:?} version {MANIFEST_VERSION}",
                self.format, self.version
            )));
        }
        self.architecture.validate().map_err(bad)?;
        if self.layers != layer_shapes(&self.architecture) {
            return Err(bad("layer shapes do not match the architecture".into()));
        }
        check_z_priors(
            &self.z_priors,
            self.layers.len(),
            self.architecture.z_channels,
        )
        .map_err(bad)?;
        if self.weights_file.contains('/') || self.weights_file.contains("..") {
            return Err(bad(format!(
                "weights_file {:?} must be a plain file name",
                self.weights_file
            )));
        }
        Ok(())
    }
}

/// The shapes of every layer of `config`.
pub fn layer_shapes(config: &ModelConfig) -> Vec<LayerShapes> {
    (0..config.num_layers())
        .map(|i| LayerShapes {
            y: config.latent_shape(i),
            z: config.z_shape(i),
        })
        .collect()
}

/// Evaluates each layer's learnt z density on [`Z_RANGE`] and quantises it for the codec.
pub fn z_priors(layers: &[CodecLayer]) -> Result<Vec<FactorizedPrior>, ModelError> {
    layers
        .iter()
        .map(|layer| {
            let pmfs = layer.density().pmfs(Z_RANGE.0, Z_RANGE.1)?;
            let channels = pmfs
                .into_iter()
                .map(|pmf| ChannelPmf {
                    min_symbol: Z_RANGE.0,
                    pmf,
                })
                .collect();
            Ok(FactorizedPrior::from_pmfs(channels)?)
        })
        .collect()
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads a file of at most [`MAX_FILE_BYTES`].
pub fn read_bounded(path: &Path) -> Result<Vec<u8>, ModelError> {
    let io = |source| ModelError::Io {
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_FILE_BYTES {
        return Err(ModelError::Manifest {
            path: path.to_owned(),
            message: format!("{len} bytes is larger than the {MAX_FILE_BYTES}-byte limit"),
        });
    }
    std::fs::read(path).map_err(io)
}

/// Creates `dir`, saves `vars` as its weights file and returns the bytes written (for the
/// manifest's SHA-256).
pub fn save_weights(dir: &Path, vars: &candle_nn::VarMap) -> Result<Vec<u8>, ModelError> {
    std::fs::create_dir_all(dir).map_err(|source| ModelError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let (_, weights_path) = model_files(dir);
    vars.save(&weights_path).map_err(|e| ModelError::Weights {
        path: weights_path.clone(),
        message: e.to_string(),
    })?;
    std::fs::read(&weights_path).map_err(|source| ModelError::Io {
        path: weights_path,
        source,
    })
}

/// Writes `manifest` as pretty JSON to `path` and returns the text (whose bytes give the model id).
pub fn write_manifest<T: Serialize>(path: &Path, manifest: &T) -> Result<String, ModelError> {
    let text = serde_json::to_string_pretty(manifest).map_err(|e| ModelError::Manifest {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    std::fs::write(path, &text).map_err(|source| ModelError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(text)
}

/// Paths of a model directory's two files.
pub fn model_files(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join(MANIFEST_FILE), dir.join(WEIGHTS_FILE))
}
