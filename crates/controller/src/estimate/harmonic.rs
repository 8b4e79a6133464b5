//! Harmonic mean of the last N delivery-rate samples.

use super::{Estimate, ThroughputEstimator};
use crate::observation::RateSample;

/// Harmonic mean of the last `window` samples, as FESTIVE and MPC use: robust to single
/// outliers on the high side. The uncertainty is the samples' standard deviation.
#[derive(Debug, Clone)]
pub struct HarmonicMean {
    window: Ring,
    samples: u64,
    last_at: f64,
}

impl HarmonicMean {
    /// An estimator over the last `window` samples (at least 1).
    pub fn new(window: usize) -> Self {
        HarmonicMean {
            window: Ring::new(window),
            samples: 0,
            last_at: 0.0,
        }
    }

    /// The harmonic mean of the window, if it holds any sample.
    pub(crate) fn harmonic(&self) -> Option<f64> {
        self.window.harmonic_mean()
    }
}

impl ThroughputEstimator for HarmonicMean {
    fn name(&self) -> &'static str {
        "harmonic-mean"
    }

    fn on_sample(&mut self, now: f64, sample: &RateSample) {
        let Some(rate) = sample.rate_bps() else {
            return;
        };
        self.window.push(rate);
        self.samples += 1;
        self.last_at = now;
    }

    fn estimate(&self) -> Option<Estimate> {
        let bps = self.window.harmonic_mean()?;
        Some(Estimate {
            bps,
            std_bps: self.window.std_dev(),
            samples: self.samples,
            last_sample_at: self.last_at,
        })
    }
}

/// A fixed-capacity ring of the latest values, with no allocation after construction.
#[derive(Debug, Clone)]
pub(crate) struct Ring {
    values: Vec<f64>,
    /// `1 / max(value, 1)` per slot, computed once at the push instead of at every
    /// [`Ring::harmonic_mean`] (the same quotients, summed in the same slot order).
    inverses: Vec<f64>,
    next: usize,
    len: usize,
}

impl Ring {
    pub(crate) fn new(capacity: usize) -> Self {
        Ring {
            values: vec![0.0; capacity.max(1)],
            inverses: vec![0.0; capacity.max(1)],
            next: 0,
            len: 0,
        }
    }

    pub(crate) fn push(&mut self, v: f64) {
        self.values[self.next] = v;
        self.inverses[self.next] = 1.0 / v.max(1.0);
        // A compare, not `%`: an integer division on every sample.
        self.next += 1;
        if self.next == self.values.len() {
            self.next = 0;
        }
        self.len = (self.len + 1).min(self.values.len());
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        self.values[..self.len].iter().copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn harmonic_mean(&self) -> Option<f64> {
        if self.len == 0 {
            return None;
        }
        let inv: f64 = self.inverses[..self.len].iter().sum();
        Some(self.len as f64 / inv)
    }

    pub(crate) fn std_dev(&self) -> f64 {
        if self.len < 2 {
            return 0.0;
        }
        let n = self.len as f64;
        let mean = self.iter().sum::<f64>() / n;
        (self.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    }

    pub(crate) fn max(&self) -> f64 {
        self.iter().fold(0.0, f64::max)
    }
}
