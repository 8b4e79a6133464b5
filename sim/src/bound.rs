//! An upper bound on any schedule's utility: a Lagrangian relaxation of link and CPU capacity.
//!
//! The run is cut into blocks of `block_s` seconds of capture time. A frame that delivers a
//! result in time does all its work inside `[capture, deadline]`: its CPU work (encoder plus
//! coding or the local path) and, when offloaded, its bytes' crossing of the link. So the frames
//! captured in one block need at most `block_s + deadline` seconds of CPU and at most the
//! link's capacity over `[block start, block end + deadline]`. Everything else is relaxed:
//! frames may be skipped at will at no energy cost (a frame that misses anyway is worth no more
//! than a skipped one), each offloaded frame is feasible if it would meet its deadline *alone*
//! on an idle link, the radio costs only its per-bit active power (no base power, promotion or
//! tail), and the energy weight is taken at the highest battery level possible then (only the
//! baseline draw). Any real schedule satisfies all of this, so the best relaxed value bounds it.
//!
//! The relaxed problem of one block is a knapsack with two resources; its Lagrangian dual
//! `g(λ, μ) = λ·C + μ·T + Σ_i max_a (u_ia − λ·bits_ia − μ·cpu_ia)` is an upper bound for every
//! `λ, μ ≥ 0` (weak duality), so an approximate minimisation (coordinate descent with golden-
//! section searches) still gives a valid bound, just a less tight one.

use offload_controller::{FrameOptions, Profile};

use crate::frames::FrameSizes;
use crate::simulator::{RunSetup, SimConfig};
use crate::trace::Trace;

/// Capture-time length of a relaxation block (s).
pub const BLOCK_S: f64 = 2.0;

/// One option of one frame in the relaxation: value, link bits, CPU seconds.
#[derive(Debug, Clone, Copy)]
struct Item {
    value: f64,
    bits: f64,
    cpu: f64,
}

/// The upper bound on the total utility of any schedule of `trace` with `profile` under `config`.
pub fn upper_bound(trace: &Trace, profile: &Profile, config: &SimConfig) -> f64 {
    let setup = RunSetup::new(trace, profile, config);
    let mut sizes = FrameSizes::new(profile, config.seed);
    let mut options = FrameOptions::default();
    let eff = config.link.payload_efficiency.clamp(1e-3, 1.0);
    let capacity_j = config.battery.capacity_wh.max(1e-9) * 3600.0;
    let start_j = capacity_j * config.battery.start_level.clamp(0.0, 1.0);
    let radio = setup.radio;
    let skip = -setup.utility.miss_penalty;
    let per_block = ((BLOCK_S / setup.interval).ceil() as usize).max(1);
    // Items of the block's frames: `options_per_frame` entries per frame, skip implied.
    let mut items: Vec<Item> = Vec::new();
    let mut starts: Vec<usize> = Vec::with_capacity(per_block + 1);
    let mut total = 0.0;
    let mut i = 0u64;
    while i < setup.n_frames {
        let block_start = setup.captured(i);
        let block_end = block_start + BLOCK_S;
        items.clear();
        starts.clear();
        while i < setup.n_frames && setup.captured(i) < block_end {
            let captured = setup.captured(i);
            let deadline = captured + setup.deadline_s;
            let frame_sizes = sizes.next_frame();
            setup.fill_options(profile, i, frame_sizes, &mut options);
            let level = ((start_j - config.battery.baseline_w * (captured - setup.t0).max(0.0))
                / capacity_j)
                .max(0.0);
            let w = setup.utility.energy_weight(level);
            let encoder_j = setup.power_w * setup.encoder_time;
            starts.push(items.len());
            let local_cpu = setup.encoder_time + options.local.device_time;
            if captured + local_cpu <= deadline {
                items.push(Item {
                    value: options.local.accuracy - w * (encoder_j + options.local.energy_j),
                    bits: 0.0,
                    cpu: local_cpu,
                });
            }
            for o in &options.offload {
                let ready = captured + setup.encoder_time + o.device_time;
                let wire = o.bytes as f64 * 8.0 / eff;
                let Some(end) = trace.transfer_end(ready, wire) else {
                    continue;
                };
                if end + 2.0 * setup.one_way + o.server_time > deadline {
                    continue;
                }
                let radio_j = radio.uplink_w_per_mbps * o.bytes as f64 * 8.0 / 1e6;
                items.push(Item {
                    value: o.accuracy - w * (encoder_j + o.device_energy_j + radio_j),
                    bits: wire,
                    cpu: setup.encoder_time + o.device_time,
                });
            }
            i += 1;
        }
        starts.push(items.len());
        let link = trace.bits_between(block_start, block_end + setup.deadline_s);
        let cpu = BLOCK_S + setup.deadline_s;
        total += block_dual(&items, &starts, skip, link, cpu);
    }
    total
}

