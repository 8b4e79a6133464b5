//! Model-predictive control over the next frames, after RobustMPC.

use offload_controller::{Context, Decision, FrameOptions, Observation, Policy};

use crate::backlog::BacklogModel;
use crate::probe::Prober;

/// Plans the next `horizon` frames and applies the first decision, as RobustMPC does for video
/// bitrates (Yin et al., "A Control-Theoretic Approach for Dynamic Adaptive Video Streaming over
/// HTTP", SIGCOMM 2015): the throughput forecast is the conservative `Estimate::lower(z)` (with
/// the `robust` estimator, RobustMPC's harmonic mean discounted by the recent maximum error),
/// future frames are assumed to have this frame's sizes, and each candidate plan is simulated
/// through a model of the device: the uplink as a FIFO drained at the forecast rate (starting
/// from the current backlog, cancelling at each deadline as the sender does), the CPU (the local
/// path makes later frames be dropped), and the energy (compute, radio active power and the
/// tail between transfers). The plan maximising the sum of `Utility::frame` wins.
///
/// Plans are "first decision, then one decision, at least as large, held for the rest of the
/// horizon": about `(K+1)²/2` plans instead of RobustMPC's full enumeration `(K+1)^N`, which
/// keeps a decision under a few microseconds. (Plans that send less later than now are left
/// out: receding-horizon control re-plans every frame with the same flat forecast, so "much now,
/// little later" would become "much every frame".) Probes with the base layer when the estimate is stale.
///
/// When the best plan at the conservative rate starts with local execution, the base layer is
/// still sent if, held over the horizon, it beats local at the *mean* rate: the frames the
/// local path makes the device drop are certain, the offload's misses only forecast.
#[derive(Debug, Clone)]
pub struct Mpc {
    horizon: u32,
    z: f64,
    prober: Prober,
    backlog: BacklogModel,
}

/// The state of the device model while a plan is simulated.
#[derive(Debug, Clone, Copy)]
struct Model {
    link_free: f64,
    cpu_free: f64,
    radio_last: f64,
}

impl Mpc {
    /// Plans over `horizon ≥ 1` frames with the rate `Estimate::lower(z)`, probing after
    /// `probe_after_s` seconds without a sample.
    pub fn new(horizon: u32, z: f64, probe_after_s: f64) -> Self {
        Mpc {
            horizon: horizon.max(1),
            z: z.max(0.0),
            prober: Prober::new(probe_after_s),
            backlog: BacklogModel::default(),
        }
    }

    /// Utility of frame `j` of the plan (captured `j` intervals after this one) under `action`
    /// (`0` = local, `k` = offload `k`), advancing the model.
    #[allow(clippy::too_many_arguments)]
    fn step(
        m: &mut Model,
        frame: &FrameOptions,
        ctx: &Context<'_>,
        j: u32,
        action: usize,
        rate: f64,
        rtt: f64,
        w: f64,
    ) -> f64 {
        let shift = f64::from(j) * ctx.frame_interval;
        let captured = frame.captured_at + shift;
        let deadline = frame.deadline + shift;
        let miss = -ctx.utility.miss_penalty;
        // The device picks a frame up when its CPU is free and runs the encoder first.
        let encoder = (ctx.now - frame.captured_at).max(0.0);
        let picked_up = captured.max(m.cpu_free);
        if j > 0 && picked_up >= captured + ctx.frame_interval {
            return miss;
        }
        let decide_at = if j == 0 { ctx.now } else { picked_up + encoder };
        let slowdown = ctx.device.compute_slowdown();
        if action == 0 {
            m.cpu_free = decide_at + frame.local.device_time * slowdown;
            let value = if m.cpu_free <= deadline {
                frame.local.accuracy
            } else {
                miss
            };
            return value - w * frame.local.energy_j;
        }
        let o = &frame.offload[action - 1];
        let mut ready = decide_at + o.device_time * slowdown;
        m.cpu_free = ready;
        let radio = ctx.radio;
        let mut energy = o.device_energy_j;
        if ready - m.radio_last > radio.tail_s {
            ready += radio.promotion_s;
            energy += radio.promotion_s * radio.promotion_w + radio.tail_s * radio.tail_w;
        } else {
            energy += (ready.max(m.link_free) - m.radio_last).max(0.0) * radio.tail_w;
        }
        let start = ready.max(m.link_free);
        let bits = o.bytes as f64 * 8.0;
        let end = start + bits / rate;
        let result = end + rtt + o.server_time;
        let (value, sent_until) = if result <= deadline {
            (o.accuracy, end)
        } else {
            (miss, end.min(deadline).max(start))
        };
        let sent_bits = bits * ((sent_until - start) / (end - start).max(1e-12));
        energy += radio.uplink_energy_j(sent_bits, sent_until - start);
        m.link_free = sent_until;
        m.radio_last = sent_until;
        value - w * energy
    }
}

