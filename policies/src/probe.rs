//! When to send the base layer just to learn the link again.

use offload_controller::{Context, Decision, Estimate, FrameOptions, Observation};

use std::collections::VecDeque;

use crate::timing::local_result_at;

/// Rate-limited probing: with no throughput sample for `after_s`, send the base layer, at most
/// once per `after_s`. A policy that only ran locally would never learn that the link recovered,
/// and one that probed every frame would waste a frame (and radio energy) per frame on a dead link.
///
/// While the link is believed down, a frame whose local result would come after its deadline
/// (the device picked it up late, behind an earlier local run) is sent as a probe as well: a
/// late local result is a miss that also keeps the CPU busy and makes the device drop the next
/// frames, while the base layer misses at worst and may find the link back.
///
/// Optionally ([`Prober::with_stall_detection`]) the link is also treated as down as soon as
/// the oldest frame still unreported is overdue: its report should have come after its own
/// transfer at the estimated rate — begun when it was sent or, if later, when the previous
/// frame's report came (it queued behind that frame) — the round trip and the server time, and
/// `slack_s` more has passed (a frame cancelled at its cutoff with nothing delivered stays unreported). In a blockage or an on/off outage this notices the dead link after a frame's
/// expected report time plus the slack, instead of after `after_s` without any sample (which
/// has to exceed the normal report delay of a busy link).
///
/// Optionally ([`Prober::with_silence_means_down`]) the link also counts as down while the
/// controller believes the uplink silent ([`offload_controller::Estimates::uplink_silent`]:
/// nothing came back by a frame's silence check), which it learns a round trip and 25 ms after
/// sending into a dead link.
///
/// Optionally ([`Prober::with_backoff`]) the interval between probes doubles after each probe
/// that brought no fresh sample, up to a ceiling, and falls back to `after_s` when the link
/// answers: on links that are off most of the time (application-limited downlink series, long
/// blockages) a probe every `after_s` is a frame lost every few frames, where the local path
/// would have delivered it.
///
/// Optionally ([`Prober::with_probe_beside_local`]) a probe due on a frame whose local result
/// would be in time runs the local path and sends the base layer beside it
/// ([`Decision::LocalWithProbe`]): the probe then costs the radio's energy and some uplink time
/// instead of the frame.
#[derive(Debug, Clone)]
pub struct Prober {
    after_s: f64,
    /// The current interval between probes (`after_s` unless backing off).
    interval_s: f64,
    /// Ceiling of the interval (`after_s`: no backoff).
    backoff_max_s: f64,
    last_probe: f64,
    stall_slack_s: Option<f64>,
    /// Whether a probe rides beside the local path instead of replacing it.
    beside_local: bool,
    /// Whether a silent uplink counts as down.
    silence_means_down: bool,
    /// Frames sent and not yet reported: `(frame, sent at, bytes)`, oldest first.
    unreported: VecDeque<(u64, f64, u64)>,
    /// When the latest delivery report came.
    last_report_at: f64,
}

/// The longest local path, in frame intervals, for which a silent uplink counts as down
/// ([`Prober::with_silence_means_down`]).
const SILENCE_LOCAL_MAX_INTERVALS: f64 = 2.0;

/// Most unreported frames tracked: bounds memory if reports never come.
const MAX_UNREPORTED: usize = 64;

impl Prober {
    /// Probes after `after_s` seconds without a sample.
    pub fn new(after_s: f64) -> Self {
        Prober {
            after_s: after_s.max(0.0),
            interval_s: after_s.max(0.0),
            backoff_max_s: after_s.max(0.0),
            last_probe: f64::NEG_INFINITY,
            stall_slack_s: None,
            beside_local: false,
            silence_means_down: false,
            unreported: VecDeque::new(),
            last_report_at: f64::NEG_INFINITY,
        }
    }

    /// Also treats the link as down when the oldest unreported frame is `slack_s` past its
    /// expected report time (`None`: only after `after_s` without a sample).
    pub fn with_stall_detection(mut self, slack_s: Option<f64>) -> Self {
        self.stall_slack_s = slack_s.map(|s| s.max(0.0));
        self
    }

