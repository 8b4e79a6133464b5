//! The frame header: magic, version, model id, frame id and layer count. Byte layout in
//! `docs/bitstream.md`.
//!
//! Version 3 no longer carries the latent shapes: the model id pins the manifest, and the
//! manifest fixes every shape, so the decoder takes them from its own [`ModelSpec`].

use super::reader::Reader;
use super::spec::{LayerSpec, ModelId, ModelSpec};
use crate::CodecError;

/// The four bytes every frame starts with.
pub const MAGIC: [u8; 4] = *b"OFFC";

/// The container version this crate writes and reads.
pub const VERSION: u16 = 3;

/// Size in bytes of the frame header (whatever the number of layers).
pub const HEADER_BYTES: usize = 38;

/// Bytes of the header checksum.
const CRC_BYTES: usize = 4;

/// Most layers a frame can declare (the `num_layers` field is a `u16`).
pub const MAX_LAYERS: usize = u16::MAX as usize;

/// The decoded (or to-be-written) frame header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameHeader {
    /// The model that coded the frame.
    pub model_id: ModelId,
    /// The frame's sequence number, chosen by the sender.
    pub frame_id: u64,
    /// Shapes of all layers of the model (not just the ones sent). Not on the wire: a reader
    /// copies them from its own [`ModelSpec`] once the model id and layer count match.
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

