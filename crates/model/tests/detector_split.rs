//! The committed split detector (models/ssd-split) on real held-out frames: bit-exact round
//! trips of every layer prefix through the wire format, the residual layers' refinement, a
//! fidelity floor at the top layer count against the uncompressed detector, and typed errors
//! for hostile or truncated frames.
//! Needs the installed detector and frames (scripts/install-detector.sh).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use offload_codec::{LayerRecord, decode_frame, encode_frame};
use offload_model::ModelError;
use offload_model::detector::default_model_dir;
use offload_model::detector_split::DetectorSplit;
use offload_model::detector_split::data::{Frame, FrameSplit, frame_paths, load_frame};
use offload_model::detector_split::fidelity::{FramePair, mean_average_precision};
use offload_model::tf_import::detector_cache_dir;

/// mAP@0.5 at the top layer count that the committed weights must reach on the test's 10 frames
/// (references: the full detector's detections with score ≥ `REFERENCE_SCORE`): the issue's
/// goal. The committed codec measures 1.000 on them (0.985 on the report's 40 held-out images).
const TOP_FIDELITY_FLOOR: f64 = 0.95;
const REFERENCE_SCORE: f32 = 0.5;
/// Largest relative feature error ‖F̂ − F‖² / ‖F‖² at the top layer count on the test's first
/// 4 frames (the committed codec measures 0.009; 0.17 was where the codec without residual
/// layers plateaued).
const TOP_FEATURE_ERROR_CEILING: f64 = 0.02;

fn model() -> &'static DetectorSplit {
    static MODEL: OnceLock<DetectorSplit> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/ssd-split");
        DetectorSplit::load(&dir, &default_model_dir()).expect("committed model and detector")
    })
}

/// A few held-out frames spread over the video's held-out part, and two held-out photos.
fn frames() -> &'static Vec<Frame> {
    static FRAMES: OnceLock<Vec<Frame>> = OnceLock::new();
    FRAMES.get_or_init(|| {
        let cache = detector_cache_dir();
        let paths: Vec<PathBuf> = frame_paths(&cache, FrameSplit::HeldOut).unwrap();
        let video: Vec<&PathBuf> = paths
            .iter()
            .filter(|p| p.to_string_lossy().contains("vtest-every2"))
            .collect();
        let photos: Vec<&PathBuf> = paths
            .iter()
            .filter(|p| p.to_string_lossy().contains("photos/darknet"))
            .collect();
        let step = (video.len() / 8).max(1);
        video
            .iter()
            .step_by(step)
            .take(8)
            .chain(photos.iter().take(2))
            .map(|p| load_frame(&cache, p).unwrap())
            .collect()
    })
}

#[test]
fn every_prefix_round_trips_bit_exactly_through_the_wire_format() {
    let m = model();
    for (i, f) in frames().iter().take(4).enumerate() {
        let features = m.encode_features(&f.rgb, f.width, f.height).unwrap();
        let encoded = m.code_features(&features, i as u64).unwrap();
        assert_eq!(encoded.records.len(), m.num_layers());
        let sent: Vec<_> = (0..m.num_layers())
            .map(|k| m.quantise_layer(&features, k).unwrap())
            .collect();
        let wire = encode_frame(&encoded.header, &encoded.records).unwrap();
        let received = decode_frame(&wire, m.spec()).unwrap();
        assert_eq!(received.header.frame_id, i as u64);
        for k in 1..=m.num_layers() {
            let (symbols, y_hats) = m
                .decode_symbols(&received.header, &received.layers[..k])
                .unwrap();
            assert_eq!(symbols, sent[..k], "{}: prefix {k}", f.name);
            assert_eq!(y_hats.len(), k);
            // Decoding the same prefix twice gives the same detections (no state).
            let a = m
                .server_decode(&received.header, &received.layers[..k], f.width, f.height)
                .unwrap();
            let b = m
                .server_decode(&received.header, &received.layers[..k], f.width, f.height)
                .unwrap();
            assert_eq!(a, b);
        }
        // More layers cost more bytes.
        let sizes = encoded.prefix_bytes();
        assert!(sizes.windows(2).all(|w| w[0] < w[1]), "{sizes:?}");
    }
}

