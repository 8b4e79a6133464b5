//! Plain observations handed to the controller: delivery samples and QUIC path statistics.
//!
//! Times are seconds (f64) relative to the client's epoch (`AgentClient::epoch`), sizes bytes.

use std::time::Duration;

/// `bytes` were delivered to the server over `[start, end]` (seconds, client epoch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeliverySample {
    /// Start of the interval.
    pub start: f64,
    /// End of the interval.
    pub end: f64,
    /// Bytes delivered in the interval.
    pub bytes: u64,
}

impl DeliverySample {
    /// Delivery rate in bit/s, or `None` for an empty interval.
    pub fn rate_bps(&self) -> Option<f64> {
        let dt = self.end - self.start;
        (dt > 0.0).then(|| self.bytes as f64 * 8.0 / dt)
    }
}

/// When one layer arrived at the server (seconds relative to the first byte of the frame's
/// stream on the server) and how big its record was.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerReceipt {
    /// Bytes of the layer record, 4-byte length prefix included.
    pub bytes: u64,
    /// When the first byte of the record was read.
    pub first_byte: f64,
    /// When the last byte of the record was read.
    pub last_byte: f64,
}

/// A snapshot of quinn's path statistics for the agent's connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathStats {
    /// Smoothed round-trip time, seconds.
    pub rtt: f64,
    /// Smallest round-trip time seen, seconds.
    pub min_rtt: f64,
    /// Congestion window, bytes.
    pub cwnd: u64,
    /// Congestion events so far.
    pub congestion_events: u64,
    /// Packets declared lost so far.
    pub lost_packets: u64,
    /// Bytes declared lost so far.
    pub lost_bytes: u64,
    /// Packets sent so far.
    pub sent_packets: u64,
    /// Current path MTU, bytes.
    pub mtu: u16,
    /// ACK frames received from the server so far: while the agent has data in flight the
    /// server acknowledges what arrives, so a count that stands still says none of it does.
    pub acks_received: u64,
}

impl PathStats {
    pub(crate) fn from_quinn(stats: &quinn::ConnectionStats) -> Self {
        let p = &stats.path;
        Self {
            rtt: p.rtt.as_secs_f64(),
            min_rtt: p.min_rtt.as_secs_f64(),
            cwnd: p.cwnd,
            congestion_events: p.congestion_events,
            lost_packets: p.lost_packets,
            lost_bytes: p.lost_bytes,
            sent_packets: p.sent_packets,
            mtu: p.current_mtu,
            acks_received: stats.frame_rx.acks,
        }
    }
}

/// Delivery samples for one frame, derived from the server's receipts.
///
/// `send_start` is when the agent started writing the frame (client epoch), `rtt` the smoothed
/// RTT at that time; the server's clock origin (its first byte) is mapped to
/// `send_start + rtt / 2`. Returns the train sample — bytes of all layers over
/// [header complete, last layer complete], which measures the bottleneck's dispersion and needs
/// no clock sync — and the send→receive sample over [send_start, last layer complete], which
/// also includes the one-way delay and so is a lower bound on the rate.
pub(crate) fn frame_samples(
    send_start: f64,
    rtt: Duration,
    header_done: f64,
    header_bytes: u64,
    receipts: &[LayerReceipt],
) -> (Option<DeliverySample>, Option<DeliverySample>) {
    let Some(last) = receipts.last() else {
        return (None, None);
    };
    let origin = send_start + rtt.as_secs_f64() / 2.0;
    let layer_bytes: u64 = receipts.iter().map(|r| r.bytes).sum();
    // Shorter than a millisecond means the whole frame arrived in one burst: its dispersion
    // says nothing about the link.
    let train = (last.last_byte - header_done >= 1e-3).then_some(DeliverySample {
        start: origin + header_done,
        end: origin + last.last_byte,
        bytes: layer_bytes,
    });
    let end_to_end = DeliverySample {
        start: send_start,
        end: origin + last.last_byte,
        bytes: layer_bytes + header_bytes,
    };
    (train, Some(end_to_end).filter(|s| s.end > s.start))
}

/// Shortest service interval a link sample may have: below it, timer and scheduling noise on
/// the agent and the server is larger than the interval itself.
pub const MIN_SERVICE_S: f64 = 0.5e-3;

