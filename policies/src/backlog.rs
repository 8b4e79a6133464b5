//! The uplink backlog a policy plans with: a fluid queue drained at the estimated rate, capped by
//! the bytes the controller still counts in flight.

use offload_controller::{Context, Observation};

/// Fluid model of the uplink queue, fed with the agent's own sends.
///
/// The controller's `in_flight_bytes` only drops when the server's delivery report comes back,
/// a round trip plus the server time after the bytes left the link, so it over-counts the queue
/// by about one frame. Draining the sends at the estimated rate gives a tighter figure; it is
/// capped by `in_flight_bytes`, which never under-counts.
#[derive(Debug, Clone, Default)]
pub struct BacklogModel {
    queued_bits: f64,
    last_at: f64,
    rate_bps: f64,
}

impl BacklogModel {
    /// Sees the agent's observations (only its sends matter).
    pub fn observe(&mut self, now: f64, observation: &Observation) {
        if let Observation::Sent { bytes, .. } = *observation {
            self.drain(now);
            self.queued_bits += bytes as f64 * 8.0;
        }
    }

    fn drain(&mut self, now: f64) {
        if now > self.last_at {
            self.queued_bits = (self.queued_bits - self.rate_bps * (now - self.last_at)).max(0.0);
            self.last_at = now;
        }
    }

    /// The backlog (bits) ahead of a new frame at `ctx.now`, draining at `rate_bps` from now on
    /// (the mean estimate: the queue's past drain is best described by the mean, while the
    /// margin for the future belongs to the planning rate).
    pub fn bits(&mut self, ctx: &Context<'_>, rate_bps: f64) -> f64 {
        self.drain(ctx.now);
        self.rate_bps = rate_bps.max(0.0);
        self.queued_bits
            .min(ctx.estimates.in_flight_bytes as f64 * 8.0)
    }
}
