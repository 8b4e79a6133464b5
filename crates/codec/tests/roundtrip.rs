//! Lossless round trips: both entropy models on random and extreme symbols, whole frames, any
//! prefix of layers, message-by-message reading, and tables saved and loaded with serde.

mod common;

use offload_codec::{
    ChannelPmf, CodecError, FactorizedPrior, FrameHeader, FrameReader, GaussianConditional,
    decode_frame, encode_frame, max_stream_bytes, write_header, write_layer,
};
use rand::Rng;

const EXTREMES: [i32; 8] = [
    i32::MIN,
    i32::MIN + 1,
    -65537,
    -1,
    0,
    1,
    i32::MAX - 1,
    i32::MAX,
];

#[test]
fn gaussian_round_trips_every_scale_and_extreme_values() {
    let gaussian = GaussianConditional::default_table();
    let mut rng = common::rng(1);
    let n = 20_000;
    let mut symbols: Vec<i32> = (0..n)
        .map(|k| match k % 5 {
            0 => rng.random(),
            1 => rng.random_range(-3000..=3000),
            _ => rng.random_range(-3..=3),
        })
        .collect();
    symbols[..EXTREMES.len()].copy_from_slice(&EXTREMES);
    let indices: Vec<u16> = (0..n).map(|k| (k % 64) as u16).collect();
    let bytes = gaussian.encode(&symbols, &indices).unwrap();
    assert!(bytes.len() as u64 <= max_stream_bytes(n as u64));
    assert_eq!(gaussian.decode(&bytes, &indices).unwrap(), symbols);
}

#[test]
fn worst_case_stream_fits_the_length_limit() {
    // Every symbol escaped to the far end of i32 under the narrowest table.
    let gaussian = GaussianConditional::default_table();
    for n in [1usize, 2, 3, 10, 1000] {
        let symbols = vec![i32::MIN; n];
        let indices = vec![0u16; n];
        let bytes = gaussian.encode(&symbols, &indices).unwrap();
        assert!(
            bytes.len() as u64 <= max_stream_bytes(n as u64),
            "{n} symbols: {} bytes > limit {}",
            bytes.len(),
            max_stream_bytes(n as u64)
        );
        assert_eq!(gaussian.decode(&bytes, &indices).unwrap(), symbols);
    }
}

#[test]
fn factorized_round_trips_extreme_values_and_odd_ranges() {
    let prior = FactorizedPrior::from_pmfs(vec![
        common::logistic_pmf(10, 1.0, 0.0),
        ChannelPmf {
            min_symbol: i32::MAX - 2,
            pmf: vec![0.3, 0.3, 0.3],
        },
        ChannelPmf {
            min_symbol: i32::MIN,
            pmf: vec![0.5, 0.5],
        },
    ])
    .unwrap();
    let spatial = 40;
    let mut rng = common::rng(2);
    let mut z: Vec<i32> = (0..3 * spatial)
        .map(|_| match rng.random_range(0..3) {
            0 => rng.random(),
            _ => rng.random_range(-12..=12),
        })
        .collect();
    for (k, &v) in EXTREMES.iter().enumerate() {
        z[k] = v;
        z[spatial + k] = v;
        z[2 * spatial + k] = v;
    }
    let bytes = prior.encode(&z, spatial).unwrap();
    assert_eq!(prior.decode(&bytes, spatial).unwrap(), z);
}

#[test]
fn wrong_lengths_are_errors() {
    let prior = common::prior(2);
    assert!(matches!(
        prior.encode(&[1, 2, 3], 2),
        Err(CodecError::LengthMismatch { .. })
    ));
    let bytes = prior.encode(&[1, 2, 3, 4], 2).unwrap();
    // Decoding fewer values than were coded leaves bytes or the final point unexplained.
    assert!(prior.decode(&bytes, 1).is_err());
    // A bare stream ends at the fewest bytes that pin its values, so it cannot tell how many
    // values follow (decoding more yields the values the final point happens to sit on):
    // the count always comes from the model's shapes, which the container checks.
    let longer = prior.decode(&bytes, 3).unwrap();
    assert_eq!(longer[..2], [1, 2]);
}

#[test]
fn frame_round_trips_and_every_layer_prefix_decodes() {
    let spec = common::spec();
    let priors = common::priors(&spec);
    let gaussian = GaussianConditional::default_table();
    let mut rng = common::rng(3);
    let coded = common::coded_frame(&mut rng, &spec, &priors, &gaussian);
    let header = FrameHeader::new(&spec, 42);
    for k in 0..=spec.layers.len() {
        let bytes = encode_frame(&header, &coded.records[..k]).unwrap();
        let frame = decode_frame(&bytes, &spec).unwrap();
        assert_eq!(frame.header.frame_id, 42);
        assert_eq!(frame.layers.len(), k);
        for (i, record) in frame.layers.iter().enumerate() {
            let layer = &spec.layers[i];
            let (z, pending) = record.decode_z(layer, &priors[i]).unwrap();
            assert_eq!(z, coded.z[i]);
            assert_eq!(
                pending.decode_y(&gaussian, &coded.indices[i]).unwrap(),
                coded.y[i]
            );
        }
    }
}

