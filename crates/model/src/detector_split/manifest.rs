//! The split codec's manifest (`model.json`): architecture, latent shapes, z tables, the hash of
//! its weights and of the detector it was distilled against. The model id frames carry is the
//! hash of this file's bytes.

use std::path::Path;

use offload_codec::{FactorizedPrior, ModelId, ModelSpec};
use serde::{Deserialize, Serialize};

use super::config::SplitCodecConfig;
use super::train::DistillConfig;
use crate::error::ModelError;
use crate::manifest::{LayerShapes, check_z_priors, spec_of};

/// The manifest's `format` value.
pub const FORMAT: &str = "offload-detector-split";
/// The manifest version this code reads and writes.
pub const VERSION: u32 = 1;

/// The detector whose server half decodes this codec's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorRef {
    /// File name of the converted detector inside the detector directory.
    pub weights_file: String,
    /// Hex SHA-256 of that file (checked at load: the codec was distilled against it).
    pub weights_sha256: String,
}

/// Everything about a saved split codec except its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitManifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// Short name, e.g. `ssd-split`.
    pub name: String,
    /// The codec's architecture.
    pub architecture: SplitCodecConfig,
    /// Shapes of every layer (derived from the architecture, written out for readers).
    pub layers: Vec<LayerShapes>,
    /// Weights file name, relative to the manifest.
    pub weights_file: String,
    /// Hex SHA-256 of the weights file.
    pub weights_sha256: String,
    /// Quantised z tables, one per layer.
    pub z_priors: Vec<FactorizedPrior>,
    /// The frozen detector.
    pub detector: DetectorRef,
    /// How it was trained.
    pub training: Option<DistillConfig>,
    /// Training wall time, seconds.
    pub training_time_s: Option<f64>,
    /// Where it was trained (CPU model, threads).
    pub hardware: Option<String>,
}

/// The shapes of every layer of `config`.
pub fn layer_shapes(config: &SplitCodecConfig) -> Vec<LayerShapes> {
    (0..config.num_layers())
        .map(|i| LayerShapes {
            y: config.latent_shape(i),
            z: config.z_shape(i),
        })
        .collect()
}

impl SplitManifest {
    /// The codec's view of the model: its id and every layer's shapes.
    pub fn spec(&self, model_id: ModelId) -> ModelSpec {
        spec_of(&self.layers, model_id)
    }

    /// Checks the manifest against itself (shapes from the architecture, table counts, names).
    pub fn validate(&self, path: &Path) -> Result<(), ModelError> {
        let bad = |message: String| ModelError::Manifest {
            path: path.to_owned(),
            message,
        };
        if self.format != FORMAT || self.version != VERSION {
            return Err(bad(format!(
                "format {:?} version {}, expected {FORMAT:?} version {VERSION}",
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
        for (what, name) in [
            ("weights_file", &self.weights_file),
            ("detector.weights_file", &self.detector.weights_file),
        ] {
            if name.is_empty() || name.contains('/') || name.contains('\\') || name.contains("..") {
                return Err(bad(format!("{what} {name:?} must be a plain file name")));
            }
        }
        Ok(())
    }
}
