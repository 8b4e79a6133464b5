//! Estimators: uplink throughput (a trait with three implementations), RTT and loss.
//!
//! Each throughput estimator turns delivery-rate samples into an [`Estimate`]: a rate and its
//! uncertainty, so that policies can plan with a safety margin.

mod ewma;
mod harmonic;
mod robust;
mod rtt;

pub use ewma::Ewma;
pub use harmonic::HarmonicMean;
pub use robust::RobustLowerBound;
pub use rtt::{RttEstimator, RttStats};

use serde::{Deserialize, Serialize};

use crate::observation::RateSample;

/// An uplink throughput estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The rate to plan with (bit/s).
    pub bps: f64,
    /// Its uncertainty: one standard deviation (or the estimator's equivalent), bit/s.
    pub std_bps: f64,
    /// Number of samples the estimate has seen.
    pub samples: u64,
    /// Time of the latest sample (seconds); policies use it to judge staleness.
    pub last_sample_at: f64,
}

impl Estimate {
    /// A conservative rate: `bps - z·std`, floored at 1 % of `bps`.
    #[inline]
    pub fn lower(&self, z: f64) -> f64 {
        (self.bps - z * self.std_bps).max(0.01 * self.bps)
    }

    /// Seconds since the latest sample.
    #[inline]
    pub fn age(&self, now: f64) -> f64 {
        (now - self.last_sample_at).max(0.0)
    }
}

/// Turns delivery-rate samples into a throughput estimate.
pub trait ThroughputEstimator: Send + std::fmt::Debug {
    /// A short name for reports.
    fn name(&self) -> &'static str;
    /// Feeds one delivery-rate sample observed at `now`.
    fn on_sample(&mut self, now: f64, sample: &RateSample);
    /// The current estimate, or `None` before the first sample.
    fn estimate(&self) -> Option<Estimate>;
}

/// Which throughput estimator to use, with its parameters (serde: `{ kind = "ewma", ... }`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum EstimatorConfig {
    /// Exponentially weighted moving average over time.
    Ewma {
        /// Time for a sample's weight to halve (seconds).
        half_life_s: f64,
    },
    /// Harmonic mean of the last `window` samples (FESTIVE, MPC).
    HarmonicMean {
        /// Number of samples.
        window: usize,
    },
    /// Harmonic mean discounted by the recent maximum prediction error (RobustMPC).
    RobustLowerBound {
        /// Number of samples and of past errors considered.
        window: usize,
    },
}

impl Default for EstimatorConfig {
    fn default() -> Self {
        EstimatorConfig::HarmonicMean { window: 5 }
    }
}

impl EstimatorConfig {
    /// Builds the estimator.
    pub fn build(&self) -> Box<dyn ThroughputEstimator> {
        match *self {
            EstimatorConfig::Ewma { half_life_s } => Box::new(Ewma::new(half_life_s)),
            EstimatorConfig::HarmonicMean { window } => Box::new(HarmonicMean::new(window)),
            EstimatorConfig::RobustLowerBound { window } => Box::new(RobustLowerBound::new(window)),
        }
    }
}

/// Everything the controller currently believes about the link and the device's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Estimates {
    /// Uplink throughput, once a sample arrived.
    pub throughput: Option<Estimate>,
    /// Round-trip time statistics, once a sample arrived.
    pub rtt: Option<RttStats>,
    /// Smoothed packet loss rate in `[0, 1]`.
    pub loss_rate: f64,
    /// Congestion events seen so far.
    pub congestion_events: u64,
    /// Bytes handed to the transport and neither delivered nor abandoned yet: the uplink
    /// backlog ahead of a new frame.
    pub in_flight_bytes: u64,
    /// Whether the server is believed reachable.
    pub server_reachable: bool,
    /// When the server was last found unreachable, if ever.
    pub unreachable_since: Option<f64>,
    /// The frame whose silence check found the uplink silent, until a report of it or of a
    /// later frame arrives ([`crate::Observation::Silent`]).
    pub silent_since_frame: Option<u64>,
}

impl Estimates {
    /// Whether the uplink is believed silent: nothing came back by a frame's silence check
    /// and no report has arrived for that frame or a later one since.
    #[inline]
    pub fn uplink_silent(&self) -> bool {
        self.silent_since_frame.is_some()
    }

    /// Smoothed RTT, or `default` before any sample.
    #[inline]
    pub fn rtt_or(&self, default: f64) -> f64 {
        self.rtt.map_or(default, |r| r.smoothed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(e: &mut dyn ThroughputEstimator, rates_mbps: &[f64]) {
        for (i, r) in rates_mbps.iter().enumerate() {
            let t = i as f64;
            let s = RateSample {
                start: t,
                end: t + 0.1,
                bytes: (r * 1e6 * 0.1 / 8.0) as u64,
            };
            e.on_sample(t + 0.1, &s);
        }
    }

    #[test]
    fn every_estimator_tracks_a_constant_rate() {
        for cfg in [
            EstimatorConfig::Ewma { half_life_s: 1.0 },
            EstimatorConfig::HarmonicMean { window: 5 },
            EstimatorConfig::RobustLowerBound { window: 5 },
        ] {
            let mut e = cfg.build();
            assert!(e.estimate().is_none());
            feed(e.as_mut(), &[4.0; 20]);
            let est = e.estimate().expect("estimate after samples");
            assert!((est.bps - 4e6).abs() / 4e6 < 0.01, "{}: {est:?}", e.name());
            assert!(est.std_bps < 0.05e6, "{}: {est:?}", e.name());
            assert_eq!(est.samples, 20);
        }
    }

    #[test]
    fn every_estimator_follows_a_step_down() {
        for cfg in [
            EstimatorConfig::Ewma { half_life_s: 1.0 },
            EstimatorConfig::HarmonicMean { window: 5 },
            EstimatorConfig::RobustLowerBound { window: 5 },
        ] {
            let mut e = cfg.build();
            let mut rates = vec![10.0; 10];
            rates.extend([1.0; 10]);
            feed(e.as_mut(), &rates);
            let est = e.estimate().unwrap();
            assert!(est.bps < 1.5e6, "{}: {est:?}", e.name());
        }
    }

    #[test]
    fn robust_bound_is_below_the_harmonic_mean_on_a_noisy_link() {
        let rates = [5.0, 1.0, 6.0, 2.0, 5.5, 1.5, 6.0, 2.0, 5.0, 1.0];
        let mut h = HarmonicMean::new(5);
        let mut r = RobustLowerBound::new(5);
        feed(&mut h, &rates);
        feed(&mut r, &rates);
        assert!(r.estimate().unwrap().bps < 0.8 * h.estimate().unwrap().bps);
    }
}
