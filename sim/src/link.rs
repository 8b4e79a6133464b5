//! The uplink: a FIFO through a trace's capacity, with propagation delay and payload efficiency.

use crate::trace::Trace;

/// How much of the trace's capacity carries payload and how far away the server is.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    /// Round-trip propagation delay between device and server (seconds).
    pub rtt_s: f64,
    /// Fraction of the capacity that carries payload (QUIC, UDP and IP headers take the rest:
    /// about 50 bytes per ~1350-byte packet).
    pub payload_efficiency: f64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            rtt_s: 0.05,
            payload_efficiency: 0.96,
        }
    }
}

/// One transfer's timing on the uplink.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transfer {
    /// When the first byte entered the link.
    pub start: f64,
    /// When the last byte left it (or when the transfer was cancelled).
    pub end: f64,
    /// Payload bytes that crossed the link.
    pub bytes_sent: u64,
    /// Whether all bytes crossed before the cut-off.
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

    /// Queues `bytes` that are ready at `ready`; the sender gives up on what has not crossed by
    /// `cutoff` (the frame's deadline: unsent layers are cancelled).
    pub fn send(&mut self, ready: f64, bytes: u64, cutoff: f64) -> Transfer {
        let start = ready.max(self.free_at);
        if start >= cutoff {
            return Transfer {
                start,
                end: start,
                bytes_sent: 0,
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
                complete: true,
            };
        }
        let crossed = self.trace.bits_between(start, cutoff) * eff / 8.0;
        self.free_at = cutoff;
        Transfer {
            start,
            end: cutoff,
            bytes_sent: (crossed as u64).min(bytes),
            complete: false,
        }
    }
}
