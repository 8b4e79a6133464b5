//! Layer records: one independently decodable record per layer, holding one range-coded
//! stream (`z`, then `y`), with its length and a CRC32 bound to the frame. Byte layout in
//! `docs/bitstream.md`.

use super::header::FrameHeader;
use super::reader::Reader;
use super::spec::LayerSpec;
use crate::coder::{RangeStreamDecoder, RangeStreamEncoder};
use crate::error::StreamKind;
use crate::{CodecError, FactorizedPrior, GaussianConditional};

/// Bytes of a record before its stream.
pub const RECORD_HEADER_BYTES: usize = 12;

/// One layer of one frame: the entropy-coded hyper-latent and latent, in one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRecord {
    /// Layer index, `0` = base layer.
    pub index: u16,
    /// The stream: `z` (factorised prior, CHW) then `y` (Gaussian conditional, CHW).
    pub stream: Vec<u8>,
}

/// The rest of a record's stream once its `z` is decoded: the model computes the scale
/// indices of `y` from `z`, then [`decode_y`](Self::decode_y) finishes the record.
pub struct PendingY {
    decoder: RangeStreamDecoder,
    index: u16,
    z_symbols: usize,
    y_symbols: usize,
}

impl std::fmt::Debug for PendingY {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingY")
            .field("index", &self.index)
            .field("z_symbols", &self.z_symbols)
            .field("y_symbols", &self.y_symbols)
            .finish_non_exhaustive()
    }
}

impl PendingY {
    /// Decodes the record's `y` symbols (CHW, its spec's `y` shape) given their scale
    /// indices, and checks that the stream ends exactly after them.
    pub fn decode_y(
        mut self,
        gaussian: &GaussianConditional,
        y_indices: &[u16],
    ) -> Result<Vec<i32>, CodecError> {
        let in_y = |e: CodecError| e.in_layer(self.index, StreamKind::Y);
        if y_indices.len() != self.y_symbols {
            return Err(in_y(CodecError::LengthMismatch {
                what: "y indices",
                expected: self.y_symbols,
                actual: y_indices.len(),
            }));
        }
        let y = gaussian
            .decode_from(&mut self.decoder, y_indices, self.z_symbols)
            .map_err(in_y)?;
        self.decoder
            .finish(self.z_symbols + self.y_symbols)
            .map_err(in_y)?;
        Ok(y)
    }
}

impl LayerRecord {
    /// Entropy-codes one layer: `z` (CHW, `spec.z` shape) with `prior`, then `y` (CHW,
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
        if y.len() != spec.y.numel() {
            return Err(CodecError::LengthMismatch {
                what: "y",
                expected: spec.y.numel(),
                actual: y.len(),
            }
            .in_layer(index, StreamKind::Y));
        }
        let mut encoder = RangeStreamEncoder::with_capacity(z.len() + y.len());
        prior
            .encode_into(&mut encoder, z, spec.z.spatial())
            .map_err(|e| e.in_layer(index, StreamKind::Z))?;
        gaussian
            .encode_into(&mut encoder, y, y_indices)
            .map_err(|e| e.in_layer(index, StreamKind::Y))?;
        Ok(LayerRecord {
            index,
            stream: encoder.finish(),
        })
    }

    /// Decodes this record's `z` (CHW, `spec.z` shape). The model then runs the hyperprior
    /// synthesis on it to get the scale indices for [`PendingY::decode_y`].
    pub fn decode_z(
        &self,
        spec: &LayerSpec,
        prior: &FactorizedPrior,
    ) -> Result<(Vec<i32>, PendingY), CodecError> {
        let in_z = |e: CodecError| e.in_layer(self.index, StreamKind::Z);
        check_prior(spec, prior).map_err(in_z)?;
        let z_symbols = spec.z.numel();
        let y_symbols = spec.y.numel();
        let mut decoder =
            RangeStreamDecoder::new(&self.stream, z_symbols + y_symbols).map_err(in_z)?;
        let z = prior
            .decode_from(&mut decoder, spec.z.spatial(), 0)
            .map_err(in_z)?;
        Ok((
            z,
            PendingY {
                decoder,
                index: self.index,
                z_symbols,
                y_symbols,
            },
        ))
    }

    /// Size of the record on the wire, in bytes.
    pub fn wire_len(&self) -> usize {
        RECORD_HEADER_BYTES + self.stream.len()
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
fn record_crc(header: &FrameHeader, fields: &[u8], stream: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header.model_id.0);
    h.update(&header.frame_id.to_le_bytes());
    h.update(fields);
    h.update(stream);
    h.finalize()
}

/// Appends `record` to `out`. Checks the index and the stream length against `header` (the
/// same limits a reader enforces), so a written record is always readable.
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
    let limit = spec.max_stream_bytes();
    if record.stream.len() as u64 > limit {
        return Err(CodecError::Unrepresentable {
            field: "stream_len",
            value: record.stream.len() as u64,
            max: limit,
        });
    }
    let mut fields = [0u8; 8];
    fields[0..2].copy_from_slice(&record.index.to_le_bytes());
    // fields[2..4]: flags, zero in version 3.
    fields[4..8].copy_from_slice(&(record.stream.len() as u32).to_le_bytes());
    let crc = record_crc(header, &fields, &record.stream);
    out.reserve(record.wire_len());
    out.extend_from_slice(&fields);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&record.stream);
    Ok(())
}

/// Reads one record at the start of `bytes` for the frame `header` (from [`read_header`]);
/// returns it and its length in bytes. Offsets in errors count from the start of `bytes`.
///
/// Checks, in order: index < number of layers, zero flags, the stream length against the
/// largest stream the layer's shapes allow (before anything is allocated), presence of all
/// bytes, and the CRC32 (which also covers the frame's model id and frame id, so a record of
/// another frame fails it). The entropy-coded stream is checked when decoded.
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
    let len_offset = r.offset();
    let len = r.u32("stream_len")?;
    let limit = spec.max_stream_bytes();
    if u64::from(len) > limit {
        return Err(CodecError::LengthLimit {
            layer: index,
            field: "stream_len",
            offset: len_offset,
            found: u64::from(len),
            limit,
        });
    }
    let crc_offset = r.offset();
    let stored = r.u32("layer_crc")?;
    let stream = r.take(len as usize, "stream")?;
    let computed = record_crc(header, &r.bytes()[..8], stream);
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
            stream: stream.to_vec(),
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
            stream: vec![0x11, 0x22, 0x33],
        };
        let mut bytes = Vec::new();
        write_layer(&header, &record, &mut bytes).unwrap();
        assert_eq!(bytes.len(), 12 + 3);
        assert_eq!(&bytes[0..2], &[1, 0]);
        assert_eq!(&bytes[2..4], &[0, 0]);
        assert_eq!(&bytes[4..8], &[3, 0, 0, 0]);
        let mut covered = vec![7u8; 16];
        covered.extend_from_slice(&99u64.to_le_bytes());
        covered.extend_from_slice(&bytes[0..8]);
        covered.extend_from_slice(&bytes[12..]);
        assert_eq!(&bytes[8..12], &crc32fast::hash(&covered).to_le_bytes());
        assert_eq!(&bytes[12..], &[0x11, 0x22, 0x33]);
        assert_eq!(read_layer(&bytes, &header).unwrap(), (record, 15));
    }
}
