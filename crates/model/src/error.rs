//! Errors of loading and running a saved model.

use std::path::PathBuf;

/// Why a model could not be loaded, or a frame not encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A model file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The manifest is not a valid model manifest.
    #[error("{path}: invalid manifest: {message}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The weights file does not match the manifest or the architecture.
    #[error("{path}: invalid weights: {message}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What is wrong (hash mismatch, missing or misshapen tensor).
        message: String,
    },
    /// An image of the wrong size was given.
    #[error("image has {found} bytes, expected {expected} (28×28 grey)")]
    ImageSize {
        /// Bytes given.
        found: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// A frame does not fit this model (wrong id, no layers, too many layers).
    #[error("frame does not fit this model: {0}")]
    Frame(String),
    /// The entropy coder rejected a stream.
    #[error(transparent)]
    Codec(#[from] offload_codec::CodecError),
    /// The training or test data could not be read.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// The detector could not be loaded or run.
    #[error(transparent)]
    Detector(#[from] crate::detector::DetectorError),
    /// A tensor operation failed.
    #[error("tensor computation failed: {0}")]
    Tensor(#[from] candle_core::Error),
}
