//! Link capacity over time, as the emulator consumes it.

/// A link's capacity over time (seconds since the emulator started; bit/s).
///
/// `offload_sim::trace::Trace` has these methods with the same meaning (and wraps around at
/// its end); the CLI adapts it with a newtype.
pub trait CapacitySchedule: Send + Sync + 'static {
    /// Capacity at time `t`, bit/s.
    fn capacity_at(&self, t: f64) -> f64;

    /// Bits the link can carry over `[t0, t1]`.
    fn bits_between(&self, t0: f64, t1: f64) -> f64;

    /// When a transfer of `bits` that starts at `start` ends, or `None` if the link never
    /// carries that much (zero capacity from `start` on).
    ///
    /// The default searches `bits_between` (monotone in its end) by doubling and bisection,
    /// both bounded; implementations with a closed form should override it.
    fn transfer_end(&self, start: f64, bits: f64) -> Option<f64> {
        if bits <= 0.0 {
            return Some(start);
        }
        let mut span = 1e-3;
        let mut doublings = 0;
        while self.bits_between(start, start + span) < bits {
            span *= 2.0;
            doublings += 1;
            if doublings > 40 {
                return None;
            }
        }
        let (mut lo, mut hi) = (0.0, span);
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if self.bits_between(start, start + mid) < bits {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(start + hi)
    }
}

/// A fixed capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConstantRate {
    /// Capacity, bit/s.
    pub bps: f64,
}

impl CapacitySchedule for ConstantRate {
    fn capacity_at(&self, _t: f64) -> f64 {
        self.bps
    }

    fn bits_between(&self, t0: f64, t1: f64) -> f64 {
        self.bps * (t1 - t0).max(0.0)
    }

    fn transfer_end(&self, start: f64, bits: f64) -> Option<f64> {
        if bits <= 0.0 {
            return Some(start);
        }
        (self.bps > 0.0).then(|| start + bits / self.bps)
    }
}

/// Capacity that is constant over consecutive steps and repeats after the last one.
#[derive(Debug, Clone, PartialEq)]
pub struct PiecewiseConstant {
    /// Start time of each step within one period.
    starts: Vec<f64>,
    /// Rate of each step, bit/s.
    rates: Vec<f64>,
    /// Bits carried from the period start to each step's start (one more entry: the period).
    cumulative: Vec<f64>,
    period: f64,
}

/// A schedule that cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("piecewise schedule step {index}: {reason}")]
pub struct ScheduleError {
    /// The offending step.
    pub index: usize,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl PiecewiseConstant {
    /// Builds a schedule from `(duration s, rate bit/s)` steps.
    pub fn new(steps: &[(f64, f64)]) -> Result<Self, ScheduleError> {
        if steps.is_empty() {
            return Err(ScheduleError {
                index: 0,
                reason: "no steps",
            });
        }
        let mut starts = Vec::with_capacity(steps.len());
        let mut rates = Vec::with_capacity(steps.len());
        let mut cumulative = Vec::with_capacity(steps.len() + 1);
        let (mut t, mut bits) = (0.0, 0.0);
        for (index, &(duration, rate)) in steps.iter().enumerate() {
            if !(duration.is_finite() && duration > 0.0) {
                return Err(ScheduleError {
                    index,
                    reason: "duration must be finite and positive",
                });
            }
            if !(rate.is_finite() && rate >= 0.0) {
                return Err(ScheduleError {
                    index,
                    reason: "rate must be finite and non-negative",
                });
            }
            starts.push(t);
            rates.push(rate);
            cumulative.push(bits);
            t += duration;
            bits += duration * rate;
        }
        cumulative.push(bits);
        Ok(Self {
            starts,
            rates,
            cumulative,
            period: t,
        })
    }

    /// Length of one period, seconds.
    pub fn period(&self) -> f64 {
        self.period
    }

    fn period_bits(&self) -> f64 {
        self.cumulative[self.rates.len()]
    }

    fn step_index(&self, phase: f64) -> usize {
        self.starts
            .partition_point(|&s| s <= phase)
            .saturating_sub(1)
    }

    /// Bits carried over `[0, t]` (t ≥ 0).
    fn bits_until(&self, t: f64) -> f64 {
        let t = t.max(0.0);
        let periods = (t / self.period).floor();
        let phase = t - periods * self.period;
        let i = self.step_index(phase);
        periods * self.period_bits() + self.cumulative[i] + (phase - self.starts[i]) * self.rates[i]
    }
}

impl CapacitySchedule for PiecewiseConstant {
    fn capacity_at(&self, t: f64) -> f64 {
        let phase = t.max(0.0).rem_euclid(self.period);
        self.rates[self.step_index(phase)]
    }

