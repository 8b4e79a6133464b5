//! Model-predictive control over the next frames, after RobustMPC.

use offload_controller::{Context, Decision, FrameOptions, Observation, Policy, RadioModel};

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
///
/// The search is exact but pruned (branch and bound): a frame's utility can never exceed its
/// action's accuracy minus the weighted compute energy, so a plan whose score so far plus that
/// ceiling for its remaining frames cannot beat the best plan found is abandoned. Floating-point
/// addition is monotone, so the ceiling, summed in the plan's own order, really bounds the
/// plan's score, and the chosen plan is the one the full enumeration picks (the highest score,
/// ties to the smallest first action) bit for bit. The previous decision's first action is tried
/// first, since it usually is the best again.
#[derive(Debug, Clone)]
pub struct Mpc {
    horizon: u32,
    z: f64,
    prober: Prober,
    backlog: BacklogModel,
    /// The first action of the previous plan: tried first to find a good bound early.
    last_first: usize,
    /// Per-decision tables, kept to avoid allocating every frame.
    times: Vec<FrameTimes>,
    actions: Vec<Action>,
}

/// The state of the device model while a plan is simulated.
#[derive(Debug, Clone, Copy)]
struct Model {
    link_free: f64,
    cpu_free: f64,
    radio_last: f64,
}

/// Capture time, deadline and the next frame's capture time of frame `j` of the plan.
#[derive(Debug, Clone, Copy, Default)]
struct FrameTimes {
    captured: f64,
    deadline: f64,
    next_capture: f64,
}

/// One action's constants for a decision: `0` = local, `k` = offload `k` layers.
#[derive(Debug, Clone, Copy, Default)]
struct Action {
    accuracy: f64,
    /// Device time under the current slowdown (s).
    device_time: f64,
    /// Local: the weighted energy of the local run; offload: the coding energy (J).
    energy: f64,
    bits: f64,
    server_time: f64,
    /// `bits / rate` at the planning rate.
    transfer: f64,
    /// Whether the action may be held for the rest of the horizon (a sustainable stream).
    holdable: bool,
    /// Highest utility a frame can get under this action.
    ceiling: f64,
    /// Highest `ceiling` of the holdable actions up to this one.
    ceiling_upto: f64,
}

/// The constants of one decision's device model: what every step of every plan shares.
struct Planner<'a> {
    now: f64,
    encoder: f64,
    miss: f64,
    rtt: f64,
    w: f64,
    radio: &'a RadioModel,
    switch_j: f64,
    times: &'a [FrameTimes],
    actions: &'a [Action],
}

impl Planner<'_> {
    /// Utility of frame `j` of the plan under action `a` (`0` = local), advancing the model.
    /// The same operations in the same order as a direct simulation of the device.
    #[inline]
    fn step(&self, m: &mut Model, j: usize, a: usize) -> f64 {
        let t = &self.times[j];
        let act = &self.actions[a];
        // The device picks a frame up when its CPU is free and runs the encoder first.
        let picked_up = t.captured.max(m.cpu_free);
        if j > 0 && picked_up >= t.next_capture {
            return self.miss;
        }
        let decide_at = if j == 0 {
            self.now
        } else {
            picked_up + self.encoder
        };
        if a == 0 {
            m.cpu_free = decide_at + act.device_time;
            let value = if m.cpu_free <= t.deadline {
                act.accuracy
            } else {
                self.miss
            };
            return value - act.energy;
        }
        let mut ready = decide_at + act.device_time;
        m.cpu_free = ready;
        let radio = self.radio;
        let mut energy = act.energy;
        if ready - m.radio_last > radio.tail_s {
            ready += radio.promotion_s;
            energy += self.switch_j;
        } else {
            energy += (ready.max(m.link_free) - m.radio_last).max(0.0) * radio.tail_w;
        }
        let start = ready.max(m.link_free);
        let bits = act.bits;
        let end = start + act.transfer;
        let result = end + self.rtt + act.server_time;
        let (value, sent_until) = if result <= t.deadline {
            (act.accuracy, end)
        } else {
            (self.miss, end.min(t.deadline).max(start))
        };
        let sent_bits = bits * ((sent_until - start) / (end - start).max(1e-12));
        energy += radio.uplink_energy_j(sent_bits, sent_until - start);
        m.link_free = sent_until;
        m.radio_last = sent_until;
        value - self.w * energy
    }

    /// Score of holding action `a` from frame 1 to the end of the horizon after `u0`, or `None`
    /// as soon as the ceiling shows it cannot beat `best` (`beats` decides ties).
    #[inline]
    fn hold(&self, mut m: Model, u0: f64, a: usize, first: usize, best: Best) -> Option<f64> {
        let n = self.times.len();
        let ceiling = self.actions[a].ceiling;
        let mut u = u0;
        for j in 1..n {
            if !best.beaten_by(ceiling_sum(u, ceiling, n - j), first) {
                return None;
            }
            u += self.step(&mut m, j, a);
        }
        Some(u)
    }
}

