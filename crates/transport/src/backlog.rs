//! What the uplink's bottleneck served between the agent's previous frame and a frame, and
//! when it was done with it.
//!
//! The bottleneck is a FIFO: every datagram the agent's socket sent after the previous
//! frame's last datagram — the ACK-only packets that acknowledge replies, keep-alives, a new
//! connection's handshake and path-MTU probes — is served after the previous frame and before
//! this one, including those sent while the previous frame was still on the link (they queue
//! behind it). Their service has to come out of the frame's sample, and it is only known at
//! some rate. Pricing them at a rate from other frames (the median of the last five samples,
//! until pass H) is far off on a bursty link: on mahimahi's `ATT-LTE-driving` × 0.2 the frames
//! that waited behind such packets started a median 0.66 ms, at p10 5 ms, before the agent's
//! sample said and read 4 % low at the median, 18 % at p10 (docs/results/emulation.md, pass
//! H). The frame's own end gives the rate of the moment instead: with the link busy from the
//! previous frame's end to this frame's end, one rate serves the backlog and the frame in
//! exactly that time, and that rate prices the backlog.

/// Datagrams the bottleneck served after the previous frame and before a frame, on the clock
/// of the frames' arrivals (the agent's clock, shifted by the one-way delay).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Backlog {
    /// When the bottleneck was done with the previous frame, if known.
    pub(crate) previous_end: Option<f64>,
    /// Each datagram's arrival at the bottleneck and its bits, in the order sent.
    pub(crate) datagrams: Vec<(f64, f64)>,
}

impl Backlog {
    /// Doublings of the rate tried when looking for one fast enough.
    const MAX_DOUBLINGS: u32 = 64;
    /// Bisection steps on the rate: 2⁻⁴⁸ of the bracket, far below a microsecond of service.
    const BISECTIONS: u32 = 48;

    /// When the bottleneck, serving at `rate` (bit/s), was done with the backlog; the
    /// previous frame's end without datagrams, `None` with neither.
    pub(crate) fn end_at(&self, rate: f64) -> Option<f64> {
        let mut busy = self.previous_end;
        for &(arrival, bits) in &self.datagrams {
            busy = Some(busy.map_or(arrival, |b| b.max(arrival)) + bits / rate);
        }
        busy
    }

