//! Bit-exact round trip of every layer prefix on the whole Fashion-MNIST test set (10 000
//! images) with the committed model, through the real container bytes, and the same frames
//! decoded by a copy of the model that went through a save/load cycle.
//!
//! Run in release: `cargo test --release -p offload-model --test prefix_roundtrip`.

use std::path::{Path, PathBuf};

use offload_codec::{FrameReader, write_header, write_layer};
use offload_model::data::DEFAULT_FASHION_MNIST_DIR;
use offload_model::{Dataset, Split, SplitModel};

fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/fmnist")
}

#[test]
fn every_prefix_of_every_test_frame_decodes_to_the_coded_symbols() {
    let device = SplitModel::load(&model_dir()).unwrap();
    let saved = tempfile::tempdir().unwrap();
    device.save(saved.path()).unwrap();
    // The server's copy went through the file system and was re-validated on load.
    let server = SplitModel::load(saved.path()).unwrap();
    assert_eq!(server.model_id(), device.model_id());
    let test = Dataset::load(Path::new(DEFAULT_FASHION_MNIST_DIR), Split::Test).unwrap();
    assert_eq!(test.len(), 10_000);
    let n = device.num_layers();
    let mut records_checked = 0usize;
    for i in 0..test.len() {
        let image = test.image(i);
        let features = device.encode_features(image).unwrap();
        let symbols = device.quantise_layers(&features, n).unwrap();
        let frame = device.code_layers(&symbols, i as u64).unwrap();
        // As the transport sends them: one header message, then one message per layer.
        let mut header_message = Vec::new();
        write_header(&frame.header, &mut header_message).unwrap();
        let messages: Vec<Vec<u8>> = frame
            .records
            .iter()
            .map(|r| {
                let mut m = Vec::new();
                write_layer(&frame.header, r, &mut m).unwrap();
                m
            })
            .collect();
        let mut reader = FrameReader::new(&header_message, server.spec()).unwrap();
        let received: Vec<_> = messages
            .iter()
            .map(|m| reader.read_layer(m).unwrap())
            .collect();
        assert_eq!(
            received, frame.records,
            "image {i}: records changed on the wire"
        );
        for k in 1..=n {
            let (decoded, _) = server
                .decode_symbols(reader.header(), &received[..k])
                .unwrap();
            assert_eq!(decoded[..], symbols[..k], "image {i}, first {k} layers");
            records_checked += k;
        }
    }
    assert_eq!(records_checked, test.len() * n * (n + 1) / 2);
}
