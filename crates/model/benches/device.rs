//! Device-side cost of one frame with the committed model: the task encoder alone, the encoder
//! plus reduction and coding of k layers, and the full local model (encoder + local decoder).

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use offload_model::data::DEFAULT_FASHION_MNIST_DIR;
use offload_model::{Dataset, Split, SplitModel};

fn device(c: &mut Criterion) {
    let model =
        SplitModel::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/fmnist"))
            .expect("committed model");
    let test = Dataset::load(Path::new(DEFAULT_FASHION_MNIST_DIR), Split::Test)
        .expect("scripts/install-fashion-mnist.sh")
        .take(1);
    let image = test.image(0).to_vec();
    let mut group = c.benchmark_group("device");
    group.bench_function("encoder", |b| {
        b.iter(|| model.encode_features(&image).unwrap())
    });
    for k in [1, model.num_layers()] {
        group.bench_function(format!("encoder+code_{k}_layers"), |b| {
            b.iter(|| {
                let f = model.encode_features(&image).unwrap();
                let s = model.quantise_layers(&f, k).unwrap();
                model.code_layers(&s, 0).unwrap()
            })
        });
    }
    group.bench_function("local_model", |b| {
        b.iter(|| model.local_infer(&image).unwrap())
    });
    group.finish();
}

criterion_group!(benches, device);
criterion_main!(benches);
