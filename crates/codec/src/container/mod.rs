//! The layered container: a versioned frame header, then one independently decodable record per
//! layer. Any prefix of layers decodes; each piece can travel as its own network message.
//! The byte-exact layout, the validation rules and the versioning rules are in
//! `docs/bitstream.md`.

mod frame;
mod header;
mod reader;
mod record;
mod spec;

pub use frame::{Frame, FrameReader, decode_frame, encode_frame};
pub use header::{
    FrameHeader, HEADER_BYTES, MAGIC, MAX_LAYERS, VERSION, read_header, write_header,
};
pub use record::{LayerRecord, PendingY, RECORD_HEADER_BYTES, read_layer, write_layer};
pub use spec::{LayerSpec, ModelId, ModelSpec, Shape};
