//! Damaged input is an `Err` (or, for damage the format cannot see, a valid decode), never a
//! panic: truncation at every length, bit flips, random bytes and oversized length fields, on
//! whole frames and on bare entropy-coded streams.

mod common;

use offload_codec::{
    CodecError, FactorizedPrior, Frame, FrameHeader, GaussianConditional, ModelId, ModelSpec,
    container::{HEADER_BYTES, RECORD_HEADER_BYTES},
    decode_frame, encode_frame,
};
use proptest::prelude::*;
use std::sync::LazyLock;

struct Fixture {
    spec: ModelSpec,
    priors: Vec<FactorizedPrior>,
    gaussian: GaussianConditional,
    bytes: Vec<u8>,
    indices: Vec<Vec<u16>>,
    /// Byte offsets where a frame may legally end (after the header, after each record).
    boundaries: Vec<usize>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(build_fixture);

fn fixture() -> &'static Fixture {
    &FIXTURE
}

fn build_fixture() -> Fixture {
    let spec = common::spec();
    let priors = common::priors(&spec);
    let gaussian = GaussianConditional::default_table();
    let mut rng = common::rng(11);
    let coded = common::coded_frame(&mut rng, &spec, &priors, &gaussian);
    let header = FrameHeader::new(&spec, 5);
    let bytes = encode_frame(&header, &coded.records).unwrap();
    let mut boundaries = vec![HEADER_BYTES];
    for r in &coded.records {
        boundaries.push(boundaries[boundaries.len() - 1] + r.wire_len());
    }
    assert_eq!(*boundaries.last().unwrap(), bytes.len());
    Fixture {
        spec,
        priors,
        gaussian,
        bytes,
        indices: coded.indices,
        boundaries,
    }
}

/// Decodes a frame and every layer in it, as a receiver would.
fn decode_all(f: &Fixture, bytes: &[u8]) -> Result<Frame, CodecError> {
    let frame = decode_frame(bytes, &f.spec)?;
    for record in &frame.layers {
        let i = usize::from(record.index);
        let (_, pending) = record.decode_z(&f.spec.layers[i], &f.priors[i])?;
        pending.decode_y(&f.gaussian, &f.indices[i])?;
    }
    Ok(frame)
}

#[test]
fn truncation_at_every_length_is_an_error_except_at_record_boundaries() {
    let f = fixture();
    for len in 0..f.bytes.len() {
        let result = decode_all(f, &f.bytes[..len]);
        match f.boundaries.iter().position(|&b| b == len) {
            Some(layers) => assert_eq!(result.unwrap().layers.len(), layers, "len {len}"),
            None => assert!(result.is_err(), "truncated to {len} bytes decoded"),
        }
    }
}

#[test]
fn oversized_length_fields_are_rejected_before_reading_the_payload() {
    let f = fixture();
    let record0 = f.boundaries[0];
    for (field_offset, name) in [(4usize, "stream_len")] {
        for value in [u32::MAX, 1 << 31, 1_000_000] {
            let mut bytes = f.bytes.clone();
            let at = record0 + field_offset;
            bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
            match decode_frame(&bytes, &f.spec) {
                Err(CodecError::LengthLimit {
                    layer: 0,
                    field,
                    offset,
                    found,
                    ..
                }) => {
                    assert_eq!(field, name);
                    assert_eq!(offset, at);
                    assert_eq!(found, u64::from(value));
                }
                other => panic!("{name} = {value}: unexpected {other:?}"),
            }
        }
    }
}

