//! Writes a distilled codec as `weights.safetensors` + `model.json`.

use std::path::Path;
use std::sync::Arc;

use super::manifest::{DetectorRef, FORMAT, SplitManifest, VERSION, layer_shapes};
use super::model::DetectorSplit;
use super::train::{DistillConfig, TrainedCodec};
use crate::detector::{Detector, WEIGHTS_FILE as DETECTOR_WEIGHTS_FILE};
use crate::error::ModelError;
use crate::manifest::{
    WEIGHTS_FILE, model_files, save_weights, sha256_hex, write_manifest, z_priors,
};

/// What the manifest records besides the weights.
#[derive(Debug, Clone)]
pub struct SplitSaveInfo {
    /// Short name.
    pub name: String,
    /// Hex SHA-256 of the detector's converted weights file.
    pub detector_sha256: String,
    /// The recipe used.
    pub training: Option<DistillConfig>,
    /// Training wall time (s).
    pub training_time_s: Option<f64>,
    /// Where it was trained.
    pub hardware: Option<String>,
}

/// Hex SHA-256 of the converted detector in `detector_dir`.
pub fn detector_sha256(detector_dir: &Path) -> Result<String, ModelError> {
    let path = detector_dir.join(DETECTOR_WEIGHTS_FILE);
    let bytes = std::fs::read(&path).map_err(|source| ModelError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(sha256_hex(&bytes))
}

/// Saves `trained` into `dir` (created if needed) and returns it as a [`DetectorSplit`] on
/// `detector`, with the model id of the written manifest.
pub fn save_split(
    dir: &Path,
    trained: &TrainedCodec,
    detector: Arc<Detector>,
    info: SplitSaveInfo,
) -> Result<DetectorSplit, ModelError> {
    let (manifest_path, _) = model_files(dir);
    let weights = save_weights(dir, &trained.vars)?;
    let config = trained.codec.config().clone();
    let manifest = SplitManifest {
        format: FORMAT.into(),
        version: VERSION,
        name: info.name,
        layers: layer_shapes(&config),
        architecture: config,
        weights_file: WEIGHTS_FILE.into(),
        weights_sha256: sha256_hex(&weights),
        z_priors: z_priors(trained.codec.layers())?,
        detector: DetectorRef {
            weights_file: DETECTOR_WEIGHTS_FILE.into(),
            weights_sha256: info.detector_sha256,
        },
        training: info.training,
        training_time_s: info.training_time_s,
        hardware: info.hardware,
    };
    let text = write_manifest(&manifest_path, &manifest)?;
    manifest.validate(&manifest_path)?;
    Ok(DetectorSplit::from_parts(
        detector,
        trained.codec.clone(),
        manifest,
        text.as_bytes(),
    ))
}
