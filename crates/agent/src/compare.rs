//! A simulated run and an emulated run of the same trace, policy and profile, side by side:
//! per-frame decision agreement, deadline misses, where the decisions diverge, and how far the
//! controller's throughput estimate is from the link's capacity.

use std::collections::BTreeMap;

use offload_controller::{EstimatorConfig, Observation};
use offload_sim::FrameRecord;
use offload_sim::frames::FrameSource;
use offload_sim::record::percentile;
use offload_transport::WireOverhead;
use serde::Serialize;

use crate::model::{DeviceModel, ModelFailure};

/// The uplink bytes of each input's first `k` layers, `k = 1..=L` (`[i][k-1]`), from the real
/// encoder and `overhead`: what the agent's controller plans with for these frames.
pub fn wire_sizes<M: DeviceModel>(
    model: &M,
    inputs: &[M::Input],
    overhead: WireOverhead,
) -> Result<Vec<Vec<u64>>, ModelFailure> {
    inputs
        .iter()
        .map(|input| {
            let frame = model.encode(input)?;
            let lens: Vec<u64> = frame.layers.iter().map(|l| l.len() as u64).collect();
            Ok(overhead.cumulative(frame.header.len() as u64, &lens))
        })
        .collect()
}

/// Given frame sizes in capture order, as the simulator's frame source (it cycles past the end).
#[derive(Debug, Clone)]
pub struct FrameRows<'a> {
    rows: &'a [Vec<u64>],
    next: usize,
}

impl<'a> FrameRows<'a> {
    /// Yields `rows[0]`, `rows[1]`, …; `rows` must not be empty.
    pub fn new(rows: &'a [Vec<u64>]) -> Self {
        FrameRows { rows, next: 0 }
    }
}

impl FrameSource for FrameRows<'_> {
    fn next_frame(&mut self) -> &[u64] {
        let row = &self.rows[self.next % self.rows.len()];
        self.next += 1;
        row
    }
}

/// The headline numbers of one run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RunStats {
    /// Frames in the run.
    pub frames: u64,
    /// Fraction of frames whose result missed the deadline (skipped frames included).
    pub miss_rate: f64,
    /// Fraction of frames skipped because the device was busy.
    pub skipped_rate: f64,
    /// Fraction of frames offloaded.
    pub offload_fraction: f64,
    /// Mean layers per offloaded frame.
    pub mean_layers: f64,
    /// Median capture-to-result latency of frames with a result (s).
    pub latency_p50: f64,
    /// 95th percentile of that latency (s).
    pub latency_p95: f64,
}

impl RunStats {
    /// The numbers of `records`.
    pub fn of(records: &[FrameRecord]) -> Self {
        let n = records.len().max(1) as f64;
        let offloaded: Vec<_> = records.iter().filter(|r| r.layers > 0).collect();
        let mut latencies: Vec<f64> = records.iter().filter_map(|r| r.latency).collect();
        latencies.sort_by(f64::total_cmp);
        RunStats {
            frames: records.len() as u64,
            miss_rate: records.iter().filter(|r| !r.met_deadline).count() as f64 / n,
            skipped_rate: records.iter().filter(|r| r.decision == "skipped").count() as f64 / n,
            offload_fraction: offloaded.len() as f64 / n,
            mean_layers: offloaded.iter().map(|r| f64::from(r.layers)).sum::<f64>()
                / offloaded.len().max(1) as f64,
            latency_p50: percentile(&latencies, 0.5),
            latency_p95: percentile(&latencies, 0.95),
        }
    }
}

/// A stretch of consecutive frames on which the two runs decided differently.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Divergence {
    /// First frame of the stretch.
    pub first_frame: u64,
    /// Last frame of the stretch.
    pub last_frame: u64,
    /// Capture time of the first frame (s).
    pub start_s: f64,
    /// Capture time of the last frame (s).
    pub end_s: f64,
    /// The simulator's most frequent decision in the stretch.
    pub sim_decision: String,
    /// The emulated agent's most frequent decision in the stretch.
    pub emu_decision: String,
    /// Mean throughput estimate of the simulated controller over the stretch (bit/s).
    pub sim_estimate_bps: f64,
    /// Mean throughput estimate of the emulated controller over the stretch (bit/s).
    pub emu_estimate_bps: f64,
}