#[test]
fn bare_streams_truncated_at_every_length_do_not_panic() {
    // A bare stream has no checksum (the record's CRC32 provides integrity), so a cut stream
    // may decode to wrong symbols; it must still be an `Err` or the right number of symbols.
    let f = fixture();
    let mut rng = common::rng(12);
    let (symbols, scales) = common::gaussian_symbols(&mut rng, 2000, 30.0);
    let indices = f.gaussian.scale_indices(&scales);
    let stream = f.gaussian.encode(&symbols, &indices).unwrap();
    for len in 0..stream.len() {
        if let Ok(decoded) = f.gaussian.decode(&stream[..len], &indices) {
            assert_eq!(decoded.len(), indices.len());
            assert_ne!(
                decoded, symbols,
                "a cut stream cannot carry all the information"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn single_bit_flips_anywhere_are_detected(bit in 0usize..100_000) {
        let f = fixture();
        let bit = bit % (f.bytes.len() * 8);
        let mut bytes = f.bytes.clone();
        bytes[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(decode_all(f, &bytes).is_err(), "flip of bit {} undetected", bit);
    }

    #[test]
    fn random_multi_byte_damage_never_panics(
        edits in proptest::collection::vec((0usize..100_000, any::<u8>()), 1..16),
        cut in proptest::option::of(0usize..100_000),
    ) {
        let f = fixture();
        let mut bytes = f.bytes.clone();
        for (at, value) in edits {
            let at = at % bytes.len();
            bytes[at] = value;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        // Any outcome but a panic is acceptable; a successful decode must have a valid shape.
        if let Ok(frame) = decode_all(f, &bytes) {
            prop_assert!(frame.layers.len() <= f.spec.layers.len());
        }
    }

    #[test]
    fn any_length_field_value_is_checked(
        layer in 0usize..3,
        value in any::<u32>(),
    ) {
        let f = fixture();
        let limit = f.spec.layers[layer].max_stream_bytes();
        let at = f.boundaries[layer] + 4;
        let mut bytes = f.bytes.clone();
        bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
        let result = decode_frame(&bytes, &f.spec);
        if u64::from(value) > limit {
            let is_length_limit = matches!(result, Err(CodecError::LengthLimit { .. }));
            prop_assert!(is_length_limit, "{:?}", result);
        } else {
            let original = u32::from_le_bytes(f.bytes[at..at + 4].try_into().unwrap());
            prop_assert_eq!(result.is_ok(), value == original);
        }
    }

    #[test]
    fn any_other_version_is_unsupported(version in any::<u16>()) {
        // Versions 1 and 2 included: their headers or records differ from version 3's.
        prop_assume!(version != offload_codec::container::VERSION);
        let f = fixture();
        let mut bytes = f.bytes.clone();
        bytes[4..6].copy_from_slice(&version.to_le_bytes());
        let result = decode_all(f, &bytes);
        let unsupported = matches!(
            result,
            Err(CodecError::UnsupportedVersion { found, supported: 3 }) if found == version
        );
        prop_assert!(unsupported, "{:?}", result);
    }

    #[test]
    fn frames_of_a_foreign_model_are_refused(id in any::<[u8; 16]>(), layers in 0usize..4) {
        // A well-formed frame (valid checksums) written by another model, whatever its layer
        // count, is `ForeignModel`; so is a record of it behind this model's header.
        let f = fixture();
        prop_assume!(ModelId(id) != f.spec.model_id);
        let mut spec = f.spec.clone();
        spec.model_id = ModelId(id);
        let header = FrameHeader::new(&spec, 5);
        let n = layers.min(spec.layers.len());
        let records = decode_frame(&f.bytes, &f.spec).unwrap().layers;
        let foreign = encode_frame(&header, &records[..n]).unwrap();
        let result = decode_all(f, &foreign);
        let is_foreign = matches!(result, Err(CodecError::ForeignModel { .. }));
        prop_assert!(is_foreign, "{:?}", result);
        if n > 0 {
            let mut spliced = f.bytes[..HEADER_BYTES].to_vec();
            spliced.extend_from_slice(&foreign[HEADER_BYTES..]);
            let is_checksum = matches!(
                decode_all(f, &spliced),
                Err(CodecError::Checksum { layer: Some(0), .. })
            );
            prop_assert!(is_checksum);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let f = fixture();
        prop_assert!(decode_all(f, &bytes).is_err());
        // Behind a valid header the bytes reach the record parser.
        let mut framed = f.bytes[..f.boundaries[0]].to_vec();
        framed.extend_from_slice(&bytes);
        let _ = decode_all(f, &framed);
    }

    #[test]
    fn random_record_with_valid_lengths_never_panics(
        payload in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        // A record whose length is legal and whose checksum matches, but whose stream is
        // garbage: only the entropy decoders stand between it and the model.
        let f = fixture();
        let header = FrameHeader::new(&f.spec, 5);
        let record = offload_codec::LayerRecord {
            index: 0,
            stream: payload.clone(),
        };
        let bytes = encode_frame(&header, &[record]).unwrap();
        prop_assert_eq!(bytes.len(), f.boundaries[0] + RECORD_HEADER_BYTES + payload.len());
        let _ = decode_all(f, &bytes);
    }

    #[test]
    fn bare_gaussian_stream_damage_never_panics(
        flips in proptest::collection::vec(0usize..100_000, 1..4),
        seed in any::<u64>(),
    ) {
        let f = fixture();
        let mut rng = common::rng(seed);
        let (symbols, scales) = common::gaussian_symbols(&mut rng, 300, 100.0);
        let indices = f.gaussian.scale_indices(&scales);
        let mut stream = f.gaussian.encode(&symbols, &indices).unwrap();
        if stream.is_empty() {
            return Ok(());
        }
        for bit in flips {
            let bit = bit % (stream.len() * 8);
            stream[bit / 8] ^= 1 << (bit % 8);
        }
        if let Ok(decoded) = f.gaussian.decode(&stream, &indices) {
            prop_assert_eq!(decoded.len(), symbols.len());
        }
    }

    #[test]
    fn bare_factorized_stream_garbage_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        spatial in 0usize..64,
    ) {
        let prior = common::prior(3);
        if let Ok(z) = prior.decode(&bytes, spatial) {
            prop_assert_eq!(z.len(), 3 * spatial);
        }
    }
}
