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
/// the sender all cut here.
#[inline]
pub fn send_cutoff(deadline: f64, rtt: f64, server_time: f64) -> f64 {
    deadline - rtt - server_time
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

    /// Expected accuracy of a decision (0 when the decision names an option that does not exist).
    pub fn accuracy_of(&self, decision: crate::Decision) -> f64 {
        match decision {
            crate::Decision::Local => self.local.accuracy,
            crate::Decision::Offload { layers } => self.option(layers).map_or(0.0, |o| o.accuracy),
        }
    }
}
