//! `offload eval`: every trace × every policy × every setting, in parallel, against the oracle.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use offload_sim::harness::report::{self, ResultsJson};
use offload_sim::harness::{self, EvalInputs, PolicyEntry, Setting, plot};
use offload_sim::oracle::OracleConfig;
use offload_sim::trace::LoadOptions;

use super::common::{SimSettings, UtilitySettings, load_profile};

/// Arguments of `offload eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Trace folders, files or glob patterns (quoted). Default: the shared set `../shared/traces`
    /// next to the repository, else `traces/` in it. A trace's family is the first folder under
    /// the folder given.
    #[arg(long, num_args = 1..)]
    traces: Vec<String>,
    /// Policies: preset names or policy .toml files, plus `oracle`. Default: every preset and
    /// the oracle.
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    policies: Vec<String>,
    /// Profile file; default: the embedded measured detector profile (profiles/ssd-mobilenet-v2.toml).
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Output folder for results.csv, results.json, report.md and the plots.
    #[arg(long, default_value = "out/eval")]
    out: PathBuf,
    /// Frame rates to sweep, e.g. `15,30` [default: 30].
    #[arg(long, value_delimiter = ',')]
    fps: Vec<f64>,
    /// Deadlines to sweep (ms) [default: 200].
    #[arg(long, value_delimiter = ',')]
    deadline_ms: Vec<f64>,
    /// Round-trip propagation delays to sweep (ms) [default: 50].
    #[arg(long, value_delimiter = ',')]
    rtt_ms: Vec<f64>,
    /// Battery start levels to sweep, in [0, 1] [default: 1].
    #[arg(long, value_delimiter = ',')]
    battery_start: Vec<f64>,
    /// A TOML file with a full `SimConfig` (the options above override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Seed for frame sizes.
    #[arg(long)]
    seed: Option<u64>,
    /// Run length per trace in seconds (default: each trace's duration).
    #[arg(long)]
    duration: Option<f64>,
    /// Throughput estimator: `ewma:<half-life s>`, `harmonic:<N>` or `robust:<N>`.
    #[arg(long)]
    estimator: Option<String>,
    /// Send until the deadline and count a frame cut short as missed (see `offload sim --help`).
    #[arg(long)]
    no_partial_results: bool,
    /// Leave frames whose layers all failed to arrive missed (see `offload sim --help`).
    #[arg(long)]
    no_local_fallback: bool,
    #[command(flatten)]
    utility: UtilitySettings,
    /// States the oracle's beam keeps per frame.
    #[arg(long, default_value_t = OracleConfig::default().width)]
    oracle_beam: usize,
    /// Skip the relaxation upper bound.
    #[arg(long)]
    no_bound: bool,
    /// Leave the oracle (and the bound) out even when `--policies` is the default: measures the
    /// online policies alone.
    #[arg(long)]
    no_oracle: bool,
    /// Trace (relative name, as in results.csv) whose time series is plotted; default: the
    /// first mahimahi uplink trace, else the first trace.
    #[arg(long)]
    series_trace: Option<String>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

/// The default traces: the shared set next to the repository, else the repository's traces/.
fn default_traces() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shared = root.join("../shared/traces");
    if shared.is_dir() {
        shared.display().to_string()
    } else {
        root.join("traces").display().to_string()
    }
}

fn or_default(v: &[f64], d: Option<f64>) -> Vec<Option<f64>> {
    if v.is_empty() {
        vec![d]
    } else {
        v.iter().copied().map(Some).collect()
    }
}

