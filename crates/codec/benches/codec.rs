//! Symbols per second of the entropy models, for one realistic layer (8 × 8 × 8 latents) and
//! a 1 M-symbol block, and the container round trip of a 3-layer frame.
//!
//! `cargo bench -p offload-codec --bench codec`
//!
//! Every benchmark runs twice: under `wall/` with wall-clock time (criterion's default) and
//! under `cpu/` with the benchmark thread's CPU time, which stays meaningful on a machine
//! shared with other jobs (time spent descheduled is not counted; cache and core sharing
//! still are).

use std::hint::black_box;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use offload_codec::{
    ChannelPmf, FactorizedPrior, FrameHeader, GaussianConditional, LayerRecord, LayerSpec, ModelId,
    ModelSpec, Shape, decode_frame, encode_frame,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`), in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Criterion measurement of thread CPU time, reported like wall time.
struct ThreadCpuTime;

static WALL: WallTime = WallTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns() - start
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Values are nanoseconds, exactly like wall time's.
        WALL.formatter()
    }
}

/// `n` symbols `round(N(0, s))` with log-uniform scales in [0.11, 50], and their indices.
fn gaussian_data(gaussian: &GaussianConditional, n: usize, seed: u64) -> (Vec<i32>, Vec<u16>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (lo, hi) = (0.11f64.ln(), 50f64.ln());
    let mut symbols = Vec::with_capacity(n);
    let mut indices = Vec::with_capacity(n);
    for _ in 0..n {
        let scale = (lo + rng.random::<f64>() * (hi - lo)).exp();
        let y: f64 = Normal::new(0.0, scale).unwrap().sample(&mut rng);
        symbols.push(y.round() as i32);
        indices.push(gaussian.scale_index(scale as f32));
    }
    (symbols, indices)
}

/// A prior of `channels` discretised logistics over -20..=20, and `spatial` samples each.
fn factorized_data(channels: usize, spatial: usize, seed: u64) -> (FactorizedPrior, Vec<i32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pmfs = Vec::new();
    let mut z = Vec::with_capacity(channels * spatial);
    for c in 0..channels {
        let scale = 0.3 + c as f64 * 0.3;
        let cdf = |x: f64| 1.0 / (1.0 + (-x / scale).exp());
        let pmf: Vec<f32> = (-20..=20)
            .map(|v| (cdf(f64::from(v) + 0.5) - cdf(f64::from(v) - 0.5)) as f32)
            .collect();
        for _ in 0..spatial {
            // Inverse-CDF sample of the logistic, rounded.
            let u: f64 = rng.random_range(1e-9..1.0 - 1e-9);
            z.push((scale * (u / (1.0 - u)).ln()).round() as i32);
        }
        pmfs.push(ChannelPmf {
            min_symbol: -20,
            pmf,
        });
    }
    (FactorizedPrior::from_pmfs(pmfs).unwrap(), z)
}

fn gaussian<M: Measurement>(c: &mut Criterion<M>) {
    let gaussian = GaussianConditional::default_table();
    let mut group = c.benchmark_group(format!("{}/gaussian", prefix::<M>()));
    for (name, n) in [("layer_8x8x8", 512usize), ("block_1M", 1 << 20)] {
        let (symbols, indices) = gaussian_data(&gaussian, n, 1);
        let bytes = gaussian.encode(&symbols, &indices).unwrap();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("encode", name), |b| {
            b.iter(|| gaussian.encode(black_box(&symbols), black_box(&indices)))
        });
        group.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| gaussian.decode(black_box(&bytes), black_box(&indices)))
        });
    }
    group.finish();
}

fn factorized<M: Measurement>(c: &mut Criterion<M>) {
    let mut group = c.benchmark_group(format!("{}/factorized", prefix::<M>()));
    for (name, channels, spatial) in [("z_8x2x2", 8usize, 4usize), ("block_1M", 16, 1 << 16)] {
        let (prior, z) = factorized_data(channels, spatial, 2);
        let bytes = prior.encode(&z, spatial).unwrap();
        group.throughput(Throughput::Elements(z.len() as u64));
        group.bench_function(BenchmarkId::new("encode", name), |b| {
            b.iter(|| prior.encode(black_box(&z), spatial))
        });
        group.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| prior.decode(black_box(&bytes), spatial))
        });
    }
    group.finish();
}

fn container<M: Measurement>(c: &mut Criterion<M>) {
    let gaussian = GaussianConditional::default_table();
    let layer = LayerSpec {
        y: Shape::new(8, 8, 8),
        z: Shape::new(8, 2, 2),
    };
    let spec = ModelSpec {
        model_id: ModelId::from_manifest(b"bench"),
        layers: vec![layer; 3],
    };
    let (prior, z) = factorized_data(8, 4, 3);
    let records: Vec<LayerRecord> = (0..3)
        .map(|i| {
            let (y, indices) = gaussian_data(&gaussian, 512, 4 + i as u64);
            LayerRecord::encode(i, &layer, &prior, &gaussian, &z, &y, &indices).unwrap()
        })
        .collect();
    let header = FrameHeader::new(&spec, 1);
    let bytes = encode_frame(&header, &records).unwrap();
    let mut group = c.benchmark_group(format!("{}/container", prefix::<M>()));
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("encode_frame_3_layers", |b| {
        b.iter(|| encode_frame(black_box(&header), black_box(&records)))
    });
    group.bench_function("decode_frame_3_layers", |b| {
        b.iter(|| decode_frame(black_box(&bytes), black_box(&spec)))
    });
    group.finish();
}

/// `cpu` or `wall`, after the measurement in use.
fn prefix<M: Measurement>() -> &'static str {
    if std::any::type_name::<M>().ends_with("ThreadCpuTime") {
        "cpu"
    } else {
        "wall"
    }
}

criterion_group!(wall, gaussian, factorized, container);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = gaussian, factorized, container
}
criterion_main!(wall, cpu);