#[test]
fn frame_read_message_by_message() {
    let spec = common::spec();
    let priors = common::priors(&spec);
    let gaussian = GaussianConditional::default_table();
    let mut rng = common::rng(4);
    let coded = common::coded_frame(&mut rng, &spec, &priors, &gaussian);
    let header = FrameHeader::new(&spec, 9);
    let mut header_message = Vec::new();
    write_header(&header, &mut header_message).unwrap();
    let messages: Vec<Vec<u8>> = coded
        .records
        .iter()
        .map(|r| {
            let mut m = Vec::new();
            write_layer(&header, r, &mut m).unwrap();
            m
        })
        .collect();

    let mut reader = FrameReader::new(&header_message, &spec).unwrap();
    // Out of order: layer 1 before layer 0.
    assert!(matches!(
        reader.read_layer(&messages[1]),
        Err(CodecError::LayerOrder {
            found: 1,
            expected: 0,
            ..
        })
    ));
    for (i, m) in messages.iter().enumerate() {
        let record = reader.read_layer(m).unwrap();
        assert_eq!(record, coded.records[i]);
    }
    assert_eq!(reader.layers_read(), 3);

    // A record of another frame fails its checksum even with the same model.
    let other = FrameHeader::new(&spec, 10);
    let mut other_message = Vec::new();
    write_header(&other, &mut other_message).unwrap();
    let mut reader = FrameReader::new(&other_message, &spec).unwrap();
    assert!(matches!(
        reader.read_layer(&messages[0]),
        Err(CodecError::Checksum { layer: Some(0), .. })
    ));
}

#[test]
fn foreign_model_and_wrong_layer_count_are_rejected() {
    let spec = common::spec();
    let header = FrameHeader::new(&spec, 1);
    let bytes = encode_frame(&header, &[]).unwrap();

    let mut foreign = spec.clone();
    foreign.model_id = offload_codec::ModelId::from_manifest(b"another model");
    assert!(matches!(
        decode_frame(&bytes, &foreign),
        Err(CodecError::ForeignModel { .. })
    ));

    let mut fewer = spec.clone();
    fewer.layers.pop();
    assert!(matches!(
        decode_frame(&bytes, &fewer),
        Err(CodecError::FieldMismatch {
            field: "num_layers",
            ..
        })
    ));

    // Version 3 carries no shapes: the model id pins the manifest, which fixes them, so the
    // decoded header's shapes are the decoder's own.
    let frame = decode_frame(&bytes, &spec).unwrap();
    assert_eq!(frame.header.layers, spec.layers);
    assert_eq!(bytes.len(), offload_codec::container::HEADER_BYTES);
}

#[test]
fn tables_saved_and_loaded_with_serde_decode_identically() {
    let spec = common::spec();
    let priors = common::priors(&spec);
    let gaussian = GaussianConditional::default_table();
    let mut rng = common::rng(5);
    let coded = common::coded_frame(&mut rng, &spec, &priors, &gaussian);

    let saved_gaussian = serde_json::to_string(&gaussian).unwrap();
    let saved_priors = serde_json::to_string(&priors).unwrap();
    let gaussian2: GaussianConditional = serde_json::from_str(&saved_gaussian).unwrap();
    let priors2: Vec<FactorizedPrior> = serde_json::from_str(&saved_priors).unwrap();
    assert_eq!(gaussian2, gaussian);
    assert_eq!(priors2, priors);
    for (i, record) in coded.records.iter().enumerate() {
        let layer = &spec.layers[i];
        let (z, pending) = record.decode_z(layer, &priors2[i]).unwrap();
        assert_eq!(z, coded.z[i]);
        assert_eq!(
            pending.decode_y(&gaussian2, &coded.indices[i]).unwrap(),
            coded.y[i]
        );
    }

    // A tampered table (frequencies no longer summing to 2^16) is refused on load.
    let tampered = saved_priors.replacen("\"frequencies\":[", "\"frequencies\":[7,", 1);
    assert!(serde_json::from_str::<Vec<FactorizedPrior>>(&tampered).is_err());
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::sync::LazyLock;

    static GAUSSIAN: LazyLock<GaussianConditional> =
        LazyLock::new(GaussianConditional::default_table);

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_i32_symbols_under_any_indices_round_trip(
            pairs in proptest::collection::vec((any::<i32>(), 0u16..64, any::<bool>()), 0..300),
        ) {
            // Half the symbols small (the common case), half anywhere in i32.
            let symbols: Vec<i32> = pairs
                .iter()
                .map(|&(v, _, small)| if small { v % 8 } else { v })
                .collect();
            let indices: Vec<u16> = pairs.iter().map(|&(_, i, _)| i).collect();
            let bytes = GAUSSIAN.encode(&symbols, &indices).unwrap();
            prop_assert!(bytes.len() as u64 <= max_stream_bytes(symbols.len() as u64));
            prop_assert_eq!(GAUSSIAN.decode(&bytes, &indices).unwrap(), symbols);
        }

        #[test]
        fn any_i32_hyper_latents_round_trip(
            z in proptest::collection::vec(any::<i32>(), 0..40),
            min_symbol in any::<i32>(),
            width in 1usize..30,
        ) {
            let min_symbol = min_symbol.min(i32::MAX - width as i32);
            let prior = FactorizedPrior::from_pmfs(vec![
                ChannelPmf { min_symbol, pmf: vec![1.0 / width as f32; width] },
                common::logistic_pmf(5, 1.0, 0.0),
            ])
            .unwrap();
            let spatial = z.len() / 2;
            let z = &z[..2 * spatial];
            let bytes = prior.encode(z, spatial).unwrap();
            prop_assert_eq!(prior.decode(&bytes, spatial).unwrap(), z);
        }
    }
}
