//! Layer records: one independently decodable record per layer, `z` stream then `y` stream,
//! with lengths and a CRC32 bound to the frame. Byte layout in `docs/bitstream.md`.

use super::header::FrameHeader;
use super::reader::Reader;
use super::spec::LayerSpec;
use crate::error::StreamKind;
use crate::{CodecError, FactorizedPrior, GaussianConditional};

/// Bytes of a record before its two streams.
pub const RECORD_HEADER_BYTES: usize = 16;

/// One layer of one frame: the entropy-coded hyper-latent and latent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRecord {
    /// Layer index, `0` = base layer.
    pub index: u16,
    /// The `z` stream ([`FactorizedPrior::encode`] output).
    pub z: Vec<u8>,
    /// The `y` stream ([`GaussianConditional::encode`] output).
    pub y: Vec<u8>,
}

impl LayerRecord {
    /// Entropy-codes one layer: `z` (CHW, `spec.z` shape) with `prior` and `y` (CHW,
    /// `spec.y` shape) with `gaussian`, symbol `i` of `y` under scale index `y_indices[i]`.
    #[allow(clippy::too_many_arguments)]
    pub fn encode(
        index: u16,
        spec: &LayerSpec,
        prior: &FactorizedPrior,
        gaussian: &GaussianConditional,
        z: &[i32],
        y: &[i32],
        y_indices: &[u16],
    ) -> Result<Self, CodecError> {
        check_prior(spec, prior).map_err(|e| e.in_layer(index, StreamKind::Z))?;
        let z_bytes = prior
            .encode(z, spec.z.spatial())
            .map_err(|e| e.in_layer(index, StreamKind::Z))?;
        if y.len() != spec.y.numel() {
            return Err(CodecError::LengthMismatch {
                what: "y",
                expected: spec.y.numel(),
                actual: y.len(),
            }
            .in_layer(index, StreamKind::Y));
        }
        let y_bytes = gaussian
            .encode(y, y_indices)
            .map_err(|e| e.in_layer(index, StreamKind::Y))?;
        Ok(LayerRecord {
            index,
            z: z_bytes,
            y: y_bytes,
        })
    }

    /// Decodes this record's `z` (CHW, `spec.z` shape). The model then runs the hyperprior
    /// synthesis on it to get the scale indices for [`decode_y`](Self::decode_y).
    pub fn decode_z(
        &self,
        spec: &LayerSpec,
        prior: &FactorizedPrior,
    ) -> Result<Vec<i32>, CodecError> {
        check_prior(spec, prior).map_err(|e| e.in_layer(self.index, StreamKind::Z))?;
        prior
            .decode(&self.z, spec.z.spatial())
            .map_err(|e| e.in_layer(self.index, StreamKind::Z))
    }

    /// Decodes this record's `y` symbols (CHW, `spec.y` shape) given their scale indices.
    pub fn decode_y(
        &self,
        spec: &LayerSpec,
        gaussian: &GaussianConditional,
        y_indices: &[u16],
    ) -> Result<Vec<i32>, CodecError> {
        if y_indices.len() != spec.y.numel() {
            return Err(CodecError::LengthMismatch {
                what: "y indices",
                expected: spec.y.numel(),
                actual: y_indices.len(),
            }
            .in_layer(self.index, StreamKind::Y));
        }
        gaussian
            .decode(&self.y, y_indices)
            .map_err(|e| e.in_layer(self.index, StreamKind::Y))
    }

    /// Size of the record on the wire, in bytes.
    pub fn wire_len(&self) -> usize {
        RECORD_HEADER_BYTES + self.z.len() + self.y.len()
    }
}

fn check_prior(spec: &LayerSpec, prior: &FactorizedPrior) -> Result<(), CodecError> {
    if prior.channels() != spec.z.channels {
        return Err(CodecError::LengthMismatch {
            what: "factorised prior channels",
            expected: spec.z.channels,
            actual: prior.channels(),
        });
    }
    Ok(())
}

/// CRC32 of a record, bound to its frame by covering the model id and frame id too.
fn record_crc(header: &FrameHeader, fields: &[u8], z: &[u8], y: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header.model_id.0);
    h.update(&header.frame_id.to_le_bytes());
    h.update(fields);
    h.update(z);
    h.update(y);
    h.finalize()
}