    /// Doubles the interval between probes after each one that brings no fresh sample, up to
    /// `max_s` (`None` or a value below `after_s`: a constant interval).
    pub fn with_backoff(mut self, max_s: Option<f64>) -> Self {
        self.backoff_max_s = max_s.map_or(self.after_s, |m| m.max(self.after_s));
        self
    }

    /// Sends a probe beside the local path (`true`) instead of in its place, when the local
    /// result would be in time.
    pub fn with_probe_beside_local(mut self, beside_local: bool) -> Self {
        self.beside_local = beside_local;
        self
    }

    /// Counts the link as down while the uplink is silent (`true`).
    pub fn with_silence_means_down(mut self, silence_means_down: bool) -> Self {
        self.silence_means_down = silence_means_down;
        self
    }

    /// Sees the agent's observations (sends and reports), for the stall detection.
    pub fn observe(&mut self, now: f64, observation: &Observation) {
        if self.stall_slack_s.is_none() {
            return;
        }
        match *observation {
            Observation::Sent { frame, bytes } => {
                if self.unreported.len() == MAX_UNREPORTED {
                    self.unreported.pop_front();
                }
                self.unreported.push_back((frame, now, bytes));
            }
            // Reports come back in sending order: a report answers its frame and every frame
            // sent before it. A frame given up at its cutoff (with partial results, before its
            // report was even due) is not answered: if nothing of it was delivered, the link's
            // silence goes on, and it stays the oldest unreported frame until a report comes.
            Observation::Delivered { frame, .. } => {
                self.last_report_at = now;
                while self.unreported.front().is_some_and(|&(f, ..)| f <= frame) {
                    self.unreported.pop_front();
                }
            }
            Observation::ServerUnreachable => self.unreported.clear(),
            _ => {}
        }
    }

    /// Whether the oldest unreported frame is overdue by more than the slack.
    fn stalled(&self, e: &Estimate, frame: &FrameOptions, ctx: &Context<'_>) -> bool {
        let (Some(slack), Some(&(_, sent_at, bytes))) =
            (self.stall_slack_s, self.unreported.front())
        else {
            return false;
        };
        let server = frame.offload.first().map_or(0.0, |o| o.server_time);
        // On a busy link the frame waited behind the ones sent before it, all reported by now:
        // its transfer began by the latest report at the latest, not when it was sent.
        let expected = sent_at.max(self.last_report_at)
            + bytes as f64 * 8.0 / e.bps.max(1.0)
            + ctx.estimates.rtt_or(ctx.default_rtt)
            + server;
        ctx.now > expected + slack
    }

