//! Running the evaluation: one job per trace and setting, all policies, the oracle and the bound.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use offload_controller::{Policy, Profile};
use rayon::prelude::*;
use serde::Serialize;

use super::discover::TraceFile;
use crate::bound::upper_bound;
use crate::frames::FrameTable;
use crate::oracle::{OracleConfig, Replay, decision_action, plan_with};
use crate::record::Summary;
use crate::simulator::{RunSetup, SimConfig, simulate_records};
use crate::trace::{LoadOptions, Trace, TraceError};

/// A policy to evaluate: its report name and how to build a fresh instance for each run.
pub struct PolicyEntry {
    /// Name in reports.
    pub name: String,
    /// Builds the policy.
    pub build: Box<dyn Fn() -> Box<dyn Policy> + Send + Sync>,
}

impl std::fmt::Debug for PolicyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEntry")
            .field("name", &self.name)
            .finish()
    }
}

/// One point of the settings sweep.
#[derive(Debug, Clone, Serialize)]
pub struct Setting {
    /// Frames per second.
    pub fps: f64,
    /// Deadline (ms).
    pub deadline_ms: f64,
    /// Round-trip propagation delay (ms).
    pub rtt_ms: f64,
    /// Battery level at the start.
    pub battery_start: f64,
    /// The full configuration.
    #[serde(skip)]
    pub config: SimConfig,
}

impl Setting {
    /// The setting of `config`.
    pub fn new(config: SimConfig) -> Self {
        Setting {
            fps: config.fps,
            deadline_ms: config.deadline_s * 1e3,
            rtt_ms: config.link.rtt_s * 1e3,
            battery_start: config.battery.start_level,
            config,
        }
    }

    /// A short label, e.g. `30fps-200ms-rtt50ms-bat1`.
    pub fn label(&self) -> String {
        format!(
            "{}fps-{}ms-rtt{}ms-bat{}",
            self.fps, self.deadline_ms, self.rtt_ms, self.battery_start
        )
    }
}

/// What to evaluate.
pub struct EvalInputs<'a> {
    /// Trace files.
    pub traces: &'a [TraceFile],
    /// Online policies.
    pub policies: &'a [PolicyEntry],
    /// Settings.
    pub settings: &'a [Setting],
    /// The model profile.
    pub profile: &'a Profile,
    /// The oracle's beam, or `None` for no oracle.
    pub oracle: Option<OracleConfig>,
    /// Whether to compute the relaxation upper bound.
    pub bound: bool,
    /// How trace files are read.
    pub load: LoadOptions,
    /// Index into `traces` of the trace whose time series is recorded.
    pub series_trace: Option<usize>,
    /// Show a progress bar.
    pub progress: bool,
}

/// One row of the results: one trace × policy × setting.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Family (first folder under the traces root).
    pub family: String,
    /// Trace file, relative to its root.
    pub trace: String,
    /// What the trace measures: `up`, `down` or `unknown`.
    pub direction: String,
    /// Policy name (`oracle` for the planner).
    pub policy: String,
    /// Frames per second.
    pub fps: f64,
    /// Deadline (ms).
    pub deadline_ms: f64,
    /// Round-trip propagation delay (ms).
    pub rtt_ms: f64,
    /// Battery level at the start.
    pub battery_start: f64,
    /// Frames simulated.
    pub frames: u64,
    /// Mean utility per frame.
    pub utility: f64,
    /// The oracle's mean utility on the same trace and setting (NaN without an oracle).
    pub oracle_utility: f64,
    /// The relaxation's upper bound on mean utility (NaN when not computed).
    pub upper_bound: f64,
    /// Mean accuracy delivered.
    pub accuracy: f64,
    /// Fraction of frames missing the deadline (skipped included).
    pub deadline_miss_rate: f64,
    /// Fraction of frames skipped.
    pub skipped_rate: f64,
    /// Median latency (ms).
    pub latency_p50_ms: f64,
    /// 95th percentile latency (ms).
    pub latency_p95_ms: f64,
    /// Energy per frame (J).
    pub energy_per_frame_j: f64,
    /// Payload bytes sent per frame.
    pub bytes_per_frame: f64,
    /// Fraction of frames offloaded.
    pub offload_fraction: f64,
    /// Mean layers per offloaded frame.
    pub mean_layers: f64,
    /// Battery level at the end.
    pub battery_end: f64,
}

