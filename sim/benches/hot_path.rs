//! The evaluation's hot path on a real trace: simulated frames per second of every preset on
//! the shared table of frame sizes (as `offload eval` runs them), and the oracle's planned
//! frames per second.
//!
//! Trace: the first 300 s of `mahimahi-cellular/ATT-LTE-driving.up` (1 ms delivery
//! opportunities, outages: the costliest trace format for the link), or, without
//! `../shared/traces`, the repository's generated LTE-walk trace.

use std::path::Path;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use offload_controller::Profile;
use offload_sim::frames::FrameTable;
use offload_sim::oracle::{OracleConfig, plan_with};
use offload_sim::simulator::RunSetup;
use offload_sim::trace::{LoadOptions, Trace};
use offload_sim::{SimConfig, simulate_with};

fn trace() -> Trace {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../../shared/traces/mahimahi-cellular/ATT-LTE-driving.up");
    Trace::load(&shared, &LoadOptions::default()).unwrap_or_else(|_| {
        eprintln!("../shared/traces absent: benchmarking the generated LTE-walk trace");
        let generated = root.join("../traces/generated/lte-walk-seed1.tsv");
        Trace::load(&generated, &LoadOptions::default()).expect("generated trace")
    })
}

fn hot_path(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/illustrative-detector.toml");
    let profile = Profile::load(&path).expect("profile");
    let trace = trace();
    let config = SimConfig {
        duration_s: Some(300.0_f64.min(trace.duration())),
        ..SimConfig::default()
    };
    let frames = RunSetup::new(&trace, &profile, &config).n_frames;
    let table = FrameTable::new(&profile, config.seed, frames);

    let mut group = c.benchmark_group("simulate_real");
    group.throughput(Throughput::Elements(frames));
    group.sample_size(10);
    for name in offload_policies::preset_names() {
        let preset = offload_policies::preset(name).expect("preset");
        group.bench_with_input(BenchmarkId::from_parameter(name), &preset, |b, preset| {
            b.iter(|| {
                simulate_with(
                    &trace,
                    &profile,
                    table.cursor(),
                    preset.build(),
                    &config,
                    |_| {},
                )
            })
        });
    }
    group.finish();

    // The oracle seeded as in `offload eval`: with the online policies' schedules.
    let seeds: Vec<Vec<u8>> = offload_policies::preset_names()
        .into_iter()
        .map(|name| {
            let policy = offload_policies::preset(name).expect("preset").build();
            let mut schedule = Vec::with_capacity(frames as usize);
            simulate_with(&trace, &profile, table.cursor(), policy, &config, |r| {
                schedule.push(r.layers.min(255) as u8)
            });
            schedule
        })
        .collect();
    let seeds: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
    let mut group = c.benchmark_group("oracle_real");
    group.throughput(Throughput::Elements(frames));
    group.sample_size(10);
    group.bench_function("beam8_seeded", |b| {
        b.iter(|| {
            plan_with(
                &trace,
                &profile,
                table.cursor(),
                &config,
                &OracleConfig::default(),
                &seeds,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
