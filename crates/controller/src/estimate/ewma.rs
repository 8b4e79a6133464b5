//! Time-weighted exponential moving average of the delivery rate.

use super::{Estimate, ThroughputEstimator};
use crate::observation::RateSample;

/// EWMA over time: a sample arriving `dt` seconds after the previous one gets weight
/// `1 - 2^(-dt / half_life)` (`dt` at least the time the sample spans), so the estimate's memory
/// is measured in seconds, not samples, however irregular they are; also tracks an EW variance
/// for the uncertainty.
#[derive(Debug, Clone)]
pub struct Ewma {
    half_life_s: f64,
    mean: f64,
    var: f64,
    samples: u64,
    last_at: f64,
}

impl Ewma {
    /// An estimator whose memory halves every `half_life_s` seconds of samples.
    pub fn new(half_life_s: f64) -> Self {
        Ewma {
            half_life_s: half_life_s.max(1e-6),
            mean: 0.0,
            var: 0.0,
            samples: 0,
            last_at: 0.0,
        }
    }
}

impl ThroughputEstimator for Ewma {
    fn name(&self) -> &'static str {
        "ewma"
    }

    fn on_sample(&mut self, now: f64, sample: &RateSample) {
        let Some(rate) = sample.rate_bps() else {
            return;
        };
        let dt = (now - self.last_at)
            .max(sample.end - sample.start)
            .max(1e-3);
        if self.samples == 0 {
            self.mean = rate;
            self.var = 0.0;
        } else {
            let alpha = 1.0 - (-dt / self.half_life_s * std::f64::consts::LN_2).exp();
            let diff = rate - self.mean;
            self.mean += alpha * diff;
            self.var = (1.0 - alpha) * (self.var + alpha * diff * diff);
        }
        self.samples += 1;
        self.last_at = now;
    }

    fn estimate(&self) -> Option<Estimate> {
        (self.samples > 0).then(|| Estimate {
            bps: self.mean,
            std_bps: self.var.sqrt(),
            samples: self.samples,
            last_sample_at: self.last_at,
        })
    }
}
