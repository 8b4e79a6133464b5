//! `offload sim`: one trace, one policy, one profile.

use std::path::PathBuf;

use anyhow::Context;
use offload_controller::{Policy, Profile};
use offload_sim::oracle::{OracleConfig, Replay, decision_action, plan};
use offload_sim::output::{FramesCsv, RunReport, write_json};
use offload_sim::trace::{LoadOptions, Trace};
use offload_sim::{SimConfig, simulate};

use super::common::{SimSettings, load_profile};

/// Arguments of `offload sim`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Bandwidth trace (any format `offload trace info` reads). Default: the generated LTE walk
    /// trace shipped in traces/.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Policy preset name (see `offload eval --help`), a policy .toml file, or `oracle` (the
    /// offline oracle's plan, seeded with every preset's run as in `offload eval`).
    #[arg(long, default_value = "throughput-rule")]
    policy: String,
    /// Profile file; default: the embedded measured detector profile (profiles/ssd-mobilenet-v2.toml).
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Output folder for frames.csv and summary.json.
    #[arg(long, default_value = "out/sim")]
    out: PathBuf,
    #[command(flatten)]
    settings: SimSettings,
}

/// Runs `offload sim`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let trace = match &args.trace {
        Some(path) => Trace::load(path, &LoadOptions::default())
            .with_context(|| format!("reading trace {}", path.display()))?,
        None => super::common::default_trace()?,
    };
    let profile: Profile = load_profile(args.profile.as_deref())?;
    let config: SimConfig = args.settings.to_config()?;
    let policy = if args.policy == "oracle" {
        oracle_replay(&trace, &profile, &config)?
    } else {
        offload_policies::load_preset(&args.policy)?.build()
    };
    let policy_name = policy.name().to_owned();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut csv = FramesCsv::create(&args.out.join("frames.csv"))?;
    let mut write_err = None;
    let summary = simulate(&trace, &profile, policy, &config, |r| {
        if write_err.is_none() {
            write_err = csv.write(r).err();
        }
    });
    if let Some(e) = write_err {
        return Err(e.into());
    }
    csv.finish()?;
    let report = RunReport {
        trace: trace.name(),
        policy: &policy_name,
        profile: &profile.name,
        config: &config,
        summary: &summary,
    };
    write_json(&args.out.join("summary.json"), &report)?;
    println!(
        "{} frames on {} with {}: utility {:.4}, accuracy {:.4}, misses {:.2} %, latency p50/p95 {:.0}/{:.0} ms, {:.3} J/frame, {:.0} B/frame",
        summary.frames,
        trace.name(),
        policy_name,
        summary.utility,
        summary.accuracy,
        100.0 * summary.deadline_miss_rate,
        1e3 * summary.latency_p50,
        1e3 * summary.latency_p95,
        summary.energy_per_frame_j,
        summary.bytes_per_frame,
    );
    println!("wrote {}/frames.csv and summary.json", args.out.display());
    Ok(())
}

/// The oracle's plan for `trace` as a policy that replays it, seeded with the run of every
/// preset (the harness's seeds).
fn oracle_replay(
    trace: &Trace,
    profile: &Profile,
    config: &SimConfig,
) -> anyhow::Result<Box<dyn Policy>> {
    let mut schedules = Vec::new();
    for name in offload_policies::preset_names() {
        let policy = offload_policies::preset(name)?.build();
        let mut schedule = Vec::new();
        simulate(trace, profile, policy, config, |r| {
            schedule.push(r.decision.parse().map_or(0, decision_action));
        });
        schedules.push(schedule);
    }
    let seeds: Vec<&[u8]> = schedules.iter().map(Vec::as_slice).collect();
    let plan = plan(trace, profile, config, &OracleConfig::default(), &seeds);
    Ok(Box::new(Replay::new(plan.schedule)))
}
