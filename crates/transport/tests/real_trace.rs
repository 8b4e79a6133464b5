//! The emulator replaying a real uplink trace from ../shared/traces (mahimahi, T-Mobile LTE).

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::saturate::saturate;
use offload_sim::trace::{LoadOptions, Trace};
use offload_transport::emulator::CapacitySchedule;

/// The simulator's trace as the emulator's schedule (the CLI uses the same adapter).
struct TraceSchedule(Trace);

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_lte_uplink_trace_is_reproduced_within_5_percent() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/traces/mahimahi-cellular/TMobile-LTE-short.up");
    let trace = Trace::load(&path, &LoadOptions::default())
        .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
    // The first four seconds carry 3.5 to 4.3 Mbit/s; 8 packets per 5 ms is 15 Mbit/s.
    let schedule = Arc::new(TraceSchedule(trace));
    for (w, (delivered, capacity)) in saturate(schedule, 4, 8).await.into_iter().enumerate() {
        let ratio = delivered / capacity;
        println!("window {w}: {delivered} B delivered, {capacity} B capacity, ratio {ratio:.4}");
        assert!(capacity > 0.0);
        assert!((ratio - 1.0).abs() <= 0.05, "window {w}: ratio {ratio:.4}");
    }
}
