//! What the agent's recent frames and acknowledgements put on the uplink before a frame, so
//! that the frame's link sample starts when the bottleneck could start on it.

use std::collections::VecDeque;

/// Recent frames' arrivals at the server and the agent's recent ACK-only packets, on the
/// agent's clock.
///
/// The bottleneck is a FIFO: a frame's service starts no earlier than the previous frame's
/// arrival, and no earlier than the end of an ACK-only packet sent between the two. The agent
/// acknowledges each reply at once with a packet of its own (~32 bytes: the reply and the
/// server's STOP_SENDING are two ack-eliciting packets), ~1.8 ms of service at 140 kbit/s; a
/// frame sent while it is on the link waits for it (measured: 10–12 % of frames on a
/// contested 140 kbit/s link, whose samples then started a median 0.5 ms early and read
/// low; docs/results/emulation.md, passes D and F).
#[derive(Debug, Default)]
pub(crate) struct UplinkLog {
    /// The frames, in the order their replies came.
    frames: VecDeque<LoggedFrame>,
    /// When replies were read (the ACK-only packet leaves then).
    replies: VecDeque<f64>,
    /// The latest link samples' rates, bit/s, to price an ACK packet's service.
    rates: VecDeque<f64>,
}

/// A frame the agent sent, as its reply placed it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LoggedFrame {
    /// When its sending started (agent's clock).
    pub(crate) sent: f64,
    /// Its arrival at the server as `ServiceTiming::arrival` places it on the agent's clock.
    pub(crate) arrival: f64,
    /// The datagrams that carried it.
    pub(crate) packets: u64,
}

impl UplinkLog {
    const KEEP: usize = 64;
    const RATES: usize = 5;

    /// When the bottleneck was done with what the agent sent before `send_start` (the
    /// previous frame and any ACK-only packets of `ack_bytes` sent after it), on the clock of
    /// the arrivals: ACK packets are shifted by `one_way` like them. `None` with no earlier
    /// frame and no priced ACK.
    pub(crate) fn busy_until(&self, send_start: f64, one_way: f64, ack_bytes: u64) -> Option<f64> {
        let previous = self.previous_frame(send_start);
        let frame_end = self.frames_done(send_start);
        let ack_s = self
            .median_rate()
            .map(|r| ack_bytes as f64 * 8.0 / r)
            .filter(|s| s.is_finite() && *s > 0.0);
        // No ACK bytes (nothing to price) or no rate yet: the frames alone.
        let Some(ack_s) = ack_s else {
            return frame_end;
        };
        let after = previous.map_or(f64::NEG_INFINITY, |f| f.sent);
        let mut busy = frame_end.unwrap_or(f64::NEG_INFINITY);
        for &read in self
            .replies
            .iter()
            .filter(|&&read| read > after && read < send_start)
        {
            busy = busy.max(read + one_way) + ack_s;
        }
        busy.is_finite().then_some(busy)
    }

    /// The latest arrival (on the shifted clock) of the frames sent before `send_start`.
    pub(crate) fn frames_done(&self, send_start: f64) -> Option<f64> {
        self.frames
            .iter()
            .filter(|f| f.sent < send_start)
            .map(|f| f.arrival)
            .max_by(f64::total_cmp)
    }

    /// The latest frame sent before `send_start` whose reply has come.
    pub(crate) fn previous_frame(&self, send_start: f64) -> Option<LoggedFrame> {
        self.frames
            .iter()
            .filter(|f| f.sent < send_start)
            .max_by(|a, b| a.sent.total_cmp(&b.sent))
            .copied()
    }

    /// Whether the bottleneck was still serving a frame sent before `at` when a packet sent at
    /// `at` reached it (arrivals are on the clock shifted by `one_way`).
    pub(crate) fn busy_at(&self, at: f64, one_way: f64) -> bool {
        self.frames
            .iter()
            .any(|f| f.sent < at && f.arrival > at + one_way)
    }

