//! The JSON manifest written next to the converted weights: where they came from, what they hold,
//! and the part of the graph that uses them, so a hand-built model can be checked against it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Identifies the manifest format; bumped when a field changes meaning.
pub const MANIFEST_FORMAT: &str = "offload-tf-import/1";

/// The layout contract between the converter and the models that load its output.
pub const LAYOUT: &str = "TensorFlow's own, unchanged: Conv2D weights [kh, kw, in, out] (HWIO), \
DepthwiseConv2dNative weights [kh, kw, in, multiplier], biases and BatchNorm vectors [channels], \
scalars []; row-major little-endian f32";

/// The manifest of one conversion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TfManifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// The frozen graph that was converted.
    pub source: FileInfo,
    /// The safetensors file written.
    pub weights: FileInfo,
    /// Memory layout of the tensors (see [`LAYOUT`]).
    pub layout: String,
    /// Number of tensors in the safetensors file.
    pub tensor_count: usize,
    /// Total number of f32 values in the safetensors file.
    pub parameter_count: u64,
    /// Every tensor written, in the graph's node order.
    pub tensors: Vec<TensorEntry>,
    /// Nodes the listed subgraph was traced back from.
    pub outputs: Vec<String>,
    /// Nodes where the trace stopped (listed, their inputs not followed).
    pub stop_at: Vec<String>,
    /// The non-constant nodes that the outputs depend on, inputs before their readers.
    pub nodes: Vec<NodeEntry>,
    /// Non-float constants that listed nodes read (reshape shapes, concat axes, …) with values.
    pub constants: Vec<ConstEntry>,
    /// How many nodes of each op the whole graph has (including the parts not listed).
    pub op_counts: BTreeMap<String, usize>,
}

/// A file and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// File name (no directory).
    pub file: String,
    /// SHA-256 of the file's bytes, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// One converted tensor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorEntry {
    /// The TensorFlow `Const` node name, unchanged.
    pub name: String,
    /// Its shape in TensorFlow's order.
    pub shape: Vec<usize>,
}

/// One graph node as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeEntry {
    /// Node name.
    pub name: String,
    /// TensorFlow op type.
    pub op: String,
    /// Inputs as the graph writes them (`node`, `node:1`, `^control`).
    pub inputs: Vec<String>,
    /// Attributes other than constant tensors, e.g. `strides`, `padding`, `dilations`,
    /// `data_format`, `align_corners`.
    pub attrs: BTreeMap<String, serde_json::Value>,
}

/// A small non-float constant with its values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConstEntry {
    /// `Const` node name.
    pub name: String,
    /// TensorFlow data type name, e.g. `DT_INT32`.
    pub dtype: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Values, row-major; absent when the type is not an integer or boolean type, or the
    /// tensor is larger than the manifest lists.
    pub values: Option<Vec<i64>>,
}
