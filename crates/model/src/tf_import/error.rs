//! Why a frozen TensorFlow graph could not be converted.

use std::path::PathBuf;

/// Why a frozen TensorFlow graph could not be read or converted.
#[derive(Debug, thiserror::Error)]
pub enum TfImportError {
    /// A file could not be read, written or created.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is larger than the converter accepts.
    #[error("{path}: {size} bytes, more than the {limit} bytes a graph may have")]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The largest size accepted, in bytes.
        limit: u64,
    },
    /// The bytes are not a valid `GraphDef` protobuf (truncated, garbage, wrong wire type).
    #[error("{path}: not a valid TensorFlow GraphDef ({size} bytes): {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: usize,
        /// What prost found wrong, with the message/field path it was decoding.
        source: prost::DecodeError,
    },
    /// The graph decoded but holds no node at all.
    #[error("{path}: the graph has no nodes")]
    EmptyGraph {
        /// The file.
        path: PathBuf,
    },
    /// Two nodes share a name.
    #[error("{path}: node name {name:?} appears more than once")]
    DuplicateNode {
        /// The file.
        path: PathBuf,
        /// The repeated name.
        name: String,
    },
    /// A node's input names a node the graph does not have (typically a graph cut short at a
    /// node boundary).
    #[error("{path}: node {node:?} (#{index}) reads {input:?}, which is not in the graph")]
    DanglingInput {
        /// The file.
        path: PathBuf,
        /// The node that reads the input.
        node: String,
        /// Its position in the file's node list.
        index: usize,
        /// The missing input as written in the node.
        input: String,
    },
    /// A node the caller requires is absent.
    #[error("{path}: required node {name:?} is not in the graph")]
    MissingNode {
        /// The file.
        path: PathBuf,
        /// The node's name.
        name: String,
    },
    /// A `Const` node's tensor is malformed: no value, a bad shape, or contents that do not
    /// match the shape.
    #[error("{path}: constant {node:?}: {message}")]
    BadTensor {
        /// The file.
        path: PathBuf,
        /// The `Const` node.
        node: String,
        /// What is wrong.
        message: String,
    },
    /// The graph holds no float constant, so there are no weights to convert.
    #[error("{path}: the graph has no float constants (no weights)")]
    NoWeights {
        /// The file.
        path: PathBuf,
    },
    /// safetensors refused to serialise the weights.
    #[error("{path}: cannot write safetensors: {source}")]
    Safetensors {
        /// The output file.
        path: PathBuf,
        /// The cause.
        source: safetensors::SafeTensorError,
    },
    /// The manifest could not be serialised.
    #[error("{path}: cannot write manifest: {source}")]
    Manifest {
        /// The output file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
}
