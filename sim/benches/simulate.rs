//! Simulated frames per second: a 10-minute generated trace at 30 fps (18 000 frames) with the
//! illustrative detector profile, per policy.

use std::path::Path;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use offload_controller::Profile;
use offload_sim::trace::Trace;
use offload_sim::{SimConfig, simulate};

fn simulate_frames(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/illustrative-detector.toml");
    let profile = Profile::load(&path).expect("profile");
    // Capacity alternating every second between a few rates around the profile's needs.
    let segments: Vec<(f64, f64)> = (0..600)
        .map(|i| (1.0, [0.4e6, 1.5e6, 3e6, 0.8e6, 6e6][i % 5]))
        .collect();
    let trace = Trace::from_segments("bench-alternating", &segments).expect("trace");
    let config = SimConfig::default();
    let frames = (trace.duration() * config.fps) as u64;
    let mut group = c.benchmark_group("simulate");
    group.throughput(Throughput::Elements(frames));
    group.sample_size(20);
    for name in ["throughput-rule", "fixed-k4", "local-only"] {
        group.bench_with_input(BenchmarkId::from_parameter(name), &name, |b, name| {
            b.iter(|| {
                let policy = offload_policies::preset(name).expect("preset").build();
                simulate(&trace, &profile, policy, &config, |_| {})
            })
        });
    }
    group.finish();
}

criterion_group!(benches, simulate_frames);
criterion_main!(benches);
