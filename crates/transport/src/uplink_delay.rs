//! The uplink's propagation round trip, measured on the agent's own packets with the same
//! clocks as its link samples.

use std::collections::VecDeque;

/// A packet of the agent's that found the uplink idle, as the server's kernel stamped it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdlePacket {
    /// When the agent's socket sent it (agent's clock, seconds).
    pub sent: f64,
    /// When the server's kernel received it (server's clock, seconds); for a frame, its last
    /// datagram.
    pub stamped: f64,
    /// UDP payload bytes it put on the link (for a frame, all of its datagrams).
    pub bytes: u64,
    /// The shift that mapped the server's clock onto the agent's then ([`crate::ServerClock`]).
    pub shift: f64,
}

impl IdlePacket {
    /// `shift + stamped − sent`: the round trip plus the packet's serialisation.
    fn transit(&self) -> f64 {
        self.shift + self.stamped - self.sent
    }
}

/// The propagation round trip the agent times its link samples with, measured on its own
/// packets with the same clocks and on the same layers as the samples' ends.
///
/// A link sample's end is the server's kernel stamp of the frame's last datagram mapped onto
/// the agent's clock ([`crate::ServerClock`]'s `shift`) less the one-way delay, its start the
/// agent's socket sending the frame's first datagram plus the one-way delay; so its length is
/// `shift + stamped − sent − round trip`, and the round trip has to be measured between the
/// same points, at the latencies those points typically have. A packet that finds the link
/// idle crosses in `transit = shift + stamped − sent = round trip + bits / rate`. The agent's
/// ACK-only packets (~32 bytes) are the ones with the least serialisation in it, but at the
/// link's rate of the moment, which no sample gives to better than ~10 % (1.8 ms ± 0.2 at
/// 140 kbit/s); so each idle ACK packet is paired with the idle frames sent just before and
/// after it (within [`UplinkDelay::PAIR_WINDOW_S`]), whose transit has ~10 times its bits at
/// the same rate: the difference of the two transits over the difference of their bits is
/// the time per bit, with the round trip and both stacks' latencies cancelled, and
/// `round trip = transit(ACK) − bits(ACK) × time per bit` (a latency error of 0.1 ms moves it by
/// ~0.01 ms through the rate). The server stamps the ACK packet and reports it with a later
/// reply (`acked_frame_id`, `ack_arrived_us`); the agent knows when its socket sent it
/// ([`crate::send_clock`]). The clocks' offset is in `shift` and in `stamped − sent` with
/// opposite signs, so a measurement stays valid while they drift apart.
///
/// The round trip is the median of the last [`UplinkDelay::PROBES`] pairs: the frames' own
/// ends carry the same send and receive latencies at their typical values, not their best.
///
/// Before this (pass F) the round trip was the server's minimum RTT less the ACK packet's
/// serialisation priced at the median rate of the last five frames: a minimum over quinn's
/// round trips through both stacks at their fastest, which fell where the trace's rate was
/// high, priced at a rate of other frames, so the one-way delay was off by −0.18 to +0.41 ms
/// from run to run and the samples' rate with it (docs/results/emulation.md, pass F, item 1).
///
/// Kept per server clock (the reply's `server_id`): a reconnection to the same server goes on
/// with the measurements it has instead of a new connection's handshake-long round trips; a
/// restarted server has another clock and starts over.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UplinkDelay {
    server: Option<u64>,
    /// Round trips measured, seconds, oldest first.
    round_trips: VecDeque<f64>,
    /// Idle ACK packets waiting for the frames around them.
    acks: VecDeque<IdlePacket>,
    /// The latest idle frames.
    frames: VecDeque<IdlePacket>,
}