    /// The throughput estimate to plan with, or, when it is missing or stale, the decision to
    /// take instead: the base layer as a probe (at most once per `after_s`, or when the local
    /// path would be late), otherwise local execution until the probe's answer arrives.
    pub fn fresh_estimate(
        &mut self,
        frame: &FrameOptions,
        ctx: &Context<'_>,
    ) -> Result<Estimate, Decision> {
        // A silent uplink counts as down only where the local path is short: a local run that
        // holds the CPU for several frame intervals costs those frames when the silence was a
        // slow link's first packet still crossing (on the illustrative profile, 5 intervals,
        // reacting cost MPC 3.8 points on HSDPA; on the measured one, 1.2, it gained 0.7 on
        // UCC).
        let silent = self.silence_means_down
            && ctx.estimates.uplink_silent()
            && frame.local.device_time * ctx.device.compute_slowdown()
                <= SILENCE_LOCAL_MAX_INTERVALS * ctx.frame_interval;
        if let Some(e) = ctx.estimates.throughput
            && e.age(ctx.now) <= self.after_s
            && !silent
            && !self.stalled(&e, frame, ctx)
        {
            self.interval_s = self.after_s;
            return Ok(e);
        }
        let local_at = local_result_at(ctx, frame);
        let local_late = local_at > frame.deadline;
        if !local_late && ctx.now - self.last_probe < self.interval_s {
            return Err(Decision::Local);
        }
        // A probe beside the local path is coded first: where that would make the local result
        // late, this frame runs locally alone and the probe waits for the next one.
        let coding = frame.offload.first().map_or(0.0, |o| o.device_time);
        if self.beside_local
            && !local_late
            && local_at + coding * ctx.device.compute_slowdown() > frame.deadline
        {
            return Err(Decision::Local);
        }
        // A sample that came after the previous probe answered it: back to `after_s`.
        let answered = ctx
            .estimates
            .throughput
            .is_some_and(|e| ctx.now - e.age(ctx.now) > self.last_probe);
        self.interval_s = if answered {
            self.after_s
        } else {
            (self.interval_s * 2.0).min(self.backoff_max_s)
        };
        self.last_probe = ctx.now;
        Err(if self.beside_local && !local_late {
            Decision::LocalWithProbe { layers: 1 }
        } else {
            Decision::Offload { layers: 1 }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use offload_controller::{
        DeviceState, Estimates, LocalOption, OffloadOption, RadioModel, RadioState, RateSample,
        Utility,
    };

    fn frame(at: f64) -> FrameOptions {
        FrameOptions {
            frame: 9,
            captured_at: at,
            deadline: at + 0.2,
            local: LocalOption {
                accuracy: 0.7,
                device_time: 0.15,
                energy_j: 0.4,
            },
            offload: vec![OffloadOption {
                layers: 1,
                bytes: 1000,
                accuracy: 0.3,
                server_time: 0.01,
                ..OffloadOption::default()
            }],
        }
    }

    /// The decision of `prober` at `now` with a 1 Mbit/s estimate sampled at 1.0 s.
    fn decide(prober: &mut Prober, now: f64) -> Result<Estimate, Decision> {
        decide_sampled(prober, now, 1.0)
    }

    /// The decision of `prober` at `now` with a 1 Mbit/s estimate sampled at `sampled_at`.
    fn decide_sampled(
        prober: &mut Prober,
        now: f64,
        sampled_at: f64,
    ) -> Result<Estimate, Decision> {
        decide_frame(prober, now, sampled_at, &frame(now))
    }

    /// The decision of `prober` on `frame` at `now` with a 1 Mbit/s estimate sampled at
    /// `sampled_at`.
    fn decide_frame(
        prober: &mut Prober,
        now: f64,
        sampled_at: f64,
        frame: &FrameOptions,
    ) -> Result<Estimate, Decision> {
        decide_with(prober, now, &estimated(sampled_at), frame)
    }

    /// A 1 Mbit/s estimate sampled at `sampled_at`.
    fn estimated(sampled_at: f64) -> Estimates {
        Estimates {
            throughput: Some(Estimate {
                bps: 1e6,
                std_bps: 0.0,
                samples: 10,
                last_sample_at: sampled_at,
            }),
            ..Estimates::default()
        }
    }

    /// The decision of `prober` on `frame` at `now` with `estimates`, at 30 fps.
    fn decide_with(
        prober: &mut Prober,
        now: f64,
        estimates: &Estimates,
        frame: &FrameOptions,
    ) -> Result<Estimate, Decision> {
        let (device, utility, radio, radio_state) = (
            DeviceState::default(),
            Utility::default(),
            RadioModel::LTE,
            RadioState::default(),
        );
        let ctx = Context {
            now,
            estimates,
            device: &device,
            utility: &utility,
            radio: &radio,
            radio_state: &radio_state,
            frame_interval: 1.0 / 30.0,
            default_rtt: 0.05,
            partial_results: true,
        };
        prober.fresh_estimate(frame, &ctx)
    }

    #[test]
    fn a_probe_rides_beside_the_local_path_when_its_result_is_in_time() {
        let mut replacing = Prober::new(0.2);
        let mut beside = Prober::new(0.2).with_probe_beside_local(true);
        // The estimate is 0.3 s old: a probe is due, and the frame's local result is in time.
        assert_eq!(
            decide(&mut replacing, 1.3),
            Err(Decision::Offload { layers: 1 })
        );
        assert_eq!(
            decide(&mut beside, 1.3),
            Err(Decision::LocalWithProbe { layers: 1 })
        );
        // Between probes both run locally.
        assert_eq!(decide(&mut beside, 1.35), Err(Decision::Local));
        // A frame picked up too late for its local result (captured 0.1 s ago, local path
        // 0.15 s, deadline 0.2 s) goes out as the base layer in either mode: the local result
        // would miss anyway.
        let late = frame(1.27);
        assert_eq!(
            decide_frame(&mut beside, 1.37, 1.0, &late),
            Err(Decision::Offload { layers: 1 })
        );
        // A frame whose local result is in time only without the probe's 30 ms of coding runs
        // locally alone, and the probe goes out with the next frame.
        let mut beside = Prober::new(0.2).with_probe_beside_local(true);
        let mut tight = frame(1.26);
        tight.offload[0].device_time = 0.03;
        assert_eq!(
            decide_frame(&mut beside, 1.30, 1.0, &tight),
            Err(Decision::Local)
        );
        assert_eq!(
            decide(&mut beside, 1.3333),
            Err(Decision::LocalWithProbe { layers: 1 })
        );
    }

    #[test]
    fn a_silent_uplink_counts_as_down_only_where_the_local_path_is_short() {
        let decide_silent = |prober: &mut Prober, local_s: f64| {
            let estimates = Estimates {
                silent_since_frame: Some(8),
                ..estimated(1.0)
            };
            let mut f = frame(1.05);
            f.local.device_time = local_s;
            decide_with(prober, 1.05, &estimates, &f)
        };
        // The estimate is fresh (0.05 s old); the uplink is silent.
        let mut plain = Prober::new(0.2);
        assert!(decide_silent(&mut plain, 0.04).is_ok());
        let mut silence = Prober::new(0.2).with_silence_means_down(true);
        assert_eq!(
            decide_silent(&mut silence, 0.04),
            Err(Decision::Offload { layers: 1 })
        );
        // A local path of more than two frame intervals: the silence is not acted on.
        let mut silence = Prober::new(0.2).with_silence_means_down(true);
        assert!(decide_silent(&mut silence, 0.15).is_ok());
    }

    #[test]
    fn an_overdue_report_marks_the_link_down_before_the_staleness_limit() {
        let mut plain = Prober::new(0.2);
        let mut stall = Prober::new(0.2).with_stall_detection(Some(0.02));
        for p in [&mut plain, &mut stall] {
            // 1000 bytes sent at 1.0 s: expected back by 1.0 + 8 ms + 50 ms RTT + 10 ms server.
            p.observe(
                1.0,
                &Observation::Sent {
                    frame: 8,
                    bytes: 1000,
                },
            );
        }
        assert!(decide(&mut stall, 1.08).is_ok());
        assert!(decide(&mut plain, 1.12).is_ok());
        // 20 ms past the expected report: down (a probe, since none was sent yet).
        assert_eq!(
            decide(&mut stall, 1.12),
            Err(Decision::Offload { layers: 1 })
        );
        // Once reported, the link counts as up again.
        let sample = RateSample {
            start: 1.0,
            end: 1.008,
            bytes: 1000,
        };
        stall.observe(1.13, &Observation::Delivered { frame: 8, sample });
        assert!(decide(&mut stall, 1.14).is_ok());
    }

    #[test]
    fn a_frame_queued_behind_earlier_ones_is_not_overdue_before_their_reports() {
        let mut stall = Prober::new(0.2).with_stall_detection(Some(0.02));
        let sent = |p: &mut Prober, at: f64, frame: u64| {
            p.observe(at, &Observation::Sent { frame, bytes: 1000 });
        };
        // Two frames sent back to back on a saturated link: frame 8's report comes at 1.2 s,
        // and frame 9 has been waiting behind it since 1.0 s.
        sent(&mut stall, 1.0, 8);
        sent(&mut stall, 1.0, 9);
        let sample = RateSample {
            start: 1.1,
            end: 1.14,
            bytes: 1000,
        };
        stall.observe(1.2, &Observation::Delivered { frame: 8, sample });
        // Counted from its sending, frame 9 would be overdue from 1.088 s; counted from the
        // report it queued behind, from 1.288 s.
        assert!(decide_sampled(&mut stall, 1.25, 1.2).is_ok());
        assert_eq!(
            decide_sampled(&mut stall, 1.30, 1.2),
            Err(Decision::Offload { layers: 1 })
        );
    }

    #[test]
    fn a_frame_cancelled_with_nothing_delivered_still_counts_as_unreported() {
        let mut stall = Prober::new(0.2).with_stall_detection(Some(0.02));
        let sent = |p: &mut Prober, at: f64, frame: u64| {
            p.observe(at, &Observation::Sent { frame, bytes: 1000 });
        };
        sent(&mut stall, 1.0, 8);
        sent(&mut stall, 1.033, 9);
        // Partial results: frame 8 is given up at its cutoff, before its report was due, and
        // nothing of it crossed.
        stall.observe(
            1.05,
            &Observation::Abandoned {
                frame: 8,
                bytes: 1000,
            },
        );
        assert!(decide(&mut stall, 1.06).is_ok());
        // Its report would have come by 1.068: 20 ms later the link counts as down.
        assert_eq!(
            decide(&mut stall, 1.12),
            Err(Decision::Offload { layers: 1 })
        );
        // A report of a later frame answers every earlier one.
        let sample = RateSample {
            start: 1.033,
            end: 1.041,
            bytes: 1000,
        };
        stall.observe(1.13, &Observation::Delivered { frame: 9, sample });
        assert!(decide(&mut stall, 1.14).is_ok());
    }

    /// The times at which `prober` probes, deciding every frame from `from` to `to` (s) with
    /// the last sample taken at `sampled_at`.
    fn probes(prober: &mut Prober, from: f64, to: f64, sampled_at: f64) -> Vec<f64> {
        let mut at = Vec::new();
        let mut now = from;
        while now < to {
            if decide_sampled(prober, now, sampled_at) == Err(Decision::Offload { layers: 1 }) {
                at.push(now);
            }
            now += 1.0 / 30.0;
        }
        at
    }

    #[test]
    fn unanswered_probes_back_off_to_the_ceiling_and_an_answer_resets_them() {
        let mut plain = Prober::new(0.2);
        let mut backoff = Prober::new(0.2).with_backoff(Some(0.8));
        // The link went silent after a sample at 1.0 s.
        let gaps = |t: &[f64]| t.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>();
        let steady = gaps(&probes(&mut plain, 1.3, 5.0, 1.0));
        assert!(
            steady.iter().all(|&g| (0.19..0.24).contains(&g)),
            "{steady:?}"
        );
        let t = probes(&mut backoff, 1.3, 5.0, 1.0);
        let g = gaps(&t);
        // 0.2 after the first probe, then 0.4, then the ceiling (each rounded up to a frame).
        assert!((0.19..0.24).contains(&g[0]), "{g:?}");
        assert!((0.39..0.44).contains(&g[1]), "{g:?}");
        assert!(g[2..].iter().all(|&g| (0.79..0.84).contains(&g)), "{g:?}");
        // 6 probes in 3.7 s instead of 17.
        assert!(
            t.len() * 2 < steady.len() + 1,
            "{} vs {} probes",
            t.len(),
            steady.len() + 1
        );
        // A sample after the last probe: the link answered, fresh estimates flow again, and
        // when it goes silent once more the first probe comes after `after_s`, not the ceiling.
        let last = *t.last().unwrap();
        let answer = last + 0.1;
        assert!(decide_sampled(&mut backoff, answer + 0.01, answer).is_ok());
        let again = probes(&mut backoff, answer + 0.2, answer + 1.0, answer);
        assert!(
            again[0] - answer < 0.25 && again[1] - again[0] < 0.44,
            "{again:?}"
        );
    }
}