/// Where one frame's uplink service sits on the agent's clock, from the server's report.
///
/// The server tells when the last received layer arrived and when the reply was written, both
/// relative to the frame's first byte on the server's clock; the agent knows when it started
/// sending and when the reply arrived. With `one_way` the propagation delay of each direction
/// (half the propagation RTT), the last byte reached the server at
/// `arrival = reply_received − one_way − (reply_written − last_byte)` on the agent's clock,
/// and the bottleneck, a FIFO, started serving the frame at the later of `send_start + one_way`
/// (shifted by the propagation delay like `arrival`) and `previous_arrival`, when it was done
/// with what the agent sent before. The sample is the frame's bytes over that service interval: the
/// link's rate while it carried this frame, without the wait behind earlier frames and
/// without the propagation delay — the same quantity the simulator reports. Returns the
/// arrival and the sample (`None` without bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServiceTiming {
    /// When the agent started writing the frame (client epoch, seconds).
    pub send_start: f64,
    /// When the whole reply had been read (client epoch, seconds). The agent passes when it
    /// would have been read had it crossed as fast as the fastest recent reply
    /// ([`ServerClock`]), so that this reply's own delays on the way back stay out.
    pub reply_received: f64,
    /// One-way propagation delay, seconds.
    pub one_way: f64,
    /// Server-relative time of the last received layer's last byte, seconds: when the
    /// server's socket received it where the server said (it may then precede the time zero).
    pub last_byte: f64,
    /// Server-relative time the reply was written, seconds.
    pub reply_written: f64,
    /// When the bottleneck was done with what the agent sent before this frame (the previous
    /// frame's arrival, or the end of an ACK-only packet sent after it), on the clock of
    /// `arrival`, if known.
    pub previous_arrival: Option<f64>,
}

impl ServiceTiming {
    /// When the last received byte reached the server, on the agent's clock; never before the
    /// frame was sent.
    pub fn arrival(&self) -> f64 {
        let held = (self.reply_written - self.last_byte).max(0.0);
        (self.reply_received - self.one_way - held).max(self.send_start)
    }

    /// `bytes` over the frame's service interval (at least [`MIN_SERVICE_S`] long).
    pub fn sample(&self, bytes: u64) -> Option<DeliverySample> {
        if bytes == 0 {
            return None;
        }
        let end = self.arrival();
        let start = (self.send_start + self.one_way)
            .max(self.previous_arrival.unwrap_or(f64::NEG_INFINITY))
            .min(end - MIN_SERVICE_S);
        Some(DeliverySample { start, end, bytes })
    }
}

/// Maps the server's clock onto the agent's, for placing a frame's arrival at the server on
/// the agent's clock without the scheduling delays of the reply's way back.
///
/// Each reply says when it was written on the server's clock (`origin_us + reply_us`) and the
/// agent knows when it had read it: their difference is the clocks' offset plus the downlink's
/// propagation delay plus every delay on the reply's way (the reply leaving the server after
/// it was stamped, the agent's task reading it late). Those delays are never negative and
/// mostly small, so the smallest difference over the last [`ServerClock::FRAMES`] replies is
/// the offset plus the propagation delay plus the stacks' fastest crossing, and a late reply
/// no longer moves its own frame's arrival (measured: those delays put the end of the link
/// sample a median 0.25 ms, at p99 5 ms late on the agent's side alone;
/// docs/results/emulation.md, pass D). A window and not the minimum of the whole connection:
/// two hosts' clocks drift apart by up to ~50 µs per second, and 32 frames at 30 fps hold about
/// a second of it. Another server clock starts over: the agent names the clock by the reply's
/// `server_id`, so a reconnection to the same server keeps the window and a restarted server
/// (a new clock) does not.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerClock {
    clock: Option<u64>,
    shifts: [f64; Self::FRAMES],
    len: usize,
    next: usize,
}

impl Default for ServerClock {
    fn default() -> Self {
        Self {
            clock: None,
            shifts: [0.0; Self::FRAMES],
            len: 0,
            next: 0,
        }
    }
}

impl ServerClock {
    /// Replies whose fastest crossing maps the clocks.
    pub const FRAMES: usize = 32;

    /// Records a reply written at `written` on server clock `clock` and read at `received` on
    /// the agent's (seconds), and returns the shift to add to a server time to have it on the
    /// agent's clock as the fastest reply would have brought it: never more than this reply's
    /// own `received − written`.
    pub fn observe(&mut self, clock: u64, written: f64, received: f64) -> f64 {
        if self.clock != Some(clock) {
            *self = Self {
                clock: Some(clock),
                ..Self::default()
            };
        }
        self.shifts[self.next] = received - written;
        self.next = (self.next + 1) % Self::FRAMES;
        self.len = (self.len + 1).min(Self::FRAMES);
        self.shifts[..self.len]
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
    }
}

