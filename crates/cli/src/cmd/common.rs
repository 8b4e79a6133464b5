//! Pieces shared by several subcommands: simulation settings, default inputs.

use std::path::{Path, PathBuf};

use anyhow::Context;
use offload_controller::{EstimatorConfig, Profile};
use offload_sim::SimConfig;
use offload_sim::trace::{LoadOptions, Trace};

/// The default profile of `offload eval` and `offload sim`: the measured split detector
/// (`profiles/ssd-mobilenet-v2.toml`, written by `offload report detector`), embedded so the
/// main job runs anywhere. `profiles/illustrative-detector.toml` is the hand-written one the main
/// table of docs/results/policies.md uses.
pub const DEFAULT_PROFILE: &str = include_str!("../../../../profiles/ssd-mobilenet-v2.toml");

/// Loads `path`, or the embedded default profile.
pub fn load_profile(path: Option<&Path>) -> anyhow::Result<Profile> {
    Ok(match path {
        Some(p) => Profile::load(p)?,
        None => Profile::parse(DEFAULT_PROFILE, Path::new("profiles/ssd-mobilenet-v2.toml"))?,
    })
}

/// The generated trace used when none is given (`traces/generated/lte-walk-x0.1-seed4.tsv`:
/// five minutes of the LTE-walk model scaled to a mean of 4.7 Mbit/s, where the offloading
/// choice is contested), embedded so the main job runs without `../shared`.
pub const DEFAULT_TRACE: &str =
    include_str!("../../../../traces/generated/lte-walk-x0.1-seed4.tsv");

/// Parses the embedded default trace.
pub fn default_trace() -> anyhow::Result<Trace> {
    Trace::parse(
        DEFAULT_TRACE,
        "lte-walk-x0.1-seed4.tsv",
        &LoadOptions::default(),
    )
    .context("parsing the embedded default trace")
}

/// `trace` with every capacity multiplied by `factor` (> 0), renamed `<name>x<factor>`.
pub fn scale_trace(trace: Trace, factor: f64) -> anyhow::Result<Trace> {
    anyhow::ensure!(
        factor > 0.0 && factor.is_finite(),
        "a trace scale must be positive, got {factor}"
    );
    if factor == 1.0 {
        return Ok(trace);
    }
    let segments: Vec<(f64, f64)> = trace
        .segments()
        .map(|s| (s.duration, s.bps * factor))
        .collect();
    Ok(Trace::from_segments(
        format!("{}x{factor}", trace.name()),
        &segments,
    )?)
}

/// Settings of a simulated run, as command-line options.
#[derive(clap::Args, Debug, Clone)]
pub struct SimSettings {
    /// A TOML file with a full `SimConfig` (options given below override it).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Camera frames per second.
    #[arg(long)]
    pub fps: Option<f64>,
    /// Deadline after capture, in milliseconds.
    #[arg(long)]
    pub deadline_ms: Option<f64>,
    /// Round-trip propagation delay to the server, in milliseconds.
    #[arg(long)]
    pub rtt_ms: Option<f64>,
    /// Seed for frame sizes.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run length in seconds (default: the trace's duration).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Battery level at the start, in [0, 1].
    #[arg(long)]
    pub battery_start: Option<f64>,
    /// Extra CPU load on the device, in [0, 1).
    #[arg(long)]
    pub cpu_load: Option<f64>,
    /// Throughput estimator: `ewma:<half-life s>`, `harmonic:<N>` or `robust:<N>`.
    #[arg(long)]
    pub estimator: Option<String>,
    /// Send until the deadline itself and count a frame cut short as missed, instead of
    /// stopping when a result could no longer come back and decoding the layers that arrived.
    #[arg(long)]
    pub no_partial_results: bool,
    /// Leave an offloaded frame none of whose layers arrived by the cutoff missed, instead of
    /// running the local path for it when the server's empty report comes back in time.
    #[arg(long)]
    pub no_local_fallback: bool,
    #[command(flatten)]
    pub utility: UtilitySettings,
}

