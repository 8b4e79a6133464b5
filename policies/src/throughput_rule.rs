//! Rate-based rule: the most layers the estimated throughput carries in time.

use offload_controller::{Context, Decision, FrameOptions, Policy};

/// Sends the largest `k` whose bit rate at the camera's frame rate stays within a fraction
/// `safety` of the estimated throughput, and whose transfer at that fraction plus device, server
/// and round-trip time fits before the deadline; runs locally when no `k` fits. It ignores the
/// uplink backlog and energy: the classic rate-based rule of ABR players ("the highest bitrate
/// below a fraction of the estimate", e.g. FESTIVE, Jiang et al., CoNEXT 2012).
///
/// With no estimate yet, or one older than `probe_after_s`, it sends the base layer alone to
/// obtain a fresh sample: a rule that only runs locally would never learn the link got better.
#[derive(Debug, Clone)]
pub struct ThroughputRule {
    safety: f64,
    probe_after_s: f64,
}

impl ThroughputRule {
    /// A rule using `safety ∈ (0, 1]` of the estimate, probing after `probe_after_s` seconds
    /// without a throughput sample.
    pub fn new(safety: f64, probe_after_s: f64) -> Self {
        ThroughputRule {
            safety: safety.clamp(0.01, 1.0),
            probe_after_s: probe_after_s.max(0.0),
        }
    }
}

impl Default for ThroughputRule {
    fn default() -> Self {
        ThroughputRule::new(0.8, 1.0)
    }
}

impl Policy for ThroughputRule {
    fn name(&self) -> &str {
        "throughput-rule"
    }

    fn observes_frame_done(&self) -> bool {
        false
    }

    fn decide(&mut self, frame: &FrameOptions, ctx: &Context<'_>) -> Decision {
        let probe = Decision::Offload { layers: 1 };
        let Some(est) = ctx.estimates.throughput else {
            return probe;
        };
        if est.age(ctx.now) > self.probe_after_s {
            return probe;
        }
        let rate = (est.bps * self.safety).max(1.0);
        let rtt = ctx.estimates.rtt_or(ctx.default_rtt);
        let slowdown = ctx.device.compute_slowdown();
        let budget = frame.deadline - ctx.now;
        let fps = 1.0 / ctx.frame_interval.max(1e-6);
        frame
            .offload
            .iter()
            .rev()
            .find(|o| {
                let bits = o.bytes as f64 * 8.0;
                bits * fps <= rate
                    && o.device_time * slowdown + bits / rate + rtt + o.server_time <= budget
            })
            .map_or(Decision::Local, |o| Decision::Offload { layers: o.layers })
    }
}
