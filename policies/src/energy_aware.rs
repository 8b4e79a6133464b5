//! Energy-aware expected-utility maximisation with radio-tail hysteresis.

use offload_controller::{
    Context, Decision, FrameOptions, Observation, Policy, RadioState, Utility,
};

use crate::backlog::BacklogModel;
use crate::probe::Prober;
use crate::timing::{frames_dropped_by_local, local_result_at, offload_result_at};

/// Chooses the option of highest *expected* utility,
/// `accuracy·P(in time) − miss_penalty·(1 − P) − w(battery)·(compute energy + radio energy)`,
/// where `P` treats the throughput as Gaussian around the estimate with the estimator's
/// uncertainty, the radio energy is the radio model's marginal energy of the transfer
/// (`RadioModel::predict_uplink_j`: promotion and a full tail when the radio is idle, only the
/// elapsed tail when it is warm), and `w(b)` is `Utility::energy_weight` with the policy's own
/// price of a joule at a full battery (`joule_value`, else the objective's), which grows as the
/// battery runs down. The local option is valued per frame of CPU time it occupies: its result,
/// minus the frames it makes the device drop, and the energy it spends charged with the radio
/// tail that keeps burning meanwhile. The candidates are those the [`crate::DeadlineAware`]
/// test admits (plus the base layer): among them this policy trades accuracy against the risk
/// of missing and the energy, so it never sends more layers than the deadline-aware policy
/// would.
///
/// Hysteresis from the radio tail: a stretch of local frames shorter than the tail saves only
/// the active radio power, since the tail keeps burning, and coming back after it costs a
/// promotion and a new tail. One switch costs at most `E_switch = promotion + tail energy`;
/// spread over the `tail_s / frame_interval` frames of one tail, a switch must therefore gain
/// `w·E_switch·frame_interval / tail_s` per frame over the current mode (local or offload) before
/// the policy changes mode. This is the energy-delay trade-off of MAUI (Cuervo et al., MobiSys
/// 2010) with the tail-aware accounting of Huang et al. (MobiSys 2012) and TailEnder
/// (Balasubramanian et al., IMC 2009).
#[derive(Debug, Clone)]
pub struct EnergyAware {
    z: f64,
    margin_s: f64,
    sustain: f64,
    min_std_fraction: f64,
    hysteresis: f64,
    joule_value: Option<f64>,
    prober: Prober,
    backlog: BacklogModel,
    offloading: bool,
}

impl EnergyAware {
    /// `z`: the rate is centred on `Estimate::lower(z)` (a late frame also delays the next ones
    /// on the FIFO link, which the per-frame expectation does not see, so the centre is kept
    /// conservative); `margin_s` and `sustain`: candidates are the options that arrive
    /// `margin_s` before the deadline at that rate and whose stream at the frame rate uses at
    /// most `sustain` of it (the deadline-aware policy's test); `min_std_fraction`: the throughput uncertainty assumed at least (fraction
    /// of the estimate); `hysteresis`: multiplier of the tail-derived switching margin (1 = as derived);
    /// `probe_after_s`: staleness that triggers a probe; `joule_value`: the utility this policy
    /// gives a joule at a full battery (`None`: the objective's `Utility::energy_weight_per_j`),
    /// raised at a low battery by the objective's `low_battery_gain`.
    pub fn new(
        z: f64,
        margin_s: f64,
        sustain: f64,
        min_std_fraction: f64,
        hysteresis: f64,
        probe_after_s: f64,
        joule_value: Option<f64>,
    ) -> Self {
        EnergyAware {
            z: z.max(0.0),
            margin_s: margin_s.max(0.0),
            sustain: sustain.clamp(0.01, 1.0),
            min_std_fraction: min_std_fraction.max(1e-3),
            hysteresis: hysteresis.max(0.0),
            joule_value: joule_value.map(|v| v.max(0.0)),
            prober: Prober::new(probe_after_s),
            backlog: BacklogModel::default(),
            offloading: true,
        }
    }
}