impl UplinkDelay {
    /// Pairs whose median is the round trip. On a contested link few ACK packets find it
    /// idle (~6 % at 140 kbit/s), so these may span a minute; the round trips do not drift
    /// with the clocks.
    pub const PROBES: usize = 32;
    /// Pairs needed before the round trip is used (the median of three outlives one outlier).
    pub const MIN_PROBES: usize = 3;
    /// Farthest an idle frame may be sent from an idle ACK packet to be paired with it,
    /// seconds: the ACK packet leaves with a reply, some 60–90 ms after its frame at 140
    /// kbit/s, and the next frame follows at the frame rate. A rate that steps in between
    /// errs on one side of the two pairs and is halved by their mean.
    pub const PAIR_WINDOW_S: f64 = 0.1;
    /// How far the time per bit of the two pairs may differ, as a fraction of their mean (a
    /// rate that steps by a few per cent between them is fine).
    pub const PAIRS_AGREE: f64 = 0.25;
    /// Idle frames kept for pairing.
    const FRAMES: usize = 16;
    /// ACK packets waiting at most.
    const ACKS: usize = 16;

    fn for_server(&mut self, server: u64) {
        if self.server != Some(server) {
            *self = Self {
                server: Some(server),
                ..Self::default()
            };
        }
    }

    /// Records an ACK packet of server clock `server` that found the link idle; it is paired
    /// once the frames sent around it are known.
    pub fn idle_ack(&mut self, server: u64, ack: IdlePacket) {
        if ack.transit().is_finite() && ack.bytes > 0 {
            self.for_server(server);
            push(&mut self.acks, ack, Self::ACKS);
            self.pair();
        }
    }

    /// Records a frame of server clock `server` that found the link idle.
    pub fn idle_frame(&mut self, server: u64, frame: IdlePacket) {
        if frame.transit().is_finite() && frame.bytes > 0 {
            self.for_server(server);
            push(&mut self.frames, frame, Self::FRAMES);
            self.pair();
        }
    }

    /// Pairs every waiting ACK packet whose window has closed (a frame sent after it) with
    /// the idle frames sent closest before and after it; one without both, or whose two pairs
    /// disagree, is dropped.
    fn pair(&mut self) {
        let Some(latest) = self.frames.iter().map(|f| f.sent).max_by(f64::total_cmp) else {
            return;
        };
        let (ready, waiting): (Vec<IdlePacket>, Vec<IdlePacket>) = self
            .acks
            .iter()
            .partition(|a| a.sent + Self::PAIR_WINDOW_S < latest);
        self.acks = waiting.into();
        for ack in ready {
            let near = |after: bool| {
                self.frames
                    .iter()
                    .filter(|f| {
                        (f.sent > ack.sent) == after
                            && (f.sent - ack.sent).abs() <= Self::PAIR_WINDOW_S
                            && f.bytes > 2 * ack.bytes
                    })
                    .min_by(|a, b| {
                        (a.sent - ack.sent)
                            .abs()
                            .total_cmp(&(b.sent - ack.sent).abs())
                    })
                    .copied()
            };
            let per_bit = |f: IdlePacket| {
                (f.transit() - ack.transit()) / (8.0 * (f.bytes - ack.bytes) as f64)
            };
            // Both sides, and agreeing: an ACK packet that queued behind something the agent
            // could not see (the handshake's or path-MTU discovery's large packets) reads a
            // long transit, which the frames on either side contradict.
            let (Some(before), Some(after)) = (near(false).map(per_bit), near(true).map(per_bit))
            else {
                continue;
            };
            let per_bit = (before + after) / 2.0;
            if !(per_bit.is_finite()
                && before > 0.0
                && after > 0.0
                && (before - after).abs() <= Self::PAIRS_AGREE * per_bit)
            {
                continue;
            }
            let round_trip = ack.transit() - 8.0 * ack.bytes as f64 * per_bit;
            if round_trip > 0.0 {
                push(&mut self.round_trips, round_trip, Self::PROBES);
            }
        }
    }

    /// The round trip (seconds) for server clock `server`, once [`UplinkDelay::MIN_PROBES`]
    /// pairs of it are held.
    pub fn round_trip(&self, server: u64) -> Option<f64> {
        if self.server != Some(server) || self.round_trips.len() < Self::MIN_PROBES {
            return None;
        }
        median(self.round_trips.iter().copied().collect())
    }