/// The residual layers refine what the server reconstructs: on held-out frames the relative
/// error ‖F̂_k − F‖² / ‖F‖² of the server's tensor falls at every residual layer, down to a small
/// error at the top. The device takes each residual against exactly the server's reconstruction
/// of the layers below; any mismatch would stay in the top layer's output.
#[test]
fn residual_layers_bring_the_server_tensor_close_to_the_uncompressed_one() {
    let m = model();
    let n = m.num_layers();
    let config = &m.manifest().architecture;
    let first_residual = (0..n)
        .find(|&i| config.is_residual(i))
        .expect("the committed codec has residual layers");
    let mut error = vec![0f64; n];
    let mut energy = 0f64;
    for (i, f) in frames().iter().take(4).enumerate() {
        let features = m.encode_features(&f.rgb, f.width, f.height).unwrap();
        let encoded = m.code_features(&features, i as u64).unwrap();
        let wire = encode_frame(&encoded.header, &encoded.records).unwrap();
        let received = decode_frame(&wire, m.spec()).unwrap();
        for (k, e) in error.iter_mut().enumerate() {
            let r = m
                .server_features(&received.header, &received.layers[..=k])
                .unwrap();
            *e += sum_of_squares(&(r - &features).unwrap());
        }
        energy += sum_of_squares(&features);
    }
    let relative: Vec<f64> = error.iter().map(|e| e / energy).collect();
    eprintln!("relative feature error per k: {relative:.3?}");
    for k in first_residual..n {
        assert!(
            relative[k] < relative[k - 1],
            "layer {k} (residual) does not refine: {relative:.3?}"
        );
    }
    assert!(
        relative[n - 1] <= TOP_FEATURE_ERROR_CEILING,
        "k={n}: relative feature error {:.4} > {TOP_FEATURE_ERROR_CEILING}",
        relative[n - 1]
    );
}

#[test]
fn committed_weights_reach_the_fidelity_floor_at_the_top_layer_count() {
    let m = model();
    let n = m.num_layers();
    let mut top = Vec::new();
    let mut base = Vec::new();
    for (i, f) in frames().iter().enumerate() {
        let features = m.encode_features(&f.rgb, f.width, f.height).unwrap();
        let reference: Vec<_> = m
            .local_from_features(&features, f.width, f.height)
            .unwrap()
            .into_iter()
            .filter(|d| d.score >= REFERENCE_SCORE)
            .collect();
        let encoded = m.code_features(&features, i as u64).unwrap();
        for (k, out) in [(n, &mut top), (1, &mut base)] {
            out.push(FramePair {
                detected: m
                    .server_decode(&encoded.header, &encoded.records[..k], f.width, f.height)
                    .unwrap(),
                reference: reference.clone(),
            });
        }
    }
    let top_map = mean_average_precision(&top).expect("the frames hold reference objects");
    let base_map = mean_average_precision(&base).unwrap();
    eprintln!("mAP@0.5: k=1 {base_map:.3}, k={n} {top_map:.3}");
    assert!(
        top_map >= TOP_FIDELITY_FLOOR,
        "k={n}: mAP@0.5 {top_map:.3} < {TOP_FIDELITY_FLOOR}"
    );
    assert!(
        top_map >= base_map,
        "k={n} {top_map:.3} < k=1 {base_map:.3}"
    );
}

#[test]
fn hostile_and_truncated_frames_are_typed_errors() {
    let m = model();
    let f = &frames()[0];
    let features = m.encode_features(&f.rgb, f.width, f.height).unwrap();
    let encoded = m.code_features(&features, 9).unwrap();
    let wire = encode_frame(&encoded.header, &encoded.records).unwrap();
    // Every truncation of the wire bytes is rejected or decodes to a shorter valid prefix.
    for cut in (0..wire.len()).step_by(7) {
        if let Ok(frame) = decode_frame(&wire[..cut], m.spec()) {
            assert!(frame.layers.len() < m.num_layers());
        }
    }
    let (header, records) = (&encoded.header, &encoded.records);
    let frame_error = |r: Result<_, ModelError>| matches!(r, Err(ModelError::Frame(_)));
    // No layers, too many layers, layers out of order, another model's id.
    assert!(frame_error(m.server_decode(header, &[], 10, 10)));
    let mut too_many = records.clone();
    too_many.push(records[0].clone());
    assert!(frame_error(m.server_decode(header, &too_many, 10, 10)));
    let swapped = [records[1].clone(), records[0].clone()];
    assert!(frame_error(m.server_decode(header, &swapped, 10, 10)));
    let mut foreign = header.clone();
    foreign.model_id.0[0] ^= 1;
    assert!(frame_error(m.server_decode(
        &foreign,
        &records[..1],
        10,
        10
    )));
    // Records whose streams were cut or altered behind the CRC (the range coder's streams are
    // cut to the fewest bytes that decode, so a short stream may still decode): an error or a
    // decode of the right shape, never a panic.
    for k in 0..m.num_layers() {
        let stream = &records[k].stream;
        for cut in [0, stream.len() / 3, stream.len().saturating_sub(1)] {
            let mut prefix = records[..k].to_vec();
            prefix.push(LayerRecord {
                index: k as u16,
                stream: stream[..cut].to_vec(),
            });
            if let Ok(features) = m.server_features(header, &prefix) {
                assert_eq!(features.dims(), [1, 96, 19, 19]);
            }
        }
        let mut flipped = records[..=k].to_vec();
        for (j, b) in flipped[k].stream.iter_mut().enumerate() {
            if j % 5 == 0 {
                *b ^= 0xA5;
            }
        }
        let _ = m.server_decode(header, &flipped, f.width, f.height);
    }
}

/// Σx² of a tensor.
fn sum_of_squares(t: &candle_core::Tensor) -> f64 {
    f64::from(
        t.sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
    )
}
