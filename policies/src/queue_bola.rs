//! A queue-based policy in the spirit of BOLA: no throughput prediction at all.

use std::collections::VecDeque;

use offload_controller::{Context, Decision, FrameOptions, Observation, Policy};

/// Chooses `k` from the uplink queue alone, with BOLA's Lyapunov rule (Spiteri, Urgaonkar,
/// Sitaraman, "BOLA: Near-Optimal Bitrate Adaptation for Online Videos", INFOCOM 2016).
///
/// BOLA picks the bitrate `m` maximising `(V·(υ_m + γp) − Q)/S_m`, where `Q` is the playback
/// buffer (seconds), `S_m` the segment size and `υ_m = ln(S_m/S_1)` its utility. Here the
/// "buffer" is the frame's *slack*: the time left before the deadline once the device time,
/// the round trip, the server time and the uplink queue's delay are taken out, where the queue's
/// delay is the age of the oldest frame the agent sent that the server has not yet reported,
/// minus the round trip and server time every report takes — a measured time, not a
/// throughput prediction. A large slack behaves like a full buffer (send
/// many layers), a small one like an empty buffer (send few); no slack at all means even the
/// base layer would be late, and the frame runs locally.
///
/// `V` and `γp` follow dash.js's BOLA: with `υ_1 = 1`, the base layer is chosen below
/// `min_slack_s` and the largest `k` from `target_slack_s` on.
#[derive(Debug, Clone)]
pub struct QueueBola {
    min_slack_s: f64,
    target_slack_s: f64,
    /// Frames sent and not yet reported: `(frame, sent_at)`, oldest first.
    outstanding: VecDeque<(u64, f64)>,
}

/// Most frames tracked at once: bounds memory if reports never come.
const MAX_OUTSTANDING: usize = 256;

impl QueueBola {
    /// Base layer below `min_slack_s` of slack, all layers from `target_slack_s` on.
    pub fn new(min_slack_s: f64, target_slack_s: f64) -> Self {
        let min_slack_s = min_slack_s.max(1e-3);
        QueueBola {
            min_slack_s,
            target_slack_s: target_slack_s.max(min_slack_s * 1.01),
            outstanding: VecDeque::with_capacity(MAX_OUTSTANDING),
        }
    }

    fn queue_delay(&self, now: f64) -> f64 {
        self.outstanding
            .front()
            .map_or(0.0, |&(_, at)| (now - at).max(0.0))
    }
}

impl Policy for QueueBola {
    fn name(&self) -> &str {
        "queue-bola"
    }

    fn observes_frame_done(&self) -> bool {
        false
    }

    fn reads_throughput_estimate(&self) -> bool {
        false
    }

    fn decide(&mut self, frame: &FrameOptions, ctx: &Context<'_>) -> Decision {
        let Some(base) = frame.offload.first() else {
            return Decision::Local;
        };
        let rtt = ctx.estimates.rtt_or(ctx.default_rtt);
        // A frame stays unreported for a round trip and the server time after it left the
        // link; only the time beyond that is queueing.
        let queue = (self.queue_delay(ctx.now) - rtt - base.server_time).max(0.0);
        let slowdown = ctx.device.compute_slowdown();
        let slack = |device_time: f64, server_time: f64| {
            frame.deadline - ctx.now - device_time * slowdown - rtt - server_time - queue
        };
        if slack(base.device_time, base.server_time) <= 0.0 {
            return Decision::Local;
        }
        let s1 = base.bytes.max(1) as f64;
        let utility = |bytes: u64| (bytes.max(1) as f64 / s1).ln() + 1.0;
        let top = frame.offload.last().map_or(1.0, |o| utility(o.bytes));
        let gp = (top - 1.0) / (self.target_slack_s / self.min_slack_s - 1.0);
        let v = self.min_slack_s / gp.max(1e-9);
        let mut best = (f64::NEG_INFINITY, 1u32);
        for o in &frame.offload {
            let q = slack(o.device_time, o.server_time);
            if q <= 0.0 {
                continue;
            }
            let score = (v * (utility(o.bytes) + gp) - q) / o.bytes.max(1) as f64;
            if score > best.0 {
                best = (score, o.layers);
            }
        }
        Decision::Offload { layers: best.1 }
    }

    fn observe(&mut self, now: f64, observation: &Observation) {
        match *observation {
            Observation::Sent { frame, .. } => {
                if self.outstanding.len() == MAX_OUTSTANDING {
                    self.outstanding.pop_front();
                }
                self.outstanding.push_back((frame, now));
            }
            Observation::Delivered { frame, .. } | Observation::Abandoned { frame, .. } => {
                // A frame is sent once, so it is listed at most once, usually first: reports
                // come back in sending order.
                if let Some(at) = self.outstanding.iter().position(|&(f, _)| f == frame) {
                    self.outstanding.remove(at);
                }
            }
            Observation::ServerUnreachable => self.outstanding.clear(),
            _ => {}
        }
    }
}