/// Appends `record` to `out`. Checks the index and both lengths against `header` (the same
/// limits a reader enforces), so a written record is always readable.
pub fn write_layer(
    header: &FrameHeader,
    record: &LayerRecord,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let spec = header
        .layers
        .get(usize::from(record.index))
        .ok_or(CodecError::Unrepresentable {
            field: "layer_index",
            value: u64::from(record.index),
            max: header.layers.len().saturating_sub(1) as u64,
        })?;
    for (field, len, limit) in [
        ("z_len", record.z.len(), spec.max_z_bytes()),
        ("y_len", record.y.len(), spec.max_y_bytes()),
    ] {
        if len as u64 > limit {
            return Err(CodecError::Unrepresentable {
                field,
                value: len as u64,
                max: limit,
            });
        }
    }
    let mut fields = [0u8; 12];
    fields[0..2].copy_from_slice(&record.index.to_le_bytes());
    // fields[2..4]: flags, zero in version 1.
    fields[4..8].copy_from_slice(&(record.z.len() as u32).to_le_bytes());
    fields[8..12].copy_from_slice(&(record.y.len() as u32).to_le_bytes());
    let crc = record_crc(header, &fields, &record.z, &record.y);
    out.reserve(record.wire_len());
    out.extend_from_slice(&fields);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&record.z);
    out.extend_from_slice(&record.y);
    Ok(())
}

/// Reads one record at the start of `bytes` for the frame `header` (from [`read_header`]);
/// returns it and its length in bytes. Offsets in errors count from the start of `bytes`.
///
/// Checks, in order: index < number of layers, zero flags, each length against the largest
/// stream the layer's shape allows (before anything is allocated), presence of all bytes,
/// and the CRC32 (which also covers the frame's model id and frame id, so a record of
/// another frame fails it). The entropy-coded streams are checked when decoded.
///
/// [`read_header`]: super::read_header
pub fn read_layer(bytes: &[u8], header: &FrameHeader) -> Result<(LayerRecord, usize), CodecError> {
    read_layer_at(bytes, 0, header)
}

/// [`read_layer`] with offsets in errors shifted by `base`.
pub(crate) fn read_layer_at(
    bytes: &[u8],
    base: usize,
    header: &FrameHeader,
) -> Result<(LayerRecord, usize), CodecError> {
    let mut r = Reader::new(bytes, base);
    let index_offset = r.offset();
    let index = r.u16("layer_index")?;
    let spec = header
        .layers
        .get(usize::from(index))
        .ok_or(CodecError::FieldMismatch {
            field: "layer_index (must be < num_layers)",
            offset: index_offset,
            found: u64::from(index),
            expected: header.layers.len() as u64,
        })?;
    let flags_offset = r.offset();
    let flags = r.u16("layer_flags")?;
    if flags != 0 {
        return Err(CodecError::FieldMismatch {
            field: "layer_flags",
            offset: flags_offset,
            found: u64::from(flags),
            expected: 0,
        });
    }
    let mut lens = [0usize; 2];
    for (slot, (field, limit)) in lens
        .iter_mut()
        .zip([("z_len", spec.max_z_bytes()), ("y_len", spec.max_y_bytes())])
    {
        let offset = r.offset();
        let len = r.u32(field)?;
        if u64::from(len) > limit {
            return Err(CodecError::LengthLimit {
                layer: index,
                field,
                offset,
                found: u64::from(len),
                limit,
            });
        }
        *slot = len as usize;
    }
    let crc_offset = r.offset();
    let stored = r.u32("layer_crc")?;
    let z = r.take(lens[0], "z stream")?;
    let y = r.take(lens[1], "y stream")?;
    let computed = record_crc(header, &r.bytes()[..12], z, y);
    if stored != computed {
        return Err(CodecError::Checksum {
            what: "layer record",
            layer: Some(index),
            offset: crc_offset,
            stored,
            computed,
        });
    }
    Ok((
        LayerRecord {
            index,
            z: z.to_vec(),
            y: y.to_vec(),
        },
        r.pos(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::{ModelId, ModelSpec, Shape};

    /// The byte layout of `docs/bitstream.md`, field by field.
    #[test]
    fn record_layout_matches_the_spec() {
        let spec = ModelSpec {
            model_id: ModelId([7; 16]),
            layers: vec![
                LayerSpec {
                    y: Shape::new(2, 2, 2),
                    z: Shape::new(1, 1, 1),
                };
                2
            ],
        };
        let header = FrameHeader::new(&spec, 99);
        let record = LayerRecord {
            index: 1,
            z: vec![0x11, 0x22],
            y: vec![0x33, 0x44, 0x55],
        };
        let mut bytes = Vec::new();
        write_layer(&header, &record, &mut bytes).unwrap();
        assert_eq!(bytes.len(), 16 + 2 + 3);
        assert_eq!(&bytes[0..2], &[1, 0]);
        assert_eq!(&bytes[2..4], &[0, 0]);
        assert_eq!(&bytes[4..8], &[2, 0, 0, 0]);
        assert_eq!(&bytes[8..12], &[3, 0, 0, 0]);
        let mut covered = vec![7u8; 16];
        covered.extend_from_slice(&99u64.to_le_bytes());
        covered.extend_from_slice(&bytes[0..12]);
        covered.extend_from_slice(&bytes[16..]);
        assert_eq!(&bytes[12..16], &crc32fast::hash(&covered).to_le_bytes());
        assert_eq!(&bytes[16..], &[0x11, 0x22, 0x33, 0x44, 0x55]);
        assert_eq!(read_layer(&bytes, &header).unwrap(), (record, 21));
    }
}