/// Appends the header to `out`. Fails if the model has more than [`MAX_LAYERS`] layers
/// (nothing is appended then).
pub fn write_header(header: &FrameHeader, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let n = header.layers.len();
    let n16 = u16::try_from(n).map_err(|_| CodecError::Unrepresentable {
        field: "num_layers",
        value: n as u64,
        max: MAX_LAYERS as u64,
    })?;
    let start = out.len();
    out.reserve(HEADER_BYTES);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // flags
    out.extend_from_slice(&header.model_id.0);
    out.extend_from_slice(&header.frame_id.to_le_bytes());
    out.extend_from_slice(&n16.to_le_bytes());
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Reads and validates a header at the start of `bytes` against the decoder's model `spec`;
/// returns it and its length in bytes ([`HEADER_BYTES`]). Offsets in errors count from the
/// start of `bytes`.
///
/// Checks, in order: magic, version (before anything past offset 6 is read), presence of all
/// header bytes, the CRC32, zero flags, the model id, the layer count. Nothing is allocated
/// from stream values: the header's layer list is a copy of `spec`'s.
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
    r.require(HEADER_BYTES - r.pos(), "header")?;
    let crc_offset = HEADER_BYTES - CRC_BYTES;
    let computed = crc32fast::hash(&bytes[..crc_offset]);
    let flags_offset = r.offset();
    let flags = r.u16("flags")?;
    let model_id = ModelId(r.array("model_id")?);
    let frame_id = r.u64("frame_id")?;
    let layers_offset = r.offset();
    let num_layers = r.u16("num_layers")?;
    let stored = r.u32("header_crc")?;
    if stored != computed {
        return Err(CodecError::Checksum {
            what: "frame header",
            layer: None,
            offset: crc_offset,
            stored,
            computed,
        });
    }
    if flags != 0 {
        return Err(CodecError::FieldMismatch {
            field: "flags",
            offset: flags_offset,
            found: u64::from(flags),
            expected: 0,
        });
    }
    if model_id != spec.model_id {
        return Err(CodecError::ForeignModel {
            found: model_id,
            expected: spec.model_id,
        });
    }
    if usize::from(num_layers) != spec.layers.len() {
        return Err(CodecError::FieldMismatch {
            field: "num_layers",
            offset: layers_offset,
            found: u64::from(num_layers),
            expected: spec.layers.len() as u64,
        });
    }
    Ok((
        FrameHeader {
            model_id,
            frame_id,
            layers: spec.layers.clone(),
        },
        HEADER_BYTES,
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
            layers: vec![
                LayerSpec {
                    y: Shape::new(8, 16, 12),
                    z: Shape::new(8, 4, 3),
                };
                3
            ],
        };
        let header = FrameHeader::new(&spec, 0x0102_0304_0506_0708);
        let mut bytes = vec![0xEE]; // appended after what `out` already holds
        write_header(&header, &mut bytes).unwrap();
        let bytes = &bytes[1..];
        assert_eq!(bytes.len(), HEADER_BYTES);
        assert_eq!(bytes.len(), 38);
        assert_eq!(&bytes[0..4], b"OFFC");
        assert_eq!(&bytes[4..6], &[3, 0]);
        assert_eq!(&bytes[6..8], &[0, 0]);
        assert_eq!(&bytes[8..24], &[0xAB; 16]);
        assert_eq!(&bytes[24..32], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&bytes[32..34], &[3, 0]);
        assert_eq!(&bytes[34..38], &crc32fast::hash(&bytes[..34]).to_le_bytes());
        let (read, len) = read_header(bytes, &spec).unwrap();
        assert_eq!((read, len), (header, 38));
    }

    #[test]
    fn version_is_checked_before_anything_else() {
        let spec = ModelSpec {
            model_id: ModelId([0; 16]),
            layers: vec![],
        };
        let mut bytes = Vec::new();
        write_header(&FrameHeader::new(&spec, 1), &mut bytes).unwrap();
        // Version 2 (layer shapes in the header) and version 1 (two ANS streams per record)
        // are no longer read.
        for old_or_future in [1u8, 2, 4] {
            bytes[4] = old_or_future;
            assert_eq!(
                read_header(&bytes[..6], &spec),
                Err(CodecError::UnsupportedVersion {
                    found: u16::from(old_or_future),
                    supported: 3
                })
            );
        }
    }

    /// A version 2 header (shapes included) as the version 2 crate wrote it is refused with
    /// `UnsupportedVersion`, not misread as a version 3 header.
    #[test]
    fn version_2_frames_are_rejected() {
        let spec = ModelSpec {
            model_id: ModelId([0xAB; 16]),
            layers: vec![LayerSpec {
                y: Shape::new(8, 16, 12),
                z: Shape::new(8, 4, 3),
            }],
        };
        let mut v2 = Vec::new();
        v2.extend_from_slice(b"OFFC");
        v2.extend_from_slice(&2u16.to_le_bytes());
        v2.extend_from_slice(&[0, 0]);
        v2.extend_from_slice(&[0xAB; 16]);
        v2.extend_from_slice(&7u64.to_le_bytes());
        v2.extend_from_slice(&[1, 0, 0, 0]);
        v2.extend_from_slice(&[8, 0, 16, 0, 12, 0, 8, 0, 4, 0, 3, 0]);
        let crc = crc32fast::hash(&v2);
        v2.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(v2.len(), 52);
        assert_eq!(
            read_header(&v2, &spec),
            Err(CodecError::UnsupportedVersion {
                found: 2,
                supported: 3
            })
        );
    }

    #[test]
    fn foreign_model_and_layer_count_are_typed_errors() {
        let spec = ModelSpec {
            model_id: ModelId([1; 16]),
            layers: vec![
                LayerSpec {
                    y: Shape::new(1, 2, 2),
                    z: Shape::new(1, 1, 1),
                };
                2
            ],
        };
        let mut other = spec.clone();
        other.model_id = ModelId([2; 16]);
        let mut bytes = Vec::new();
        write_header(&FrameHeader::new(&other, 3), &mut bytes).unwrap();
        assert!(matches!(
            read_header(&bytes, &spec),
            Err(CodecError::ForeignModel { .. })
        ));
        let mut fewer = spec.clone();
        fewer.layers.pop();
        let mut bytes = Vec::new();
        write_header(&FrameHeader::new(&fewer, 3), &mut bytes).unwrap();
        assert!(matches!(
            read_header(&bytes, &spec),
            Err(CodecError::FieldMismatch {
                field: "num_layers",
                offset: 32,
                found: 1,
                expected: 2
            })
        ));
    }
}
