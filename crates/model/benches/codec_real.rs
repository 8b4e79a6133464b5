//! Entropy coding alone, on the committed model's real symbols: the z and y symbols of every
//! layer of 200 Fashion-MNIST test images, coded into layer records (encode) and decoded back
//! with their known scale indices (decode), in symbols per second. The model's networks are
//! not timed here (`benches/device.rs` times them).
//!
//! `cargo bench -p offload-model --bench codec_real`

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use offload_codec::{GaussianConditional, LayerRecord};
use offload_model::data::DEFAULT_FASHION_MNIST_DIR;
use offload_model::{Dataset, LayerSymbols, Split, SplitModel};

const FRAMES: usize = 200;

fn codec_real(c: &mut Criterion) {
    let model =
        SplitModel::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/fmnist"))
            .expect("committed model");
    let test = Dataset::load(Path::new(DEFAULT_FASHION_MNIST_DIR), Split::Test)
        .expect("scripts/install-fashion-mnist.sh")
        .take(FRAMES);
    let n = model.num_layers();
    let frames: Vec<Vec<LayerSymbols>> = (0..test.len())
        .map(|i| {
            let f = model.encode_features(test.image(i)).unwrap();
            model.quantise_layers(&f, n).unwrap()
        })
        .collect();
    let symbols: usize = frames.iter().flatten().map(|s| s.z.len() + s.y.len()).sum();
    let gaussian = GaussianConditional::default_table();
    let priors = &model.manifest().z_priors;
    let spec = model.spec();
    let encode_all = || -> Vec<LayerRecord> {
        frames
            .iter()
            .flat_map(|layers| {
                layers.iter().enumerate().map(|(i, s)| {
                    LayerRecord::encode(
                        i as u16,
                        &spec.layers[i],
                        &priors[i],
                        &gaussian,
                        &s.z,
                        &s.y,
                        &s.indices,
                    )
                    .unwrap()
                })
            })
            .collect()
    };
    let records = encode_all();
    let mut group = c.benchmark_group("codec_real");
    group.throughput(Throughput::Elements(symbols as u64));
    group.bench_function(format!("encode_{FRAMES}_frames_{n}_layers"), |b| {
        b.iter(|| black_box(encode_all()))
    });
    group.bench_function(format!("decode_{FRAMES}_frames_{n}_layers"), |b| {
        b.iter(|| {
            for (record, s) in records.iter().zip(frames.iter().flatten()) {
                let i = usize::from(record.index);
                let (z, pending) = record.decode_z(&spec.layers[i], &priors[i]).unwrap();
                let y = pending.decode_y(&gaussian, &s.indices).unwrap();
                black_box((z, y));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, codec_real);
criterion_main!(benches);