    fn bits_between(&self, t0: f64, t1: f64) -> f64 {
        (self.bits_until(t1) - self.bits_until(t0)).max(0.0)
    }

    fn transfer_end(&self, start: f64, bits: f64) -> Option<f64> {
        if bits <= 0.0 {
            return Some(start);
        }
        let per_period = self.period_bits();
        if per_period <= 0.0 {
            return None;
        }
        let target = self.bits_until(start) + bits;
        let periods = (target / per_period).floor();
        let mut rest = target - periods * per_period;
        // `rest` lies in [0, per_period): find the step where the cumulative count reaches it.
        let mut i = self.cumulative[..self.rates.len()]
            .partition_point(|&c| c < rest)
            .saturating_sub(1);
        // Skip zero-rate steps that cannot carry the remainder.
        while self.rates[i] <= 0.0 {
            i += 1;
            if i >= self.rates.len() {
                return None;
            }
            rest = rest.max(self.cumulative[i]);
        }
        let end =
            periods * self.period + self.starts[i] + (rest - self.cumulative[i]) / self.rates[i];
        Some(end.max(start))
    }
}

/// The span of the schedule whose mean rate the lead runs at, seconds.
const LEAD_RATE_WINDOW_S: f64 = 10.0;

/// A schedule that starts `lead` seconds after the relay: until then the link runs at the
/// schedule's mean rate over its first ten seconds (a packet-level trace may have no delivery
/// opportunity for most of its first second, and the handshake would then time out before
/// the run). Lets a driver start the relay (and the QUIC handshake through it) ahead of a run
/// whose first frame must meet the schedule's time zero.
#[derive(Clone)]
pub struct Delayed {
    inner: std::sync::Arc<dyn CapacitySchedule>,
    lead: f64,
    initial_bps: f64,
}

impl Delayed {
    /// `inner`, shifted later by `lead` seconds (negative or non-finite leads count as 0).
    pub fn new(inner: std::sync::Arc<dyn CapacitySchedule>, lead: f64) -> Self {
        let lead = if lead.is_finite() { lead.max(0.0) } else { 0.0 };
        let initial_bps =
            (inner.bits_between(0.0, LEAD_RATE_WINDOW_S) / LEAD_RATE_WINDOW_S).max(0.0);
        Self {
            inner,
            lead,
            initial_bps,
        }
    }

    /// The shift, seconds.
    pub fn lead(&self) -> f64 {
        self.lead
    }
}

impl std::fmt::Debug for Delayed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delayed")
            .field("lead", &self.lead)
            .field("initial_bps", &self.initial_bps)
            .finish_non_exhaustive()
    }
}

impl CapacitySchedule for Delayed {
    fn capacity_at(&self, t: f64) -> f64 {
        if t < self.lead {
            self.initial_bps
        } else {
            self.inner.capacity_at(t - self.lead)
        }
    }

    fn bits_between(&self, t0: f64, t1: f64) -> f64 {
        if t1 <= t0 {
            return 0.0;
        }
        let before = self.initial_bps * (t1.min(self.lead) - t0).max(0.0);
        let after = if t1 > self.lead {
            self.inner
                .bits_between((t0 - self.lead).max(0.0), t1 - self.lead)
        } else {
            0.0
        };
        before + after
    }

