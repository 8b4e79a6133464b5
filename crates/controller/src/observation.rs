//! Timestamped observations fed to the controller.
//!
//! Everything here is what a real agent can observe: bytes it handed to the transport, bytes the
//! server acknowledged receiving and when, round-trip times, losses, and the device's own sensors.
//! The trace itself is never an observation.

use serde::{Deserialize, Serialize};

/// A delivery-rate sample: `bytes` crossed the uplink between `start` and `end` (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateSample {
    /// When the first of these bytes started to cross the link.
    pub start: f64,
    /// When the last of these bytes arrived.
    pub end: f64,
    /// Payload bytes delivered in the interval.
    pub bytes: u64,
}

impl RateSample {
    /// The sample's rate in bit/s, or `None` for an empty or zero-length interval.
    #[inline]
    pub fn rate_bps(&self) -> Option<f64> {
        let dt = self.end - self.start;
        if self.bytes == 0 || dt.is_nan() || dt <= 0.0 {
            return None;
        }
        Some(self.bytes as f64 * 8.0 / dt)
    }
}

/// One observation; the controller receives it together with the time it was made.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Observation {
    /// The agent handed `bytes` of frame `frame` to the transport.
    Sent {
        /// Frame number.
        frame: u64,
        /// Bytes handed over (all layers sent for this frame).
        bytes: u64,
    },
    /// Bytes of a frame were acknowledged by the server: a delivery-rate sample.
    Delivered {
        /// Frame number.
        frame: u64,
        /// The sample.
        sample: RateSample,
    },
    /// Bytes that were sent but will never be delivered (cancelled at the deadline, or lost
    /// with the connection); they leave the in-flight count without a rate sample.
    Abandoned {
        /// Frame number.
        frame: u64,
        /// Bytes given up.
        bytes: u64,
    },
    /// Nothing at all came back from the server by frame `frame`'s silence check
    /// ([`crate::silence_check_at`]): the uplink is silent. It counts as silent until a report
    /// of this frame or a later one arrives.
    Silent {
        /// Frame number.
        frame: u64,
    },
    /// A round-trip-time sample in seconds.
    Rtt {
        /// The measured round-trip time.
        rtt: f64,
    },
    /// Packet loss counters over an interval.
    Loss {
        /// Packets lost in the interval.
        lost: u64,
        /// Packets sent in the interval.
        sent: u64,
    },
    /// The congestion controller reduced its window.
    CongestionEvent,
    /// The server could not be reached (connection refused, timed out or closed).
    ServerUnreachable,
    /// The server is reachable again.
    ServerReachable,
    /// A battery reading.
    Battery {
        /// Level in `[0, 1]`.
        level: f64,
        /// Discharge power in watts, where known.
        power_w: Option<f64>,
        /// Whether the device is on external power.
        charging: bool,
    },
    /// A CPU load reading in `[0, 1]`.
    CpuLoad {
        /// Fraction of CPU time in use by other work.
        load: f64,
    },
    /// The outcome of a frame: `latency` from capture to result, or `None` when it missed its
    /// deadline or was lost.
    FrameDone {
        /// Frame number.
        frame: u64,
        /// Capture-to-result latency in seconds, if a result arrived in time.
        latency: Option<f64>,
    },
}