/// Runs `offload eval`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(n) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("setting up the worker threads")?;
    }
    let specs = if args.traces.is_empty() {
        vec![default_traces()]
    } else {
        args.traces.clone()
    };
    let traces = harness::discover(&specs)?;
    anyhow::ensure!(!traces.is_empty(), "no trace files found in {specs:?}");
    let profile = load_profile(args.profile.as_deref())?;

    let names: Vec<String> = if args.policies.is_empty() {
        offload_policies::preset_names()
            .into_iter()
            .map(str::to_owned)
            .chain(["oracle".to_owned()])
            .collect()
    } else {
        args.policies.clone()
    };
    let with_oracle = !args.no_oracle && names.iter().any(|n| n == "oracle");
    let mut policies = Vec::new();
    for n in names.iter().filter(|n| *n != "oracle") {
        let config = offload_policies::load_preset(n)?;
        // A policy file is named by its file name, so that variants of one kind stay apart.
        let name = match Path::new(n).file_stem() {
            Some(stem) if n.ends_with(".toml") => stem.to_string_lossy().into_owned(),
            _ => config.build().name().to_owned(),
        };
        policies.push(PolicyEntry {
            name,
            build: Box::new(move || config.build()),
        });
    }
    let mut policy_names: Vec<String> = policies.iter().map(|p| p.name.clone()).collect();
    if with_oracle {
        policy_names.push("oracle".into());
    }

    let mut settings = Vec::new();
    for fps in or_default(&args.fps, None) {
        for deadline_ms in or_default(&args.deadline_ms, None) {
            for rtt_ms in or_default(&args.rtt_ms, None) {
                for battery_start in or_default(&args.battery_start, None) {
                    let s = SimSettings {
                        config: args.config.clone(),
                        fps,
                        deadline_ms,
                        rtt_ms,
                        seed: args.seed,
                        duration: args.duration,
                        battery_start,
                        cpu_load: None,
                        estimator: args.estimator.clone(),
                        no_partial_results: args.no_partial_results,
                        no_local_fallback: args.no_local_fallback,
                        utility: args.utility.clone(),
                    };
                    settings.push(Setting::new(s.to_config()?));
                }
            }
        }
    }

    let series_trace = match &args.series_trace {
        Some(name) => Some(
            traces
                .iter()
                .position(|t| &t.name == name)
                .with_context(|| format!("--series-trace {name}: not among the traces"))?,
        ),
        None => traces
            .iter()
            .position(|t| t.family.starts_with("mahimahi") && t.name.ends_with(".up"))
            .or(Some(0)),
    };
    let inputs = EvalInputs {
        traces: &traces,
        policies: &policies,
        settings: &settings,
        profile: &profile,
        oracle: with_oracle.then_some(OracleConfig {
            width: args.oracle_beam,
            ..OracleConfig::default()
        }),
        bound: with_oracle && !args.no_bound,
        load: LoadOptions::default(),
        series_trace,
        progress: true,
    };
    eprintln!(
        "{} traces × {} policies × {} settings on {} threads",
        traces.len(),
        policy_names.len(),
        settings.len(),
        rayon::current_num_threads()
    );
    let wall = Instant::now();
    let out = harness::evaluate(&inputs)?;
    let wall = wall.elapsed().as_secs_f64();

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    report::write_csv(&args.out.join("results.csv"), &out.rows)?;
    report::write_results_json(
        &args.out.join("results.json"),
        &ResultsJson {
            profile: &profile.name,
            settings: &settings,
            policies: &policy_names,
            rows: &out.rows,
            failures: &out.failures,
        },
    )?;
    let md = report::markdown(&out, &settings, &policy_names, &profile.name);
    report::write_markdown(&args.out.join("report.md"), &md)?;
    let table = report::tables(&out, &settings, &policy_names);
    let mut figures = plot::utility_by_family(&args.out, &table, &policy_names)?;
    if let Some(h) = out.latencies.first() {
        figures.extend(plot::latency_cdf(&args.out, h, &policy_names)?);
    }
    let shown: Vec<&str> = ["deadline-aware", "mpc", "fixed-k4", "oracle"]
        .into_iter()
        .filter(|p| policy_names.iter().any(|n| n == p))
        .collect();
    figures.extend(plot::time_series(&args.out, &out.series, &shown)?);
    if !plot::register_font() {
        eprintln!(
            "{} not found: PNG figures skipped (SVG written)",
            plot::DEJAVU
        );
    }

    let t = out.timing;
    println!(
        "{} rows ({} traces unreadable) in {:.1} s wall on {} threads",
        out.rows.len(),
        out.failures.len(),
        wall,
        rayon::current_num_threads()
    );
    println!(
        "compute: online policies {:.1} s for {} frames ({:.2} M frames/s per core), oracle {:.1} s, bound {:.1} s",
        t.online_s,
        t.online_frames,
        t.online_frames as f64 / t.online_s.max(1e-9) / 1e6,
        t.oracle_s,
        t.bound_s
    );
    println!(
        "wrote {}/results.csv, results.json, report.md and {} figures",
        args.out.display(),
        figures.len()
    );
    Ok(())
}