/// The objective, as command-line options (defaults: `Utility::default()`: miss penalty 0.25,
/// 0.05 per joule at a full battery, 4× that at an empty one).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct UtilitySettings {
    /// Utility lost per frame that misses its deadline, on top of its accuracy [default: 0.25].
    #[arg(long)]
    pub miss_penalty: Option<f64>,
    /// Utility per joule at a full battery [default: 0.05].
    #[arg(long)]
    pub energy_weight: Option<f64>,
    /// How much more a joule weighs at an empty battery, minus one [default: 3].
    #[arg(long)]
    pub low_battery_gain: Option<f64>,
}

impl UtilitySettings {
    /// Applies the options given to `u`.
    pub fn apply(&self, u: &mut offload_controller::Utility) -> anyhow::Result<()> {
        for (name, v) in [
            ("--miss-penalty", self.miss_penalty),
            ("--energy-weight", self.energy_weight),
            ("--low-battery-gain", self.low_battery_gain),
        ] {
            if let Some(v) = v {
                anyhow::ensure!(
                    v >= 0.0 && v.is_finite(),
                    "{name} must be a finite number >= 0"
                );
            }
        }
        if let Some(v) = self.miss_penalty {
            u.miss_penalty = v;
        }
        if let Some(v) = self.energy_weight {
            u.energy_weight_per_j = v;
        }
        if let Some(v) = self.low_battery_gain {
            u.low_battery_gain = v;
        }
        Ok(())
    }
}

impl SimSettings {
    /// The resulting configuration.
    pub fn to_config(&self) -> anyhow::Result<SimConfig> {
        let mut c = match &self.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("{}: not a valid SimConfig", p.display()))?
            }
            None => SimConfig::default(),
        };
        if let Some(v) = self.fps {
            anyhow::ensure!(v > 0.0 && v.is_finite(), "--fps must be positive");
            c.fps = v;
        }
        if let Some(v) = self.deadline_ms {
            anyhow::ensure!(v > 0.0 && v.is_finite(), "--deadline-ms must be positive");
            c.deadline_s = v / 1e3;
        }
        if let Some(v) = self.rtt_ms {
            anyhow::ensure!(v >= 0.0 && v.is_finite(), "--rtt-ms must be >= 0");
            c.link.rtt_s = v / 1e3;
        }
        if let Some(v) = self.seed {
            c.seed = v;
        }
        if let Some(v) = self.duration {
            anyhow::ensure!(v > 0.0 && v.is_finite(), "--duration must be positive");
            c.duration_s = Some(v);
        }
        if let Some(v) = self.battery_start {
            anyhow::ensure!(
                (0.0..=1.0).contains(&v),
                "--battery-start must be in [0, 1]"
            );
            c.battery.start_level = v;
        }
        if let Some(v) = self.cpu_load {
            anyhow::ensure!((0.0..1.0).contains(&v), "--cpu-load must be in [0, 1)");
            c.cpu_load = v;
        }
        if let Some(e) = &self.estimator {
            c.controller.estimator = parse_estimator(e)?;
        }
        if self.no_partial_results {
            c.partial_results = false;
        }
        if self.no_local_fallback {
            c.local_fallback = false;
        }
        self.utility.apply(&mut c.controller.utility)?;
        c.controller.frame_interval = 1.0 / c.fps;
        Ok(c)
    }
}

/// Parses `ewma:<half-life s>`, `harmonic:<N>` or `robust:<N>`.
pub fn parse_estimator(s: &str) -> anyhow::Result<EstimatorConfig> {
    let (kind, arg) = s.split_once(':').unwrap_or((s, ""));
    Ok(match kind {
        "ewma" => EstimatorConfig::Ewma {
            half_life_s: if arg.is_empty() { 1.0 } else { arg.parse()? },
        },
        "harmonic" => EstimatorConfig::HarmonicMean {
            window: if arg.is_empty() { 5 } else { arg.parse()? },
        },
        "robust" => EstimatorConfig::RobustLowerBound {
            window: if arg.is_empty() { 5 } else { arg.parse()? },
        },
        other => {
            anyhow::bail!("unknown estimator `{other}`: use ewma:<s>, harmonic:<N> or robust:<N>")
        }
    })
}
