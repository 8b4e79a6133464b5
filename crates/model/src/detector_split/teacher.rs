//! The uncompressed detector's outputs on the training and held-out frames, computed once and
//! cached on disk: the split tensor (the codec's feature target) and the raw head outputs (the
//! distillation target and, after NMS, the reference detections).

use std::path::{Path, PathBuf};

use candle_core::Tensor;

use super::data::Frame;
use crate::detector::ssd_head::{BOX_CODE_LEN, NUM_CLASSES};
use crate::detector::{Detector, RawPredictions, SPLIT_SHAPE};
use crate::error::ModelError;

/// Floats of one split tensor (96·19·19).
pub const FEATURE_LEN: usize = SPLIT_SHAPE[1] * SPLIT_SHAPE[2] * SPLIT_SHAPE[3];
/// Anchors of the detector.
pub const NUM_ANCHORS: usize = 1917;

/// The teacher's view of one frame.
#[derive(Debug, Clone)]
pub struct TeacherSample {
    /// The frame's name (path relative to the detector cache).
    pub name: String,
    /// Frame width, pixels.
    pub width: usize,
    /// Frame height, pixels.
    pub height: usize,
    /// Split tensor, (96, 19, 19) row-major.
    pub features: Vec<f32>,
    /// The raw head outputs on that tensor.
    pub raw: RawPredictions,
}

impl TeacherSample {
    /// The split tensor as (1, 96, 19, 19).
    pub fn features_tensor(&self) -> Result<Tensor, ModelError> {
        Ok(Tensor::from_slice(
            &self.features,
            SPLIT_SHAPE.as_slice(),
            &candle_core::Device::Cpu,
        )?)
    }
}

const RECORD_LEN: usize = FEATURE_LEN + NUM_ANCHORS * (BOX_CODE_LEN + NUM_CLASSES);

fn cache_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{}.f32", name.replace(['/', '\\'], "__")))
}

fn read_cached(path: &Path) -> Option<Vec<f32>> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() != RECORD_LEN * 4 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}

fn unpack(frame: &Frame, values: Vec<f32>) -> TeacherSample {
    let (features, rest) = values.split_at(FEATURE_LEN);
    let (boxes, logits) = rest.split_at(NUM_ANCHORS * BOX_CODE_LEN);
    TeacherSample {
        name: frame.name.clone(),
        width: frame.width,
        height: frame.height,
        features: features.to_vec(),
        raw: RawPredictions {
            box_encodings: boxes
                .chunks_exact(BOX_CODE_LEN)
                .map(|c| [c[0], c[1], c[2], c[3]])
                .collect(),
            class_logits: logits.to_vec(),
        },
    }
}

/// Runs the detector on `frames` (or reads its earlier results from `cache_dir`, one file per
/// frame; `cache_dir` should name the detector's weights hash so another detector never reads
/// them). `progress` is called after each frame with (done, total).
pub fn teacher_samples(
    detector: &Detector,
    frames: &[Frame],
    cache_dir: &Path,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<TeacherSample>, ModelError> {
    std::fs::create_dir_all(cache_dir).map_err(|source| ModelError::Io {
        path: cache_dir.to_owned(),
        source,
    })?;
    let mut out = Vec::with_capacity(frames.len());
    for (i, frame) in frames.iter().enumerate() {
        let path = cache_file(cache_dir, &frame.name);
        let values = match read_cached(&path) {
            Some(v) => v,
            None => {
                let x = detector.preprocess(&frame.rgb, frame.width, frame.height)?;
                let f = detector.encode_to_split(&x)?;
                let raw = detector.predict_from_split(&f)?;
                let mut v = f.flatten_all()?.to_vec1::<f32>()?;
                v.extend(raw.box_encodings.iter().flatten());
                v.extend_from_slice(&raw.class_logits);
                if v.len() != RECORD_LEN {
                    return Err(ModelError::Frame(format!(
                        "{}: teacher output has {} values, expected {RECORD_LEN}",
                        frame.name,
                        v.len()
                    )));
                }
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                std::fs::write(&path, bytes).map_err(|source| ModelError::Io {
                    path: path.clone(),
                    source,
                })?;
                v
            }
        };
        out.push(unpack(frame, values));
        progress(i + 1, frames.len());
    }
    Ok(out)
}