/// Standard normal CDF.
fn phi(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

impl Policy for EnergyAware {
    fn name(&self) -> &str {
        "energy-aware"
    }

    fn observes_frame_done(&self) -> bool {
        false
    }

    fn decide(&mut self, frame: &FrameOptions, ctx: &Context<'_>) -> Decision {
        let est = match self.prober.fresh_estimate(frame, ctx) {
            Ok(est) => est,
            Err(decision) => {
                self.offloading = decision != Decision::Local;
                return decision;
            }
        };
        let u = ctx.utility;
        let w = if ctx.device.charging {
            0.0
        } else {
            let objective = match self.joule_value {
                Some(v) => Utility {
                    energy_weight_per_j: v,
                    ..*u
                },
                None => *u,
            };
            objective.energy_weight(ctx.device.effective_battery())
        };
        let rate = est.lower(self.z).max(1.0);
        let std = est.std_bps.max(self.min_std_fraction * est.bps);
        let backlog = self.backlog.bits(ctx, est.bps.max(1.0));

        // Local, valued per frame of the CPU time it takes.
        let dropped = f64::from(frames_dropped_by_local(ctx, frame));
        let local_in_time = local_result_at(ctx, frame) <= frame.deadline;
        let local_value = if local_in_time {
            frame.local.accuracy
        } else {
            -u.miss_penalty
        };
        // While the CPU runs the local path the radio's tail keeps burning if it is warm; the
        // next transfer pays it (the marginal tail), so it belongs to the local stretch.
        let stretch = (1.0 + dropped) * ctx.frame_interval;
        let tail_j = match ctx.radio_state.last_active_end {
            Some(end) => {
                let left = (end + ctx.radio.tail_s - ctx.now).clamp(0.0, ctx.radio.tail_s);
                stretch.min(left) * ctx.radio.tail_w
            }
            None => 0.0,
        };
        let local = (local_value - w * (frame.local.energy_j + tail_j) - dropped * u.miss_penalty)
            / (1.0 + dropped);

        // Offload: expected utility with P(in time) from the rate's uncertainty.
        let mut best_off = (f64::NEG_INFINITY, 0u32);
        let fps = 1.0 / ctx.frame_interval.max(1e-6);
        // A stream the link cannot carry every frame only builds a queue that delays the next
        // frames, a cost the per-frame expectation does not see (the base layer stays): the
        // candidates end at the first such option.
        let candidates = frame
            .offload
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, o)| o.bytes as f64 * 8.0 * fps > self.sustain * rate)
            .map_or(frame.offload.len(), |(i, _)| i);
        // Largest options first, so that a good option found early lets the smaller ones be
        // skipped when even a certain delivery (`P = 1`) could not beat it; the choice is the
        // one of an increasing scan: the highest expected utility, ties to fewer layers.
        for (i, o) in frame.offload[..candidates].iter().enumerate().rev() {
            let bits = o.bytes as f64 * 8.0;
            let at_rate = offload_result_at(ctx, o, backlog, rate);
            // Only options that arrive in time with `margin_s` to spare at the conservative
            // rate are candidates (the base layer always is): the expectation then trades
            // accuracy against the risk and the energy of the larger ones.
            if i > 0 && at_rate + self.margin_s > frame.deadline {
                continue;
            }
            let transfer = (backlog + bits) / rate;
            let start = at_rate - transfer - ctx.estimates.rtt_or(ctx.default_rtt) - o.server_time
                + backlog / rate;
            // From an idle radio the promotion and the new tail are paid once per burst, not
            // by this frame alone: they are the switching cost the hysteresis margin below
            // charges. Per frame, a burst costs its active energy plus one frame interval of
            // tail, which is what the prediction gives for a radio that was active one frame ago.
            let state = if ctx.radio.needs_promotion(ctx.radio_state, start) {
                RadioState {
                    last_active_end: Some(start - ctx.frame_interval),
                }
            } else {
                *ctx.radio_state
            };
            let radio_j = ctx.radio.predict_uplink_j(&state, start, bits, bits / rate);
            let energy = w * (o.device_energy_j + radio_j);
            // With `P ≤ 1` the expectation is at most the accuracy minus the energy (float
            // rounding is monotone, so this holds for the computed values too).
            if o.accuracy >= 0.0 && u.miss_penalty >= 0.0 && o.accuracy - energy < best_off.0 {
                continue;
            }
            // Time the link may take for backlog + this frame: what remains of the budget.
            let allowed = frame.deadline - (at_rate - transfer);
            let p = if allowed <= 0.0 {
                0.0
            } else {
                phi((rate - (backlog + bits) / allowed) / std)
            };
            let eu = o.accuracy * p - u.miss_penalty * (1.0 - p) - energy;
            if eu > best_off.0 || (eu == best_off.0 && best_off.1 != 0) {
                best_off = (eu, o.layers);
            }
        }

        let r = ctx.radio;
        let switch_j = r.promotion_s * r.promotion_w + r.tail_s * r.tail_w;
        let margin =
            self.hysteresis * w * switch_j * ctx.frame_interval / r.tail_s.max(ctx.frame_interval);
        let go_offload = if self.offloading {
            best_off.0 + margin >= local
        } else {
            best_off.0 > local + margin
        };
        self.offloading = go_offload && best_off.1 > 0;
        if self.offloading {
            Decision::Offload { layers: best_off.1 }
        } else {
            Decision::Local
        }
    }

    fn observe(&mut self, now: f64, observation: &Observation) {
        self.backlog.observe(now, observation);
    }
}