impl Divergence {
    /// Frames in the stretch.
    pub fn frames(&self) -> u64 {
        self.last_frame - self.first_frame + 1
    }
}

/// How often one pair of (simulated, emulated) decisions occurred.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionPair {
    /// The simulator's decision.
    pub sim: String,
    /// The emulated agent's decision.
    pub emu: String,
    /// Frames with that pair.
    pub frames: u64,
}

/// Two runs of the same frames compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Frames present in both runs.
    pub frames: u64,
    /// Fraction of those on which both made the same decision (`local`, `skipped`, or
    /// `offload:k` with the same `k`).
    pub agreement: f64,
    /// Fraction on which they agree or both offload with layer counts one apart.
    pub agreement_within_one_layer: f64,
    /// The simulated run.
    pub sim: RunStats,
    /// The emulated run.
    pub emu: RunStats,
    /// Frames on which one run met the deadline and the other did not.
    pub outcome_differs: u64,
    /// Disagreeing frames whose neighbour holds the swapped pair of decisions (simulator `a`,
    /// emulated `b` beside simulator `b`, emulated `a`): the same choices one frame apart, as
    /// when both alternate `local` and `offload:1` on a link that carries a frame every other
    /// interval and one run's alternation starts a frame later.
    pub one_frame_apart: u64,
    /// The pairs of differing decisions, most frequent first.
    pub disagreements: Vec<DecisionPair>,
    /// Stretches of disagreement, longest first.
    pub divergences: Vec<Divergence>,
}

impl Comparison {
    /// Compares the records of the same frames (matched by frame number).
    pub fn of(sim: &[FrameRecord], emu: &[FrameRecord]) -> Self {
        let emu_by_frame: BTreeMap<u64, &FrameRecord> = emu.iter().map(|r| (r.frame, r)).collect();
        let pairs: Vec<(&FrameRecord, &FrameRecord)> = sim
            .iter()
            .filter_map(|s| emu_by_frame.get(&s.frame).map(|e| (s, *e)))
            .collect();
        let n = pairs.len().max(1) as f64;
        let same = pairs
            .iter()
            .filter(|(s, e)| s.decision == e.decision)
            .count();
        let near = pairs
            .iter()
            .filter(|(s, e)| {
                s.decision == e.decision
                    || (s.layers > 0 && e.layers > 0 && s.layers.abs_diff(e.layers) <= 1)
            })
            .count();
        let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
        for (s, e) in pairs.iter().filter(|(s, e)| s.decision != e.decision) {
            *counts
                .entry((s.decision.clone(), e.decision.clone()))
                .or_default() += 1;
        }
        let mut disagreements: Vec<DecisionPair> = counts
            .into_iter()
            .map(|((sim, emu), frames)| DecisionPair { sim, emu, frames })
            .collect();
        disagreements.sort_by_key(|d| std::cmp::Reverse(d.frames));
        let mut divergences = stretches(&pairs);
        divergences.sort_by_key(|d| std::cmp::Reverse(d.frames()));
        let one_frame_apart = pairs
            .iter()
            .enumerate()
            .filter(|(i, (s, e))| {
                let swapped = |j: usize| {
                    pairs.get(j).is_some_and(|(s2, e2)| {
                        s2.frame.abs_diff(s.frame) == 1
                            && s2.decision == e.decision
                            && e2.decision == s.decision
                    })
                };
                s.decision != e.decision
                    && (i.checked_sub(1).is_some_and(swapped) || swapped(i + 1))
            })
            .count() as u64;
        let sim_only: Vec<FrameRecord> = pairs.iter().map(|(s, _)| (*s).clone()).collect();
        let emu_only: Vec<FrameRecord> = pairs.iter().map(|(_, e)| (*e).clone()).collect();
        Comparison {
            frames: pairs.len() as u64,
            agreement: same as f64 / n,
            agreement_within_one_layer: near as f64 / n,
            sim: RunStats::of(&sim_only),
            emu: RunStats::of(&emu_only),
            outcome_differs: pairs
                .iter()
                .filter(|(s, e)| s.met_deadline != e.met_deadline)
                .count() as u64,
            one_frame_apart,
            disagreements,
            divergences,
        }
    }
}

