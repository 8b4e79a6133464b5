//! `offload trace`: inspect real traces, fit the Markov model, generate synthetic traces.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use offload_sim::trace::generate::{self, FitConfig, MarkovModel};
use offload_sim::trace::{GapFill, LoadOptions, RateColumn, SeriesSelect, Trace, TraceFormat};

/// Arguments of `offload trace`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print format, series, duration and capacity statistics of trace files.
    Info {
        /// Trace files in any supported format.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Fit the Markov-modulated model to trace files and print its parameters.
    Fit {
        /// Trace files of one family.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Fit every series of a multi-series file separately (no transitions across runs).
        #[arg(long)]
        each_series: bool,
        /// Number of capacity levels.
        #[arg(long, default_value_t = 4)]
        states: usize,
        /// State step (s).
        #[arg(long, default_value_t = 1.0)]
        window: f64,
        /// Within-state sample (s).
        #[arg(long, default_value_t = 0.1)]
        sample: f64,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Write a synthetic trace in the `time_s-mbps` format.
    Gen {
        /// Which generator.
        #[arg(long, value_enum)]
        model: Model,
        /// Random seed (the `lte` model; `step` and `outage` are deterministic).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Length of the trace (s).
        #[arg(long)]
        duration: f64,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// `lte`: factor on every state's mean rate (keeps the dynamics, moves the level).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// `step`: capacity before the step (Mbit/s).
        #[arg(long, default_value_t = 20.0)]
        from_mbps: f64,
        /// `step`: capacity after the step (Mbit/s).
        #[arg(long, default_value_t = 2.0)]
        to_mbps: f64,
        /// `outage`: capacity outside the outage (Mbit/s).
        #[arg(long, default_value_t = 10.0)]
        rate_mbps: f64,
        /// `step`/`outage`: when the step or the outage starts (s); default half the duration.
        #[arg(long)]
        at: Option<f64>,
        /// `outage`: how long the capacity is 0 (s).
        #[arg(long, default_value_t = 5.0)]
        length: f64,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Model {
    /// Markov-modulated LTE uplink while walking (fitted to NUWiNS walking/lte).
    Lte,
    /// A capacity step at `--at`.
    Step,
    /// An outage of `--length` seconds at `--at`.
    Outage,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Gaps {
    /// Missing seconds are left out (as MANIFEST.csv).
    Skip,
    /// The previous row's rate holds.
    Hold,
    /// Missing seconds have rate 0.
    Zero,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Column {
    /// `DL_bitrate`.
    Dl,
    /// `UL_bitrate`.
    Ul,
}

/// How files are read (see `LoadOptions`).
#[derive(clap::Args, Debug)]
struct ReadArgs {
    /// Format id (default: detect from content): mahimahi, time_s-mbps, gnettrack-csv,
    /// nuwins-list, oboe-chunks, time_s-bytes_per_s-csv.
    #[arg(long)]
    format: Option<TraceFormat>,
    /// Series of a multi-series file: `all` (concatenated) or a 0-based index.
    #[arg(long, default_value = "all")]
    series: SeriesSelect,
    /// Factor on every rate (8 reads Puffer files as MB/s).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// mahimahi averaging window (s).
    #[arg(long, default_value_t = 0.1)]
    window_s: f64,
    /// G-NetTrack missing seconds.
    #[arg(long, value_enum, default_value_t = Gaps::Skip)]
    gaps: Gaps,
    /// G-NetTrack rate column.
    #[arg(long, value_enum, default_value_t = Column::Dl)]
    column: Column,
}

impl ReadArgs {
    fn options(&self) -> LoadOptions {
        LoadOptions {
            format: self.format,
            series: self.series,
            scale: self.scale,
            mahimahi_window_s: self.window_s,
            gaps: match self.gaps {
                Gaps::Skip => GapFill::Skip,
                Gaps::Hold => GapFill::Hold,
                Gaps::Zero => GapFill::Zero,
            },
            column: match self.column {
                Column::Dl => RateColumn::Downlink,
                Column::Ul => RateColumn::Uplink,
            },
            ..LoadOptions::default()
        }
    }
}

/// Runs `offload trace`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Info { files, read } => info(&files, &read.options()),
        Command::Fit {
            files,
            each_series,
            states,
            window,
            sample,
            read,
        } => fit(
            &files,
            each_series,
            &FitConfig {
                states,
                window_s: window,
                sample_s: sample,
            },
            &read.options(),
        ),
        Command::Gen {
            model,
            seed,
            duration,
            out,
            scale,
            from_mbps,
            to_mbps,
            rate_mbps,
            at,
            length,
        } => {
            let name = out.file_name().map_or_else(
                || "generated".to_owned(),
                |n| n.to_string_lossy().into_owned(),
            );
            let at = at.unwrap_or(duration / 2.0);
            let trace = match model {
                Model::Lte => {
                    anyhow::ensure!(scale.is_finite() && scale > 0.0, "--scale must be > 0");
                    MarkovModel::lte_walk()
                        .scaled(scale)
                        .generate(name, seed, duration)?
                }
                Model::Step => generate::step(name, from_mbps * 1e6, to_mbps * 1e6, at, duration)?,
                Model::Outage => generate::outage(name, rate_mbps * 1e6, at, length, duration)?,
            };
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            std::fs::write(&out, trace.to_time_s_mbps())
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "wrote {}: {:.1} s, mean {:.3} Mbit/s, {} segments",
                out.display(),
                trace.duration(),
                trace.mean_bps() / 1e6,
                trace.len()
            );
            Ok(())
        }
    }
}

fn info(files: &[PathBuf], opts: &LoadOptions) -> anyhow::Result<()> {
    println!(
        "{:<22} {:>7} {:>7} {:>10} {:>9} {:>9} {:>9} {:>6}  file",
        "format", "series", "dir", "duration_s", "mean", "median", "p10", "zero%"
    );
    let mut failed = 0;
    for f in files {
        match Trace::load(f, opts) {
            Ok(t) => println!(
                "{:<22} {:>7} {:>7} {:>10.1} {:>9.3} {:>9.3} {:>9.3} {:>6.1}  {}",
                t.format().map_or("-", TraceFormat::id),
                format!("{}/{}", t.series(), t.series_in_file()),
                t.direction().to_string(),
                t.duration(),
                t.mean_bps() / 1e6,
                t.percentile_bps(50.0) / 1e6,
                t.percentile_bps(10.0) / 1e6,
                t.zero_fraction() * 100.0,
                f.display()
            ),
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    println!("(capacities in Mbit/s, time-weighted)");
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} files could not be read",
        files.len()
    );
    Ok(())
}

fn load_series(path: &Path, each: bool, opts: &LoadOptions) -> anyhow::Result<Vec<Trace>> {
    let all = Trace::load(path, opts)?;
    if !each || all.series_in_file() == 1 {
        return Ok(vec![all]);
    }
    (0..all.series_in_file())
        .map(|i| {
            let o = LoadOptions {
                series: SeriesSelect::Index(i),
                ..opts.clone()
            };
            Ok(Trace::load(path, &o)?)
        })
        .collect()
}

fn fit(files: &[PathBuf], each: bool, cfg: &FitConfig, opts: &LoadOptions) -> anyhow::Result<()> {
    let mut traces = Vec::new();
    for f in files {
        traces.extend(load_series(f, each, opts)?);
    }
    let seconds: f64 = traces.iter().map(Trace::duration).sum();
    let m = MarkovModel::fit(&traces, cfg)?;
    println!(
        "// fitted to {} series, {:.0} s, {} files; long-run mean {:.3} Mbit/s",
        traces.len(),
        seconds,
        files.len(),
        m.mean_bps() / 1e6
    );
    println!(
        "window_s: {:?},\nsample_s: {:?},\nstates: &[",
        m.window_s, m.sample_s
    );
    for s in &m.states {
        println!(
            "    ({:.1}, {:.4}, {:.4}, {:.4}),",
            s.mean_bps, s.log_sd, s.zero_fraction, s.occupancy
        );
    }
    println!("],\ntransition: &[");
    for row in &m.transition {
        let cells: Vec<String> = row.iter().map(|p| format!("{p:.4}")).collect();
        println!("    &[{}],", cells.join(", "));
    }
    println!("],");
    Ok(())
}