    /// Records a frame's send start, arrival and datagrams, and the rate of its link sample.
    pub(crate) fn record_frame(
        &mut self,
        send_start: f64,
        arrival: f64,
        packets: u64,
        rate: Option<f64>,
    ) {
        let frame = LoggedFrame {
            sent: send_start,
            arrival,
            packets,
        };
        push(&mut self.frames, frame, Self::KEEP);
        if let Some(r) = rate.filter(|r| r.is_finite() && *r > 0.0) {
            push(&mut self.rates, r, Self::RATES);
        }
    }

    /// Records that a reply was read at `at` (its ACK-only packet left then).
    pub(crate) fn record_reply(&mut self, at: f64) {
        push(&mut self.replies, at, Self::KEEP);
    }

    /// The median rate of the latest link samples, bit/s.
    pub(crate) fn median_rate(&self) -> Option<f64> {
        let mut r: Vec<f64> = self.rates.iter().copied().collect();
        r.sort_by(f64::total_cmp);
        r.get(r.len() / 2).copied()
    }
}

fn push<T>(q: &mut VecDeque<T>, x: T, keep: usize) {
    if q.len() == keep {
        q.pop_front();
    }
    q.push_back(x);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_waits_for_the_previous_frame_and_an_ack_sent_after_it() {
        let mut log = UplinkLog::default();
        assert_eq!(log.busy_until(1.0, 0.025, 32), None);
        // Frame sent at 0.9 arrived at 0.95 (shifted clock); no rate yet: ACKs unpriced.
        log.record_frame(0.9, 0.95, 1, None);
        log.record_reply(0.97);
        assert_eq!(log.busy_until(1.0, 0.025, 32), Some(0.95));
        // At 128 kbit/s a 32-byte ACK takes 2 ms: sent at 0.97, it is on the link (shifted)
        // from 0.995 to 0.997.
        log.record_frame(0.5, 0.55, 1, Some(128e3));
        let busy = log.busy_until(1.0, 0.025, 32).expect("busy");
        assert!((busy - 0.997).abs() < 1e-9, "{busy}");
        // An ACK sent before the previous frame is behind it already; one sent after the
        // frame in question does not delay it.
        assert_eq!(log.busy_until(0.96, 0.025, 32), Some(0.95));
        log.record_reply(0.85);
        let busy = log.busy_until(1.0, 0.025, 32).expect("busy");
        assert!((busy - 0.997).abs() < 1e-9, "{busy}");
        // An ACK that queued behind the previous frame ends one ACK after its arrival.
        let mut q = UplinkLog::default();
        q.record_frame(0.9, 1.0, 1, Some(128e3));
        q.record_reply(0.95);
        let busy = q.busy_until(1.0, 0.025, 32).expect("busy");
        assert!((busy - 1.002).abs() < 1e-9, "{busy}");
        assert_eq!(q.busy_until(1.0, 0.025, 0), Some(1.0));
        // A packet sent at 0.96 met that frame on the link (shifted: 0.985 < 1.0); one sent
        // at 0.98 did not (1.005), nor one sent before the frame.
        assert!(q.busy_at(0.96, 0.025));
        assert!(!q.busy_at(0.98, 0.025));
        assert!(!q.busy_at(0.89, 0.025));
    }

    #[test]
    fn the_previous_frame_is_the_latest_sent_before() {
        let mut log = UplinkLog::default();
        assert_eq!(log.previous_frame(1.0), None);
        // Replies may come out of order: the one sent last before 1.0 is the previous frame.
        log.record_frame(0.90, 0.97, 2, None);
        log.record_frame(0.80, 0.99, 1, None);
        log.record_frame(1.00, 1.05, 1, None);
        let previous = log.previous_frame(1.0).expect("previous");
        assert_eq!((previous.sent, previous.packets), (0.90, 2));
        assert_eq!(log.frames_done(1.0), Some(0.99));
    }
}