    fn transfer_end(&self, start: f64, bits: f64) -> Option<f64> {
        if bits <= 0.0 {
            return Some(start);
        }
        if start >= self.lead {
            return Some(self.inner.transfer_end(start - self.lead, bits)? + self.lead);
        }
        let room = self.initial_bps * (self.lead - start);
        if room >= bits {
            return Some(start + bits / self.initial_bps);
        }
        Some(self.inner.transfer_end(0.0, bits - room)? + self.lead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps() -> PiecewiseConstant {
        PiecewiseConstant::new(&[(1.0, 2e6), (1.0, 8e6), (1.0, 0.0), (1.0, 1e6)]).expect("valid")
    }

    #[test]
    fn integrates_and_wraps() {
        let s = steps();
        assert_eq!(s.capacity_at(0.5), 2e6);
        assert_eq!(s.capacity_at(1.5), 8e6);
        assert_eq!(s.capacity_at(4.5), 2e6);
        assert!((s.bits_between(0.5, 1.5) - 5e6).abs() < 1e-6);
        assert!((s.bits_between(0.0, 8.0) - 22e6).abs() < 1e-3);
        assert!((s.bits_between(2.0, 3.0)).abs() < 1e-9);
    }

    #[test]
    fn transfer_end_is_inverse_of_bits_between() {
        let s = steps();
        for &(start, bits) in &[
            (0.0, 1e6),
            (0.9, 1e6),
            (1.9, 2e6),
            (2.2, 1e5),
            (3.5, 3e7),
            (7.99, 1.0),
        ] {
            let end = s.transfer_end(start, bits).expect("finite");
            assert!(end >= start);
            assert!(
                (s.bits_between(start, end) - bits).abs() < 1e-3,
                "start {start} bits {bits}"
            );
        }
        // The last 0.1 s of the 8 Mbit/s step carries 0.8 Mbit, the outage nothing, and the
        // remaining 0.2 Mbit take 0.2 s at 1 Mbit/s.
        let e = s.transfer_end(1.9, 1.0e6).expect("finite");
        assert!((e - 3.2).abs() < 1e-9, "{e}");
    }

    #[test]
    fn default_search_matches_closed_form() {
        struct Generic(PiecewiseConstant);
        impl CapacitySchedule for Generic {
            fn capacity_at(&self, t: f64) -> f64 {
                self.0.capacity_at(t)
            }
            fn bits_between(&self, t0: f64, t1: f64) -> f64 {
                self.0.bits_between(t0, t1)
            }
        }
        let g = Generic(steps());
        for &(start, bits) in &[(0.0, 1e6), (1.9, 1e6), (3.5, 3e7)] {
            let a = g.transfer_end(start, bits).expect("finite");
            let b = g.0.transfer_end(start, bits).expect("finite");
            assert!((a - b).abs() < 1e-6);
        }
        // A transfer that ends exactly where an outage starts ends there, not after it.
        let exact = steps().transfer_end(1.0, 8e6).expect("finite");
        assert!((exact - 2.0).abs() < 1e-9, "{exact}");
        let zero = PiecewiseConstant::new(&[(1.0, 0.0)]).expect("valid");
        assert_eq!(zero.transfer_end(0.0, 1.0), None);
        assert_eq!(ConstantRate { bps: 0.0 }.transfer_end(0.0, 1.0), None);
        assert!(PiecewiseConstant::new(&[(0.0, 1.0)]).is_err());
    }

    #[test]
    fn delayed_holds_the_first_ten_seconds_mean_rate_then_follows_the_schedule() {
        let inner: std::sync::Arc<dyn CapacitySchedule> = std::sync::Arc::new(
            PiecewiseConstant::new(&[(1.0, 8e6), (1.0, 1e6), (8.0, 8e6)]).expect("valid"),
        );
        let d = Delayed::new(inner, 0.5);
        // The lead runs at the first ten seconds' mean: (8 + 1 + 64) Mbit / 10 s.
        assert!((d.capacity_at(0.2) - 7.3e6).abs() < 1e-3);
        assert_eq!(d.capacity_at(1.7), 1e6);
        assert!((d.bits_between(0.0, 2.5) - (0.5 * 7.3e6 + 8e6 + 1e6)).abs() < 1e-3);
        // 5 Mbit from 0.25: 1.825 Mbit before the lead, then 3.175 Mbit of the 8 Mbit/s step.
        let end = d.transfer_end(0.25, 5e6).expect("ends");
        assert!((end - (0.5 + 3.175 / 8.0)).abs() < 1e-9, "{end}");
        assert!((d.transfer_end(1.6, 0.5e6).expect("ends") - 2.1).abs() < 1e-9);
    }
}
