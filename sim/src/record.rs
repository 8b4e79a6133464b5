//! The per-frame record (one CSV row) and the run summary, shared by the simulator and the agent.

use serde::{Deserialize, Serialize};

/// What happened to one frame. Times are seconds from the start of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameRecord {
    /// Frame number.
    pub frame: u64,
    /// Capture time.
    pub captured_at: f64,
    /// `local`, `offload:<k>`, or `skipped` (the device was still busy when a newer frame came).
    pub decision: String,
    /// Layers the server decoded: the decision's `k`, or with partial results the `j < k` that
    /// arrived in time (the decision still reads `offload:<k>`); 0 for local or skipped.
    pub layers: u32,
    /// Payload bytes of those layers (a frame cut short: the `j`-layer prefix's size).
    pub bytes: u64,
    /// Payload bytes that crossed the uplink.
    pub bytes_sent: u64,
    /// When the controller decided (after the task encoder).
    pub decided_at: f64,
    /// When the result reached the device, if it did.
    pub result_at: Option<f64>,
    /// Capture-to-result latency, if a result arrived.
    pub latency: Option<f64>,
    /// Whether the result arrived by the deadline.
    pub met_deadline: bool,
    /// Accuracy delivered: the option's accuracy if in time, else 0.
    pub accuracy: f64,
    /// Device energy accounted to this frame: compute plus radio (J).
    pub energy_j: f64,
    /// Battery level after the frame.
    pub battery: f64,
    /// The controller's throughput estimate at decision time (bit/s; 0 before any sample).
    pub estimate_bps: f64,
    /// The trace's true capacity at decision time (bit/s): for analysis, never shown to policies.
    pub capacity_bps: f64,
    /// The frame's utility.
    pub utility: f64,
}

impl FrameRecord {
    /// Layers the decision asked for: `k` of `offload:<k>`, 0 for local or skipped. `layers`
    /// holds fewer when a frame was cut short; replaying a run (the oracle's seeds) and plotting
    /// the choices need the decision itself.
    pub fn decided_layers(&self) -> u32 {
        self.decision
            .strip_prefix("offload:")
            .and_then(|k| k.parse().ok())
            .unwrap_or(0)
    }
}

/// Aggregate results of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Summary {
    /// Frames captured.
    pub frames: u64,
    /// Mean utility per frame.
    pub utility: f64,
    /// Mean accuracy delivered per frame (0 for misses).
    pub accuracy: f64,
    /// Fraction of frames whose result missed the deadline (skipped frames included).
    pub deadline_miss_rate: f64,
    /// Fraction of frames skipped because the device was busy.
    pub skipped_rate: f64,
    /// Median capture-to-result latency over frames with a result (s).
    pub latency_p50: f64,
    /// 95th percentile of that latency (s).
    pub latency_p95: f64,
    /// Mean device energy per frame (J).
    pub energy_per_frame_j: f64,
    /// Mean payload bytes sent per frame.
    pub bytes_per_frame: f64,
    /// Fraction of frames offloaded.
    pub offload_fraction: f64,
    /// Mean layers sent per offloaded frame.
    pub mean_layers: f64,
    /// Battery level at the end.
    pub battery_end: f64,
}

/// Accumulates records into a [`Summary`] without keeping them.
#[derive(Debug, Clone, Default)]
pub struct SummaryBuilder {
    frames: u64,
    utility: f64,
    accuracy: f64,
    missed: u64,
    skipped: u64,
    latencies: Vec<f64>,
    energy: f64,
    bytes: u64,
    offloaded: u64,
    layers: u64,
    battery_end: f64,
}

impl SummaryBuilder {
    /// A builder with room for `frames` latencies, so that a run of known length never
    /// reallocates (and copies) its latency list while it runs.
    pub fn with_capacity(frames: usize) -> Self {
        SummaryBuilder {
            latencies: Vec::with_capacity(frames),
            ..SummaryBuilder::default()
        }
    }

    /// Adds one frame.
    pub fn add(&mut self, r: &FrameRecord) {
        self.frames += 1;
        self.utility += r.utility;
        self.accuracy += r.accuracy;
        self.missed += u64::from(!r.met_deadline);
        self.skipped += u64::from(r.decision == "skipped");
        if let Some(l) = r.latency {
            self.latencies.push(l);
        }
        self.energy += r.energy_j;
        self.bytes += r.bytes_sent;
        if r.layers > 0 {
            self.offloaded += 1;
            self.layers += u64::from(r.layers);
        }
        self.battery_end = r.battery;
    }

    /// The summary of the frames added.
    pub fn finish(mut self) -> Summary {
        let n = self.frames.max(1) as f64;
        let latency_p50 = select_percentile(&mut self.latencies, 0.50);
        let latency_p95 = select_percentile(&mut self.latencies, 0.95);
        Summary {
            frames: self.frames,
            utility: self.utility / n,
            accuracy: self.accuracy / n,
            deadline_miss_rate: self.missed as f64 / n,
            skipped_rate: self.skipped as f64 / n,
            latency_p50,
            latency_p95,
            energy_per_frame_j: self.energy / n,
            bytes_per_frame: self.bytes as f64 / n,
            offload_fraction: self.offloaded as f64 / n,
            mean_layers: if self.offloaded == 0 {
                0.0
            } else {
                self.layers as f64 / self.offloaded as f64
            },
            battery_end: self.battery_end,
        }
    }
}

/// Nearest-rank percentile of unsorted `values` (0 when empty), the same value as
/// [`percentile`] gives on them sorted; reorders `values` (a selection, not a sort).
pub fn select_percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let rank = (p.clamp(0.0, 1.0) * values.len() as f64).ceil() as usize;
    let index = rank.saturating_sub(1).min(values.len() - 1);
    *values.select_nth_unstable_by(index, f64::total_cmp).1
}

/// Nearest-rank percentile of sorted values (0 when empty).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.saturating_sub(1).min(sorted.len() - 1)]
}
