//! The emulated link, sans-IO: given a packet's arrival time and size, when (if ever) it comes
//! out the other end.

use std::collections::VecDeque;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::schedule::CapacitySchedule;

/// Settings of one direction of the link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    /// One-way propagation delay, seconds.
    pub delay: f64,
    /// Drop-tail queue size in bytes (the packet being serialised counts too).
    pub queue_bytes: u64,
    /// Probability that a packet is lost after crossing the bottleneck.
    pub loss: f64,
    /// Seed of the loss process (same seed and same packet sequence, same losses).
    pub seed: u64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            delay: 0.0,
            queue_bytes: 256 * 1024,
            loss: 0.0,
            seed: 0,
        }
    }
}

/// What happens to an offered packet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// It leaves the link at this time (seconds since start).
    Deliver {
        /// Exit time.
        at: f64,
    },
    /// The queue was full.
    QueueFull,
    /// It crossed the bottleneck and was then lost at random.
    Lost,
    /// The capacity is zero from now on; it would never be sent.
    NoCapacity,
}

/// One offered packet's fate, in seconds since the link's start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacketRecord {
    /// When it was offered (read by the relay).
    pub offered: f64,
    /// When the bottleneck started serialising it (`offered` if the link was idle).
    pub start: f64,
    /// When the bottleneck finished it; `start` for a packet that never entered.
    pub end: f64,
    /// UDP payload bytes.
    pub bytes: u64,
    /// What happened to it.
    pub verdict: Verdict,
}

/// Packet and byte counts of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkStats {
    /// Packets offered.
    pub offered_packets: u64,
    /// Bytes offered.
    pub offered_bytes: u64,
    /// Packets delivered (scheduled for exit).
    pub delivered_packets: u64,
    /// Bytes delivered.
    pub delivered_bytes: u64,
    /// Packets dropped because the queue was full.
    pub queue_drops: u64,
    /// Packets lost at random.
    pub random_losses: u64,
}

/// One direction of the emulated link: a capacity schedule, a drop-tail byte queue in front of
/// it, propagation delay and random loss behind it.
pub struct LinkModel {
    schedule: Arc<dyn CapacitySchedule>,
    config: LinkConfig,
    rng: ChaCha8Rng,
    /// When the bottleneck finishes the last accepted packet.
    busy_until: f64,
    /// Packets not yet fully serialised: (serialisation end, bytes).
    backlog: VecDeque<(f64, u64)>,
    backlog_bytes: u64,
    stats: LinkStats,
    log: Vec<PacketRecord>,
    log_capacity: usize,
}

impl LinkModel {
    /// A link driven by `schedule`.
    pub fn new(schedule: Arc<dyn CapacitySchedule>, config: LinkConfig) -> Self {
        Self {
            schedule,
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            config,
            busy_until: 0.0,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            stats: LinkStats::default(),
            log: Vec::new(),
            log_capacity: 0,
        }
    }

    /// Keeps the first `packets` offered packets in a log ([`LinkModel::packet_log`]), for
    /// analysis: where each packet waited and was served, against what the endpoints measured.
    pub fn with_packet_log(mut self, packets: usize) -> Self {
        self.log_capacity = packets;
        self
    }

    /// The first offered packets, as many as [`LinkModel::with_packet_log`] asked for.
    pub fn packet_log(&self) -> &[PacketRecord] {
        &self.log
    }

    fn record(&mut self, offered: f64, start: f64, end: f64, bytes: u64, verdict: Verdict) {
        if self.log.len() < self.log_capacity {
            self.log.push(PacketRecord {
                offered,
                start,
                end,
                bytes,
                verdict,
            });
        }
        if let Verdict::Deliver { .. } = verdict {
            self.stats.delivered_packets += 1;
            self.stats.delivered_bytes += bytes;
        }
    }

    /// Offers a packet of `bytes` at time `now` (seconds since start, non-decreasing).
    pub fn offer(&mut self, now: f64, bytes: usize) -> Verdict {
        let bytes = bytes as u64;
        self.stats.offered_packets += 1;
        self.stats.offered_bytes += bytes;
        while let Some(&(end, size)) = self.backlog.front() {
            if end > now {
                break;
            }
            self.backlog.pop_front();
            self.backlog_bytes -= size;
        }
        if self.backlog_bytes + bytes > self.config.queue_bytes {
            self.stats.queue_drops += 1;
            self.record(now, now, now, bytes, Verdict::QueueFull);
            return Verdict::QueueFull;
        }
        let start = self.busy_until.max(now);
        let Some(end) = self.schedule.transfer_end(start, bytes as f64 * 8.0) else {
            self.stats.queue_drops += 1;
            self.record(now, start, start, bytes, Verdict::NoCapacity);
            return Verdict::NoCapacity;
        };
        self.busy_until = end;
        self.backlog.push_back((end, bytes));
        self.backlog_bytes += bytes;
        let verdict = if self.config.loss > 0.0 && self.rng.random::<f64>() < self.config.loss {
            self.stats.random_losses += 1;
            Verdict::Lost
        } else {
            Verdict::Deliver {
                at: end + self.config.delay,
            }
        };
        self.record(now, start, end, bytes, verdict);
        verdict
    }

