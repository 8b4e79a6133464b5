//! Whole frames (header + a prefix of layer records in one buffer) and the message-by-message
//! reader the transport uses when the header and each record arrive separately.

use super::header::{FrameHeader, read_header, write_header};
use super::record::{LayerRecord, read_layer_at, write_layer};
use super::spec::ModelSpec;
use crate::CodecError;

/// A decoded frame: its header and the layers received (always layers `0 .. k`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The validated header.
    pub header: FrameHeader,
    /// Layer records `0 .. k`, in order.
    pub layers: Vec<LayerRecord>,
}

/// Writes `header` followed by `records`, which must be layers `0 .. k` in order
/// (`k <= header.num_layers()`).
pub fn encode_frame(header: &FrameHeader, records: &[LayerRecord]) -> Result<Vec<u8>, CodecError> {
    if records.len() > header.num_layers() {
        return Err(CodecError::Unrepresentable {
            field: "layer count",
            value: records.len() as u64,
            max: header.num_layers() as u64,
        });
    }
    let mut out = Vec::with_capacity(
        super::header::HEADER_BYTES + records.iter().map(LayerRecord::wire_len).sum::<usize>(),
    );
    write_header(header, &mut out)?;
    for (position, record) in records.iter().enumerate() {
        if usize::from(record.index) != position {
            return Err(CodecError::LayerOrder {
                offset: out.len(),
                found: record.index,
                expected: position as u16,
            });
        }
        write_layer(header, record, &mut out)?;
    }
    Ok(out)
}

/// Reads a frame written by [`encode_frame`] (or any header followed by records `0 .. k`),
/// validating it against the decoder's model `spec`. The buffer must end exactly after a
/// record; a truncated last record is an error, not a shorter prefix (cut at record
/// boundaries to drop layers).
pub fn decode_frame(bytes: &[u8], spec: &ModelSpec) -> Result<Frame, CodecError> {
    let (header, mut pos) = read_header(bytes, spec)?;
    let mut layers = Vec::new();
    while pos < bytes.len() {
        if layers.len() == header.num_layers() {
            return Err(CodecError::TrailingBytes {
                offset: pos,
                count: bytes.len() - pos,
            });
        }
        let (record, len) = read_layer_at(&bytes[pos..], pos, &header)?;
        if usize::from(record.index) != layers.len() {
            return Err(CodecError::LayerOrder {
                offset: pos,
                found: record.index,
                expected: layers.len() as u16,
            });
        }
        layers.push(record);
        pos += len;
    }
    Ok(Frame { header, layers })
}

/// Reads a frame that arrives as separate messages: one header message, then one message per
/// layer record, in layer order. Each message must be exactly one header or one record.
#[derive(Debug, Clone)]
pub struct FrameReader {
    header: FrameHeader,
    next_layer: u16,
}

impl FrameReader {
    /// Starts a frame from its header message, validated against `spec`.
    pub fn new(header_message: &[u8], spec: &ModelSpec) -> Result<Self, CodecError> {
        let (header, len) = read_header(header_message, spec)?;
        if len != header_message.len() {
            return Err(CodecError::TrailingBytes {
                offset: len,
                count: header_message.len() - len,
            });
        }
        Ok(FrameReader {
            header,
            next_layer: 0,
        })
    }

    /// The frame's header.
    pub fn header(&self) -> &FrameHeader {
        &self.header
    }

    /// Number of layer records accepted so far.
    pub fn layers_read(&self) -> usize {
        usize::from(self.next_layer)
    }

    /// Reads the next layer record message; it must be layer [`layers_read`](Self::layers_read).
    pub fn read_layer(&mut self, message: &[u8]) -> Result<LayerRecord, CodecError> {
        let (record, len) = read_layer_at(message, 0, &self.header)?;
        if record.index != self.next_layer {
            return Err(CodecError::LayerOrder {
                offset: 0,
                found: record.index,
                expected: self.next_layer,
            });
        }
        if len != message.len() {
            return Err(CodecError::TrailingBytes {
                offset: len,
                count: message.len() - len,
            });
        }
        self.next_layer += 1;
        Ok(record)
    }
}