/// The propagation round trip the agent times its link samples with.
///
/// The server's minimum RTT is measured on replies acknowledged by the agent's ACK-only
/// packets (~32 bytes), so it holds their serialisation on the uplink: 1.8 ms at 140 kbit/s,
/// which, taken for propagation, cut every service interval short by that much (measured:
/// +6 % rate bias at 140 kbit/s). When the server reports a new minimum, it was just
/// measured, at about the rate the latest frames met: that minimum less the ACK packet's
/// serialisation at the median rate of the last [`PropagationRtt::RATES`] frames is kept as
/// the propagation RTT until the next new minimum. The median, not the latest frame's rate:
/// the correction holds for the rest of the connection (a minimum rarely falls again), and one
/// frame's sample can be far off (measured: a correction taken from a single low sample left a
/// run's propagation RTT at 49.61 ms on a 50 ms path, every link sample ~4 % low, and 82 %
/// agreement with the simulator where runs with ~50.7 ms had 90–92 %; docs/results/emulation.md,
/// pass E).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PropagationRtt {
    ack_bytes: u64,
    /// The server's minimum (s) that `corrected` was derived from.
    server_min: Option<f64>,
    corrected: Option<f64>,
    /// Whether `corrected` was priced at the median of a full set of [`PropagationRtt::RATES`]
    /// rates.
    priced: bool,
    /// The latest frames' rates (bit/s), timed with the server's minimum as it was then.
    rates: [f64; Self::RATES],
    len: usize,
    next: usize,
}

impl PropagationRtt {
    /// Frames whose median rate prices the ACK packet's serialisation.
    pub const RATES: usize = 5;

    /// For ACK-only packets of `ack_bytes` bytes.
    pub fn new(ack_bytes: u64) -> Self {
        Self {
            ack_bytes,
            server_min: None,
            corrected: None,
            priced: false,
            rates: [0.0; Self::RATES],
            len: 0,
            next: 0,
        }
    }

    /// The propagation RTT (s) given the server's reported minimum (`None`: unknown), the
    /// agent's own minimum (which carries frames, not ACKs, and so is only a fallback bound),
    /// and `rate_with`: the uplink rate (bit/s) the current frame's sample gives when timed
    /// with a given round trip.
    pub fn update(
        &mut self,
        server_min: Option<f64>,
        own_min: f64,
        rate_with: impl Fn(f64) -> Option<f64>,
    ) -> f64 {
        let Some(server) = server_min.filter(|s| *s > 0.0) else {
            return self.corrected.unwrap_or(own_min).min(own_min);
        };
        if let Some(rate) = rate_with(server.min(own_min)).filter(|r| r.is_finite() && *r > 0.0) {
            self.rates[self.next] = rate;
            self.next = (self.next + 1) % Self::RATES;
            self.len = (self.len + 1).min(Self::RATES);
        }
        // A minimum taken before five rates were known is priced again with each new rate
        // until there are five: it may stay the connection's minimum for good, and the first
        // frames' rates can be far off (measured: two runs whose propagation RTT stayed
        // ~1.3 ms long from the first frames on, every sample ~5 % high).
        if self.server_min != Some(server) || !self.priced {
            let ack_s = self
                .median_rate()
                .map_or(0.0, |r| self.ack_bytes as f64 * 8.0 / r);
            // Never more than half the round trip: a rate that low is noise, not a link.
            self.corrected = Some(server - ack_s.min(server / 2.0));
            self.server_min = Some(server);
            self.priced = self.len == Self::RATES;
        }
        self.corrected.unwrap_or(server).min(own_min)
    }