fn stretches(pairs: &[(&FrameRecord, &FrameRecord)]) -> Vec<Divergence> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < pairs.len() {
        if pairs[i].0.decision == pairs[i].1.decision {
            i += 1;
            continue;
        }
        let mut j = i;
        while j + 1 < pairs.len()
            && pairs[j + 1].0.decision != pairs[j + 1].1.decision
            && pairs[j + 1].0.frame == pairs[j].0.frame + 1
        {
            j += 1;
        }
        let run = &pairs[i..=j];
        let len = run.len() as f64;
        out.push(Divergence {
            first_frame: run[0].0.frame,
            last_frame: run[run.len() - 1].0.frame,
            start_s: run[0].0.captured_at,
            end_s: run[run.len() - 1].0.captured_at,
            sim_decision: most_frequent(run.iter().map(|(s, _)| s.decision.as_str())),
            emu_decision: most_frequent(run.iter().map(|(_, e)| e.decision.as_str())),
            sim_estimate_bps: run.iter().map(|(s, _)| s.estimate_bps).sum::<f64>() / len,
            emu_estimate_bps: run.iter().map(|(_, e)| e.estimate_bps).sum::<f64>() / len,
        });
        i = j + 1;
    }
    out
}

fn most_frequent<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for d in items {
        *counts.entry(d).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|(_, c)| *c)
        .map(|(d, _)| d.to_owned())
        .unwrap_or_default()
}

/// Error of a throughput estimate against a reference rate, relative to the reference.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EstimateError {
    /// Frames compared (with an estimate and a reference of at least `min_reference_bps`).
    pub frames: u64,
    /// Mean of |estimate − reference| / reference.
    pub mean_abs_rel: f64,
    /// Median of the same.
    pub median_abs_rel: f64,
    /// 90th percentile of the same.
    pub p90_abs_rel: f64,
    /// Mean of (estimate − reference) / reference: positive = over-estimates.
    pub bias: f64,
}

impl EstimateError {
    /// Below this reference rate (bit/s) a frame is left out: relative error of an outage is
    /// meaningless.
    pub const MIN_REFERENCE_BPS: f64 = 1e3;

    /// The error over `(estimate, reference)` pairs; pairs without an estimate (0) or with a
    /// reference under [`Self::MIN_REFERENCE_BPS`] are left out.
    pub fn of(pairs: impl IntoIterator<Item = (f64, f64)>) -> Self {
        let mut rel: Vec<f64> = pairs
            .into_iter()
            .filter(|&(e, r)| e > 0.0 && r >= Self::MIN_REFERENCE_BPS && e.is_finite())
            .map(|(e, r)| (e - r) / r)
            .collect();
        let n = rel.len().max(1) as f64;
        let bias = rel.iter().sum::<f64>() / n;
        let mut abs: Vec<f64> = rel.iter().map(|x| x.abs()).collect();
        abs.sort_by(f64::total_cmp);
        rel.clear();
        EstimateError {
            frames: abs.len() as u64,
            mean_abs_rel: abs.iter().sum::<f64>() / n,
            median_abs_rel: percentile(&abs, 0.5),
            p90_abs_rel: percentile(&abs, 0.9),
            bias,
        }
    }
}

