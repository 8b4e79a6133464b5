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
/// transfer at the estimated rate, the round trip and the server time, and `slack_s` more has
/// passed. In a blockage or an on/off outage this notices the dead link after a frame's
/// expected report time plus the slack, instead of after `after_s` without any sample (which
/// has to exceed the normal report delay of a busy link).
#[derive(Debug, Clone)]
pub struct Prober {
    after_s: f64,
    last_probe: f64,
    stall_slack_s: Option<f64>,
    /// Frames sent and not yet reported: `(frame, sent at, bytes)`, oldest first.
    unreported: VecDeque<(u64, f64, u64)>,
}

/// Most unreported frames tracked: bounds memory if reports never come.
const MAX_UNREPORTED: usize = 64;

impl Prober {
    /// Probes after `after_s` seconds without a sample.
    pub fn new(after_s: f64) -> Self {
        Prober {
            after_s: after_s.max(0.0),
            last_probe: f64::NEG_INFINITY,
            stall_slack_s: None,
            unreported: VecDeque::new(),
        }
    }

    /// Also treats the link as down when the oldest unreported frame is `slack_s` past its
    /// expected report time (`None`: only after `after_s` without a sample).
    pub fn with_stall_detection(mut self, slack_s: Option<f64>) -> Self {
        self.stall_slack_s = slack_s.map(|s| s.max(0.0));
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
            Observation::Delivered { frame, .. } | Observation::Abandoned { frame, .. } => {
                if let Some(at) = self.unreported.iter().position(|&(f, ..)| f == frame) {
                    self.unreported.remove(at);
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
        let expected = sent_at
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
        match ctx.estimates.throughput {
            Some(e) if e.age(ctx.now) <= self.after_s && !self.stalled(&e, frame, ctx) => Ok(e),
            _ if ctx.now - self.last_probe >= self.after_s
                || local_result_at(ctx, frame) > frame.deadline =>
            {
                self.last_probe = ctx.now;
                Err(Decision::Offload { layers: 1 })
            }
            _ => Err(Decision::Local),
        }
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
        let estimates = Estimates {
            throughput: Some(Estimate {
                bps: 1e6,
                std_bps: 0.0,
                samples: 10,
                last_sample_at: 1.0,
            }),
            ..Estimates::default()
        };
        let (device, utility, radio, radio_state) = (
            DeviceState::default(),
            Utility::default(),
            RadioModel::LTE,
            RadioState::default(),
        );
        let ctx = Context {
            now,
            estimates: &estimates,
            device: &device,
            utility: &utility,
            radio: &radio,
            radio_state: &radio_state,
            frame_interval: 1.0 / 30.0,
            default_rtt: 0.05,
            partial_results: true,
        };
        prober.fresh_estimate(&frame(now), &ctx)
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
}
