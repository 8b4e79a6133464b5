//! The one error type of the crate.

use crate::container::ModelId;

/// Which of a layer's two entropy-coded streams an error refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// The hyper-latent `z`, coded with the [`FactorizedPrior`](crate::FactorizedPrior).
    Z,
    /// The latent `y`, coded with the [`GaussianConditional`](crate::GaussianConditional).
    Y,
}

impl std::fmt::Display for StreamKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StreamKind::Z => "z",
            StreamKind::Y => "y",
        })
    }
}

/// Everything that can go wrong while building entropy models, coding symbols or parsing the
/// container. Errors on untrusted bytes name the byte offset (from the start of the buffer
/// handed to the reader), the field and, where there is one, the layer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CodecError {
    /// The scale table handed to [`GaussianConditional::new`](crate::GaussianConditional::new)
    /// is unusable.
    #[error("invalid scale table: {reason}")]
    InvalidScaleTable {
        /// What is wrong with it.
        reason: String,
    },
    /// A learnt pmf handed to [`FactorizedPrior::from_pmfs`](crate::FactorizedPrior::from_pmfs)
    /// is unusable.
    #[error("invalid pmf for channel {channel}: {reason}")]
    InvalidPmf {
        /// The channel whose pmf was rejected.
        channel: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A quantised table (e.g. deserialised from a model manifest) violates an invariant.
    #[error("invalid quantised table: {reason}")]
    InvalidTable {
        /// What is wrong with it.
        reason: String,
    },
    /// Two arrays that must agree in length do not.
    #[error("length mismatch: {what} has {actual} elements, expected {expected}")]
    LengthMismatch {
        /// Which array.
        what: &'static str,
        /// The length required by the other arguments.
        expected: usize,
        /// The length found.
        actual: usize,
    },
    /// A scale index names no table.
    #[error(
        "scale index {index} at symbol position {position} is out of range (table has {table_len} scales)"
    )]
    ScaleIndexOutOfRange {
        /// Position of the symbol in the slice.
        position: usize,
        /// The offending index.
        index: u16,
        /// Number of scales in the table.
        table_len: usize,
    },
    /// An entropy-coded stream does not decode to a valid sequence of the expected length.
    #[error("corrupt entropy-coded stream at symbol position {position}: {reason}")]
    CorruptStream {
        /// Symbol position at which the problem was found (the symbol count for end-of-stream
        /// checks).
        position: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// A stream error inside a layer record, with the layer and stream attached.
    #[error("layer {layer}, stream {stream}: {source}")]
    InLayer {
        /// The layer index.
        layer: u16,
        /// The stream (`z` or `y`).
        stream: StreamKind,
        /// The underlying error.
        #[source]
        source: Box<CodecError>,
    },
    /// The buffer ends before a field does.
    #[error(
        "truncated: field `{field}` at byte offset {offset} needs {needed} bytes, {available} available"
    )]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Byte offset of the field.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the buffer from `offset`.
        available: usize,
    },
    /// The buffer does not start with the frame magic.
    #[error("bad magic at byte offset {offset}: found {found:02x?}")]
    BadMagic {
        /// Byte offset of the magic.
        offset: usize,
        /// The four bytes found.
        found: [u8; 4],
    },
    /// The frame was written by an incompatible version of the container.
    #[error("unsupported container version {found} (this decoder reads version {supported})")]
    UnsupportedVersion {
        /// Version in the stream.
        found: u16,
        /// Version this crate reads and writes.
        supported: u16,
    },
    /// A field holds a value other than the one the expected model (or the format) requires.
    #[error("field `{field}` at byte offset {offset} is {found}, expected {expected}")]
    FieldMismatch {
        /// The field.
        field: &'static str,
        /// Byte offset of the field.
        offset: usize,
        /// Value in the stream.
        found: u64,
        /// Value required.
        expected: u64,
    },
    /// The frame was coded by a different model than the decoder's.
    #[error("foreign model: stream has model id {found}, decoder expects {expected}")]
    ForeignModel {
        /// Model id in the stream.
        found: ModelId,
        /// Model id of the decoder's model.
        expected: ModelId,
    },
    /// A length field exceeds what the expected model can ever produce.
    #[error(
        "layer {layer}: field `{field}` at byte offset {offset} is {found} bytes, more than the limit of {limit}"
    )]
    LengthLimit {
        /// The layer.
        layer: u16,
        /// The length field.
        field: &'static str,
        /// Byte offset of the field.
        offset: usize,
        /// Length in the stream.
        found: u64,
        /// Largest legal length for this layer's shape.
        limit: u64,
    },
    /// A CRC32 does not match the bytes it covers.
    #[error(
        "checksum mismatch in {what} (layer {layer:?}) at byte offset {offset}: stored {stored:08x}, computed {computed:08x}"
    )]
    Checksum {
        /// `"frame header"` or `"layer record"`.
        what: &'static str,
        /// The layer, for layer records.
        layer: Option<u16>,
        /// Byte offset of the checksum field.
        offset: usize,
        /// Checksum in the stream.
        stored: u32,
        /// Checksum of the bytes received.
        computed: u32,
    },
    /// A layer record arrived out of order (layers form a prefix: 0, 1, 2, ...).
    #[error("layer record at byte offset {offset} has index {found}, expected {expected}")]
    LayerOrder {
        /// Byte offset of the index field.
        offset: usize,
        /// Index in the stream.
        found: u16,
        /// The next index in sequence.
        expected: u16,
    },
    /// Bytes remain after the last layer record a frame can hold.
    #[error("{count} unexpected trailing bytes at byte offset {offset}")]
    TrailingBytes {
        /// Byte offset of the first extra byte.
        offset: usize,
        /// How many bytes remain.
        count: usize,
    },
    /// A value cannot be represented in the container (e.g. a dimension above 65535).
    #[error("cannot write `{field}`: {value} does not fit (maximum {max})")]
    Unrepresentable {
        /// The field.
        field: &'static str,
        /// The value.
        value: u64,
        /// Largest representable value.
        max: u64,
    },
}

impl CodecError {
    /// Wraps a stream error with the layer and stream it happened in.
    pub(crate) fn in_layer(self, layer: u16, stream: StreamKind) -> Self {
        CodecError::InLayer {
            layer,
            stream,
            source: Box::new(self),
        }
    }
}
