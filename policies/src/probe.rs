//! When to send the base layer just to learn the link again.

use offload_controller::{Context, Decision, Estimate, FrameOptions};

use crate::timing::local_result_at;

/// Rate-limited probing: with no throughput sample for `after_s`, send the base layer, at most
/// once per `after_s`. A policy that only ran locally would never learn that the link recovered,
/// and one that probed every frame would waste a frame (and radio energy) per frame on a dead link.
///
/// While the link is believed down, a frame whose local result would come after its deadline
/// (the device picked it up late, behind an earlier local run) is sent as a probe as well: a
/// late local result is a miss that also keeps the CPU busy and makes the device drop the next
/// frames, while the base layer misses at worst and may find the link back.
#[derive(Debug, Clone)]
pub struct Prober {
    after_s: f64,
    last_probe: f64,
}

impl Prober {
    /// Probes after `after_s` seconds without a sample.
    pub fn new(after_s: f64) -> Self {
        Prober {
            after_s: after_s.max(0.0),
            last_probe: f64::NEG_INFINITY,
        }
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
            Some(e) if e.age(ctx.now) <= self.after_s => Ok(e),
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
