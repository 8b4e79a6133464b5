//! The frame header: magic, version, model id, frame id and the latent shapes of every layer.
//! Byte layout in `docs/bitstream.md`.

use super::reader::Reader;
use super::spec::{LayerSpec, ModelId, ModelSpec};
use crate::CodecError;

/// The four bytes every frame starts with.
pub const MAGIC: [u8; 4] = *b"OFFC";

/// The container version this crate writes and reads.
pub const VERSION: u16 = 2;

/// Bytes of the header before the per-layer shapes.
pub const HEADER_FIXED_BYTES: usize = 36;

/// Bytes per layer in the header (six `u16` dimensions).
pub const HEADER_BYTES_PER_LAYER: usize = 12;

/// Bytes of the header checksum.
const CRC_BYTES: usize = 4;

/// Most layers a frame can declare (the `num_layers` field is a `u16`).
pub const MAX_LAYERS: usize = u16::MAX as usize;

/// Largest dimension of a shape (dimensions are `u16`).
pub const MAX_DIMENSION: usize = u16::MAX as usize;

/// Size in bytes of the header of a model with `layers` layers.
pub const fn header_len(layers: usize) -> usize {
    HEADER_FIXED_BYTES + HEADER_BYTES_PER_LAYER * layers + CRC_BYTES
}

/// The decoded (or to-be-written) frame header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameHeader {
    /// The model that coded the frame.
    pub model_id: ModelId,
    /// The frame's sequence number, chosen by the sender.
    pub frame_id: u64,
    /// Shapes of all layers of the model (not just the ones sent).
    pub layers: Vec<LayerSpec>,
}

impl FrameHeader {
    /// The header of frame `frame_id` coded with the model `spec`.
    pub fn new(spec: &ModelSpec, frame_id: u64) -> Self {
        FrameHeader {
            model_id: spec.model_id,
            frame_id,
            layers: spec.layers.clone(),
        }
    }

    /// Number of layers of the model.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }
}

fn dim(value: usize, field: &'static str) -> Result<[u8; 2], CodecError> {
    u16::try_from(value)
        .map(u16::to_le_bytes)
        .map_err(|_| CodecError::Unrepresentable {
            field,
            value: value as u64,
            max: MAX_DIMENSION as u64,
        })
}

/// Appends the header to `out`. Fails if the model has more than [`MAX_LAYERS`] layers or a
/// dimension above [`MAX_DIMENSION`] (nothing is appended then).
pub fn write_header(header: &FrameHeader, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let n = header.layers.len();
    let n16 = u16::try_from(n).map_err(|_| CodecError::Unrepresentable {
        field: "num_layers",
        value: n as u64,
        max: MAX_LAYERS as u64,
    })?;
    let mut buf = Vec::with_capacity(header_len(n));
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&VERSION.to_le_bytes());
    buf.extend_from_slice(&0u16.to_le_bytes()); // flags
    buf.extend_from_slice(&header.model_id.0);
    buf.extend_from_slice(&header.frame_id.to_le_bytes());
    buf.extend_from_slice(&n16.to_le_bytes());
    buf.extend_from_slice(&0u16.to_le_bytes()); // reserved
    for layer in &header.layers {
        buf.extend_from_slice(&dim(layer.y.channels, "y.channels")?);
        buf.extend_from_slice(&dim(layer.y.height, "y.height")?);
        buf.extend_from_slice(&dim(layer.y.width, "y.width")?);
        buf.extend_from_slice(&dim(layer.z.channels, "z.channels")?);
        buf.extend_from_slice(&dim(layer.z.height, "z.height")?);
        buf.extend_from_slice(&dim(layer.z.width, "z.width")?);
    }
    let crc = crc32fast::hash(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&buf);
    Ok(())
}

fn expect_field(
    found: u64,
    expected: u64,
    field: &'static str,
    offset: usize,
) -> Result<(), CodecError> {
    if found == expected {
        Ok(())
    } else {
        Err(CodecError::FieldMismatch {
            field,
            offset,
            found,
            expected,
        })
    }
}