    /// When the bottleneck was done with the backlog before a frame of `bits` that reached it
    /// at `arrival` and whose last bit left it at `end`: priced at the one rate that serves the
    /// backlog and the frame between the previous frame's end and `end`, or at `fallback`
    /// (bit/s) where no rate does (the datagrams placed after the frame's end, an error in
    /// the one-way delay), and the previous frame's end alone without a fallback. Never before
    /// the previous frame's end.
    pub(crate) fn before_frame(
        &self,
        arrival: f64,
        end: f64,
        bits: f64,
        fallback: Option<f64>,
    ) -> Option<f64> {
        if self.datagrams.is_empty() {
            return self.previous_end;
        }
        let priced = |rate: f64| self.end_at(rate);
        let fallback = || {
            fallback
                .filter(|r| r.is_finite() && *r > 0.0)
                .map_or(self.previous_end, priced)
        };
        let start_alone = self.previous_end.map_or(arrival, |p| p.max(arrival));
        if !(bits > 0.0 && end > start_alone && arrival.is_finite()) {
            return fallback();
        }
        // The frame's rate had it waited for nothing but the previous frame.
        let alone = bits / (end - start_alone);
        // How much of [start, end] is left once the backlog and the frame are served at
        // `rate`: negative where `rate` is too slow, growing with it.
        let slack = |rate: f64| {
            let done = self.end_at(rate).unwrap_or(f64::NEG_INFINITY);
            end - done.max(arrival) - bits / rate
        };
        if priced(alone).is_some_and(|done| done <= arrival) {
            // The backlog was served before the frame arrived: it did not wait for it.
            return priced(alone);
        }
        let mut low = alone;
        let mut high = alone;
        let mut found = false;
        for _ in 0..Self::MAX_DOUBLINGS {
            high *= 2.0;
            if slack(high) >= 0.0 {
                found = true;
                break;
            }
            low = high;
        }
        if !found {
            return fallback();
        }
        for _ in 0..Self::BISECTIONS {
            let mid = (low * high).sqrt();
            if slack(mid) >= 0.0 {
                high = mid;
            } else {
                low = mid;
            }
        }
        priced(high)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame of 4 000 bits behind a 256-bit ACK packet that queued behind the previous
    /// frame, on a link at 100 kbit/s: the ACK packet ends 2.56 ms after the previous frame,
    /// the frame 40 ms after that.
    #[test]
    fn prices_the_backlog_at_the_rate_of_the_moment() {
        let backlog = Backlog {
            previous_end: Some(1.000),
            // Sent (arrived) while the previous frame was still on the link.
            datagrams: vec![(0.990, 256.0)],
        };
        let end = 1.0 + 0.00256 + 0.040;
        let done = backlog
            .before_frame(0.995, end, 4000.0, Some(200e3))
            .expect("done");
        assert!((done - 1.00256).abs() < 1e-7, "{done}");
        // Priced at a median rate twice the link's, the frame would start 1.28 ms early.
        let median = backlog.end_at(200e3).expect("end");
        assert!((median - 1.00128).abs() < 1e-9, "{median}");
    }

    #[test]
    fn a_frame_that_arrived_after_the_backlog_did_not_wait() {
        let backlog = Backlog {
            previous_end: Some(1.000),
            datagrams: vec![(1.001, 256.0)],
        };
        // The frame arrives at 1.010 and takes 40 ms at 100 kbit/s: the ACK packet had long
        // left at any rate that fits.
        let done = backlog
            .before_frame(1.010, 1.050, 4000.0, Some(100e3))
            .expect("done");
        assert!(done <= 1.010, "{done}");
        let start = done.max(1.010);
        assert!((4000.0 / (1.050 - start) - 100e3).abs() < 1e-3);
    }

    #[test]
    fn idle_gaps_between_datagrams_are_not_service() {
        // The previous frame ended at 1.000; an ACK packet arrived at 1.005 (the link idle
        // until then), a second at 1.006, the frame at 1.006 too; 100 kbit/s throughout.
        let backlog = Backlog {
            previous_end: Some(1.000),
            datagrams: vec![(1.005, 256.0), (1.006, 256.0)],
        };
        let end = 1.005 + 2.0 * 0.00256 + 0.040;
        let done = backlog
            .before_frame(1.006, end, 4000.0, None)
            .expect("done");
        assert!((done - (1.005 + 2.0 * 0.00256)).abs() < 1e-7, "{done}");
    }

    #[test]
    fn no_backlog_or_no_rate_that_fits() {
        let empty = Backlog {
            previous_end: Some(1.0),
            datagrams: Vec::new(),
        };
        assert_eq!(empty.before_frame(1.01, 1.05, 4000.0, None), Some(1.0));
        assert_eq!(
            Backlog::default().before_frame(1.0, 1.05, 4000.0, None),
            None
        );
        // A datagram placed after the frame's end (a wrong one-way delay): the fallback
        // rate prices it, and without one only the previous frame counts.
        let late = Backlog {
            previous_end: Some(1.0),
            datagrams: vec![(1.06, 256.0)],
        };
        let done = late.before_frame(1.01, 1.05, 4000.0, Some(256e3));
        assert!(done.is_some_and(|d| (d - 1.061).abs() < 1e-9), "{done:?}");
        assert_eq!(late.before_frame(1.01, 1.05, 4000.0, None), Some(1.0));
        // Without a previous frame the backlog starts with its first datagram.
        let alone = Backlog {
            previous_end: None,
            datagrams: vec![(1.0, 9600.0)],
        };
        let done = alone
            .before_frame(1.0, 1.0 + 0.096 + 0.040, 4000.0, None)
            .expect("done");
        assert!((done - 1.096).abs() < 1e-7, "{done}");
    }
}
