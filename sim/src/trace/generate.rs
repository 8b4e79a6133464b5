//! Seeded synthetic traces: a Markov-modulated model fitted to real traces, and deterministic
//! step and outage traces for tests.
//!
//! # The Markov-modulated model
//!
//! A hidden *state* (a coarse capacity level) evolves as a discrete-time Markov chain with one
//! step per `window_s` (1 s): from state `i` it moves to `j` with probability `p[i][j]`. Within
//! a state, the capacity is redrawn every `sample_s` (0.1 s) independently: 0 with probability
//! `zero_fraction`, otherwise log-normal `m·exp(σZ − σ²/2)`, `Z ~ N(0, 1)`, whose mean `m`
//! is the state's mean over its non-zero samples, so the state's overall mean is `mean_bps`.
//! The first state is drawn from the fitted occupancy (the chain's empirical stationary
//! distribution).
//!
//! # Fitting ([`MarkovModel::fit`])
//!
//! Each real series is cut into `window_s` windows and `sample_s` samples, averaged exactly
//! with [`Trace::bits_between`]. Windows are classified into `states` levels by the quantiles
//! of the pooled window means (equal-occupancy levels); per level the samples give `mean_bps`,
//! `zero_fraction` and `σ` (standard deviation of the log of the non-zero samples). Transition
//! probabilities are the counted window-to-window transitions within a series (never across
//! series), normalised per row. Mean dwell in state `i` is `window_s / (1 − p[i][i])`.
//!
//! [`MarkovModel::lte_walk`] holds the parameters fitted this way (4 states, 1 s windows,
//! 100 ms samples) to the NUWiNS LTE uplink walking runs (`5g-mmwave-uplink-nuwins/throughput/
//! walking/lte/*.list`, every run as its own series); `offload trace fit` reproduces them and a
//! test re-fits the shared files and compares.
//!
//! Same seed and parameters give bit-identical traces (ChaCha8 stream, rates rounded to whole
//! bit/s so the `time_s-mbps` text round-trips).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::error::TraceError;
use super::piecewise::{TimelineBuilder, Trace};

/// Most samples one generated trace may hold (≈ 23 days at 100 ms).
pub const MAX_SAMPLES: u64 = 20_000_000;

/// Why a model could not be fitted or a trace generated.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// A parameter is out of range.
    #[error("invalid {what}: {expected}")]
    BadParameter {
        /// The parameter.
        what: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// The traces to fit hold fewer windows than states.
    #[error("{windows} windows of data, need at least {needed} to fit")]
    TooLittleData {
        /// Windows found.
        windows: usize,
        /// Windows needed.
        needed: usize,
    },
    /// Building the trace failed.
    #[error(transparent)]
    Trace(#[from] TraceError),
}

/// One capacity level of a [`MarkovModel`].
#[derive(Debug, Clone, PartialEq)]
pub struct MarkovState {
    /// Mean capacity in this state, zeros included (bit/s).
    pub mean_bps: f64,
    /// Standard deviation of ln(capacity) over the non-zero samples.
    pub log_sd: f64,
    /// Fraction of samples that are 0.
    pub zero_fraction: f64,
    /// Fraction of windows spent in this state (the initial distribution).
    pub occupancy: f64,
}

/// A Markov-modulated capacity model (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct MarkovModel {
    /// Seconds per state step.
    pub window_s: f64,
    /// Seconds per within-state sample.
    pub sample_s: f64,
    /// The levels, from lowest to highest mean.
    pub states: Vec<MarkovState>,
    /// Row-stochastic transition probabilities per window, `transition[i][j]` = P(i → j).
    pub transition: Vec<Vec<f64>>,
}

/// How [`MarkovModel::fit`] cuts the data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitConfig {
    /// Number of levels (2–16).
    pub states: usize,
    /// State step (s).
    pub window_s: f64,
    /// Within-state sample (s); must divide `window_s` into a whole number.
    pub sample_s: f64,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig {
            states: 4,
            window_s: 1.0,
            sample_s: 0.1,
        }
    }
}

impl MarkovModel {
    /// LTE uplink while walking: fitted to NUWiNS `walking/lte` (17 runs, 946 s; long-run
    /// mean 48.2 Mbit/s, levels 42.0 / 44.4 / 45.6 / 60.9 Mbit/s) with
    /// [`FitConfig::default`]; regenerate with
    /// `offload trace fit --each-series ../shared/traces/5g-mmwave-uplink-nuwins/throughput/walking/lte/*.list`.
    pub fn lte_walk() -> MarkovModel {
        LTE_WALK.to_model()
    }