/// Latencies of results, in 1 ms bins up to 1 s (and one overflow bin), for CDFs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyHistogram {
    /// Counts per millisecond bin; the last bin holds everything from 1 s on.
    pub bins: Vec<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            bins: vec![0; 1001],
        }
    }
}

impl LatencyHistogram {
    /// Adds a latency (s).
    pub fn add(&mut self, latency_s: f64) {
        // `as` truncates, which is `floor` on the clamped (non-negative) value, and sends NaN
        // to bin 0 as before.
        let bin = (latency_s * 1e3).clamp(0.0, 1000.0) as usize;
        self.bins[bin] += 1;
    }

    /// Adds another histogram.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (a, b) in self.bins.iter_mut().zip(&other.bins) {
            *a += b;
        }
    }
}

/// One frame of the recorded time series.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SeriesPoint {
    /// Capture time (s from the start of the run).
    pub t: f64,
    /// The trace's capacity (bit/s).
    pub capacity_bps: f64,
    /// The controller's estimate (bit/s).
    pub estimate_bps: f64,
    /// Layers the policy chose to send (0 = local or skipped).
    pub layers: u32,
}

/// A time series of one trace with one policy.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// Trace name.
    pub trace: String,
    /// Policy name.
    pub policy: String,
    /// Frames.
    pub points: Vec<SeriesPoint>,
}

/// Compute time spent, summed over threads (s), and frames simulated.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    /// Online policies' runs.
    pub online_s: f64,
    /// Frames simulated by online policies.
    pub online_frames: u64,
    /// Oracle planning and replay.
    pub oracle_s: f64,
    /// Relaxation bound.
    pub bound_s: f64,
}

/// Everything the evaluation produced.
#[derive(Debug, Clone)]
pub struct EvalOutput {
    /// One row per trace × policy × setting, in input order (trace, setting, policy).
    pub rows: Vec<Row>,
    /// Latency histograms per setting (outer) and policy (inner; the oracle last).
    pub latencies: Vec<Vec<LatencyHistogram>>,
    /// Time series of `series_trace` with every policy, first setting.
    pub series: Vec<Series>,
    /// Traces that could not be read, with the reason.
    pub failures: Vec<(String, String)>,
    /// Where the time went (not written to the results: it varies between runs).
    pub timing: Timing,
}

/// Why the evaluation failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The oracle's plan did not replay to the utility it planned: a simulator bug.
    #[error("{trace}: the oracle's plan replays to {replayed} but was planned at {planned}")]
    OracleMismatch {
        /// Trace.
        trace: String,
        /// Planned total utility.
        planned: f64,
        /// Replayed total utility.
        replayed: f64,
    },
}

/// One online policy's run on one trace.
struct PolicyRun {
    summary: Summary,
    hist: LatencyHistogram,
    schedule: Vec<u8>,
    points: Vec<SeriesPoint>,
}

struct JobOut {
    rows: Vec<Row>,
    latencies: Vec<LatencyHistogram>,
    series: Vec<Series>,
}

fn row(file: &TraceFile, trace: &Trace, policy: &str, s: &Setting, m: &Summary) -> Row {
    Row {
        family: file.family.clone(),
        trace: file.name.clone(),
        direction: trace.direction().to_string(),
        policy: policy.to_owned(),
        fps: s.fps,
        deadline_ms: s.deadline_ms,
        rtt_ms: s.rtt_ms,
        battery_start: s.battery_start,
        frames: m.frames,
        utility: m.utility,
        oracle_utility: f64::NAN,
        upper_bound: f64::NAN,
        accuracy: m.accuracy,
        deadline_miss_rate: m.deadline_miss_rate,
        skipped_rate: m.skipped_rate,
        latency_p50_ms: m.latency_p50 * 1e3,
        latency_p95_ms: m.latency_p95 * 1e3,
        energy_per_frame_j: m.energy_per_frame_j,
        bytes_per_frame: m.bytes_per_frame,
        offload_fraction: m.offload_fraction,
        mean_layers: m.mean_layers,
        battery_end: m.battery_end,
    }
}

