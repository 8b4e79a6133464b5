//! `offload demo`: edge server, link emulator and agent on loopback, end to end, with the
//! Fashion-MNIST classifier on test images or (`--task detection`) the split SSD detector on the
//! frames of a street video.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use offload_agent::loopback::{LoopbackLink, LoopbackRun, run_loopback};
use offload_agent::run::LabelledInput;
use offload_agent::{DeviceModel, SimulatedBattery, TaskResult};
use offload_cli::{DetectorDevice, SplitDevice, TraceSchedule};
use offload_controller::Profile;
use offload_sim::SimConfig;
use offload_sim::trace::{LoadOptions, Trace};
use offload_transport::{ClientConfig, ModelRegistry};

use super::agent::{
    OBJECT_SCORE, ResultLog, Task, TaskArgs, agent_config, load_detection, load_inputs,
    print_detection_summary, print_summary, summarise_detections, write_outputs,
};
use super::common::{SimSettings, scale_trace};

/// Frame rate of the detection demo when `--fps` is not given. Per frame the device runs the
/// encoder and codes all its layers, and the server (on the same host here) the rest of the
/// detector: on this shared 2-core host at load 12-13 that took 150-450 ms and 180 ms (server
/// p50) per frame, so 5 fps skipped 12 of 80 frames and missed 67 % of a 500 ms deadline, while
/// 3 fps skipped none.
pub const DETECTION_FPS: f64 = 3.0;
/// Deadline of the detection demo when `--deadline-ms` is not given: encoder and coding, a few
/// KB of upload and the server's half, with room for the queueing of a shared 2-core host
/// (measured at 3 fps: p95 latency 726 ms).
pub const DETECTION_DEADLINE_MS: f64 = 800.0;

/// Arguments of `offload demo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    task: TaskArgs,
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
    /// Seconds of camera time (detection: at most the frames in --frame-dir).
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Detection: skip measuring the results' fidelity against the full detector afterwards
    /// (that runs the full detector once per frame).
    #[arg(long)]
    no_fidelity: bool,
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
    let mut settings = args.settings.clone();
    if args.task.task == Task::Detection {
        settings.fps.get_or_insert(DETECTION_FPS);
        settings.deadline_ms.get_or_insert(DETECTION_DEADLINE_MS);
    }
    let sim = settings.to_config()?;
    let wanted = (args.seconds * sim.fps).round().max(1.0) as usize;
    let models = [PathBuf::from("models/fmnist"), args.task.model_dir()];
    match args.task.task {
        Task::Classification => {
            let (model, profile, inputs) = load_inputs(
                &args.task.model_dir(),
                &args.task.profile_path(),
                &args.data,
                wanted,
            )?;
            let registry = super::serve::registry(&models[1..], &args.task.detector_dir())?;
            let (run, _) = run_demo(
                &args,
                &sim,
                SplitDevice::new(model),
                registry,
                &profile,
                inputs,
            )?;
            finish(&args, &sim, &profile, run)
        }
        Task::Detection => {
            let (split, profile, frames) = load_detection(&args.task, wanted)?;
            if frames.len() < wanted {
                println!(
                    "demo: {} has {} frames, fewer than {} s at {} fps: running them all",
                    args.task.frame_dir().display(),
                    frames.len(),
                    args.seconds,
                    sim.fps
                );
            }
            // The server holds the classifier too: each frame is decoded by the model its id
            // names.
            let fmnist_present = models[0].is_dir();
            let served = if fmnist_present {
                &models[..]
            } else {
                &models[1..]
            };
            let registry = super::serve::registry(served, &args.task.detector_dir())?;
            let inputs = frames.iter().map(|f| (f.clone(), None)).collect();
            let (run, log) = run_demo(
                &args,
                &sim,
                DetectorDevice::new(split.clone()),
                registry,
                &profile,
                inputs,
            )?;
            finish(&args, &sim, &profile, run)?;
            let reference = if args.no_fidelity {
                None
            } else {
                println!(
                    "measuring fidelity: the full detector on {} answered frames ...",
                    log.results.len()
                );
                Some(split.detector())
            };
            let summary = summarise_detections(&log, &frames, reference)?;
            print_detection_summary(&summary);
            Ok(())
        }
    }
}