/// Reads and validates a header at the start of `bytes` against the decoder's model `spec`;
/// returns it and its length in bytes. Offsets in errors count from the start of `bytes`.
///
/// Checks, in order: magic, version, layer count (a foreign model id is reported as such),
/// presence of all header bytes, the CRC32, zero flags/reserved fields, the model id and every
/// shape. Nothing is allocated from stream values: the header's layer list is a copy of
/// `spec`'s, made once every shape has matched.
pub fn read_header(bytes: &[u8], spec: &ModelSpec) -> Result<(FrameHeader, usize), CodecError> {
    let mut r = Reader::new(bytes, 0);
    let magic: [u8; 4] = r.array("magic")?;
    if magic != MAGIC {
        return Err(CodecError::BadMagic {
            offset: 0,
            found: magic,
        });
    }
    let version = r.u16("version")?;
    if version != VERSION {
        return Err(CodecError::UnsupportedVersion {
            found: version,
            supported: VERSION,
        });
    }
    let flags_offset = r.offset();
    let flags = r.u16("flags")?;
    let model_id = ModelId(r.array("model_id")?);
    let frame_id = r.u64("frame_id")?;
    let layers_offset = r.offset();
    let num_layers = r.u16("num_layers")?;
    if usize::from(num_layers) != spec.layers.len() {
        if model_id != spec.model_id {
            return Err(CodecError::ForeignModel {
                found: model_id,
                expected: spec.model_id,
            });
        }
        return Err(CodecError::FieldMismatch {
            field: "num_layers",
            offset: layers_offset,
            found: u64::from(num_layers),
            expected: spec.layers.len() as u64,
        });
    }
    let len = header_len(spec.layers.len());
    r.require(len - r.pos(), "header (shapes and checksum)")?;
    let crc_offset = len - CRC_BYTES;
    let computed = crc32fast::hash(&bytes[..crc_offset]);
    let stored = u32::from_le_bytes([
        bytes[crc_offset],
        bytes[crc_offset + 1],
        bytes[crc_offset + 2],
        bytes[crc_offset + 3],
    ]);
    if stored != computed {
        return Err(CodecError::Checksum {
            what: "frame header",
            layer: None,
            offset: crc_offset,
            stored,
            computed,
        });
    }
    expect_field(u64::from(flags), 0, "flags", flags_offset)?;
    let reserved_offset = r.offset();
    expect_field(
        u64::from(r.u16("reserved")?),
        0,
        "reserved",
        reserved_offset,
    )?;
    if model_id != spec.model_id {
        return Err(CodecError::ForeignModel {
            found: model_id,
            expected: spec.model_id,
        });
    }
    for layer in &spec.layers {
        for (field, expected) in [
            ("y.channels", layer.y.channels),
            ("y.height", layer.y.height),
            ("y.width", layer.y.width),
            ("z.channels", layer.z.channels),
            ("z.height", layer.z.height),
            ("z.width", layer.z.width),
        ] {
            let offset = r.offset();
            expect_field(u64::from(r.u16(field)?), expected as u64, field, offset)?;
        }
    }
    Ok((
        FrameHeader {
            model_id,
            frame_id,
            layers: spec.layers.clone(),
        },
        len,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::Shape;

    /// The byte layout of `docs/bitstream.md`, field by field.
    #[test]
    fn header_layout_matches_the_spec() {
        let spec = ModelSpec {
            model_id: ModelId([0xAB; 16]),
            layers: vec![LayerSpec {
                y: Shape::new(8, 16, 12),
                z: Shape::new(8, 4, 3),
            }],
        };
        let header = FrameHeader::new(&spec, 0x0102_0304_0506_0708);
        let mut bytes = Vec::new();
        write_header(&header, &mut bytes).unwrap();
        assert_eq!(bytes.len(), header_len(1));
        assert_eq!(bytes.len(), 52);
        assert_eq!(&bytes[0..4], b"OFFC");
        assert_eq!(&bytes[4..6], &[2, 0]);
        assert_eq!(&bytes[6..8], &[0, 0]);
        assert_eq!(&bytes[8..24], &[0xAB; 16]);
        assert_eq!(&bytes[24..32], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&bytes[32..34], &[1, 0]);
        assert_eq!(&bytes[34..36], &[0, 0]);
        assert_eq!(&bytes[36..48], &[8, 0, 16, 0, 12, 0, 8, 0, 4, 0, 3, 0]);
        assert_eq!(&bytes[48..52], &crc32fast::hash(&bytes[..48]).to_le_bytes());
        let (read, len) = read_header(&bytes, &spec).unwrap();
        assert_eq!((read, len), (header, 52));
    }

    #[test]
    fn version_is_checked_before_anything_else() {
        let spec = ModelSpec {
            model_id: ModelId([0; 16]),
            layers: vec![],
        };
        let mut bytes = Vec::new();
        write_header(&FrameHeader::new(&spec, 1), &mut bytes).unwrap();
        // Version 1 (the two-stream ANS records) is no longer read.
        for old_or_future in [1u8, 3] {
            bytes[4] = old_or_future;
            assert_eq!(
                read_header(&bytes[..6], &spec),
                Err(CodecError::UnsupportedVersion {
                    found: u16::from(old_or_future),
                    supported: 2
                })
            );
        }
    }
}
