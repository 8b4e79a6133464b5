//! The few TensorFlow GraphDef messages a frozen inference graph needs, as hand-written prost
//! messages (no protoc, no generated code).
//!
//! Field numbers follow TensorFlow's `graph.proto`, `node_def.proto`, `attr_value.proto`,
//! `tensor.proto` and `tensor_shape.proto`. Fields not declared here (versions, function
//! libraries, devices' debug info, …) are skipped by prost as unknown fields. prost refuses a
//! length prefix longer than the bytes that remain, so decoding never allocates more than the
//! input's size.

use std::collections::BTreeMap;

/// TensorFlow's `DataType` values that the converter distinguishes.
pub mod data_type {
    /// `DT_FLOAT`: 32-bit IEEE float.
    pub const FLOAT: i32 = 1;
    /// `DT_DOUBLE`.
    pub const DOUBLE: i32 = 2;
    /// `DT_INT32`.
    pub const INT32: i32 = 3;
    /// `DT_UINT8`.
    pub const UINT8: i32 = 4;
    /// `DT_STRING`.
    pub const STRING: i32 = 7;
    /// `DT_INT64`.
    pub const INT64: i32 = 9;
    /// `DT_BOOL`.
    pub const BOOL: i32 = 10;

    /// TensorFlow's name of a data type, for messages and the manifest.
    pub fn name(dtype: i32) -> String {
        match dtype {
            FLOAT => "DT_FLOAT".into(),
            DOUBLE => "DT_DOUBLE".into(),
            INT32 => "DT_INT32".into(),
            UINT8 => "DT_UINT8".into(),
            STRING => "DT_STRING".into(),
            INT64 => "DT_INT64".into(),
            BOOL => "DT_BOOL".into(),
            other => format!("DataType({other})"),
        }
    }
}

/// `tensorflow.GraphDef`: the nodes of a graph.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphDef {
    /// All nodes, in the order the file lists them.
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeDef>,
}

/// `tensorflow.NodeDef`: one operation and its attributes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeDef {
    /// Unique node name, e.g. `FeatureExtractor/MobilenetV2/Conv/Conv2D`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Operation type, e.g. `Conv2D`, `Const`.
    #[prost(string, tag = "2")]
    pub op: String,
    /// Inputs as `node`, `node:output` or `^node` (control dependency).
    #[prost(string, repeated, tag = "3")]
    pub input: Vec<String>,
    /// Attributes by name (`strides`, `padding`, `value`, …).
    #[prost(btree_map = "string, message", tag = "5")]
    pub attr: BTreeMap<String, AttrValue>,
}

/// `tensorflow.AttrValue`: one attribute value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttrValue {
    /// The value; `None` when the attribute holds a kind not declared here (e.g. a function).
    #[prost(oneof = "attr_value::Value", tags = "1, 2, 3, 4, 5, 6, 7, 8, 9")]
    pub value: Option<attr_value::Value>,
}

/// The variants of [`AttrValue`].
pub mod attr_value {
    /// `AttrValue.value`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        /// `list`: a list of values of one kind.
        #[prost(message, tag = "1")]
        List(super::ListValue),
        /// `s`: bytes, usually an ASCII string such as `SAME` or `NHWC`.
        #[prost(bytes = "vec", tag = "2")]
        S(Vec<u8>),
        /// `i`: an integer.
        #[prost(int64, tag = "3")]
        I(i64),
        /// `f`: a float.
        #[prost(float, tag = "4")]
        F(f32),
        /// `b`: a boolean.
        #[prost(bool, tag = "5")]
        B(bool),
        /// `type`: a `DataType` value (see [`super::data_type`]).
        #[prost(int32, tag = "6")]
        Type(i32),
        /// `shape`: a tensor shape.
        #[prost(message, tag = "7")]
        Shape(super::TensorShapeProto),
        /// `tensor`: a constant tensor.
        #[prost(message, tag = "8")]
        Tensor(super::TensorProto),
        /// `placeholder`: the name of a function attribute placeholder.
        #[prost(string, tag = "9")]
        Placeholder(String),
    }
}

/// `tensorflow.AttrValue.ListValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListValue {
    /// Byte strings.
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub s: Vec<Vec<u8>>,
    /// Integers (e.g. `strides`, `dilations`, `ksize`).
    #[prost(int64, repeated, tag = "3")]
    pub i: Vec<i64>,
    /// Floats.
    #[prost(float, repeated, tag = "4")]
    pub f: Vec<f32>,
    /// Booleans.
    #[prost(bool, repeated, tag = "5")]
    pub b: Vec<bool>,
    /// Data types.
    #[prost(int32, repeated, tag = "6")]
    pub r#type: Vec<i32>,
    /// Shapes.
    #[prost(message, repeated, tag = "7")]
    pub shape: Vec<TensorShapeProto>,
}

/// `tensorflow.TensorShapeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// Dimensions, outermost first; a size of -1 means unknown.
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<tensor_shape_proto::Dim>,
    /// The rank itself is unknown.
    #[prost(bool, tag = "3")]
    pub unknown_rank: bool,
}

/// The nested messages of [`TensorShapeProto`].
pub mod tensor_shape_proto {
    /// `TensorShapeProto.Dim`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dim {
        /// Size of the dimension, -1 if unknown.
        #[prost(int64, tag = "1")]
        pub size: i64,
    }
}

/// `tensorflow.TensorProto`: a constant tensor, either as raw little-endian `tensor_content` or
/// as typed value lists (a single value is broadcast to the whole shape).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// Element type (see [`data_type`]).
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    /// Shape of the tensor.
    #[prost(message, optional, tag = "2")]
    pub tensor_shape: Option<TensorShapeProto>,
    /// Raw bytes of all elements, little-endian, row-major.
    #[prost(bytes = "vec", tag = "4")]
    pub tensor_content: Vec<u8>,
    /// `DT_FLOAT` values.
    #[prost(float, repeated, tag = "5")]
    pub float_val: Vec<f32>,
    /// `DT_DOUBLE` values.
    #[prost(double, repeated, tag = "6")]
    pub double_val: Vec<f64>,
    /// `DT_INT32`, `DT_UINT8`, `DT_INT16`, `DT_INT8` values.
    #[prost(int32, repeated, tag = "7")]
    pub int_val: Vec<i32>,
    /// `DT_STRING` values.
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub string_val: Vec<Vec<u8>>,
    /// `DT_INT64` values.
    #[prost(int64, repeated, tag = "10")]
    pub int64_val: Vec<i64>,
    /// `DT_BOOL` values.
    #[prost(bool, repeated, tag = "11")]
    pub bool_val: Vec<bool>,
}
