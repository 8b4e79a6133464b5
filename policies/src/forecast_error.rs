//! How wrong the throughput estimate has been on this link: a per-trace safety margin.

use offload_controller::{Estimate, Observation};

/// Chooses, per link and online, the throughput forecast that has been right more often: the
/// estimator's (by default the harmonic mean of the last samples) or simply the latest
/// delivery sample, and the margin to plan with.
///
/// Each offloaded frame's delivery report is a sample of the rate its own bytes met on the
/// link; divided by what each forecast said when the frame was decided, it gives both
/// forecasts' errors *for that frame*. Their squared logarithms are averaged exponentially over
/// about `memory` frames. Where the latest sample has the smaller error (links whose rate
/// holds for a while and then jumps, such as per-second throughput logs: the harmonic mean of
/// five samples takes five frames to follow a rise, and stays low meanwhile), the policy plans
/// with `latest · exp(−z · rms error)`; otherwise, and until `memory / 4` errors are known, it
/// keeps the estimator's own margin (`Estimate::lower(fallback_z)`), so links where the
/// smoothed estimate is the better forecast are planned exactly as without this.
///
/// This is forecast selection by recent accuracy, as in the ABR literature's comparisons of
/// throughput predictors (e.g. CS2P, Sun et al., SIGCOMM 2016, where the last sample is a
/// strong baseline on stable sessions), with a margin from the chosen forecast's own error.
#[derive(Debug, Clone)]
pub struct ForecastError {
    z: f64,
    fallback_z: f64,
    /// Weight of a new error in the moving averages.
    alpha: f64,
    warmup: u64,
    /// Mean squared log error of the estimator's forecast and of the latest sample.
    mean_square: [f64; 2],
    errors: u64,
    /// The rate of the latest delivery sample.
    latest: Option<f64>,
    /// `(frame, estimator's forecast, latest sample)` of the latest decided frames.
    planned: [(u64, f64, f64); PLANNED],
    next: usize,
}

/// Frames whose forecasts are remembered until their report arrives (a report comes a round
/// trip and a server time after the transfer: a handful of frames at most).
const PLANNED: usize = 16;

impl ForecastError {
    /// Plans `z` root-mean-square log errors below the latest sample where that forecast has
    /// been the better one over about `memory` frames, else `fallback_z` standard deviations
    /// below the estimate.
    pub fn new(z: f64, memory: f64, fallback_z: f64) -> Self {
        let memory = memory.max(1.0);
        ForecastError {
            z: z.max(0.0),
            fallback_z: fallback_z.max(0.0),
            alpha: 1.0 / memory,
            warmup: (memory / 4.0).ceil() as u64,
            mean_square: [0.0; 2],
            errors: 0,
            latest: None,
            planned: [(u64::MAX, 0.0, 0.0); PLANNED],
            next: 0,
        }
    }

    /// The rate (bit/s) to plan with given the estimator's current estimate.
    pub fn rate(&self, est: &Estimate) -> f64 {
        match self.latest {
            Some(latest)
                if self.errors >= self.warmup && self.mean_square[1] < self.mean_square[0] =>
            {
                latest * (-self.z * self.mean_square[1].sqrt()).exp()
            }
            _ => est.lower(self.fallback_z),
        }
    }

    /// Remembers both forecasts for `frame`, decided with the estimate `bps` (the mean, not
    /// the margin: the error is the forecast's).
    pub fn planned(&mut self, frame: u64, bps: f64) {
        self.planned[self.next] = (frame, bps, self.latest.unwrap_or(bps));
        self.next = (self.next + 1) % PLANNED;
    }

    /// Sees the agent's observations: a delivery report scores the forecasts of its frame and
    /// becomes the latest sample.
    pub fn observe(&mut self, observation: &Observation) {
        let Observation::Delivered { frame, sample } = *observation else {
            return;
        };
        let Some(rate) = sample.rate_bps() else {
            return;
        };
        if let Some(slot) = self.planned.iter_mut().find(|(f, ..)| *f == frame) {
            let (_, smoothed, latest) = *slot;
            // A frame reports once (a cancelled one: what arrived, once).
            *slot = (u64::MAX, 0.0, 0.0);
            let e0 = (rate / smoothed).ln();
            let e1 = (rate / latest).ln();
            if e0.is_finite() && e1.is_finite() {
                // Weighted like a plain average until the memory is full.
                let a = self.alpha.max(1.0 / (self.errors + 1) as f64);
                for (m, e) in self.mean_square.iter_mut().zip([e0, e1]) {
                    *m += a * (e * e - *m);
                }
                self.errors += 1;
            }
        }
        self.latest = Some(rate);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use offload_controller::RateSample;

    fn est(bps: f64, std_bps: f64) -> Estimate {
        Estimate {
            bps,
            std_bps,
            samples: 10,
            last_sample_at: 0.0,
        }
    }

    fn report(f: &mut ForecastError, frame: u64, rate_bps: f64) {
        let sample = RateSample {
            start: 0.0,
            end: 0.1,
            bytes: (rate_bps * 0.1 / 8.0) as u64,
        };
        f.observe(&Observation::Delivered { frame, sample });
    }

    #[test]
    fn falls_back_to_the_estimators_margin_until_warm() {
        let mut f = ForecastError::new(1.0, 40.0, 1.0);
        assert_eq!(f.rate(&est(1e6, 2e5)), 8e5);
        f.planned(0, 1e6);
        report(&mut f, 0, 2e6);
        assert_eq!(f.rate(&est(1e6, 2e5)), 8e5);
    }

    #[test]
    fn a_stepping_link_is_planned_at_its_latest_sample() {
        // 2 Mbit/s and 1 Mbit/s in turns of 30 frames; the smoothed forecast lags each step.
        let mut f = ForecastError::new(1.0, 40.0, 1.0);
        let mut smoothed = 1.5e6;
        for i in 0..300u64 {
            let rate = if (i / 30) % 2 == 0 { 2e6 } else { 1e6 };
            f.planned(i, smoothed);
            report(&mut f, i, rate);
            smoothed = 0.8 * smoothed + 0.2 * rate;
        }
        // Latest sample 1 Mbit/s (frame 299); the margin is small (two steps in 60 frames).
        let r = f.rate(&est(1.2e6, 3e5));
        assert!(r > 0.85e6 && r < 1e6, "{r}");
    }

    #[test]
    fn a_noisy_link_keeps_the_estimators_margin() {
        // Samples alternate around a steady mean: the smoothed forecast is the better one.
        let mut f = ForecastError::new(1.0, 40.0, 1.0);
        for i in 0..300u64 {
            f.planned(i, 1e6);
            report(&mut f, i, if i % 2 == 0 { 0.5e6 } else { 1.5e6 });
        }
        assert_eq!(f.rate(&est(1e6, 3e5)), 7e5);
    }

    #[test]
    fn reports_of_unknown_or_already_reported_frames_score_nothing() {
        let mut f = ForecastError::new(1.0, 4.0, 1.0);
        f.planned(7, 1e6);
        report(&mut f, 7, 0.5e6);
        report(&mut f, 7, 0.1e6);
        report(&mut f, 8, 0.1e6);
        assert_eq!(f.errors, 1);
        assert_eq!(f.latest, Some(0.1e6));
    }
}
