//! One stage-1 training step (encoder + local decoder, forward, backward and AdamW update) on a
//! batch of 128 real Fashion-MNIST training images: the unit of `offload train`'s cost.
//!
//! Uses only the crate's public model API, so the same file also builds against older trees
//! (a `git worktree` of an earlier commit) for before/after comparisons in one run window.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use criterion::{Criterion, criterion_group, criterion_main};
use offload_model::data::DEFAULT_FASHION_MNIST_DIR;
use offload_model::init::reinitialise;
use offload_model::model::images_to_tensor;
use offload_model::{Dataset, DecoderKind, ModelConfig, Network, Split};

const BATCH: usize = 128;

fn train_step(c: &mut Criterion) {
    let train = Dataset::load(Path::new(DEFAULT_FASHION_MNIST_DIR), Split::Train)
        .expect("scripts/install-fashion-mnist.sh")
        .take(BATCH);
    let device = Device::Cpu;
    let images = images_to_tensor(&train.pixels, &device).expect("images");
    let labels = Tensor::from_vec(
        train
            .labels
            .iter()
            .map(|&l| u32::from(l))
            .collect::<Vec<_>>(),
        BATCH,
        &device,
    )
    .expect("labels");

    let vars = VarMap::new();
    let vb = VarBuilder::from_varmap(&vars, DType::F32, &device);
    let network = Network::new(&ModelConfig::fmnist(), vb).expect("network");
    reinitialise(&vars, 23).expect("init");
    // Stage 1's trainable set: the encoder and the local decoder, without BN running statistics.
    let trainable = {
        let data = vars.data().lock().expect("var map");
        let mut names: Vec<&String> = data
            .keys()
            .filter(|k| {
                (k.starts_with("encoder.") || k.starts_with("decoders.local."))
                    && !k.contains("running_")
            })
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|k| data[k].clone())
            .collect::<Vec<_>>()
    };
    let mut opt = AdamW::new(
        trainable,
        ParamsAdamW {
            lr: 1e-3,
            weight_decay: 1e-4,
            ..Default::default()
        },
    )
    .expect("optimizer");

    let mut group = c.benchmark_group("train");
    group.sample_size(30);
    group.bench_function("stage1_step_b128", |b| {
        b.iter(|| {
            let f = network.encoder().forward(&images, true).unwrap();
            let logits = network
                .decoder(DecoderKind::Local)
                .forward(&f, true)
                .unwrap();
            let loss = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
            opt.backward_step(&loss).unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, train_step);
criterion_main!(benches);
