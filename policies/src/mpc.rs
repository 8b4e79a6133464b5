//! Model-predictive control over the next frames, after RobustMPC.

use offload_controller::{
    Context, Decision, FrameOptions, Observation, Policy, RadioModel, send_cutoff,
};

use crate::ForecastError;
use crate::backlog::BacklogModel;
use crate::probe::Prober;

/// Plans the next `horizon` frames and applies the first decision, as RobustMPC does for video
/// bitrates (Yin et al., "A Control-Theoretic Approach for Dynamic Adaptive Video Streaming over
/// HTTP", SIGCOMM 2015): the throughput forecast is the conservative `Estimate::lower(z)` (with
/// the `robust` estimator, RobustMPC's harmonic mean discounted by the recent maximum error),
/// future frames are assumed to have this frame's sizes, and each candidate plan is simulated
/// through a model of the device: the uplink as a FIFO drained at the forecast rate (starting
/// from the current backlog, cancelling where the sender does: at the deadline, or with partial
/// results when the result could no longer return in time, keeping the prefix that crossed),
/// the CPU (the local path makes later frames be dropped), and the energy (compute, radio active
/// power and the tail between transfers). The plan maximising the sum of `Utility::frame` wins. A later frame
/// of the plan is picked up when the CPU is free and then pays the encoder, taken as the shortest
/// capture-to-decision delay seen (the current frame's own delay also holds its wait for the
/// CPU); the CPU backlog a plan leaves past the horizon is priced (see `Planner::new`).
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
    /// The measured-error margin, when it replaces `z`.
    margin: Option<ForecastError>,
    /// The shortest delay from capture to decision seen so far: the encoder's time on an idle
    /// CPU, which later frames of a plan pay after their pick-up.
    encoder_s: f64,
    /// Whether a first action above the sustainable ones is planned (see [`Self::with_bursts`]).
    bursts: bool,
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
    /// The server time the sender's cutoff leaves (`FrameOptions::cutoff_server_time`).
    cutoff_server_time: f64,
    /// `bits / rate` at the planning rate.
    transfer: f64,
    /// Whether the action may be held for the rest of the horizon (a sustainable stream).
    holdable: bool,
    /// Highest utility a frame can get under this action.
    ceiling: f64,
    /// Highest `ceiling` of the holdable actions up to this one, local included.
    upto_all: f64,
    /// The same without local.
    upto_offload: f64,
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
    /// Utility per second of CPU backlog left at the end of the horizon (see [`Self::new`]).
    backlog_price: f64,
    /// Whether a frame cut short delivers the prefix that crossed by its cutoff.
    partial: bool,
    /// The radio's power while sending at the planning rate (W).
    send_w: f64,
}