    /// Fits the model to `traces` (each one series; transitions are not counted across them).
    pub fn fit(traces: &[Trace], cfg: &FitConfig) -> Result<MarkovModel, GenerateError> {
        if !(2..=16).contains(&cfg.states) {
            return Err(GenerateError::BadParameter {
                what: "states",
                expected: "2 to 16",
            });
        }
        let per_window = cfg.window_s / cfg.sample_s;
        if !(cfg.sample_s > 0.0 && per_window.is_finite() && per_window >= 1.0)
            || (per_window - per_window.round()).abs() > 1e-9
            || per_window > 10_000.0
        {
            return Err(GenerateError::BadParameter {
                what: "window_s / sample_s",
                expected: "sample_s > 0 dividing window_s into 1 to 10000 samples",
            });
        }
        let per_window = per_window.round() as usize;
        // Per series: window means and their samples.
        let mut series: Vec<Vec<(f64, Vec<f64>)>> = Vec::with_capacity(traces.len());
        for t in traces {
            let n = (t.duration() / cfg.window_s).floor() as usize;
            let mut windows = Vec::with_capacity(n.min(1 << 24));
            for w in 0..n {
                let w0 = w as f64 * cfg.window_s;
                let samples: Vec<f64> = (0..per_window)
                    .map(|k| {
                        let s0 = w0 + k as f64 * cfg.sample_s;
                        t.bits_between(s0, s0 + cfg.sample_s) / cfg.sample_s
                    })
                    .collect();
                windows.push((
                    t.bits_between(w0, w0 + cfg.window_s) / cfg.window_s,
                    samples,
                ));
            }
            series.push(windows);
        }
        let mut means: Vec<f64> = series.iter().flatten().map(|(m, _)| *m).collect();
        if means.len() < cfg.states {
            return Err(GenerateError::TooLittleData {
                windows: means.len(),
                needed: cfg.states,
            });
        }
        means.sort_by(f64::total_cmp);
        let thresholds: Vec<f64> = (1..cfg.states)
            .map(|i| means[i * means.len() / cfg.states])
            .collect();
        let level = |m: f64| thresholds.partition_point(|&th| th <= m);

        let k = cfg.states;
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); k];
        let mut windows_in = vec![0usize; k];
        let mut counts = vec![vec![0usize; k]; k];
        for windows in &series {
            let mut prev: Option<usize> = None;
            for (m, s) in windows {
                let st = level(*m);
                windows_in[st] += 1;
                samples[st].extend_from_slice(s);
                if let Some(p) = prev {
                    counts[p][st] += 1;
                }
                prev = Some(st);
            }
        }
        let total_windows: usize = windows_in.iter().sum();
        let states = (0..k)
            .map(|i| {
                let s = &samples[i];
                let n = s.len().max(1) as f64;
                let logs: Vec<f64> = s.iter().filter(|&&x| x > 0.0).map(|x| x.ln()).collect();
                let log_sd = if logs.len() > 1 {
                    let mu = logs.iter().sum::<f64>() / logs.len() as f64;
                    (logs.iter().map(|l| (l - mu).powi(2)).sum::<f64>() / logs.len() as f64).sqrt()
                } else {
                    0.0
                };
                MarkovState {
                    mean_bps: s.iter().sum::<f64>() / n,
                    log_sd,
                    zero_fraction: s.iter().filter(|&&x| x == 0.0).count() as f64 / n,
                    occupancy: windows_in[i] as f64 / total_windows as f64,
                }
            })
            .collect();
        let transition = counts
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let out: usize = row.iter().sum();
                (0..k)
                    .map(|j| match out {
                        0 => f64::from(u8::from(i == j)),
                        _ => row[j] as f64 / out as f64,
                    })
                    .collect()
            })
            .collect();
        Ok(MarkovModel {
            window_s: cfg.window_s,
            sample_s: cfg.sample_s,
            states,
            transition,
        })
    }

    /// Checks that the parameters describe a usable model.
    fn validate(&self) -> Result<usize, GenerateError> {
        let bad = |what, expected| Err(GenerateError::BadParameter { what, expected });
        let per_window = self.window_s / self.sample_s;
        if !(self.sample_s > 0.0 && per_window.is_finite() && per_window >= 1.0)
            || (per_window - per_window.round()).abs() > 1e-9
        {
            return bad("window_s / sample_s", "a whole number ≥ 1");
        }
        let k = self.states.len();
        if k == 0 || self.transition.len() != k || self.transition.iter().any(|r| r.len() != k) {
            return bad("transition", "a square matrix with one row per state");
        }
        for s in &self.states {
            let ok = s.mean_bps.is_finite()
                && s.mean_bps >= 0.0
                && s.log_sd.is_finite()
                && s.log_sd >= 0.0
                && (0.0..1.0).contains(&s.zero_fraction)
                && (0.0..=1.0).contains(&s.occupancy);
            if !ok {
                return bad(
                    "state",
                    "finite mean ≥ 0, log_sd ≥ 0, zero_fraction in [0, 1), occupancy in [0, 1]",
                );
            }
        }
        Ok(per_window.round() as usize)
    }

    /// Draws a trace of `duration_s` (rounded up to whole samples) from seed `seed`.
    pub fn generate(
        &self,
        name: impl Into<String>,
        seed: u64,
        duration_s: f64,
    ) -> Result<Trace, GenerateError> {
        let per_window = self.validate()?;
        let n = (duration_s / self.sample_s).ceil();
        if !(n >= 1.0 && n <= MAX_SAMPLES as f64) {
            return Err(GenerateError::BadParameter {
                what: "duration_s",
                expected: "positive and at most MAX_SAMPLES samples long",
            });
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let pick = |rng: &mut ChaCha8Rng, weights: &mut dyn Iterator<Item = f64>| -> usize {
            let u: f64 = rng.random();
            let mut acc = 0.0;
            let mut last = 0;
            for (i, w) in weights.enumerate() {
                acc += w;
                last = i;
                if u < acc {
                    return i;
                }
            }
            last
        };
        let mut state = pick(&mut rng, &mut self.states.iter().map(|s| s.occupancy));
        let mut b = TimelineBuilder::default();
        for i in 0..n as u64 {
            if i > 0 && i % per_window as u64 == 0 {
                state = pick(&mut rng, &mut self.transition[state].iter().copied());
            }
            let s = &self.states[state];
            let zero: f64 = rng.random();
            let z: f64 = rng.sample(StandardNormal);
            let bps = if zero < s.zero_fraction {
                0.0
            } else {
                let m = s.mean_bps / (1.0 - s.zero_fraction);
                (m * (s.log_sd * z - 0.5 * s.log_sd * s.log_sd).exp()).round()
            };
            b.push(self.sample_s, if bps.is_finite() { bps } else { 0.0 });
        }
        let name = name.into();
        Ok(b.finish(name.clone()).ok_or(TraceError::BadSegment {
            name,
            index: 0,
            expected: "a positive duration",
        })?)
    }

    /// The same model with every state's mean multiplied by `factor` (shapes and dwell
    /// times unchanged), e.g. to place the LTE-walk dynamics at a lower rate.
    pub fn scaled(mut self, factor: f64) -> MarkovModel {
        for s in &mut self.states {
            s.mean_bps *= factor;
        }
        self
    }

    /// Long-run mean capacity (bit/s) under the occupancy distribution.
    pub fn mean_bps(&self) -> f64 {
        self.states.iter().map(|s| s.occupancy * s.mean_bps).sum()
    }
}