    /// Pairs held for server clock `server`.
    pub fn probes(&self, server: u64) -> usize {
        if self.server == Some(server) {
            self.round_trips.len()
        } else {
            0
        }
    }
}

fn push<T>(q: &mut VecDeque<T>, x: T, keep: usize) {
    if q.len() == keep {
        q.pop_front();
    }
    q.push_back(x);
}

/// The median (the mean of the middle two of an even count).
fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFSET: f64 = 100.0; // agent's clock minus the server's
    const D: f64 = 0.025; // propagation, each way
    const SEND: f64 = 0.05e-3; // socket send call to the bottleneck
    const STAMP: f64 = 0.1e-3; // bottleneck's end to the server kernel's stamp
    const REPLY: f64 = 0.3e-3; // server writing a reply to the agent's task reading it
    const SHIFT: f64 = OFFSET + D + REPLY;
    /// The round trip a sample's ends need: both ways, both stacks.
    const ROUND_TRIP: f64 = 2.0 * D + REPLY + SEND + STAMP;

    /// A packet of `bytes` sent at `sent` on an idle link of `rate`, `late` more on its way.
    fn idle(sent: f64, bytes: u64, rate: f64, late: f64) -> IdlePacket {
        let stamped = sent - OFFSET + SEND + bytes as f64 * 8.0 / rate + D + STAMP + late;
        IdlePacket {
            sent,
            stamped,
            bytes,
            shift: SHIFT,
        }
    }

    #[test]
    fn an_idle_ack_between_idle_frames_gives_the_round_trip_at_the_links_rate() {
        let mut u = UplinkDelay::default();
        // Frames of 300 bytes at 33 ms intervals, ACK packets in between, 140 kbit/s; no
        // sample says the rate.
        for i in 0..6 {
            let t = 110.0 + i as f64 * 0.1;
            u.idle_frame(7, idle(t, 300, 140e3, 0.0));
            u.idle_ack(7, idle(t + 0.02, 32, 140e3, 0.0));
        }
        u.idle_frame(7, idle(110.6, 300, 140e3, 0.0));
        u.idle_frame(7, idle(110.65, 300, 140e3, 0.0));
        let rtt = u.round_trip(7).expect("round trip");
        assert!((rtt - ROUND_TRIP).abs() < 1e-9, "{rtt} vs {ROUND_TRIP}");
        assert_eq!((u.probes(7), u.round_trip(8)), (6, None));
        // One late stamp (the link's sender late) does not move the median.
        u.idle_ack(7, idle(110.72, 32, 140e3, 0.004));
        u.idle_frame(7, idle(110.75, 300, 140e3, 0.0));
        assert!((u.round_trip(7).expect("round trip") - ROUND_TRIP).abs() < 1e-9);
        // An ACK packet with no idle frame near it gives nothing; another clock starts over.
        u.idle_ack(7, idle(111.5, 32, 140e3, 0.0));
        u.idle_frame(7, idle(112.0, 300, 140e3, 0.0));
        assert_eq!(u.probes(7), 7);
        u.idle_frame(8, idle(1.0, 300, 140e3, 0.0));
        assert_eq!((u.probes(7), u.probes(8)), (0, 0));
    }

    #[test]
    fn an_ack_queued_behind_an_unseen_packet_is_contradicted_by_the_frames_around_it() {
        let mut u = UplinkDelay::default();
        // The ACK packet waited 40 ms behind a path-MTU probe the agent's log did not price;
        // the frame before it did not, the one after it waited 30 ms.
        u.idle_frame(3, idle(1.0, 300, 140e3, 0.0));
        u.idle_ack(3, idle(1.07, 32, 140e3, 0.040));
        u.idle_frame(3, idle(1.08, 300, 140e3, 0.030));
        u.idle_frame(3, idle(1.2, 300, 140e3, 0.0));
        assert_eq!(u.probes(3), 0);
    }

    #[test]
    fn two_measurements_are_not_enough_and_old_ones_leave() {
        let mut u = UplinkDelay::default();
        let pair = |u: &mut UplinkDelay, t: f64, late: f64| {
            u.idle_frame(1, idle(t, 300, 200e3, late));
            u.idle_ack(1, idle(t + 0.01, 32, 200e3, late));
            u.idle_frame(1, idle(t + 0.03, 300, 200e3, late));
        };
        for i in 0..2 {
            pair(&mut u, i as f64, 0.0);
        }
        assert_eq!(u.round_trip(1), None, "two are not enough");
        for i in 0..UplinkDelay::PROBES {
            pair(&mut u, 10.0 + i as f64, 0.001);
        }
        // Every packet 1 ms late: the pairs take it for the round trip's.
        let rtt = u.round_trip(1).expect("round trip");
        assert!((rtt - ROUND_TRIP - 0.001).abs() < 1e-9, "{rtt}");
    }

    /// Pass F's error, reproduced: the server's minimum RTT was measured while the link ran at
    /// 400 kbit/s, the ACK's serialisation is then priced at the frames' 140 kbit/s, and the
    /// minimum holds the two stacks' fastest latencies, not the ones the sample's ends carry.
    /// With that (and the frame timed from its task's start) the frame's 17.1 ms service reads
    /// 1.7 ms long, its rate 9 % low; timed with the round trip measured on the agent's idle
    /// packets (same clocks, same layers as the frame's ends) from the socket's send, it is
    /// exact.
    #[test]
    fn the_measured_round_trip_times_the_sample_where_the_minimum_rtt_did_not() {
        use crate::observe::{PropagationRtt, ServerClock, ServiceTiming};
        const TASK: f64 = 0.2e-3; // the frame's task writing to its first packet's send
        let rate = 140e3;
        let ser = |bytes: f64, r: f64| bytes * 8.0 / r;

        // The server clock's shift, from a reply written at 2.0 on the server's clock.
        let mut clock = ServerClock::default();
        let shift = clock.observe(9, 2.0, 2.0 + SHIFT);
        assert!((shift - SHIFT).abs() < 1e-9);
        // The server's minimum RTT: propagation both ways, a 32-byte ACK at 400 kbit/s, and
        // quinn's time between the endpoints (its fastest: 0.1 ms).
        let server_min = 2.0 * D + ser(32.0, 400e3) + 0.1e-3;
        let mut old = PropagationRtt::new(32);
        let mut rtt_old = 0.0;
        for _ in 0..PropagationRtt::RATES {
            rtt_old = old.update(Some(server_min), 0.08, |_| Some(rate));
        }
        let mut u = UplinkDelay::default();
        for i in 0..5 {
            let t = 110.0 + i as f64 * 0.1;
            u.idle_frame(9, idle(t, 300, rate, 0.0));
            u.idle_ack(9, idle(t + 0.02, 32, rate, 0.0));
        }
        u.idle_frame(9, idle(110.5, 300, rate, 0.0));
        let rtt_new = u.round_trip(9).expect("round trip");

        // A 300-byte frame whose task starts writing at 111.0 on an idle link.
        let task = 111.0;
        let wire = task + TASK;
        let service = ser(300.0, rate);
        let stamped = idle(wire, 300, rate, 0.0).stamped;
        let timed = |send_start: f64, rtt: f64| {
            let t = ServiceTiming {
                send_start,
                reply_received: stamped + 1e-3 + shift,
                one_way: rtt / 2.0,
                last_byte: stamped,
                reply_written: stamped + 1e-3,
                previous_arrival: None,
            };
            let s = t.sample(300).expect("sample");
            s.end - s.start
        };
        let old_error = timed(task, rtt_old) / service - 1.0;
        let new_error = timed(wire, rtt_new) / service - 1.0;
        assert!(
            (old_error - 0.1017).abs() < 1e-3,
            "the old error reproduced: {old_error}"
        );
        assert!(new_error.abs() < 1e-9, "{new_error}");
    }
}
