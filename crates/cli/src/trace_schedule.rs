//! A bandwidth trace as the link emulator's capacity schedule.

use offload_sim::trace::Trace;
use offload_transport::emulator::CapacitySchedule;

/// Replays a [`Trace`] (any format the trace readers accept) as uplink or downlink capacity;
/// like the trace, it wraps around at its end.
#[derive(Debug, Clone)]
pub struct TraceSchedule(pub Trace);

impl CapacitySchedule for TraceSchedule {
    fn capacity_at(&self, t: f64) -> f64 {
        self.0.capacity_at(t)
    }

    fn bits_between(&self, t0: f64, t1: f64) -> f64 {
        self.0.bits_between(t0, t1)
    }

    fn transfer_end(&self, start: f64, bits: f64) -> Option<f64> {
        self.0.transfer_end(start, bits)
    }
}