/// Replays the delivery samples among `observations` (time-ordered, as the controller was fed
/// them) through a fresh `estimator` and returns its estimate at each of the times `at`
/// (ascending), 0 before the first sample.
pub fn replay_estimates(
    estimator: &EstimatorConfig,
    observations: &[(f64, Observation)],
    at: &[f64],
) -> Vec<f64> {
    let mut e = estimator.build();
    let mut next = 0;
    at.iter()
        .map(|&t| {
            while next < observations.len() && observations[next].0 <= t {
                if let (when, Observation::Delivered { sample, .. }) = &observations[next] {
                    e.on_sample(*when, sample);
                }
                next += 1;
            }
            e.estimate().map_or(0.0, |x| x.bps)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use offload_controller::RateSample;

    fn record(frame: u64, decision: &str, met: bool, estimate: f64) -> FrameRecord {
        let layers = decision
            .strip_prefix("offload:")
            .map_or(0, |k| k.parse().expect("a layer count"));
        FrameRecord {
            frame,
            captured_at: frame as f64 / 30.0,
            decision: decision.into(),
            layers,
            bytes: 0,
            bytes_sent: 0,
            decided_at: frame as f64 / 30.0,
            result_at: None,
            latency: met.then_some(0.05),
            met_deadline: met,
            accuracy: 0.0,
            energy_j: 0.0,
            battery: 1.0,
            estimate_bps: estimate,
            capacity_bps: 0.0,
            utility: 0.0,
        }
    }

    #[test]
    fn agreement_misses_and_stretches() {
        let sim: Vec<_> = (0..10).map(|i| record(i, "offload:4", true, 1e6)).collect();
        let mut emu = sim.clone();
        emu[3] = record(3, "offload:3", true, 0.8e6);
        emu[4] = record(4, "offload:3", false, 0.8e6);
        emu[8] = record(8, "local", true, 0.5e6);
        let c = Comparison::of(&sim, &emu);
        assert_eq!(c.frames, 10);
        assert!((c.agreement - 0.7).abs() < 1e-12);
        assert!((c.agreement_within_one_layer - 0.9).abs() < 1e-12);
        assert!((c.emu.miss_rate - 0.1).abs() < 1e-12 && c.sim.miss_rate == 0.0);
        assert_eq!(c.outcome_differs, 1);
        assert_eq!(c.one_frame_apart, 0);
        assert_eq!(c.disagreements[0].frames, 2);
        assert_eq!(c.divergences.len(), 2);
        let d = &c.divergences[0];
        assert_eq!((d.first_frame, d.last_frame, d.frames()), (3, 4, 2));
        assert_eq!(
            (d.sim_decision.as_str(), d.emu_decision.as_str()),
            ("offload:4", "offload:3")
        );
        assert!((d.emu_estimate_bps - 0.8e6).abs() < 1e-6);
    }

    #[test]
    fn the_same_alternation_one_frame_apart_is_counted() {
        // Both alternate local and offload:1; the emulated run from frame 4 a frame later.
        let alternate = |i: u64| {
            if i.is_multiple_of(2) {
                "local"
            } else {
                "offload:1"
            }
        };
        let sim: Vec<_> = (0..10)
            .map(|i| record(i, alternate(i), true, 1e5))
            .collect();
        let emu: Vec<_> = (0..10)
            .map(|i| record(i, alternate(if i >= 4 { i + 1 } else { i }), true, 1e5))
            .collect();
        let mut other = emu.clone();
        other[9] = record(9, "offload:2", true, 1e5);
        let c = Comparison::of(&sim, &emu);
        assert!((c.agreement - 0.4).abs() < 1e-12);
        assert_eq!(c.one_frame_apart, 6);
        // A disagreement that is not a swap of its neighbour's is not counted.
        assert_eq!(Comparison::of(&sim, &other).one_frame_apart, 5);
    }

    #[test]
    fn estimate_error_is_relative_and_skips_outages() {
        let e = EstimateError::of([(1.1e6, 1e6), (0.8e6, 1e6), (5e6, 0.0), (0.0, 1e6)]);
        assert_eq!(e.frames, 2);
        assert!((e.bias - (-0.05)).abs() < 1e-12);
        assert!((e.mean_abs_rel - 0.15).abs() < 1e-12);
    }

    #[test]
    fn replay_feeds_samples_up_to_each_time() {
        let sample = |t: f64, mbps: f64| {
            (
                t,
                Observation::Delivered {
                    frame: 0,
                    sample: RateSample {
                        start: t - 0.01,
                        end: t,
                        bytes: (mbps * 1e6 * 0.01 / 8.0) as u64,
                    },
                },
            )
        };
        let obs = [
            sample(1.0, 2.0),
            (1.5, Observation::CongestionEvent),
            sample(2.0, 2.0),
        ];
        let est = replay_estimates(
            &EstimatorConfig::HarmonicMean { window: 5 },
            &obs,
            &[0.5, 1.0, 3.0],
        );
        assert_eq!(est[0], 0.0);
        assert!((est[1] - 2e6).abs() < 1.0 && (est[2] - 2e6).abs() < 1.0);
    }
}
