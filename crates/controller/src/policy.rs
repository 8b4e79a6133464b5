//! The policy trait: one small interface every offloading policy implements.

use crate::decision::Decision;
use crate::device::DeviceState;
use crate::estimate::Estimates;
use crate::frame::FrameOptions;
use crate::observation::Observation;
use crate::radio::{RadioModel, RadioState};
use crate::utility::Utility;

/// What a policy sees besides the frame's options: estimates, device state and the objective.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Decision time (seconds).
    pub now: f64,
    /// The controller's estimates.
    pub estimates: &'a Estimates,
    /// The device's state.
    pub device: &'a DeviceState,
    /// The objective.
    pub utility: &'a Utility,
    /// The radio power model.
    pub radio: &'a RadioModel,
    /// The radio's state as the controller saw it.
    pub radio_state: &'a RadioState,
    /// Expected time between frames (seconds).
    pub frame_interval: f64,
    /// RTT to assume before any RTT sample (seconds).
    pub default_rtt: f64,
    /// Whether a frame cut short delivers the prefix that arrived
    /// ([`crate::ControllerConfig::partial_results`]).
    pub partial_results: bool,
}

/// Chooses, for each frame, between local execution and offloading a prefix of layers.
///
/// Policies are sans-IO state machines: they may keep state across frames (hysteresis, history)
/// and may watch observations, but never read a clock or a socket.
pub trait Policy: Send + std::fmt::Debug {
    /// A short, stable name used in reports.
    fn name(&self) -> &str;

    /// Decides for one frame. An `Offload { layers }` naming a missing option is treated as
    /// local by the controller.
    fn decide(&mut self, frame: &FrameOptions, ctx: &Context<'_>) -> Decision;

    /// Sees every observation the controller receives (default: ignores them).
    fn observe(&mut self, _now: f64, _observation: &Observation) {}

    /// Whether [`Self::observe`] uses [`Observation::FrameDone`] (default: yes). A driver may
    /// leave frame completions out for a policy that says no, as the simulator does (one
    /// queued observation fewer per frame); the controller itself does not use them.
    fn observes_frame_done(&self) -> bool {
        true
    }

    /// Whether [`Self::decide`] reads `ctx.estimates.throughput` (default: yes). The controller
    /// computes the estimate before a decision only for a policy that says yes; one that says
    /// no sees the estimate as of the last time someone asked for it.
    fn reads_throughput_estimate(&self) -> bool {
        true
    }
}
