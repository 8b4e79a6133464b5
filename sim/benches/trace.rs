//! `Trace::transfer_end` and `bits_between` throughput on real traces (calls/s).
//!
//! Reads `../shared/traces`; without it, falls back to the repository's generated LTE-walk
//! trace so the bench still runs.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use offload_sim::trace::{LoadOptions, Trace};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Queries per iteration: enough to average out the loop overhead.
const QUERIES: usize = 4096;

fn traces() -> Vec<Trace> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../../shared/traces");
    let files = [
        "mahimahi-cellular/ATT-LTE-driving.up",
        "5g-mmwave-uplink-nuwins/throughput/driving/5g/throughput.list",
        "hsdpa-norway/metro.kalbakken-jernbanetorget-report.2010-09-13_1046CEST.log",
    ];
    let mut out: Vec<Trace> = files
        .iter()
        .filter_map(|f| Trace::load(&shared.join(f), &LoadOptions::default()).ok())
        .collect();
    if out.is_empty() {
        eprintln!("../shared/traces absent: benchmarking the generated LTE-walk trace");
        let generated = root.join("../traces/generated/lte-walk-seed1.tsv");
        out.push(Trace::load(&generated, &LoadOptions::default()).expect("generated trace"));
    }
    out
}

/// Frame-sized transfers (2–200 kB) starting anywhere in the first ten periods.
fn queries(trace: &Trace) -> Vec<(f64, f64)> {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    (0..QUERIES)
        .map(|_| {
            let start = rng.random::<f64>() * 10.0 * trace.duration();
            let bits = rng.random_range(2_000.0..200_000.0) * 8.0;
            (start, bits)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("trace");
    group.throughput(Throughput::Elements(QUERIES as u64));
    for trace in traces() {
        let qs = queries(&trace);
        let label = format!("{} ({} segments)", trace.name(), trace.len());
        group.bench_function(format!("transfer_end/{label}"), |b| {
            b.iter(|| {
                let mut acc = 0.0;
                for &(start, bits) in &qs {
                    acc += black_box(&trace).transfer_end(start, bits).unwrap_or(0.0);
                }
                acc
            })
        });
        // The simulator's pattern: one frame every 33 ms, in time order.
        let frames: Vec<(f64, f64)> = qs
            .iter()
            .enumerate()
            .map(|(i, &(_, bits))| (i as f64 / 30.0, bits))
            .collect();
        group.bench_function(format!("transfer_end_in_order/{label}"), |b| {
            b.iter(|| {
                let mut acc = 0.0;
                for &(start, bits) in &frames {
                    acc += black_box(&trace).transfer_end(start, bits).unwrap_or(0.0);
                }
                acc
            })
        });
        group.bench_function(format!("bits_between/{label}"), |b| {
            b.iter(|| {
                let mut acc = 0.0;
                for &(start, len) in &qs {
                    acc += black_box(&trace).bits_between(start, start + len * 1e-6);
                }
                acc
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