/// The best plan so far: its score and first action.
#[derive(Debug, Clone, Copy)]
struct Best {
    score: f64,
    first: usize,
}

impl Best {
    /// Whether a plan scoring `score` and starting with `first` replaces it: the highest score
    /// wins, ties go to the smaller (cheaper) first action, whatever order plans are tried in.
    #[inline]
    fn beaten_by(&self, score: f64, first: usize) -> bool {
        score > self.score || (score == self.score && first < self.first)
    }
}

/// `u` plus `count` times `ceiling`, added one at a time as a plan adds its frames.
#[inline]
fn ceiling_sum(mut u: f64, ceiling: f64, count: usize) -> f64 {
    for _ in 0..count {
        u += ceiling;
    }
    u
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
            last_first: 0,
            times: Vec::new(),
            actions: Vec::new(),
        }
    }

    /// Fills the per-decision tables for planning at `rate`.
    fn prepare(&mut self, frame: &FrameOptions, ctx: &Context<'_>, rate: f64, w: f64) {
        let interval = ctx.frame_interval;
        self.times.clear();
        self.times.extend((0..self.horizon).map(|j| {
            let shift = f64::from(j) * interval;
            let captured = frame.captured_at + shift;
            FrameTimes {
                captured,
                deadline: frame.deadline + shift,
                next_capture: captured + interval,
            }
        }));
        let slowdown = ctx.device.compute_slowdown();
        let miss = -ctx.utility.miss_penalty;
        let fps = 1.0 / interval.max(1e-6);
        let r = ctx.radio;
        // The ceiling holds only if no energy term can be negative.
        let bounded = w >= 0.0
            && r.active_base_w >= 0.0
            && r.uplink_w_per_mbps >= 0.0
            && r.promotion_s >= 0.0
            && r.promotion_w >= 0.0
            && r.tail_s >= 0.0
            && r.tail_w >= 0.0;
        let local = frame.local;
        let local_energy = w * local.energy_j;
        self.actions.clear();
        self.actions.push(Action {
            accuracy: local.accuracy,
            device_time: local.device_time * slowdown,
            energy: local_energy,
            bits: 0.0,
            server_time: 0.0,
            transfer: 0.0,
            holdable: true,
            ceiling: (local.accuracy.max(miss) - local_energy).max(miss),
            ceiling_upto: f64::NEG_INFINITY,
        });
        for (i, o) in frame.offload.iter().enumerate() {
            let bits = o.bytes as f64 * 8.0;
            let overloads = o.bytes as f64 * 8.0 * fps > rate;
            self.actions.push(Action {
                accuracy: o.accuracy,
                device_time: o.device_time * slowdown,
                energy: o.device_energy_j,
                bits,
                server_time: o.server_time,
                transfer: bits / rate,
                // Within a short horizon a stream slightly above the rate only builds a small
                // queue, still in time; repeated every frame it grows without bound. A held
                // decision must be sustainable (the base layer always is allowed).
                holdable: i == 0 || !overloads,
                ceiling: if bounded && o.device_energy_j >= 0.0 {
                    (o.accuracy.max(miss) - w * o.device_energy_j).max(miss)
                } else {
                    f64::INFINITY
                },
                ceiling_upto: f64::NEG_INFINITY,
            });
        }
        if !(bounded && local.energy_j >= 0.0) {
            self.actions[0].ceiling = f64::INFINITY;
        }
        let mut upto = f64::NEG_INFINITY;
        for a in &mut self.actions {
            if a.ceiling.is_nan() {
                a.ceiling = f64::INFINITY;
            }
            if a.holdable {
                upto = upto.max(a.ceiling);
            }
            a.ceiling_upto = upto;
        }
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
        self.prepare(frame, ctx, rate, w);
        let r = ctx.radio;
        let encoder = (ctx.now - frame.captured_at).max(0.0);
        let miss = -ctx.utility.miss_penalty;
        let switch_j = r.promotion_s * r.promotion_w + r.tail_s * r.tail_w;
        let planner = Planner {
            now: ctx.now,
            encoder,
            miss,
            rtt,
            w,
            radio: r,
            switch_j,
            times: &self.times,
            actions: &self.actions,
        };
        let actions = self.actions.len();
        let horizon = self.times.len();
        let mut best = Best {
            score: f64::NEG_INFINITY,
            first: 0,
        };
        // The rest of the plan sends at least as many layers as the first frame: with a flat
        // forecast, a plan that sends much now and little later would be re-planned identically
        // every frame and send much every frame, overloading the link. A first action above
        // the last holdable one therefore has no plan.
        let last_holdable = self.actions.iter().rposition(|a| a.holdable).unwrap_or(0);
        let previous = self.last_first.min(last_holdable);
        // The previous first action, then the others in increasing order.
        for index in 0..=last_holdable {
            let first = match index {
                0 => previous,
                i if i - 1 < previous => i - 1,
                i => i,
            };
            let mut m0 = start;
            let u0 = planner.step(&mut m0, 0, first);
            // Larger held actions first: they are usually the best and set the bound.
            for rest in (first..=last_holdable).rev() {
                let act = &self.actions[rest];
                // No plan held with this action or a smaller one can win any more.
                if !best.beaten_by(ceiling_sum(u0, act.ceiling_upto, horizon - 1), first) {
                    break;
                }
                if !act.holdable {
                    continue;
                }
                if let Some(u) = planner.hold(m0, u0, rest, first, best)
                    && best.beaten_by(u, first)
                {
                    best = Best { score: u, first };
                }
            }
        }
        self.last_first = best.first;
        if best.first == 0 && actions > 1 {
            // Local makes the device drop the frames captured while it runs: a certain loss,
            // weighed above against offload misses predicted at the conservative rate. As in
            // the deadline-aware policy, the base layer still goes when, held over the horizon,
            // it beats local at the mean rate.
            let mean = est.bps.max(1.0);
            let start = Model {
                link_free: ctx.now + backlog / mean,
                ..start
            };
            for a in &mut self.actions[1..] {
                a.transfer = a.bits / mean;
            }
            let planner = Planner {
                now: ctx.now,
                encoder,
                miss,
                rtt,
                w,
                radio: r,
                switch_j,
                times: &self.times,
                actions: &self.actions,
            };
            let plan = |action: usize| {
                let mut m = start;
                (0..self.times.len())
                    .map(|j| planner.step(&mut m, j, action))
                    .sum::<f64>()
            };
            if plan(1) > plan(0) {
                return Decision::Offload { layers: 1 };
            }
        }
        match best.first {
            0 => Decision::Local,
            k => Decision::Offload { layers: k as u32 },
        }
    }

    fn observe(&mut self, now: f64, observation: &Observation) {
        self.backlog.observe(now, observation);
    }
}
