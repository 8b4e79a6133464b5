//! RobustMPC's throughput lower bound.

use super::harmonic::{HarmonicMean, Ring};
use super::{Estimate, ThroughputEstimator};
use crate::observation::RateSample;

/// The harmonic mean of the last N samples divided by `1 + max relative prediction error` over
/// the last N predictions (Yin et al., "A Control-Theoretic Approach for Dynamic Adaptive Video
/// Streaming over HTTP", SIGCOMM 2015, RobustMPC). The discount is reported as the uncertainty.
#[derive(Debug, Clone)]
pub struct RobustLowerBound {
    inner: HarmonicMean,
    errors: Ring,
}

impl RobustLowerBound {
    /// An estimator over the last `window` samples and prediction errors.
    pub fn new(window: usize) -> Self {
        RobustLowerBound {
            inner: HarmonicMean::new(window),
            errors: Ring::new(window),
        }
    }
}

impl ThroughputEstimator for RobustLowerBound {
    fn name(&self) -> &'static str {
        "robust-lower-bound"
    }

    fn on_sample(&mut self, now: f64, sample: &RateSample) {
        let Some(rate) = sample.rate_bps() else {
            return;
        };
        if let Some(predicted) = self.inner.harmonic() {
            self.errors.push((predicted - rate).abs() / rate);
        }
        self.inner.on_sample(now, sample);
    }

    fn estimate(&self) -> Option<Estimate> {
        let base = self.inner.estimate()?;
        let max_err = if self.errors.len() == 0 {
            0.0
        } else {
            self.errors.max()
        };
        let bps = base.bps / (1.0 + max_err);
        Some(Estimate {
            bps,
            std_bps: base.bps - bps,
            ..base
        })
    }
}
