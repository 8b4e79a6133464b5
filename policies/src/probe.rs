//! When to send the base layer just to learn the link again.

use offload_controller::Context;

/// Rate-limited probing: with no throughput sample for `after_s`, send the base layer, at most
/// once per `after_s`. A policy that only ran locally would never learn that the link recovered,
/// and one that probed every frame would waste a frame (and radio energy) per frame on a dead link.
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

    /// Whether the estimate is missing or stale; `Some(true)` = probe now, `Some(false)` = stale
    /// but a probe went out recently (do not trust the estimate), `None` = the estimate is fresh.
    pub fn check(&mut self, ctx: &Context<'_>) -> Option<bool> {
        let stale = ctx
            .estimates
            .throughput
            .is_none_or(|e| e.age(ctx.now) > self.after_s);
        if !stale {
            return None;
        }
        if ctx.now - self.last_probe >= self.after_s {
            self.last_probe = ctx.now;
            Some(true)
        } else {
            Some(false)
        }
    }
}