/// Longest stretch of a recorded time series (s).
const SERIES_S: f64 = 300.0;

struct Clock<'a> {
    online: &'a AtomicU64,
    frames: &'a AtomicU64,
    oracle: &'a AtomicU64,
    bound: &'a AtomicU64,
}

fn job(
    inputs: &EvalInputs<'_>,
    ti: usize,
    si: usize,
    clock: &Clock<'_>,
) -> Result<Result<JobOut, (String, String)>, EvalError> {
    let file = &inputs.traces[ti];
    let setting = &inputs.settings[si];
    let trace = match Trace::load(&file.path, &inputs.load) {
        Ok(t) => t,
        Err(e) => return Ok(Err((file.name.clone(), error_text(&e)))),
    };
    let config = &setting.config;
    let record_series = inputs.series_trace == Some(ti) && si == 0;
    let keep = inputs.oracle.is_some();
    // Sizes are drawn once per trace and setting and shared by every policy and the oracle.
    let table = FrameTable::new(
        inputs.profile,
        config.seed,
        RunSetup::new(&trace, inputs.profile, config).n_frames,
    );
    // The policies of one trace run in parallel too, so a long trace does not keep one thread
    // busy alone at the end of the sweep; results come back in policy order.
    let runs: Vec<PolicyRun> = inputs
        .policies
        .par_iter()
        .map(|p| {
            let t = Instant::now();
            let mut hist = LatencyHistogram::default();
            let mut schedule = Vec::new();
            let mut points = Vec::new();
            if keep {
                schedule.reserve_exact(table.len());
            }
            let summary = simulate_records(
                &trace,
                inputs.profile,
                table.cursor(),
                (p.build)(),
                config,
                record_series,
                |r| {
                    if let Some(l) = r.latency {
                        hist.add(l);
                    }
                    if keep {
                        // Skipped frames do not parse: action 0, as the oracle counts them.
                        schedule.push(r.decision.parse().map_or(0, decision_action));
                    }
                    if record_series && r.captured_at < SERIES_S {
                        points.push(SeriesPoint {
                            t: r.captured_at,
                            capacity_bps: r.capacity_bps,
                            estimate_bps: r.estimate_bps,
                            layers: r.decided_layers(),
                        });
                    }
                },
            );
            clock
                .online
                .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
            clock.frames.fetch_add(summary.frames, Ordering::Relaxed);
            PolicyRun {
                summary,
                hist,
                schedule,
                points,
            }
        })
        .collect();
    let mut rows = Vec::with_capacity(inputs.policies.len() + 1);
    let mut latencies = Vec::with_capacity(inputs.policies.len() + 1);
    let mut schedules: Vec<Vec<u8>> = Vec::new();
    let mut series = Vec::new();
    for (p, run) in inputs.policies.iter().zip(runs) {
        rows.push(row(file, &trace, &p.name, setting, &run.summary));
        latencies.push(run.hist);
        if keep {
            schedules.push(run.schedule);
        }
        if record_series {
            series.push(Series {
                trace: file.name.clone(),
                policy: p.name.clone(),
                points: run.points,
            });
        }
    }
    if let Some(oracle) = inputs.oracle {
        let t = Instant::now();
        let seeds: Vec<&[u8]> = schedules.iter().map(Vec::as_slice).collect();
        let plan = plan_with(
            &trace,
            inputs.profile,
            table.cursor(),
            config,
            &oracle,
            &seeds,
        );
        let mut hist = LatencyHistogram::default();
        let mut points = Vec::new();
        let mut replayed = 0.0;
        let summary = simulate_records(
            &trace,
            inputs.profile,
            table.cursor(),
            Box::new(Replay::new(plan.schedule)),
            config,
            record_series,
            |r| {
                replayed += r.utility;
                if let Some(l) = r.latency {
                    hist.add(l);
                }
                if record_series && r.captured_at < SERIES_S {
                    points.push(SeriesPoint {
                        t: r.captured_at,
                        capacity_bps: r.capacity_bps,
                        estimate_bps: r.estimate_bps,
                        layers: r.decided_layers(),
                    });
                }
            },
        );
        // Equal but for rounding: the plan settles a local fallback's frame as a miss first and
        // adds the difference when the fallback ends, while the replay adds each frame's final
        // utility once (a few ulps per fallback).
        let tolerance = 1e-9 * (1.0 + replayed.abs().max(plan.total_utility.abs()));
        if (replayed - plan.total_utility).abs() > tolerance {
            return Err(EvalError::OracleMismatch {
                trace: file.name.clone(),
                planned: plan.total_utility,
                replayed,
            });
        }
        clock
            .oracle
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        for r in &mut rows {
            r.oracle_utility = summary.utility;
        }
        rows.push(Row {
            oracle_utility: summary.utility,
            ..row(file, &trace, "oracle", setting, &summary)
        });
        latencies.push(hist);
        if record_series {
            series.push(Series {
                trace: file.name.clone(),
                policy: "oracle".into(),
                points,
            });
        }
    }
    if inputs.bound {
        let t = Instant::now();
        let frames = rows.first().map_or(0, |r| r.frames).max(1) as f64;
        let ub = upper_bound(&trace, inputs.profile, config) / frames;
        clock
            .bound
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        for r in &mut rows {
            r.upper_bound = ub;
        }
    }
    Ok(Ok(JobOut {
        rows,
        latencies,
        series,
    }))
}

