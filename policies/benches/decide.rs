//! Controller decisions per second: `Controller::decide` with each simple policy on an
//! 8-layer frame, with a throughput sample observed between decisions as in a real run.

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use offload_controller::{
    Controller, ControllerConfig, FrameOptions, LocalOption, Observation, OffloadOption, RateSample,
};

fn frame(i: u64) -> FrameOptions {
    let offload = (1..=8)
        .map(|k| OffloadOption {
            layers: k,
            bytes: 300 * u64::from(k) * u64::from(k) / 2 + 300,
            accuracy: 0.3 + 0.05 * f64::from(k),
            device_time: 0.002 + 0.0005 * f64::from(k),
            device_energy_j: 0.005,
            server_time: 0.008,
        })
        .collect();
    let t = i as f64 / 30.0;
    FrameOptions {
        frame: i,
        captured_at: t,
        deadline: t + 0.2,
        local: LocalOption {
            accuracy: 0.74,
            device_time: 0.15,
            energy_j: 0.375,
        },
        offload,
    }
}

fn decide(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    group.throughput(Throughput::Elements(1));
    for name in ["throughput-rule", "fixed-k4", "local-only"] {
        let policy = offload_policies::preset(name).expect("preset").build();
        let mut controller = Controller::new(ControllerConfig::default(), policy);
        let frames: Vec<FrameOptions> = (0..64).map(frame).collect();
        let mut i = 0usize;
        group.bench_with_input(BenchmarkId::from_parameter(name), &name, |b, _| {
            b.iter(|| {
                let f = &frames[i & 63];
                i += 1;
                black_box(controller.decide(black_box(f.captured_at + 0.025), f))
            })
        });
    }
    // Decision plus one delivery sample, the pattern of a real run.
    let policy = offload_policies::preset("throughput-rule")
        .expect("preset")
        .build();
    let mut controller = Controller::new(ControllerConfig::default(), policy);
    let frames: Vec<FrameOptions> = (0..64).map(frame).collect();
    let mut i = 0u64;
    group.bench_function("throughput-rule+observe", |b| {
        b.iter(|| {
            let f = &frames[(i & 63) as usize];
            let t = i as f64 / 30.0;
            let sample = RateSample {
                start: t,
                end: t + 0.01,
                bytes: 2000 + (i % 7) * 100,
            };
            controller.observe(t + 0.02, Observation::Delivered { frame: i, sample });
            i += 1;
            black_box(controller.decide(t + 0.025, f))
        })
    });
    group.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);
