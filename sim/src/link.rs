//! The uplink: a FIFO through a trace's capacity, with propagation delay and payload efficiency,
//! or, with [`PacketModel`], packets with a per-packet overhead.

use crate::trace::Trace;

/// How much of the trace's capacity carries payload and how far away the server is.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    /// Round-trip propagation delay between device and server (seconds).
    pub rtt_s: f64,
    /// Fraction of the capacity that carries payload (QUIC, UDP and IP headers take the rest:
    /// about 50 bytes per ~1350-byte packet). Not used with [`LinkConfig::packets`].
    pub payload_efficiency: f64,
    /// Packets instead of a byte stream (off by default): see [`PacketModel`].
    #[serde(default)]
    pub packets: Option<PacketModel>,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            rtt_s: 0.05,
            payload_efficiency: 0.96,
            packets: None,
        }
    }
}

/// The uplink as the QUIC sender and the bottleneck see it: a transfer is cut into packets of
/// at most `max_payload` bytes, each costing `overhead` bytes more on the link, and the sender
/// hands packets to the bottleneck's queue while fewer than `window` of the transfer's bytes
/// wait there unserved (QUIC's congestion window, which an app-limited flow of small frames
/// never fills). A packet in that queue crosses whole even after the transfer's cutoff, and the
/// link stays busy with it; only packets the sender still held at the cutoff are cancelled.
/// This is what the emulated link does (`offload compare`; docs/results/emulation.md): a
/// Fashion-MNIST frame is one packet, which a cutoff cannot take back, so a frame queued behind
/// a capacity drop arrives whole and late instead of cut to its first layers.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PacketModel {
    /// Largest payload of one packet (bytes).
    pub max_payload: u64,
    /// Bytes a packet costs on the link beyond its payload.
    pub overhead: u64,
    /// Most of a transfer's bytes (overhead included) the sender keeps queued at the
    /// bottleneck; at least one packet is always handed over.
    pub window: u64,
}

impl PacketModel {
    /// quinn 0.11's packets as `offload-transport`'s `WireOverhead` counts them: 1200-byte UDP
    /// payloads (the initial MTU) with 33 bytes of QUIC around the stream data (short header
    /// with an 8-byte connection id, packet number, STREAM framing, the 16-byte AEAD tag and,
    /// on average, an ACK frame), and quinn's initial congestion window of 12 000 bytes
    /// (ten 1200-byte datagrams). UDP and IP headers are not counted, as in the link emulator.
    pub const QUINN: PacketModel = PacketModel {
        max_payload: 1200 - 33,
        overhead: 33,
        window: 12_000,
    };
}

/// One transfer's timing on the uplink.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transfer {
    /// When the first byte entered the link.
    pub start: f64,
    /// When the last byte left it (or when the transfer was cancelled).
    pub end: f64,
    /// Payload bytes that crossed the link (with [`PacketModel`], possibly after the cutoff).
    pub bytes_sent: u64,
    /// Payload bytes that had crossed by the cutoff: what the server can decode. Equal to
    /// `bytes_sent` without [`PacketModel`].
    pub bytes_by_cutoff: u64,
    /// Whether all bytes were sent: before the cutoff, or, with [`PacketModel`], handed to the
    /// bottleneck before it (they may then arrive after it).
    pub complete: bool,
}

/// The uplink as a single FIFO server: a transfer starts when the previous one has finished.
#[derive(Debug, Clone)]
pub struct Link<'t> {
    trace: &'t Trace,
    config: LinkConfig,
    free_at: f64,
    /// Trace segment where the previous transfer ended (speeds up the next lookup).
    segment: usize,
}