/// Capacity `before_bps` until `at_s`, then `after_bps` until `duration_s`.
pub fn step(
    name: impl Into<String>,
    before_bps: f64,
    after_bps: f64,
    at_s: f64,
    duration_s: f64,
) -> Result<Trace, TraceError> {
    Trace::from_segments(name, &[(at_s, before_bps), (duration_s - at_s, after_bps)])
}

/// Capacity `bps`, except 0 during `[start_s, start_s + length_s)`, over `duration_s`.
pub fn outage(
    name: impl Into<String>,
    bps: f64,
    start_s: f64,
    length_s: f64,
    duration_s: f64,
) -> Result<Trace, TraceError> {
    Trace::from_segments(
        name,
        &[
            (start_s, bps),
            (length_s, 0.0),
            (duration_s - start_s - length_s, bps),
        ],
    )
}

/// Parameters of [`MarkovModel::lte_walk`] as plain numbers.
struct Fitted {
    window_s: f64,
    sample_s: f64,
    /// (mean bit/s, log sd, zero fraction, occupancy) per state.
    states: &'static [(f64, f64, f64, f64)],
    transition: &'static [&'static [f64]],
}

impl Fitted {
    fn to_model(&self) -> MarkovModel {
        MarkovModel {
            window_s: self.window_s,
            sample_s: self.sample_s,
            states: self
                .states
                .iter()
                .map(
                    |&(mean_bps, log_sd, zero_fraction, occupancy)| MarkovState {
                        mean_bps,
                        log_sd,
                        zero_fraction,
                        occupancy,
                    },
                )
                .collect(),
            transition: self.transition.iter().map(|r| r.to_vec()).collect(),
        }
    }
}

