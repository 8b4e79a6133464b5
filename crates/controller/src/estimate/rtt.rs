//! Smoothed round-trip time (RFC 6298).

/// RTT statistics: smoothed mean, mean deviation, minimum and latest sample (seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RttStats {
    /// Smoothed RTT.
    pub smoothed: f64,
    /// Mean deviation.
    pub var: f64,
    /// Smallest sample seen.
    pub min: f64,
    /// Latest sample.
    pub latest: f64,
}

/// RFC 6298 smoothing: `srtt ← 7/8 srtt + 1/8 r`, `rttvar ← 3/4 rttvar + 1/4 |srtt − r|`.
#[derive(Debug, Clone, Default)]
pub struct RttEstimator {
    stats: Option<RttStats>,
}

impl RttEstimator {
    /// Feeds one RTT sample (seconds); non-finite or negative samples are ignored.
    pub fn on_sample(&mut self, rtt: f64) {
        if !rtt.is_finite() || rtt < 0.0 {
            return;
        }
        self.stats = Some(match self.stats {
            None => RttStats {
                smoothed: rtt,
                var: rtt / 2.0,
                min: rtt,
                latest: rtt,
            },
            Some(s) => RttStats {
                var: 0.75 * s.var + 0.25 * (s.smoothed - rtt).abs(),
                smoothed: 0.875 * s.smoothed + 0.125 * rtt,
                min: s.min.min(rtt),
                latest: rtt,
            },
        });
    }

    /// The statistics, once a sample arrived.
    pub fn stats(&self) -> Option<RttStats> {
        self.stats
    }
}