/// Starts server, emulator and agent on loopback and runs `inputs` through them.
fn run_demo<M: DeviceModel>(
    args: &Args,
    sim: &SimConfig,
    device: M,
    registry: ModelRegistry,
    profile: &Profile,
    inputs: Vec<LabelledInput<M::Input>>,
) -> anyhow::Result<(LoopbackRun, ResultLog)> {
    let frames = inputs.len();
    let seconds = frames as f64 / sim.fps;
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
                seconds / 2.0,
                seconds,
            )?
        }
    };
    let trace = scale_trace(trace, args.trace_scale)?;
    let served: Vec<String> = registry
        .models()
        .map(|(id, name)| format!("{name} ({id:08x})"))
        .collect();
    println!(
        "demo: {} frames at {} fps, deadline {:.0} ms, policy {}, uplink {} (mean {:.2} Mbit/s), RTT {:.0} ms; agent model {:08x}, server models {}",
        frames,
        sim.fps,
        sim.deadline_s * 1e3,
        args.policy,
        trace.name(),
        trace.mean_bps() / 1e6,
        sim.link.rtt_s * 1e3,
        device.model_id(),
        served.join(", ")
    );
    let policy = offload_policies::load_preset(&args.policy)?.build();
    let config = agent_config(sim, profile);
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
        true_link_samples: false,
    };
    let mut progress = Progress {
        bar: bar.clone(),
        log: ResultLog::default(),
    };
    let run = runtime.block_on(run_loopback(
        Arc::new(device),
        Arc::new(registry),
        link,
        policy,
        inputs,
        config,
        ClientConfig::default(),
        battery,
        &mut progress,
    ))?;
    bar.finish();
    Ok((run, progress.log))
}

/// Writes the outputs and prints the run's summary.
fn finish(args: &Args, sim: &SimConfig, profile: &Profile, run: LoopbackRun) -> anyhow::Result<()> {
    let policy_name = args.policy.clone();
    let (records, summary, server_stats) = (run.records, run.summary, run.server);
    write_outputs(
        &args.out,
        &records,
        &summary,
        &policy_name,
        &profile.name,
        sim,
    )?;
    let end = records.iter().map(|r| r.captured_at).fold(0.0, f64::max);
    let half = end / 2.0;
    let layers = |from: f64, to: f64| {
        let sel: Vec<_> = records
            .iter()
            .filter(|r| r.captured_at >= from && r.captured_at <= to)
            .collect();
        sel.iter().map(|r| f64::from(r.layers)).sum::<f64>() / sel.len().max(1) as f64
    };
    print_summary(&summary, &policy_name);
    let skipped = records.iter().filter(|r| r.decision == "skipped").count();
    let answered = records.iter().filter(|r| r.result_at.is_some()).count();
    println!(
        "{answered} of {} frames answered at {} fps ({skipped} skipped: a newer frame was already waiting)",
        records.len(),
        sim.fps
    );
    println!(
        "mean layers sent: {:.2} in the first half, {:.2} in the second",
        layers(0.0, half),
        layers(half + 1e-9, end)
    );
    println!("server: {server_stats:?}");
    println!("wrote {}/frames.csv and summary.json", args.out.display());
    Ok(())
}

/// Shows each decision and each result on the progress bar, and keeps the results.
struct Progress {
    bar: ProgressBar,
    log: ResultLog,
}

impl offload_agent::AgentEvents for Progress {
    fn decided(&mut self, i: u64, d: offload_controller::Decision, est: f64) {
        self.bar.set_position(i + 1);
        self.bar.set_message(format!(
            "frame {i:>4}: {d:<10} estimate {:>6.2} Mbit/s",
            est / 1e6
        ));
    }

    fn answered(&mut self, frame: u64, layers: u16, result: &TaskResult) {
        if let TaskResult::Detections(list) = result {
            let objects = list.iter().filter(|d| d.score >= OBJECT_SCORE).count();
            let from = if layers > 0 {
                format!("server, {layers} layers")
            } else {
                "device".to_owned()
            };
            // Printed above the bar, and also when the bar is hidden (output not a terminal).
            self.bar
                .suspend(|| println!("frame {frame:>4}: {objects} objects ({from})"));
        }
        self.log.answered(frame, layers, result);
    }
}
