//! Deadline-aware greedy: the most layers that arrive in time at a conservative rate.

use offload_controller::{Context, Decision, FrameOptions, Observation, Policy};

use crate::ForecastError;
use crate::backlog::BacklogModel;
use crate::probe::Prober;
use crate::timing::{local_value_per_frame, offload_result_at};

/// Sends the largest `k` whose predicted result time — device time, the uplink backlog plus this
/// frame at the conservative rate `Estimate::lower(z)`, the round trip and the server time — is
/// at least `margin_s` before the deadline, and whose sustained bit rate at the camera's frame
/// rate stays within `sustain` of that rate (a `k` that fits once but not every frame would
/// only build a queue). When no `k` qualifies it still sends the base layer if that arrives in
/// time at the mean rate, and runs locally only when even that fails. With
/// [`DeadlineAware::with_local_by_value`] the local path is taken instead whenever its accuracy
/// per frame of CPU time beats the chosen option's: the frames captured while the CPU is busy
/// are dropped, so a local path longer than the frame interval is valued over itself and those
/// frames (see [`crate::timing::local_value_per_frame`]); with a local path of several frame
/// intervals (the illustrative profile) that is almost never, with a short one (Fashion-MNIST:
/// 0.19 ms, more accurate than any prefix) always. Probes with the base layer when the estimate
/// is stale (see [`Prober`]).
///
/// This is the rule of deadline-driven offloading schedulers (e.g. the "largest configuration
/// meeting the latency SLO" of Chameleon / AWStream-style video analytics, and the
/// deadline-aware partitioning of Neurosurgeon, Kang et al., ASPLOS 2017), with a safety margin
/// from the estimator's uncertainty as in RobustMPC's lower bound.
#[derive(Debug, Clone)]
pub struct DeadlineAware {
    z: f64,
    margin_s: f64,
    sustain: f64,
    prober: Prober,
    backlog: BacklogModel,
    /// The measured-error margin, when it replaces `z`.
    margin: Option<ForecastError>,
    /// Weigh the local path's value against the chosen offload (not only as the last resort).
    local_by_value: bool,
}

impl DeadlineAware {
    /// `z`: standard deviations off the estimate; `margin_s`: slack kept before the deadline;
    /// `sustain ∈ (0, 2]`: fraction of the conservative rate a steady stream of `k` may use
    /// (above 1 the stream may exceed it, and only the backlog in the deadline test limits it);
    /// `probe_after_s`: staleness that triggers a probe.
    pub fn new(z: f64, margin_s: f64, sustain: f64, probe_after_s: f64) -> Self {
        DeadlineAware {
            z: z.max(0.0),
            margin_s: margin_s.max(0.0),
            sustain: sustain.clamp(0.01, 2.0),
            prober: Prober::new(probe_after_s),
            backlog: BacklogModel::default(),
            margin: None,
            local_by_value: false,
        }
    }

    /// Runs locally whenever the local path's value per frame of CPU time beats the offload
    /// this policy would choose, instead of only when no offload arrives in time.
    pub fn with_local_by_value(mut self, on: bool) -> Self {
        self.local_by_value = on;
        self
    }

    /// Backs off probing on a link that does not answer, up to `max_s` between probes
    /// (see [`Prober::with_backoff`]).
    pub fn with_probe_backoff(mut self, max_s: Option<f64>) -> Self {
        self.prober = self.prober.with_backoff(max_s);
        self
    }

    /// Sends probes beside the local path (see [`Prober::with_probe_beside_local`]).
    pub fn with_probe_beside_local(mut self, beside_local: bool) -> Self {
        self.prober = self.prober.with_probe_beside_local(beside_local);
        self
    }

    /// Counts the link as down while the uplink is silent (see
    /// [`Prober::with_silence_means_down`]).
    pub fn with_silence_means_down(mut self, silence_means_down: bool) -> Self {
        self.prober = self.prober.with_silence_means_down(silence_means_down);
        self
    }

    /// Also treats the link as down when a frame's report is `slack_s` overdue (see
    /// [`Prober::with_stall_detection`]).
    pub fn with_stall_detection(mut self, slack_s: Option<f64>) -> Self {
        self.prober = self.prober.with_stall_detection(slack_s);
        self
    }

    /// Plans with `margin`'s rate instead of `z` standard deviations off the estimate.
    pub fn with_margin(mut self, margin: Option<ForecastError>) -> Self {
        self.margin = margin;
        self
    }
}

impl Policy for DeadlineAware {
    fn name(&self) -> &str {
        "deadline-aware"
    }

    fn observes_frame_done(&self) -> bool {
        false
    }

    fn decide(&mut self, frame: &FrameOptions, ctx: &Context<'_>) -> Decision {
        let est = match self.prober.fresh_estimate(frame, ctx) {
            Ok(est) => est,
            Err(decision) => return decision,
        };
        let rate = match &self.margin {
            Some(m) => m.rate(&est),
            None => est.lower(self.z),
        }
        .max(1.0);
        let backlog = self.backlog.bits(ctx, est.bps.max(1.0));
        let fps = 1.0 / ctx.frame_interval.max(1e-6);
        let fits = frame.offload.iter().rev().find(|o| {
            o.bytes as f64 * 8.0 * fps <= self.sustain * rate
                && offload_result_at(ctx, o, backlog, rate) + self.margin_s <= frame.deadline
        });
        if let Some(m) = &mut self.margin {
            m.planned(frame.frame, est.bps);
        }
        // The local path is valued per frame of the CPU time it takes (the frames it makes the
        // device drop count as misses): worth it only when that beats the offload's accuracy,
        // e.g. when local is much more accurate and the CPU catches up before the next capture.
        let local = if self.local_by_value {
            local_value_per_frame(ctx, frame)
        } else {
            f64::NEG_INFINITY
        };
        if let Some(o) = fits {
            return if local > o.accuracy {
                Decision::Local
            } else {
                Decision::Offload { layers: o.layers }
            };
        }
        // Nothing fits at the conservative rate: the base layer still goes if it arrives in time
        // at the mean rate and is worth more than the local path.
        match frame.offload.first() {
            Some(base)
                if base.accuracy >= local
                    && offload_result_at(
                        ctx,
                        base,
                        self.backlog.bits(ctx, est.bps),
                        est.bps.max(1.0),
                    ) <= frame.deadline =>
            {
                Decision::Offload { layers: 1 }
            }
            _ => Decision::Local,
        }
    }

    fn observe(&mut self, now: f64, observation: &Observation) {
        self.backlog.observe(now, observation);
        self.prober.observe(now, observation);
        if let Some(m) = &mut self.margin {
            m.observe(observation);
        }
    }
}
