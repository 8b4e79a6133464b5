//! Why a detector could not be loaded or run.

use std::path::PathBuf;

/// Errors of loading the converted SSD-MobileNetV2 or running it on a frame.
#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    /// A model file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The weights file is not a readable safetensors file.
    #[error("{path}: not a safetensors file: {message}")]
    Safetensors {
        /// The weights file.
        path: PathBuf,
        /// What the safetensors reader said.
        message: String,
    },
    /// A tensor the architecture needs is absent (a different or truncated model).
    #[error("{path}: tensor `{name}` is missing")]
    MissingTensor {
        /// The weights file.
        path: PathBuf,
        /// The TF node name of the tensor.
        name: String,
    },
    /// A tensor has another shape than the architecture expects (TF layout).
    #[error("{path}: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    TensorShape {
        /// The weights file.
        path: PathBuf,
        /// The TF node name of the tensor.
        name: String,
        /// Shape in the file.
        found: Vec<usize>,
        /// Shape the architecture needs.
        expected: Vec<usize>,
    },
    /// A tensor is stored in another dtype than f32.
    #[error("{path}: tensor `{name}` is {found}, expected F32")]
    TensorDtype {
        /// The weights file.
        path: PathBuf,
        /// The TF node name of the tensor.
        name: String,
        /// Dtype in the file.
        found: String,
    },
    /// A tensor holds a value no real model has (NaN, infinity, negative variance).
    #[error("{path}: tensor `{name}`: {message}")]
    TensorValue {
        /// The weights file.
        path: PathBuf,
        /// The TF node name of the tensor.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// An RGB frame whose byte count does not match its stated size.
    #[error("image of {width}×{height} RGB needs {expected} bytes, got {found}")]
    ImageSize {
        /// Stated width in pixels.
        width: usize,
        /// Stated height in pixels.
        height: usize,
        /// Bytes given.
        found: usize,
        /// Bytes `width·height·3`.
        expected: usize,
    },
    /// A tensor handed to the split API has the wrong shape.
    #[error("{what}: shape {found:?}, expected {expected:?}")]
    InputShape {
        /// Which input (image tensor or split features).
        what: &'static str,
        /// Shape given.
        found: Vec<usize>,
        /// Shape expected.
        expected: Vec<usize>,
    },
    /// A tensor operation failed.
    #[error("tensor computation failed: {0}")]
    Tensor(#[from] candle_core::Error),
}