impl<'t> Link<'t> {
    /// An idle link over `trace`.
    pub fn new(trace: &'t Trace, config: LinkConfig) -> Self {
        Link {
            trace,
            config,
            free_at: f64::NEG_INFINITY,
            segment: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// One-way propagation delay (seconds).
    pub fn one_way(&self) -> f64 {
        self.config.rtt_s / 2.0
    }

    /// When the link finishes the transfers already queued.
    pub fn free_at(&self) -> f64 {
        self.free_at
    }

    /// Capacity of the trace at `t` (bit/s), for reports only: policies never see it.
    pub fn capacity_at(&self, t: f64) -> f64 {
        self.trace.capacity_at(t)
    }

    /// Whether the link could carry `bytes` of payload between `from` and `by`, were it idle.
    #[inline]
    pub fn could_carry(&self, from: f64, bytes: f64, by: f64) -> bool {
        let eff = self.config.payload_efficiency.clamp(1e-3, 1.0);
        // From the previous transfer's segment: `from` is near it, so no search (a lookup of
        // both ends from scratch was 6 % of a sweep's instructions).
        let mut hint = self.segment;
        self.trace
            .transfer_end_near(from, bytes * 8.0 / eff, &mut hint)
            .is_some_and(|end| end <= by)
    }

    /// Queues `bytes` that are ready at `ready`; the sender gives up on what has not crossed by
    /// `cutoff` (the frame's deadline: unsent layers are cancelled), or with [`PacketModel`], on
    /// the packets it has not handed to the bottleneck by then.
    pub fn send(&mut self, ready: f64, bytes: u64, cutoff: f64) -> Transfer {
        let start = ready.max(self.free_at);
        if let Some(packets) = self.config.packets {
            return self.send_packets(packets, ready, start, bytes, cutoff);
        }
        if start >= cutoff {
            return Transfer {
                start,
                end: start,
                bytes_sent: 0,
                bytes_by_cutoff: 0,
                complete: false,
            };
        }
        let eff = self.config.payload_efficiency.clamp(1e-3, 1.0);
        let wire_bits = bytes as f64 * 8.0 / eff;
        let end = self
            .trace
            .transfer_end_near(start, wire_bits, &mut self.segment)
            .unwrap_or(f64::INFINITY);
        if end <= cutoff {
            self.free_at = end;
            return Transfer {
                start,
                end,
                bytes_sent: bytes,
                bytes_by_cutoff: bytes,
                complete: true,
            };
        }
        let crossed = self.trace.bits_between(start, cutoff) * eff / 8.0;
        self.free_at = cutoff;
        let crossed = (crossed as u64).min(bytes);
        Transfer {
            start,
            end: cutoff,
            bytes_sent: crossed,
            bytes_by_cutoff: crossed,
            complete: false,
        }
    }

    /// [`Self::send`] with packets: the bottleneck serves the transfer's packets back to back
    /// from `start`; packet `j` is handed over at the later of `ready` and the moment the link
    /// has served all but `window` of the bytes before and including it. Packets handed over
    /// by `cutoff` cross whole; the rest are cancelled.
    fn send_packets(
        &mut self,
        model: PacketModel,
        ready: f64,
        start: f64,
        bytes: u64,
        cutoff: f64,
    ) -> Transfer {
        let payload = model.max_payload.max(1);
        let count = bytes.div_ceil(payload).max(1);
        // Wire bytes of the packets handed over so far, their payload, and the payload of the
        // packets that ended by the cutoff.
        let (mut wire, mut sent, mut by_cutoff) = (0u64, 0u64, 0u64);
        let mut end = start;
        let mut complete = true;
        for j in 0..count {
            let body = payload.min(bytes - j * payload);
            let size = body + model.overhead;
            // The link must have served this much of the transfer before the packet fits the
            // window (the first packet always fits).
            let must_serve = (wire + size).saturating_sub(model.window.max(size));
            let handed = if must_serve == 0 {
                ready
            } else {
                self.end_after(start, must_serve).max(ready)
            };
            if handed > cutoff {
                complete = false;
                break;
            }
            wire += size;
            sent += body;
            end = self.end_after(start, wire);
            if end <= cutoff {
                by_cutoff = sent;
            }
        }
        if sent == 0 {
            // Nothing handed over: the link is as it was.
            return Transfer {
                start,
                end: start,
                bytes_sent: 0,
                bytes_by_cutoff: 0,
                complete: false,
            };
        }
        self.free_at = end;
        Transfer {
            start,
            end,
            bytes_sent: sent,
            bytes_by_cutoff: by_cutoff,
            complete,
        }
    }

    /// When the link, serving from `start`, has carried `wire_bytes`.
    fn end_after(&mut self, start: f64, wire_bytes: u64) -> f64 {
        self.trace
            .transfer_end_near(start, wire_bytes as f64 * 8.0, &mut self.segment)
            .unwrap_or(f64::INFINITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A constant `bps` link for a long while.
    fn constant(bps: f64) -> Trace {
        Trace::from_segments("constant", &[(1000.0, bps)]).expect("a valid trace")
    }

    fn config(packets: Option<PacketModel>) -> LinkConfig {
        LinkConfig {
            rtt_s: 0.05,
            payload_efficiency: 1.0,
            packets,
        }
    }

    const EPS: f64 = 1e-9;

    #[test]
    fn packets_pay_their_overhead_each() {
        let trace = constant(8_000.0); // 1 byte per millisecond
        let model = PacketModel {
            max_payload: 500,
            overhead: 50,
            window: 100_000,
        };
        let mut link = Link::new(&trace, config(Some(model)));
        // 1200 payload bytes: packets of 500, 500 and 200 bytes, 150 bytes of overhead.
        let tx = link.send(0.0, 1200, 10.0);
        assert!(tx.complete);
        assert_eq!((tx.bytes_sent, tx.bytes_by_cutoff), (1200, 1200));
        assert!((tx.end - 1.35).abs() < EPS, "ends at {}", tx.end);
        assert!((link.free_at() - 1.35).abs() < EPS);
        // A payload that fits one packet pays one overhead.
        let tx = link.send(2.0, 100, 10.0);
        assert!((tx.end - 2.15).abs() < EPS, "ends at {}", tx.end);
    }

    #[test]
    fn a_queued_packet_crosses_whole_after_the_cutoff() {
        let trace = constant(8_000.0);
        let one_packet = PacketModel {
            max_payload: 1000,
            overhead: 0,
            window: 12_000,
        };
        // A frame of 400 bytes behind 300 ms of earlier data, cut off 200 ms after it is ready.
        let mut bytes = Link::new(&trace, config(None));
        let mut packets = Link::new(&trace, config(Some(one_packet)));
        for link in [&mut bytes, &mut packets] {
            link.send(0.0, 300, 10.0);
        }
        // The byte stream is cut at the cutoff: 100 of the 400 bytes crossed, and the link is
        // free then.
        let cut = bytes.send(0.1, 400, 0.4);
        assert!(!cut.complete);
        assert_eq!((cut.bytes_sent, cut.bytes_by_cutoff), (100, 100));
        assert!((bytes.free_at() - 0.4).abs() < EPS);
        // The packet was in the bottleneck's queue at the cutoff: it crosses whole and late,
        // and holds the link until it has.
        let late = packets.send(0.1, 400, 0.4);
        assert!(late.complete, "nothing was left for the cutoff to cancel");
        assert_eq!((late.bytes_sent, late.bytes_by_cutoff), (400, 0));
        assert!((late.end - 0.7).abs() < EPS, "ends at {}", late.end);
        assert!((packets.free_at() - 0.7).abs() < EPS);
    }

    #[test]
    fn packets_the_sender_still_holds_at_the_cutoff_are_cancelled() {
        let trace = constant(8_000.0);
        // Four packets of 100 bytes; the sender keeps at most two queued at the bottleneck.
        let model = PacketModel {
            max_payload: 100,
            overhead: 0,
            window: 200,
        };
        let mut link = Link::new(&trace, config(Some(model)));
        // Packets 1-2 go at once, packet 3 when packet 1 has crossed (0.1 s), packet 4 at 0.2 s.
        // With the cutoff at 0.15 s packet 4 is cancelled; packet 3, handed over at 0.1 s,
        // still crosses, until 0.3 s; only packet 1 crossed by the cutoff.
        let tx = link.send(0.0, 400, 0.15);
        assert!(!tx.complete);
        assert_eq!((tx.bytes_sent, tx.bytes_by_cutoff), (300, 100));
        assert!((tx.end - 0.3).abs() < EPS, "ends at {}", tx.end);
        assert!((link.free_at() - 0.3).abs() < EPS);
        // The next transfer waits for packet 3.
        let next = link.send(0.2, 100, 10.0);
        assert!((next.start - 0.3).abs() < EPS && (next.end - 0.4).abs() < EPS);
    }

    #[test]
    fn without_packets_the_byte_stream_is_unchanged() {
        let trace = constant(8_000.0);
        let mut link = Link::new(
            &trace,
            LinkConfig {
                payload_efficiency: 0.5,
                ..config(None)
            },
        );
        let tx = link.send(0.0, 100, 10.0);
        assert!(tx.complete && (tx.end - 0.2).abs() < EPS);
        let cut = link.send(0.2, 100, 0.3);
        assert!(!cut.complete);
        assert_eq!((cut.bytes_sent, cut.bytes_by_cutoff), (50, 50));
    }
}