impl Policy for Mpc {
    fn name(&self) -> &str {
        "mpc"
    }

    fn decide(&mut self, frame: &FrameOptions, ctx: &Context<'_>) -> Decision {
        let est = match self.prober.fresh_estimate(frame, ctx) {
            Ok(est) => est,
            Err(decision) => return decision,
        };
        let rate = est.lower(self.z).max(1.0);
        let backlog = self.backlog.bits(ctx, est.bps.max(1.0));
        let rtt = ctx.estimates.rtt_or(ctx.default_rtt);
        let w = ctx.utility.energy_weight(ctx.device.effective_battery());
        let start = Model {
            link_free: ctx.now + backlog / rate,
            cpu_free: ctx.now,
            radio_last: ctx.radio_state.last_active_end.unwrap_or(f64::NEG_INFINITY),
        };
        let actions = frame.offload.len() + 1;
        let fps = 1.0 / ctx.frame_interval.max(1e-6);
        let mut best = (f64::NEG_INFINITY, 0usize);
        for first in 0..actions {
            let mut m0 = start;
            let u0 = Self::step(&mut m0, frame, ctx, 0, first, rate, rtt, w);
            // The rest of the plan sends at least as many layers as the first frame: with a
            // flat forecast, a plan that sends much now and little later would be re-planned
            // identically every frame and send much every frame, overloading the link.
            for rest in first..actions {
                // Within a short horizon a stream slightly above the rate only builds a small
                // queue, still in time; repeated every frame it grows without bound. The held
                // decision must be sustainable (the base layer always is allowed).
                if rest > 1 && frame.offload[rest - 1].bytes as f64 * 8.0 * fps > rate {
                    continue;
                }
                let mut m = m0;
                let mut u = u0;
                for j in 1..self.horizon {
                    u += Self::step(&mut m, frame, ctx, j, rest, rate, rtt, w);
                }
                // Ties go to the earlier (cheaper) first action.
                if u > best.0 {
                    best = (u, first);
                }
            }
        }
        if best.1 == 0 && actions > 1 {
            // Local makes the device drop the frames captured while it runs: a certain loss,
            // weighed above against offload misses predicted at the conservative rate. As in
            // the deadline-aware policy, the base layer still goes when, held over the horizon,
            // it beats local at the mean rate.
            let mean = est.bps.max(1.0);
            let start = Model {
                link_free: ctx.now + backlog / mean,
                ..start
            };
            let plan = |action: usize| {
                let mut m = start;
                (0..self.horizon)
                    .map(|j| Self::step(&mut m, frame, ctx, j, action, mean, rtt, w))
                    .sum::<f64>()
            };
            if plan(1) > plan(0) {
                return Decision::Offload { layers: 1 };
            }
        }
        match best.1 {
            0 => Decision::Local,
            k => Decision::Offload { layers: k as u32 },
        }
    }

    fn observe(&mut self, now: f64, observation: &Observation) {
        self.backlog.observe(now, observation);
    }
}
