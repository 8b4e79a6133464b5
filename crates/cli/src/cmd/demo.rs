//! `offload demo`: edge server, link emulator and agent on loopback, end to end.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use offload_agent::SimulatedBattery;
use offload_agent::loopback::{LoopbackLink, run_loopback};
use offload_cli::{SplitDevice, SplitHandler, TraceSchedule};
use offload_sim::trace::{LoadOptions, Trace};
use offload_transport::ClientConfig;

use super::agent::{agent_config, load_inputs, print_summary, write_outputs};
use super::common::{SimSettings, scale_trace};

/// Arguments of `offload demo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder of the trained model.
    #[arg(long, default_value = "models/fmnist")]
    model: PathBuf,
    /// Profile of the model, as `offload profile` writes it.
    #[arg(long, default_value = "profiles/fmnist.toml")]
    profile: PathBuf,
    /// Uplink trace for the emulator. Default: a step down generated from the model's profile —
    /// room for every layer in the first half, for little more than the base layer in the second.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Multiply the trace's capacity by this factor.
    #[arg(long, default_value_t = 1.0)]
    trace_scale: f64,
    /// Policy preset or policy .toml file.
    #[arg(long, default_value = "deadline-aware")]
    policy: String,
    /// Seconds of camera time.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Folder with the Fashion-MNIST files.
    #[arg(long, default_value = offload_model::data::DEFAULT_FASHION_MNIST_DIR)]
    data: PathBuf,
    /// Output folder for frames.csv and summary.json.
    #[arg(long, default_value = "out/demo")]
    out: PathBuf,
    #[command(flatten)]
    settings: SimSettings,
}

/// Runs `offload demo`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let sim = args.settings.to_config()?;
    let frames = (args.seconds * sim.fps).round().max(1.0) as usize;
    let (model, profile, inputs) = load_inputs(&args.model, &args.profile, &args.data, frames)?;
    let trace = match &args.trace {
        Some(p) => Trace::load(p, &LoadOptions::default())
            .with_context(|| format!("reading {}", p.display()))?,
        None => {
            let bits_per_frame = |k: usize| profile.layers[k].bytes_median * 8.0 * sim.fps;
            let all = bits_per_frame(profile.layers.len() - 1);
            let one = bits_per_frame(0);
            // Packet headers (QUIC, UDP, IP) weigh a lot on frames this small: allow for them.
            offload_sim::trace::generate::step(
                "demo-step-down",
                4.0 * all + 300e3,
                1.2 * one + 40e3,
                args.seconds / 2.0,
                args.seconds,
            )?
        }
    };
    let trace = scale_trace(trace, args.trace_scale)?;
    println!(
        "demo: {} frames at {} fps, policy {}, uplink {} (mean {:.2} Mbit/s), RTT {:.0} ms, model {}",
        frames,
        sim.fps,
        args.policy,
        trace.name(),
        trace.mean_bps() / 1e6,
        sim.link.rtt_s * 1e3,
        args.model.display()
    );
    let policy = offload_policies::load_preset(&args.policy)?.build();
    let policy_name = policy.name().to_owned();
    let config = agent_config(&sim, &profile);
    let battery = Box::new(SimulatedBattery::new(sim.battery));
    let runtime = tokio::runtime::Runtime::new()?;
    let bar = ProgressBar::new(frames as u64);
    bar.set_style(ProgressStyle::with_template(
        "{bar:30} {pos}/{len} frames  {msg}",
    )?);
    let link = LoopbackLink {
        uplink: Arc::new(TraceSchedule(trace.clone())),
        downlink_bps: 50e6,
        one_way_s: sim.link.rtt_s / 2.0,
        queue_bytes: 16 * 1024,
        lead_s: 0.5,
    };
    let run = runtime.block_on(run_loopback(
        Arc::new(SplitDevice::new(model.clone())),
        Arc::new(SplitHandler::new(model)),
        link,
        policy,
        inputs,
        config,
        ClientConfig::default(),
        battery,
        &mut Progress(bar.clone()),
    ))?;
    bar.finish();
    let (records, summary, server_stats) = (run.records, run.summary, run.server);
    write_outputs(
        &args.out,
        &records,
        &summary,
        &policy_name,
        &profile.name,
        &sim,
    )?;
    let half = args.seconds / 2.0;
    let layers = |from: f64, to: f64| {
        let sel: Vec<_> = records
            .iter()
            .filter(|r| r.captured_at >= from && r.captured_at < to)
            .collect();
        sel.iter().map(|r| f64::from(r.layers)).sum::<f64>() / sel.len().max(1) as f64
    };
    print_summary(&summary, &policy_name);
    println!(
        "mean layers sent: {:.2} in the first half, {:.2} in the second",
        layers(0.0, half),
        layers(half, args.seconds)
    );
    println!("server: {server_stats:?}");
    println!("wrote {}/frames.csv and summary.json", args.out.display());
    Ok(())
}

/// Shows each decision on the progress bar.
struct Progress(ProgressBar);

impl offload_agent::AgentEvents for Progress {
    fn decided(&mut self, i: u64, d: offload_controller::Decision, est: f64) {
        self.0.set_position(i + 1);
        self.0.set_message(format!(
            "frame {i:>4}: {d:<10} estimate {:>6.2} Mbit/s",
            est / 1e6
        ));
    }
}
