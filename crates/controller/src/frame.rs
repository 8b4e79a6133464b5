//! The options the controller chooses among for one frame.

/// Finishing the model on the device.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LocalOption {
    /// Expected accuracy of the local path.
    pub accuracy: f64,
    /// Device compute time from the decision to the result (seconds), at no extra CPU load.
    pub device_time: f64,
    /// Device compute energy of that work (joules).
    pub energy_j: f64,
}

/// Sending the first `layers` layers of this frame.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OffloadOption {
    /// Number of layers (a prefix), `>= 1`.
    pub layers: u32,
    /// Exact coded size of the first `layers` layers of *this* frame, headers included (bytes).
    pub bytes: u64,
    /// Expected accuracy when the server decodes these layers.
    pub accuracy: f64,
    /// Device compute time still to spend before sending (reduction + entropy coding), seconds.
    pub device_time: f64,
    /// Device compute energy of that work (joules); radio energy is the radio model's business.
    pub device_energy_j: f64,
    /// Server time to decode and finish the model (seconds).
    pub server_time: f64,
}

/// The last moment an offloaded frame's bytes may leave the device and still be answered by
/// `deadline` (partial results, [`crate::ControllerConfig::partial_results`]): the server needs a
/// round trip and its `server_time` after the last byte, so the sender stops here and the server
/// decodes the complete layers that arrived. The simulator, the agent and the policies that model
/// the sender all cut here, with [`FrameOptions::cutoff_server_time`] as `server_time`.
#[inline]
pub fn send_cutoff(deadline: f64, rtt: f64, server_time: f64) -> f64 {
    deadline - rtt - server_time
}

/// How long past a round trip after sending the device waits for the server's first
/// acknowledgement of an offloaded frame before it counts the uplink as silent (s): time for
/// one 1200-byte packet to cross at 384 kbit/s. (A QUIC receiver acknowledges every second
/// packet at once; a lone packet may wait up to its 25 ms `max_ack_delay`, and a frame that
/// is only that packet can then be taken for silent on a live link: it falls back to the local
/// path, whose result is at least as good, at the cost of its compute.) Short, because the
/// local path must still fit between the check and the deadline.
pub const SILENCE_SLACK_S: f64 = 0.025;

/// When the device checks an offloaded frame whose first byte it sent at `sent` for silence:
/// if nothing at all has come back from the server by then (no acknowledgement of anything),
/// none of the frame is getting through, and the device runs the local path for it (the local
/// fallback, if that can still finish by the deadline). The simulator and the agent both check
/// here.
#[inline]
pub fn silence_check_at(sent: f64, rtt: f64) -> f64 {
    sent + rtt + SILENCE_SLACK_S
}

/// Everything a policy may know about one frame before deciding.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FrameOptions {
    /// Frame number.
    pub frame: u64,
    /// Capture time (seconds).
    pub captured_at: f64,
    /// Absolute time by which the result must be back at the device.
    pub deadline: f64,
    /// The local option.
    pub local: LocalOption,
    /// The offload options, `offload[k - 1]` sends `k` layers; sizes non-decreasing in `k`.
    pub offload: Vec<OffloadOption>,
}

impl FrameOptions {
    /// The option that sends `layers` layers, if there is one.
    #[inline]
    pub fn option(&self, layers: u32) -> Option<&OffloadOption> {
        (layers as usize)
            .checked_sub(1)
            .and_then(|i| self.offload.get(i))
    }

    /// The server time a sender of `layers` layers leaves before the deadline at its
    /// [`send_cutoff`]: the longest of its prefixes', since after a cut the server decodes a
    /// prefix, whose answer must be back in time too. Measured server times need not grow with
    /// the layer count (the detector profile's 6 layers take 0.5 ms longer than its 7); cutting
    /// at the full frame's time made such a prefix answer just after the deadline.
    pub fn cutoff_server_time(&self, layers: u32) -> f64 {
        let n = (layers as usize).min(self.offload.len());
        self.offload[..n]
            .iter()
            .fold(0.0, |max, o| f64::max(max, o.server_time))
    }

    /// Expected accuracy of a decision (0 when the decision names an option that does not exist).
    pub fn accuracy_of(&self, decision: crate::Decision) -> f64 {
        match decision {
            crate::Decision::Local | crate::Decision::LocalWithProbe { .. } => self.local.accuracy,
            crate::Decision::Offload { layers } => self.option(layers).map_or(0.0, |o| o.accuracy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_leaves_the_longest_server_time_of_any_prefix() {
        let option = |layers: u32, server_time: f64| OffloadOption {
            layers,
            server_time,
            ..OffloadOption::default()
        };
        let frame = FrameOptions {
            offload: vec![option(1, 0.045), option(2, 0.051), option(3, 0.0506)],
            ..FrameOptions::default()
        };
        assert_eq!(frame.cutoff_server_time(1), 0.045);
        assert_eq!(frame.cutoff_server_time(2), 0.051);
        // Three layers take less than two: a cut that leaves the 2-layer prefix must still
        // leave its server time.
        assert_eq!(frame.cutoff_server_time(3), 0.051);
        assert_eq!(frame.cutoff_server_time(9), 0.051);
        assert_eq!(frame.cutoff_server_time(0), 0.0);
    }
}