fn error_text(e: &TraceError) -> String {
    e.to_string()
}

/// Runs the evaluation in parallel on rayon's pool.
pub fn evaluate(inputs: &EvalInputs<'_>) -> Result<EvalOutput, EvalError> {
    let jobs: Vec<(usize, usize)> = (0..inputs.traces.len())
        .flat_map(|t| (0..inputs.settings.len()).map(move |s| (t, s)))
        .collect();
    let bar = if inputs.progress {
        let b = ProgressBar::new(jobs.len() as u64);
        if let Ok(style) = ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} trace×setting jobs ({eta} left)",
        ) {
            b.set_style(style.progress_chars("=> "));
        }
        b
    } else {
        ProgressBar::hidden()
    };
    let (online, frames, oracle, bound) = (
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    );
    let clock = Clock {
        online: &online,
        frames: &frames,
        oracle: &oracle,
        bound: &bound,
    };
    // Longest traces first (file size stands for length), so that no long job starts last
    // and runs alone; the results are put back in input order.
    let mut by_size: Vec<usize> = (0..jobs.len()).collect();
    let sizes: Vec<u64> = inputs
        .traces
        .iter()
        .map(|t| std::fs::metadata(&t.path).map_or(0, |m| m.len()))
        .collect();
    by_size.sort_by_key(|&j| std::cmp::Reverse(sizes[jobs[j].0]));
    let mut indexed: Vec<(usize, _)> = by_size
        .par_iter()
        .map(|&j| {
            let (t, s) = jobs[j];
            let r = job(inputs, t, s, &clock);
            bar.inc(1);
            (j, r.map(|ok| (s, ok)))
        })
        .collect();
    indexed.sort_by_key(|(j, _)| *j);
    let results = indexed.into_iter().map(|(_, r)| r);
    bar.finish_and_clear();
    let n_policies = inputs.policies.len() + usize::from(inputs.oracle.is_some());
    let mut out = EvalOutput {
        rows: Vec::new(),
        latencies: vec![vec![LatencyHistogram::default(); n_policies]; inputs.settings.len()],
        series: Vec::new(),
        failures: Vec::new(),
        timing: Timing::default(),
    };
    for r in results {
        match r? {
            (s, Ok(job)) => {
                out.rows.extend(job.rows);
                for (acc, h) in out.latencies[s].iter_mut().zip(&job.latencies) {
                    acc.merge(h);
                }
                out.series.extend(job.series);
            }
            (_, Err(failure)) => {
                if !out.failures.contains(&failure) {
                    out.failures.push(failure);
                }
            }
        }
    }
    out.timing = Timing {
        online_s: online.into_inner() as f64 * 1e-9,
        online_frames: frames.into_inner(),
        oracle_s: oracle.into_inner() as f64 * 1e-9,
        bound_s: bound.into_inner() as f64 * 1e-9,
    };
    Ok(out)
}