    /// The median of the latest frames' rates (the upper one of an even count).
    fn median_rate(&self) -> Option<f64> {
        if self.len == 0 {
            return None;
        }
        let mut rates = self.rates;
        let rates = &mut rates[..self.len];
        rates.sort_by(f64::total_cmp);
        Some(rates[self.len / 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_interval_excludes_propagation_hold_and_queueing() {
        // Sent at 1.0; 20 ms each way; the last byte reached the server 10 ms after the
        // propagation delay (its service time); the server held it 3 ms.
        let mut t = ServiceTiming {
            send_start: 1.0,
            reply_received: 1.0 + 0.020 + 0.010 + 0.003 + 0.020,
            one_way: 0.020,
            last_byte: 0.004,
            reply_written: 0.007,
            previous_arrival: None,
        };
        assert!((t.arrival() - 1.030).abs() < 1e-9);
        let s = t.sample(1000).expect("sample");
        assert!((s.start - 1.020).abs() < 1e-9 && (s.end - 1.030).abs() < 1e-9);
        assert!((s.rate_bps().expect("rate") - 800_000.0).abs() < 1e-3);
        // Behind an earlier frame that arrived at 1.026, only the last 4 ms were this frame's.
        t.previous_arrival = Some(1.026);
        assert!((t.sample(1000).expect("sample").start - 1.026).abs() < 1e-9);
        // Noise never gives an interval shorter than the floor, nor an arrival before sending.
        t.reply_received = 1.0;
        assert_eq!(t.arrival(), 1.0);
        let s = t.sample(10).expect("sample");
        assert!((s.end - s.start - MIN_SERVICE_S).abs() < 1e-12);
        assert!(t.sample(0).is_none());
    }

    #[test]
    fn server_clock_takes_the_fastest_recent_reply_and_restarts_per_clock() {
        let mut c = ServerClock::default();
        // Server clock 100 s behind the agent's, 25 ms on the way back, plus stack delays.
        assert!((c.observe(1, 1.0, 101.0253) - 100.0253).abs() < 1e-9);
        assert!((c.observe(1, 1.1, 101.1251) - 100.0251).abs() < 1e-9);
        // A reply read 6 ms late does not move the mapping.
        assert!((c.observe(1, 1.2, 101.231) - 100.0251).abs() < 1e-9);
        // After FRAMES more replies the fast one has left the window.
        for i in 0..ServerClock::FRAMES {
            let w = 2.0 + i as f64 * 0.1;
            c.observe(1, w, w + 100.0255);
        }
        assert!((c.observe(1, 9.0, 109.0255) - 100.0255).abs() < 1e-9);
        // Another clock (a restarted server's starts again) forgets the old shifts.
        assert!((c.observe(2, 0.5, 110.0255) - 109.5255).abs() < 1e-9);
    }

    #[test]
    fn propagation_rtt_drops_the_ack_serialisation_of_each_new_minimum() {
        let mut p = PropagationRtt::new(32);
        // No server minimum yet: the agent's own.
        assert_eq!(p.update(None, 0.060, |_| Some(1e5)), 0.060);
        // A new minimum of 51.83 ms measured at 140 kbit/s: the 32-byte ACK took 1.83 ms.
        let rtt = p.update(Some(0.05183), 0.060, |_| Some(140e3));
        assert!((rtt - 0.05).abs() < 1e-4, "{rtt}");
        // The same minimum later, at another rate: the correction of its own time stays.
        assert_eq!(p.update(Some(0.05183), 0.060, |_| Some(60e3)), rtt);
        // A rate of nothing corrects by at most half.
        let mut q = PropagationRtt::new(32);
        assert_eq!(q.update(Some(0.05), 0.06, |_| Some(1.0)), 0.025);
    }

    #[test]
    fn a_minimum_seen_before_five_rates_is_priced_again_until_there_are_five() {
        let mut p = PropagationRtt::new(32);
        // The first reply brings the minimum and a rate four times the link's: priced at it,
        // the ACK would take 0.46 ms instead of 1.83.
        let first = p.update(Some(0.05183), 0.060, |_| Some(560e3));
        assert!((first - 0.05137).abs() < 1e-4, "{first}");
        // The next frames, same minimum, at the link's rate: the median takes over.
        for _ in 0..4 {
            p.update(Some(0.05183), 0.060, |_| Some(140e3));
        }
        let rtt = p.update(Some(0.05183), 0.060, |_| Some(140e3));
        assert!((rtt - 0.05).abs() < 1e-4, "{rtt}");
        // Priced on five rates, the same minimum keeps its correction.
        assert_eq!(p.update(Some(0.05183), 0.060, |_| Some(60e3)), rtt);
    }

    #[test]
    fn one_low_sample_at_a_new_minimum_does_not_set_the_correction() {
        let mut p = PropagationRtt::new(32);
        // Four frames at 140 kbit/s under a first minimum of 52 ms.
        for _ in 0..4 {
            p.update(Some(0.052), 0.060, |_| Some(140e3));
        }
        // A new minimum of 51.83 ms arrives with a frame whose sample read 40 kbit/s (it
        // waited behind something): priced at that rate the ACK would be 6.4 ms and the
        // propagation RTT 45.4 ms; at the frames' median rate it is 1.83 ms.
        let rtt = p.update(Some(0.05183), 0.060, |_| Some(40e3));
        assert!((rtt - 0.05).abs() < 1e-4, "{rtt}");
    }

    #[test]
    fn samples_from_receipts() {
        let receipts = [
            LayerReceipt {
                bytes: 1000,
                first_byte: 0.001,
                last_byte: 0.010,
            },
            LayerReceipt {
                bytes: 1000,
                first_byte: 0.010,
                last_byte: 0.021,
            },
        ];
        let (train, e2e) = frame_samples(5.0, Duration::from_millis(20), 0.001, 50, &receipts);
        let train = train.expect("train sample");
        assert!((train.start - 5.011).abs() < 1e-9);
        assert!((train.end - 5.031).abs() < 1e-9);
        assert_eq!(train.bytes, 2000);
        assert!((train.rate_bps().expect("rate") - 800_000.0).abs() < 1e-3);
        let e2e = e2e.expect("e2e sample");
        assert_eq!(e2e.bytes, 2050);
        assert!((e2e.start - 5.0).abs() < 1e-12);
        assert_eq!(
            frame_samples(0.0, Duration::ZERO, 0.0, 10, &[]),
            (None, None)
        );
    }
}