impl<'a> Planner<'a> {
    /// The device model of one decision over the tables `times` and `actions`.
    ///
    /// A plan that ends with the CPU still busy past the next capture hands that backlog to the
    /// frames after the horizon, which a horizon of a few frames would count as free: holding a
    /// local path longer than the frame interval would look better than it is, since the frames
    /// it makes the device drop fall mostly beyond the horizon. The backlog is priced at the
    /// rate the local path buys accuracy with CPU time over the largest sustainable offload,
    /// `(local accuracy − its accuracy) / (local device time − its device time)`: the
    /// accuracy a later frame could have gained by running locally in that time. Zero when
    /// local is not more accurate, or when the encoder and the local path fit in one frame
    /// interval (no backlog can build).
    fn new(
        times: &'a [FrameTimes],
        actions: &'a [Action],
        ctx: &Context<'a>,
        encoder: f64,
        rate: f64,
        rtt: f64,
        w: f64,
    ) -> Self {
        let r = ctx.radio;
        let local = &actions[0];
        let backlog_price = match actions.iter().rposition(|a| a.holdable) {
            Some(last) if last > 0 && encoder + local.device_time > ctx.frame_interval => {
                let o = &actions[last];
                let gain = local.accuracy - o.accuracy;
                let time = local.device_time - o.device_time;
                if gain > 0.0 && time > 0.0 {
                    gain / time
                } else {
                    0.0
                }
            }
            _ => 0.0,
        };
        Planner {
            backlog_price,
            partial: ctx.partial_results,
            send_w: r.uplink_power_w(rate),
            now: ctx.now,
            encoder,
            miss: -ctx.utility.miss_penalty,
            rtt,
            w,
            radio: r,
            switch_j: r.promotion_s * r.promotion_w + r.tail_s * r.tail_w,
            times,
            actions,
        }
    }

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
        let end = start + act.transfer;
        let result = end + self.rtt + act.server_time;
        let (value, sent_until) = if result <= t.deadline {
            (act.accuracy, end)
        } else if self.partial {
            // The sender stops when the result could no longer come back in time; the server
            // decodes the longest prefix that crossed by then.
            let cutoff = send_cutoff(t.deadline, self.rtt, act.cutoff_server_time).max(start);
            let budget = cutoff - start;
            let value = self.actions[1..a]
                .iter()
                .rev()
                .find(|p| p.transfer <= budget)
                .map_or(self.miss, |p| p.accuracy);
            (value, cutoff)
        } else {
            (self.miss, end.min(t.deadline).max(start))
        };
        // Every transfer of the plan runs at the planning rate, so the radio's active power is
        // the same for all of them (`RadioModel::uplink_energy_j` at that rate, without its
        // divisions).
        energy += self.send_w * (sent_until - start);
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
        Some(u - self.terminal(&m))
    }

    /// The price of the CPU backlog a plan leaves at its end: how long after the first capture
    /// past the horizon the CPU is still busy, times `backlog_price` (never negative, so the
    /// ceiling of the plan's frames still bounds its score).
    #[inline]
    fn terminal(&self, m: &Model) -> f64 {
        let end = self.times.last().map_or(f64::INFINITY, |t| t.next_capture);
        self.backlog_price * (m.cpu_free - end).max(0.0)
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
            margin: None,
            encoder_s: f64::INFINITY,
            bursts: false,
        }
    }

    /// Also plans "a first frame larger than the link sustains, then a sustainable action held":
    /// a burst into the link's idle time, whose backlog the next decision sees and pays for.
    /// When layer sizes grow steeply (the last layer of the detector codec is 2.6× the one
    /// below) the sustainable stream leaves capacity unused that single larger frames can take.
    pub fn with_bursts(mut self, bursts: bool) -> Self {
        self.bursts = bursts;
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
            cutoff_server_time: 0.0,
            transfer: 0.0,
            holdable: true,
            ceiling: (local.accuracy.max(miss) - local_energy).max(miss),
            upto_all: f64::NEG_INFINITY,
            upto_offload: f64::NEG_INFINITY,
        });
        // With partial results a frame may deliver a shorter prefix, which can be the more
        // accurate one when accuracy dips with k: the ceiling takes the best prefix.
        let mut best_prefix = f64::NEG_INFINITY;
        // `FrameOptions::cutoff_server_time`, without its loop per option.
        let mut longest_server_time = 0.0f64;
        for (i, o) in frame.offload.iter().enumerate() {
            best_prefix = best_prefix.max(o.accuracy);
            longest_server_time = longest_server_time.max(o.server_time);
            let best = if ctx.partial_results {
                best_prefix
            } else {
                o.accuracy
            };
            let bits = o.bytes as f64 * 8.0;
            let overloads = o.bytes as f64 * 8.0 * fps > rate;
            self.actions.push(Action {
                accuracy: o.accuracy,
                device_time: o.device_time * slowdown,
                energy: o.device_energy_j,
                bits,
                server_time: o.server_time,
                cutoff_server_time: longest_server_time,
                transfer: bits / rate,
                // Within a short horizon a stream slightly above the rate only builds a small
                // queue, still in time; repeated every frame it grows without bound. A held
                // decision must be sustainable (the base layer always is allowed).
                holdable: i == 0 || !overloads,
                ceiling: if bounded && o.device_energy_j >= 0.0 {
                    (best.max(miss) - w * o.device_energy_j).max(miss)
                } else {
                    f64::INFINITY
                },
                upto_all: f64::NEG_INFINITY,
                upto_offload: f64::NEG_INFINITY,
            });
        }
        if !(bounded && local.energy_j >= 0.0) {
            self.actions[0].ceiling = f64::INFINITY;
        }
        let (mut all, mut offload) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
        for (i, a) in self.actions.iter_mut().enumerate() {
            if a.ceiling.is_nan() {
                a.ceiling = f64::INFINITY;
            }
            if a.holdable {
                all = all.max(a.ceiling);
                if i > 0 {
                    offload = offload.max(a.ceiling);
                }
            }
            a.upto_all = all;
            a.upto_offload = offload;
        }
    }

    /// The first action of the best plan at `rate` from the model state `start` (`0` = local),
    /// leaving the tables filled for `rate`.
    #[allow(clippy::too_many_arguments)]
    fn best_first(
        &mut self,
        frame: &FrameOptions,
        ctx: &Context<'_>,
        encoder: f64,
        rate: f64,
        rtt: f64,
        w: f64,
        start: Model,
    ) -> usize {
        self.prepare(frame, ctx, rate, w);
        let planner = Planner::new(&self.times, &self.actions, ctx, encoder, rate, rtt, w);
        let horizon = self.times.len();
        let mut best = Best {
            score: f64::NEG_INFINITY,
            first: 0,
        };
        // The rest of the plan sends at least as many layers as the first frame: with a flat
        // forecast, a plan that sends much now and little later would be re-planned identically
        // every frame and send much every frame, overloading the link. A first action above
        // the last holdable one therefore has no plan, unless bursts are on: then it is
        // followed by any holdable action, and the backlog it leaves is the next decision's.
        let last_holdable = self.actions.iter().rposition(|a| a.holdable).unwrap_or(0);
        let last_first = if self.bursts {
            self.actions.len() - 1
        } else {
            last_holdable
        };
        let previous = self.last_first.min(last_first);
        // The previous first action, then the others in increasing order.
        for index in 0..=last_first {
            let first = match index {
                0 => previous,
                i if i - 1 < previous => i - 1,
                i => i,
            };
            // A burst is followed by any sustainable action.
            let lowest_rest = if first > last_holdable { 0 } else { first };
            // What a plan held with an action up to `rest` can reach: local's ceiling (often
            // the highest) only counts when local may be held.
            let upto = |rest: usize| {
                let a = &self.actions[rest];
                if lowest_rest == 0 {
                    a.upto_all
                } else {
                    a.upto_offload
                }
            };
            // No plan starting with this action can win: skip even its first step.
            if !best.beaten_by(
                ceiling_sum(
                    self.actions[first].ceiling,
                    upto(last_holdable),
                    horizon - 1,
                ),
                first,
            ) {
                continue;
            }
            let mut m0 = start;
            let u0 = planner.step(&mut m0, 0, first);
            // Larger held actions first: they are usually the best and set the bound.
            for rest in (lowest_rest..=last_holdable).rev() {
                let act = &self.actions[rest];
                // No plan held with this action or a smaller one can win any more.
                if !best.beaten_by(ceiling_sum(u0, upto(rest), horizon - 1), first) {
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
        best.first
    }
}

impl Policy for Mpc {
    fn name(&self) -> &str {
        "mpc"
    }

    fn observes_frame_done(&self) -> bool {
        false
    }

    fn decide(&mut self, frame: &FrameOptions, ctx: &Context<'_>) -> Decision {
        // This frame's delay since capture includes the time it waited for a busy CPU; the
        // shortest delay seen is the encoder alone, what a later frame pays once picked up.
        self.encoder_s = self.encoder_s.min((ctx.now - frame.captured_at).max(0.0));
        let est = match self.prober.fresh_estimate(frame, ctx) {
            Ok(est) => est,
            Err(decision) => return decision,
        };
        let rate = match &self.margin {
            Some(m) => m.rate(&est),
            None => est.lower(self.z),
        }
        .max(1.0);
        if let Some(m) = &mut self.margin {
            m.planned(frame.frame, est.bps);
        }
        let backlog = self.backlog.bits(ctx, est.bps.max(1.0));
        let rtt = ctx.estimates.rtt_or(ctx.default_rtt);
        let w = ctx.utility.energy_weight(ctx.device.effective_battery());
        let encoder = self.encoder_s;
        let start = Model {
            link_free: ctx.now + backlog / rate,
            cpu_free: ctx.now,
            radio_last: ctx.radio_state.last_active_end.unwrap_or(f64::NEG_INFINITY),
        };
        let first = self.best_first(frame, ctx, encoder, rate, rtt, w, start);
        if first == 0 && self.actions.len() > 1 {
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
            let planner = Planner::new(&self.times, &self.actions, ctx, encoder, mean, rtt, w);
            let plan = |action: usize| {
                let mut m = start;
                let u = (0..self.times.len())
                    .map(|j| planner.step(&mut m, j, action))
                    .sum::<f64>();
                u - planner.terminal(&m)
            };
            if plan(1) > plan(0) {
                return Decision::Offload { layers: 1 };
            }
        }
        match first {
            0 => Decision::Local,
            k => Decision::Offload { layers: k as u32 },
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

#[cfg(test)]
mod tests {
    use super::*;
    use offload_controller::{
        DeviceState, Estimates, LocalOption, OffloadOption, RadioState, Utility,
    };

    /// The plain model the branch and bound must agree with: every plan simulated in full,
    /// in increasing (first, rest) order, the first strictly better plan kept.
    #[allow(clippy::too_many_arguments)]
    fn reference_step(
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
        } else if ctx.partial_results {
            let cutoff = send_cutoff(deadline, rtt, frame.cutoff_server_time(o.layers)).max(start);
            let value = frame.offload[..action - 1]
                .iter()
                .rev()
                .find(|p| p.bytes as f64 * 8.0 / rate <= cutoff - start)
                .map_or(miss, |p| p.accuracy);
            (value, cutoff)
        } else {
            (miss, end.min(deadline).max(start))
        };
        energy += radio.uplink_power_w(rate) * (sent_until - start);
        m.link_free = sent_until;
        m.radio_last = sent_until;
        value - w * energy
    }

    #[allow(clippy::too_many_arguments)]
    fn reference_first(
        horizon: u32,
        bursts: bool,
        frame: &FrameOptions,
        ctx: &Context<'_>,
        rate: f64,
        rtt: f64,
        w: f64,
        start: Model,
    ) -> usize {
        let actions = frame.offload.len() + 1;
        let fps = 1.0 / ctx.frame_interval.max(1e-6);
        let overloads = |a: usize| a > 1 && frame.offload[a - 1].bytes as f64 * 8.0 * fps > rate;
        // The price of the CPU backlog left at the end (see `Planner::new`).
        let slowdown = ctx.device.compute_slowdown();
        let encoder = (ctx.now - frame.captured_at).max(0.0);
        let local_time = frame.local.device_time * slowdown;
        let last = (1..actions).rev().find(|&a| !overloads(a));
        let price = match last {
            Some(a) if encoder + local_time > ctx.frame_interval => {
                let o = &frame.offload[a - 1];
                let gain = frame.local.accuracy - o.accuracy;
                let time = local_time - o.device_time * slowdown;
                if gain > 0.0 && time > 0.0 {
                    gain / time
                } else {
                    0.0
                }
            }
            _ => 0.0,
        };
        let end =
            frame.captured_at + f64::from(horizon - 1) * ctx.frame_interval + ctx.frame_interval;
        let terminal = |cpu_free: f64| price * (cpu_free - end).max(0.0);
        let mut best = (f64::NEG_INFINITY, 0usize);
        for first in 0..actions {
            let mut m0 = start;
            let u0 = reference_step(&mut m0, frame, ctx, 0, first, rate, rtt, w);
            // A first action the link cannot sustain is followed by any that it can (bursts).
            let lowest = if bursts && overloads(first) { 0 } else { first };
            for rest in lowest..actions {
                if overloads(rest) {
                    continue;
                }
                let mut m = m0;
                let mut u = u0;
                for j in 1..horizon {
                    u += reference_step(&mut m, frame, ctx, j, rest, rate, rtt, w);
                }
                u -= terminal(m.cpu_free);
                if u > best.0 {
                    best = (u, first);
                }
            }
        }
        best.1
    }

    /// xorshift64*: a fixed, dependency-free stream of test inputs.
    struct Rng(u64);
    impl Rng {
        fn unit(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
        }
        fn range(&mut self, lo: f64, hi: f64) -> f64 {
            lo + (hi - lo) * self.unit()
        }
    }

    #[test]
    fn branch_and_bound_picks_the_full_enumerations_first_action() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let radio = RadioModel::LTE;
        let mut disagreements = Vec::new();
        let mut chosen = [0usize; 9];
        for case in 0..20_000 {
            let interval = 1.0 / 30.0;
            let captured_at = rng.range(0.0, 500.0);
            let now = captured_at + rng.range(0.0, 0.06);
            let mut bytes = rng.range(500.0, 5000.0);
            let mut accuracy = 0.3;
            let offload: Vec<OffloadOption> = (1..=8)
                .map(|layers| {
                    bytes *= rng.range(1.0, 1.8);
                    accuracy += rng.range(0.0, 0.06);
                    OffloadOption {
                        layers,
                        bytes: bytes as u64,
                        accuracy,
                        device_time: 0.002 + 0.0005 * f64::from(layers),
                        device_energy_j: rng.range(0.0, 0.01),
                        server_time: rng.range(0.005, 0.02),
                    }
                })
                .collect();
            let frame = FrameOptions {
                frame: case,
                captured_at,
                deadline: captured_at + rng.range(0.1, 0.4),
                local: LocalOption {
                    accuracy: rng.range(0.5, 0.8),
                    device_time: rng.range(0.03, 0.3),
                    energy_j: rng.range(0.05, 0.6),
                },
                offload,
            };
            let device = DeviceState {
                battery_level: Some(rng.unit()),
                cpu_load: (rng.unit() < 0.3).then(|| rng.range(0.0, 0.9)),
                ..DeviceState::default()
            };
            let utility = Utility {
                miss_penalty: rng.range(0.0, 0.5),
                energy_weight_per_j: if rng.unit() < 0.2 {
                    0.0
                } else {
                    rng.range(0.0, 1.0)
                },
                low_battery_gain: 3.0,
            };
            let radio_state = RadioState {
                last_active_end: match rng.unit() {
                    u if u < 0.2 => None,
                    u if u < 0.6 => Some(now - rng.range(0.0, 15.0)),
                    _ => Some(now + rng.range(0.0, 0.3)),
                },
            };
            let estimates = Estimates::default();
            let ctx = Context {
                now,
                estimates: &estimates,
                device: &device,
                utility: &utility,
                radio: &radio,
                radio_state: &radio_state,
                frame_interval: interval,
                default_rtt: 0.05,
                partial_results: rng.unit() < 0.7,
            };
            let bursts = rng.unit() < 0.5;
            let rate = 10f64.powf(rng.range(4.0, 8.0));
            let rtt = rng.range(0.01, 0.15);
            let w = utility.energy_weight(device.effective_battery());
            let start = Model {
                link_free: now + rng.range(-0.1, 0.4),
                cpu_free: now,
                radio_last: radio_state.last_active_end.unwrap_or(f64::NEG_INFINITY),
            };
            let horizon = 1 + (rng.unit() * 7.0) as u32;
            let mut mpc = Mpc::new(horizon, 1.0, 0.2).with_bursts(bursts);
            // Any previous first action: it only changes the search order.
            mpc.last_first = (rng.unit() * 10.0) as usize;
            let encoder = (ctx.now - frame.captured_at).max(0.0);
            let got = mpc.best_first(&frame, &ctx, encoder, rate, rtt, w, start);
            let want = reference_first(horizon, bursts, &frame, &ctx, rate, rtt, w, start);
            chosen[want] += 1;
            if got != want {
                disagreements.push((case, got, want));
            }
        }
        assert!(
            disagreements.is_empty(),
            "{:?}",
            &disagreements[..disagreements.len().min(10)]
        );
        // The cases cover local, small and large first actions.
        assert!(
            chosen[0] > 100 && chosen[1] > 100 && chosen[8] > 100,
            "{chosen:?}"
        );
    }
}