/// Output of `offload trace fit --each-series …/walking/lte/*.list` (see [`MarkovModel::lte_walk`]).
const LTE_WALK: Fitted = Fitted {
    window_s: 1.0,
    sample_s: 0.1,
    states: &[
        (41976308.1, 0.1482, 0.0000, 0.2500),
        (44417264.9, 0.0323, 0.0000, 0.2500),
        (45620955.0, 0.0261, 0.0000, 0.2500),
        (60860380.5, 0.1238, 0.0000, 0.2500),
    ],
    transition: &[
        &[0.5870, 0.3391, 0.0609, 0.0130],
        &[0.3362, 0.4828, 0.1810, 0.0000],
        &[0.0348, 0.1913, 0.7130, 0.0609],
        &[0.0087, 0.0000, 0.0649, 0.9264],
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_trace() {
        let m = MarkovModel::lte_walk();
        let a = m.generate("a", 7, 60.0).unwrap();
        let b = m.generate("b", 7, 60.0).unwrap();
        let c = m.generate("c", 8, 60.0).unwrap();
        assert_eq!(a.to_time_s_mbps(), b.to_time_s_mbps());
        assert_ne!(a.to_time_s_mbps(), c.to_time_s_mbps());
        assert!((a.duration() - 60.0).abs() < 1e-9);
    }

    #[test]
    fn long_run_mean_matches_model() {
        let m = MarkovModel::lte_walk();
        let t = m.generate("long", 1, 50_000.0).unwrap();
        let rel = t.mean_bps() / m.mean_bps() - 1.0;
        assert!(rel.abs() < 0.05, "generated mean off by {rel}");
    }

    #[test]
    fn fit_recovers_a_two_level_source() {
        // Alternating 10 s at 1 Mbit/s and 10 s at 9 Mbit/s: two states, dwell 10 windows.
        let segs: Vec<(f64, f64)> = (0..40)
            .map(|i| (10.0, if i % 2 == 0 { 1e6 } else { 9e6 }))
            .collect();
        let t = Trace::from_segments("alt", &segs).unwrap();
        let cfg = FitConfig {
            states: 2,
            ..FitConfig::default()
        };
        let m = MarkovModel::fit(&[t], &cfg).unwrap();
        assert!((m.states[0].mean_bps - 1e6).abs() < 1e-3);
        assert!((m.states[1].mean_bps - 9e6).abs() < 1e-3);
        assert!(m.states[0].log_sd < 1e-9);
        assert!((m.transition[0][1] - 0.1).abs() < 0.01);
        assert!((m.states[0].occupancy - 0.5).abs() < 1e-12);
    }

    #[test]
    fn step_and_outage_are_exact() {
        let s = step("s", 20e6, 2e6, 30.0, 60.0).unwrap();
        assert_eq!(s.capacity_at(29.999), 20e6);
        assert_eq!(s.capacity_at(30.0), 2e6);
        let o = outage("o", 10e6, 20.0, 5.0, 60.0).unwrap();
        assert_eq!(o.capacity_at(22.0), 0.0);
        assert_eq!(o.transfer_end(19.0, 2e7), Some(26.0));
        assert!(step("bad", 1.0, 1.0, 70.0, 60.0).is_err());
    }

    #[test]
    fn rejects_bad_parameters() {
        let m = MarkovModel::lte_walk();
        assert!(m.generate("x", 1, f64::NAN).is_err());
        assert!(m.generate("x", 1, 1e12).is_err());
        assert!(MarkovModel::fit(&[], &FitConfig::default()).is_err());
    }
}