    /// Bytes waiting for or in serialisation at the last offer.
    pub fn backlog_bytes(&self) -> u64 {
        self.backlog_bytes
    }

    /// Counts so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::schedule::{ConstantRate, PiecewiseConstant};

    #[test]
    fn serialises_back_to_back_and_adds_delay() {
        let cfg = LinkConfig {
            delay: 0.010,
            queue_bytes: 10_000,
            ..LinkConfig::default()
        };
        let mut link = LinkModel::new(Arc::new(ConstantRate { bps: 1e6 }), cfg);
        // 1250 bytes = 10 ms at 1 Mbit/s.
        assert_eq!(link.offer(0.0, 1250), Verdict::Deliver { at: 0.020 });
        assert_eq!(link.offer(0.0, 1250), Verdict::Deliver { at: 0.030 });
        assert_eq!(link.backlog_bytes(), 2500);
        // After an idle gap the link starts fresh.
        assert_eq!(link.offer(1.0, 1250), Verdict::Deliver { at: 1.020 });
        assert!(link.packet_log().is_empty(), "the log is off by default");
    }

    #[test]
    fn the_packet_log_keeps_each_packets_wait_and_service() {
        let cfg = LinkConfig {
            queue_bytes: 2000,
            ..LinkConfig::default()
        };
        let mut link = LinkModel::new(Arc::new(ConstantRate { bps: 1e6 }), cfg).with_packet_log(3);
        link.offer(0.0, 1250);
        link.offer(0.005, 500);
        link.offer(0.006, 1000);
        link.offer(0.5, 100);
        let log = link.packet_log();
        assert_eq!(log.len(), 3);
        assert_eq!((log[0].start, log[0].end, log[0].bytes), (0.0, 0.010, 1250));
        // Queued behind the first: served from its end.
        assert_eq!((log[1].offered, log[1].start), (0.005, 0.010));
        assert!((log[1].end - 0.014).abs() < 1e-12);
        assert_eq!(log[2].verdict, Verdict::QueueFull);
    }

    #[test]
    fn drop_tail_by_bytes() {
        let cfg = LinkConfig {
            queue_bytes: 3000,
            ..LinkConfig::default()
        };
        let mut link = LinkModel::new(Arc::new(ConstantRate { bps: 1e6 }), cfg);
        assert!(matches!(link.offer(0.0, 1500), Verdict::Deliver { .. }));
        assert!(matches!(link.offer(0.0, 1500), Verdict::Deliver { .. }));
        assert_eq!(link.offer(0.0, 1), Verdict::QueueFull);
        // The first packet has left the queue after 12 ms.
        assert!(matches!(link.offer(0.0121, 1500), Verdict::Deliver { .. }));
        assert_eq!(link.stats().queue_drops, 1);
    }

    #[test]
    fn follows_the_schedule_and_outages() {
        let s = PiecewiseConstant::new(&[(1.0, 1e6), (1.0, 0.0)]).expect("valid");
        let mut link = LinkModel::new(Arc::new(s), LinkConfig::default());
        // 250 bytes at 0.999 s: 1 ms of it fits before the outage, the rest after it.
        match link.offer(0.999, 250) {
            Verdict::Deliver { at } => assert!((at - 2.001).abs() < 1e-9, "{at}"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn loss_is_deterministic_per_seed_and_near_its_rate() {
        let run = |seed| {
            let cfg = LinkConfig {
                loss: 0.1,
                seed,
                queue_bytes: u64::MAX,
                ..LinkConfig::default()
            };
            let mut link = LinkModel::new(Arc::new(ConstantRate { bps: 1e9 }), cfg);
            (0..10_000)
                .map(|i| link.offer(i as f64, 100) == Verdict::Lost)
                .collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        let lost = a.iter().filter(|&&l| l).count();
        assert!(
            (800..1200).contains(&lost),
            "{lost} losses of 10000 at p = 0.1"
        );
    }
}
