//! Writes a trained network as `weights.safetensors` + `model.json`.

use std::path::Path;

use crate::config::ModelConfig;
use crate::data::{Dataset, Split};
use crate::error::ModelError;
use crate::eval::{Evaluation, evaluate};
use crate::manifest::{
    MANIFEST_FORMAT, MANIFEST_VERSION, Manifest, WEIGHTS_FILE, layer_shapes, model_files,
    save_weights, sha256_hex, write_manifest, z_priors,
};
use crate::split::SplitModel;
use crate::train::{StepLog, TrainConfig, Trained, train, train_after_stage1};

/// What to record in the manifest besides the weights.
#[derive(Debug, Clone)]
pub struct SaveInfo {
    /// Short name.
    pub name: String,
    /// The recipe used.
    pub training: Option<TrainConfig>,
    /// Test-set evaluation.
    pub evaluation: Option<Evaluation>,
    /// Training wall time (s).
    pub training_time_s: Option<f64>,
}

/// Saves `trained` into `dir` (created if needed) and returns it loaded as a [`SplitModel`].
pub fn save_model(dir: &Path, trained: &Trained, info: SaveInfo) -> Result<SplitModel, ModelError> {
    let (manifest_path, _) = model_files(dir);
    let weights = save_weights(dir, &trained.vars)?;
    let config = trained.network.config().clone();
    let manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        version: MANIFEST_VERSION,
        name: info.name,
        layers: layer_shapes(&config),
        architecture: config,
        weights_file: WEIGHTS_FILE.into(),
        weights_sha256: sha256_hex(&weights),
        z_priors: z_priors(trained.network.layers())?,
        training: info.training,
        evaluation: info.evaluation,
        training_time_s: info.training_time_s,
        fine_tuning: None,
    };
    write_manifest(&manifest_path, &manifest)?;
    SplitModel::load(dir)
}

/// Where stage 1 (encoder + local decoder on uncompressed features) comes from.
#[derive(Debug, Clone, Default)]
pub enum Stage1 {
    /// Train every stage in one run.
    #[default]
    Train,
    /// Train stage 1, save all variables at this path (safetensors), then run the later
    /// stages from that file as [`Stage1::Load`] would, so a later run that loads it trains
    /// its stages 2 and 3 from exactly the same start.
    TrainAndSave(std::path::PathBuf),
    /// Skip stage 1: take the encoder and local decoder from a file written by
    /// [`Stage1::TrainAndSave`] (see [`train_after_stage1`]).
    Load(std::path::PathBuf),
}

/// Trains on the Fashion-MNIST training split in `data_dir`, evaluates on the test split and
/// saves to `out_dir` (what `offload train` does).
pub fn train_and_save(
    data_dir: &Path,
    out_dir: &Path,
    name: &str,
    config: &ModelConfig,
    recipe: &TrainConfig,
    log: impl FnMut(&StepLog),
) -> Result<(SplitModel, Evaluation), ModelError> {
    train_and_save_from(data_dir, out_dir, name, config, recipe, &Stage1::Train, log)
}

/// [`train_and_save`] with stage 1 trained, trained and saved, or loaded (`stage1`).
pub fn train_and_save_from(
    data_dir: &Path,
    out_dir: &Path,
    name: &str,
    config: &ModelConfig,
    recipe: &TrainConfig,
    stage1: &Stage1,
    mut log: impl FnMut(&StepLog),
) -> Result<(SplitModel, Evaluation), ModelError> {
    let train_set = Dataset::load(data_dir, Split::Train)?;
    let test_set = Dataset::load(data_dir, Split::Test)?;
    let start = std::time::Instant::now();
    let trained = match stage1 {
        Stage1::Train => train(config, recipe, &train_set, log)?,
        Stage1::TrainAndSave(path) => {
            let mut first = recipe.clone();
            first.stage_images = [recipe.stage_images[0], 0, 0];
            let stage1 = train(config, &first, &train_set, &mut log)?;
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|source| ModelError::Io {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            stage1.vars.save(path)?;
            train_after_stage1(config, recipe, &train_set, path, log)?
        }
        Stage1::Load(path) => train_after_stage1(config, recipe, &train_set, path, log)?,
    };
    let training_time_s = start.elapsed().as_secs_f64();
    let evaluation = evaluate(&trained.network, &test_set, 500)?;
    let model = save_model(
        out_dir,
        &trained,
        SaveInfo {
            name: name.into(),
            training: Some(recipe.clone()),
            evaluation: Some(evaluation.clone()),
            training_time_s: Some(training_time_s),
        },
    )?;
    Ok((model, evaluation))
}
