//! The split SSD-MobileNetV2 detector on both ends of the wire, and the video frames it runs on.
//!
//! The device encodes a frame to the stride-16 tensor and codes it in layers; the server decodes
//! the prefix that arrived and finishes the detector. Detections travel in units of the frame's
//! size ([`DetectedObject`]): the server never learns the frame's size, so both halves run the
//! box decoding for a 1×1 frame, which is the normalised box.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Tensor;
use offload_agent::{
    DetectedObject, DeviceFrame, DeviceModel, ModelFailure, TaskResult, result::MAX_DETECTIONS,
};
use offload_model::detector::Detection;
use offload_model::detector_split::DetectorSplit;
use offload_model::detector_split::manifest::FORMAT as SPLIT_FORMAT;
use offload_model::manifest::{model_files, read_bounded};
use offload_transport::{FrameHandler, HandlerError, ReceivedFrame};

use crate::split_glue::{handle_codec_frame, model_id32, wire_messages};

/// Whether `dir` holds a split detector's codec (its `model.json` has the format
/// `offload-detector-split`), rather than a Fashion-MNIST split model. A folder without a
/// readable manifest is not one; loading it as a model then says what is wrong.
pub fn is_detector_split_dir(dir: &Path) -> bool {
    #[derive(serde::Deserialize)]
    struct Format {
        format: String,
    }
    read_bounded(&model_files(dir).0)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Format>(&bytes).ok())
        .is_some_and(|f| f.format == SPLIT_FORMAT)
}

/// One camera frame: interleaved 8-bit RGB, row-major.
#[derive(Debug, Clone)]
pub struct RgbFrame {
    /// The file it was read from.
    pub path: PathBuf,
    /// `width × height × 3` bytes.
    pub rgb: Vec<u8>,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
}

/// Why a folder of frames could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameFolderError {
    /// The folder could not be listed.
    #[error("listing frame folder {path}: {source}")]
    List {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A frame could not be decoded.
    #[error("decoding frame {path}: {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: image::ImageError,
    },
    /// The folder holds no PNG file.
    #[error("no .png frames in {path} (run scripts/install-detector.sh)")]
    Empty {
        /// The folder.
        path: PathBuf,
    },
}

/// The first `max` PNG frames of `dir` in file-name order (the install script numbers them in
/// video order), decoded to RGB.
pub fn load_frames(dir: &Path, max: usize) -> Result<Vec<RgbFrame>, FrameFolderError> {
    let list = |source| FrameFolderError::List {
        path: dir.to_owned(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(list)? {
        let path = entry.map_err(list)?.path();
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"))
        {
            paths.push(path);
        }
    }
    if paths.is_empty() {
        return Err(FrameFolderError::Empty {
            path: dir.to_owned(),
        });
    }
    paths.sort();
    paths.truncate(max);
    paths
        .into_iter()
        .map(|path| {
            let image = image::open(&path)
                .map_err(|source| FrameFolderError::Decode {
                    path: path.clone(),
                    source,
                })?
                .to_rgb8();
            let (width, height) = (image.width() as usize, image.height() as usize);
            Ok(RgbFrame {
                path,
                rgb: image.into_raw(),
                width,
                height,
            })
        })
        .collect()
}

/// Detections of a 1×1 frame (normalised boxes) as result records: best first, at most
/// [`MAX_DETECTIONS`], scores clamped to [0, 1] against rounding.
pub fn to_objects(detections: &[Detection]) -> Result<Vec<DetectedObject>, ModelFailure> {
    detections
        .iter()
        .take(MAX_DETECTIONS)
        .map(|d| {
            let class_id = u16::try_from(d.class_id)
                .map_err(|_| ModelFailure(format!("class id {} out of range", d.class_id)))?;
            Ok(DetectedObject {
                class_id,
                score: d.score.clamp(0.0, 1.0),
                x_min: d.x_min,
                y_min: d.y_min,
                x_max: d.x_max,
                y_max: d.y_max,
            })
        })
        .collect()
}

/// Result records (normalised boxes) as detections in pixels of a `width`×`height` frame.
pub fn to_detections(objects: &[DetectedObject], width: usize, height: usize) -> Vec<Detection> {
    let (w, h) = (width as f32, height as f32);
    objects
        .iter()
        .map(|d| Detection {
            class_id: usize::from(d.class_id),
            score: d.score,
            x_min: d.x_min * w,
            y_min: d.y_min * h,
            x_max: d.x_max * w,
            y_max: d.y_max * h,
        })
        .collect()
}

/// The device's half of the split detector: encoder + layered codec, and the local path (the
/// detector's own server half run on the uncompressed tensor).
#[derive(Debug, Clone)]
pub struct DetectorDevice {
    split: Arc<DetectorSplit>,
}

impl DetectorDevice {
    /// Wraps a loaded split detector.
    pub fn new(split: Arc<DetectorSplit>) -> Self {
        Self { split }
    }
}

impl DeviceModel for DetectorDevice {
    type Input = RgbFrame;
    type Features = Tensor;

    fn model_id(&self) -> u32 {
        model_id32(&self.split.model_id())
    }

    fn encode(&self, frame: &RgbFrame) -> Result<DeviceFrame<Tensor>, ModelFailure> {
        let fail =
            |e: &dyn std::fmt::Display| ModelFailure(format!("{}: {e}", frame.path.display()));
        let features = self
            .split
            .encode_features(&frame.rgb, frame.width, frame.height)
            .map_err(|e| fail(&e))?;
        // The codec header's frame id is not used by the transport (which carries its own).
        let encoded = self
            .split
            .code_features(&features, 0)
            .map_err(|e| fail(&e))?;
        let (header, layers) = wire_messages(&encoded)?;
        Ok(DeviceFrame {
            features,
            header,
            layers,
        })
    }

    fn finish_locally(&self, features: Tensor) -> Result<TaskResult, ModelFailure> {
        let detections = self
            .split
            .local_from_features(&features, 1, 1)
            .map_err(|e| ModelFailure(e.to_string()))?;
        Ok(TaskResult::Detections(to_objects(&detections)?))
    }
}

/// The server's half: validates and decodes the received prefix of layers, finishes the
/// detector and replies with a [`TaskResult::Detections`].
#[derive(Debug, Clone)]
pub struct DetectorHandler {
    split: Arc<DetectorSplit>,
}

impl DetectorHandler {
    /// Wraps a loaded split detector.
    pub fn new(split: Arc<DetectorSplit>) -> Self {
        Self { split }
    }
}

impl FrameHandler for DetectorHandler {
    fn handle(&self, frame: &ReceivedFrame) -> Result<Vec<u8>, HandlerError> {
        handle_codec_frame(
            frame,
            self.split.spec(),
            |header, records| self.split.server_decode(header, records, 1, 1),
            |detections| to_objects(&detections).map(TaskResult::Detections),
        )
    }
}