/// `g(λ, μ)` and its subgradient parts (bits and CPU used by the maximisers).
fn dual(items: &[Item], starts: &[usize], skip: f64, lambda: f64, mu: f64) -> (f64, f64, f64) {
    let mut sum = 0.0;
    let mut bits = 0.0;
    let mut cpu = 0.0;
    for w in starts.windows(2) {
        let mut best = (skip, 0.0, 0.0);
        for it in &items[w[0]..w[1]] {
            let v = it.value - lambda * it.bits - mu * it.cpu;
            if v > best.0 {
                best = (v, it.bits, it.cpu);
            }
        }
        sum += best.0;
        bits += best.1;
        cpu += best.2;
    }
    (sum, bits, cpu)
}

/// An approximate `min over λ, μ ≥ 0` of the block's dual; every evaluated point is a valid
/// bound, so the smallest one seen is returned.
fn block_dual(items: &[Item], starts: &[usize], skip: f64, link: f64, cpu_s: f64) -> f64 {
    let g = |l: f64, m: f64| dual(items, starts, skip, l, m).0 + l * link + m * cpu_s;
    let (g0, bits0, cpu0) = dual(items, starts, skip, 0.0, 0.0);
    if bits0 <= link && cpu0 <= cpu_s {
        // The unconstrained optimum fits: the relaxation is exact at λ = μ = 0.
        return g0;
    }
    let frames = (starts.len() - 1).max(1) as f64;
    let top = items.iter().map(|i| i.value - skip).fold(0.0, f64::max);
    // Beyond these prices no option beats skipping.
    let min_bits = items
        .iter()
        .filter(|i| i.bits > 0.0)
        .map(|i| i.bits)
        .fold(f64::INFINITY, f64::min);
    let min_cpu = items.iter().map(|i| i.cpu).fold(f64::INFINITY, f64::min);
    let lambda_max = if min_bits.is_finite() {
        top / min_bits
    } else {
        0.0
    };
    let mu_max = if min_cpu.is_finite() {
        top / min_cpu
    } else {
        0.0
    };
    let _ = frames;
    let mut best = g0;
    let (mut l, mut m) = (0.0, 0.0);
    for _round in 0..3 {
        l = golden(|x| g(x, m), 0.0, lambda_max, &mut best);
        m = golden(|x| g(l, x), 0.0, mu_max, &mut best);
    }
    best.min(g(l, m))
}

/// Golden-section minimisation of a convex function on `[lo, hi]`, 24 evaluations; records
/// the smallest value seen in `best` and returns the best point.
fn golden(f: impl Fn(f64) -> f64, mut lo: f64, mut hi: f64, best: &mut f64) -> f64 {
    const R: f64 = 0.618_033_988_749_894_8;
    let mut x1 = hi - R * (hi - lo);
    let mut x2 = lo + R * (hi - lo);
    let mut f1 = f(x1);
    let mut f2 = f(x2);
    for _ in 0..22 {
        if f1 <= f2 {
            hi = x2;
            x2 = x1;
            f2 = f1;
            x1 = hi - R * (hi - lo);
            f1 = f(x1);
        } else {
            lo = x1;
            x1 = x2;
            f1 = f2;
            x2 = lo + R * (hi - lo);
            f2 = f(x2);
        }
    }
    *best = best.min(f1).min(f2);
    if f1 <= f2 { x1 } else { x2 }
}
