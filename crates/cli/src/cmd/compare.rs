//! `offload compare`: the simulator and the real system (server, link emulator and agent on
//! loopback) on the same trace, policy and profile, frame by frame.
//!
//! Both runs see the same frames: the agent encodes the Fashion-MNIST test images in order, and
//! the simulator replays those frames' exact uplink sizes (codec bytes plus the protocol's and
//! QUIC's overhead, [`WireOverhead`]) with a payload efficiency of 1. The emulator's uplink
//! follows the trace from the first frame's capture, with the simulator's propagation delay.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use offload_agent::compare::{Comparison, EstimateError, FrameRows, replay_estimates, wire_sizes};
use offload_agent::loopback::{LoopbackLink, LoopbackRun, run_loopback};
use offload_agent::sample_error::{FrameService, SampleError, Spread, match_frames};
use offload_agent::{AgentEvents, SimulatedBattery};
use offload_cli::{SplitDevice, SplitHandler, TraceSchedule};
use offload_controller::{Decision, Observation, Profile};
use offload_sim::link::PacketModel;
use offload_sim::output::{FramesCsv, write_json};
use offload_sim::trace::{LoadOptions, Trace};
use offload_sim::{FrameRecord, SimConfig, simulate_with};
use offload_transport::emulator::PacketRecord;
use offload_transport::{ClientConfig, FrameReply};
use serde::Serialize;

use super::agent::{agent_config, load_inputs};
use super::common::{SimSettings, scale_trace};

/// Arguments of `offload compare`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Uplink traces, in any format `offload trace` reads; each is run simulated and emulated.
    #[arg(long, required = true, num_args = 1..)]
    trace: Vec<PathBuf>,
    /// Folder of the trained model.
    #[arg(long, default_value = "models/fmnist")]
    model: PathBuf,
    /// Profile of the model, as `offload profile` writes it.
    #[arg(long, default_value = "profiles/fmnist.toml")]
    profile: PathBuf,
    /// Policy preset or policy .toml file.
    #[arg(long, default_value = "deadline-aware")]
    policy: String,
    /// Folder with the Fashion-MNIST files.
    #[arg(long, default_value = offload_model::data::DEFAULT_FASHION_MNIST_DIR)]
    data: PathBuf,
    /// Multiply every trace's capacity by this factor (the Fashion-MNIST frames are a few
    /// hundred bytes: real cellular traces need scaling down to make the choice contested).
    #[arg(long, default_value_t = 1.0)]
    trace_scale: f64,
    /// Drop-tail queue of the emulated uplink, bytes.
    #[arg(long, default_value_t = 32 * 1024)]
    queue_bytes: u64,
    /// Downlink rate of the emulator, Mbit/s.
    #[arg(long, default_value_t = 50.0)]
    down_mbps: f64,
    /// The throughput estimate is compared with the trace's mean capacity over this window
    /// before each decision, seconds.
    #[arg(long, default_value_t = 1.0)]
    capacity_window_s: f64,
    /// Output folder: one subfolder per trace, and summary.md / summary.json over all.
    #[arg(long, default_value = "out/compare")]
    out: PathBuf,
    /// Give the simulator the profile's processing times as they are, instead of the ones this
    /// run measured (capture to decision, the server's hold; see `Overheads`).
    #[arg(long)]
    profile_times_only: bool,
    /// Let the simulator's link carry frames as a byte stream cut at any byte, as `offload sim`
    /// does, instead of whole packets ([`PacketModel`]) as the emulated link does.
    #[arg(long)]
    sim_byte_stream: bool,
    /// Analysis: time the emulated agent's link samples with the emulator's own record of each
    /// frame's service (as the simulator's samples are), instead of the reply's times, to see
    /// what the agent's and the server's timing error does to the decisions.
    #[arg(long)]
    true_link_samples: bool,
    /// Analysis (A/B): time the emulated agent's link samples as before pass F, with each
    /// frame's own reply (when the agent read it, when the server's task read the frame),
    /// instead of the server's socket stamp on one clock (docs/protocol.md, "link sample").
    #[arg(long, conflicts_with = "true_link_samples")]
    reply_timed_link_samples: bool,
    /// Analysis (A/B): time the emulated agent's link samples as pass F did, with half the
    /// server's minimum RTT less the ACK packet's serialisation as the propagation delay and
    /// from the frame's task's send start, instead of the one-way delay measured on the
    /// agent's ACK packets from the socket's send (docs/protocol.md, "link sample").
    #[arg(long, conflicts_with_all = ["true_link_samples", "reply_timed_link_samples"])]
    min_rtt_one_way: bool,
    /// Run settings (`--duration` defaults to 60 s here).
    #[command(flatten)]
    settings: SimSettings,
}

/// The estimators whose error is reported besides the controller's own.
const ESTIMATORS: [&str; 3] = ["ewma:1", "harmonic:5", "robust:5"];

/// One trace's results.
#[derive(Debug, Serialize)]
struct TraceResult {
    trace: String,
    seconds: f64,
    mean_mbps: f64,
    comparison: Comparison,
    /// Error of the estimate each controller held at each decision.
    sim_estimate_error: EstimateError,
    emu_estimate_error: EstimateError,
    /// Each estimator's error: in the simulator in its own closed loop, in the emulated run
    /// replayed over the delivery samples of the run.
    sim_estimator_errors: Vec<(String, EstimateError)>,
    emu_estimator_errors: Vec<(String, EstimateError)>,
    /// Uplink bytes the emulator carried, and the wire bytes the agent's overhead model
    /// predicts for the frames it sent (the difference: handshake, keep-alives, model error).
    emulator_uplink_bytes: u64,
    modelled_uplink_bytes: u64,
    emulator_queue_drops: u64,
    start_skew_s: f64,
    /// The agent's link samples against the emulator's service of the same frames.
    sample_error: SampleError,
    /// Where the emulated run's time went besides the link.
    timing: Timing,
    /// The processing times the simulator was given.
    sim_overheads: Overheads,
    /// The same comparison against the simulator with the other link model (a byte stream when
    /// the main one carries packets, and the other way round), on the same emulated run.
    other_link: OtherLink,
}

/// The headline numbers of the comparison against the simulator's other link model.
#[derive(Debug, Serialize)]
struct OtherLink {
    /// `"packets"` or `"byte stream"`.
    model: &'static str,
    agreement: f64,
    agreement_within_one_layer: f64,
    sim_miss_rate: f64,
    sim_mean_layers: f64,
}

/// Processing times measured on the emulated run and given to the simulator through the
/// profile copy it runs with: the profile's are the encoder's and the handler's alone, measured
/// on an idle host, while the real agent takes longer from capture to decision (the frame
/// loop's wake-up and the rest of its work) and the server holds a frame longer than its
/// handler runs (the hand-off to a blocking thread and back, and the reply).
#[derive(Debug, Clone, Copy, Serialize)]
struct Overheads {
    /// Median capture-to-decision of the emulated frames, seconds: the simulator's encoder
    /// time.
    decide_s: f64,
    /// Median of the server's hold (last layer read to reply written) less the profile's
    /// server time for the layers decoded, over frames that arrived whole, seconds: added to
    /// every layer count's server time.
    server_extra_s: f64,
}

impl Overheads {
    /// The profile's own times.
    fn none(profile: &Profile) -> Self {
        Self {
            decide_s: profile.device.encoder_time_s,
            server_extra_s: 0.0,
        }
    }

    fn measure(records: &[FrameRecord], replies: &[(u64, FrameReply)], profile: &Profile) -> Self {
        let decide: Vec<f64> = records
            .iter()
            .filter(|r| r.decision != "skipped")
            .map(|r| r.decided_at - r.captured_at)
            .collect();
        let extra: Vec<f64> = replies
            .iter()
            .filter(|(_, r)| r.layers_received >= r.layers_written && r.layers_received > 0)
            .filter_map(|(_, r)| {
                let layer = profile.layers.get(r.layers_received - 1)?;
                let last = r.receipts.last().map_or(r.header_done, |l| l.last_byte);
                Some(r.reply_written - last - layer.server_time_s)
            })
            .collect();
        let none = Self::none(profile);
        Self {
            decide_s: median(decide).unwrap_or(none.decide_s),
            server_extra_s: median(extra).map_or(0.0, |e| e.max(0.0)),
        }
    }

    /// A copy of `profile` with these times.
    fn apply(&self, profile: &Profile) -> Profile {
        let mut p = profile.clone();
        p.device.encoder_time_s = self.decide_s;
        for layer in &mut p.layers {
            layer.server_time_s += self.server_extra_s;
        }
        p
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(values[values.len() / 2])
}

/// Processing times of the emulated run that the simulator models with the profile's times.
#[derive(Debug, Serialize)]
struct Timing {
    /// From capture to decision (the encoder and the loop's wake-up), ms; the simulator
    /// takes the profile's `encoder_time_s`.
    decide_ms: Spread,
    /// How late the emulator sent uplink and downlink packets after their exit times, ms.
    uplink_egress_late_ms: Spread,
    /// See `uplink_egress_late_ms`.
    downlink_egress_late_ms: Spread,
}

/// Runs `offload compare`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut sim = args.settings.to_config()?;
    let seconds = args.settings.duration.unwrap_or(60.0);
    anyhow::ensure!(
        args.capacity_window_s > 0.0 && args.capacity_window_s.is_finite(),
        "--capacity-window-s must be positive"
    );
    anyhow::ensure!(
        args.down_mbps > 0.0 && args.down_mbps.is_finite(),
        "--down-mbps must be positive"
    );
    // The simulator carries the exact wire bytes of each frame: no further efficiency factor.
    sim.link.payload_efficiency = 1.0;
    let overhead = ClientConfig::default().overhead;
    // In whole packets, as the emulated link carries them: the sizes already hold QUIC's
    // per-packet bytes, so a packet is up to a UDP payload of wire bytes with no more overhead,
    // and a frame's packets are in the bottleneck's queue as soon as it is sent (quinn's
    // congestion window), so a cutoff cannot take them back.
    if !args.sim_byte_stream {
        sim.link.packets = Some(PacketModel {
            max_payload: overhead.max_udp_payload,
            overhead: 0,
            window: PacketModel::QUINN.window,
        });
    }
    // The emulator has no radio: the simulator would hold the first offload after every idle
    // stretch of the radio model's tail (11.6 s) for an RRC promotion (260 ms, longer than the
    // deadline's share of a frame) that the emulated link never makes. Both sides get the same
    // radio model, so both controllers plan alike; only its promotion term goes (energy too).
    sim.controller.radio.promotion_s = 0.0;
    let most = (seconds * sim.fps).floor().max(1.0) as usize;
    let (model, profile, inputs) = load_inputs(&args.model, &args.profile, &args.data, most)?;
    let model_id = model.model_id().to_string();
    println!("model {model_id} ({})", args.model.display());
    let device = SplitDevice::new(model.clone());
    let images: Vec<Vec<u8>> = inputs.iter().map(|(image, _)| image.clone()).collect();
    let wire_rows = wire_sizes(&device, &images, overhead)
        .map_err(|e| anyhow::anyhow!("encoding the test images: {e}"))?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut results = Vec::new();
    for path in &args.trace {
        let trace = Trace::load(path, &LoadOptions::default())
            .with_context(|| format!("reading trace {}", path.display()))?;
        let trace = scale_trace(trace, args.trace_scale)?;
        let secs = seconds.min(trace.duration());
        let n = ((secs * sim.fps).floor() as usize).clamp(1, most);
        let mut config = sim.clone();
        config.duration_s = Some(n as f64 / config.fps);
        let out = args.out.join(if args.trace_scale == 1.0 {
            stem(path)
        } else {
            format!("{}-x{}", stem(path), args.trace_scale)
        });
        println!(
            "{}: {n} frames ({:.0} s, mean {:.2} Mbit/s) with {}",
            trace.name(),
            n as f64 / config.fps,
            trace.mean_bps() / 1e6,
            args.policy
        );
        let (mut emu, log) = emulate(
            &args,
            &trace,
            model.clone(),
            &profile,
            inputs[..n].to_vec(),
            &config,
        )?;
        // The simulator charges the processing times the emulated run measured.
        let overheads = if args.profile_times_only {
            Overheads::none(&profile)
        } else {
            Overheads::measure(&emu.records, &log.replies, &profile)
        };
        let sim_profile = overheads.apply(&profile);
        println!(
            "  measured: capture to decision {:.2} ms (profile's encoder {:.2} ms), server hold beyond the profile {:.2} ms{}",
            overheads.decide_s * 1e3,
            profile.device.encoder_time_s * 1e3,
            overheads.server_extra_s * 1e3,
            if args.profile_times_only {
                " (not given to the simulator: --profile-times-only)"
            } else {
                ""
            }
        );
        let sim_records =
            simulate_rows(&trace, &sim_profile, &wire_rows[..n], &args.policy, &config)?;
        for r in &mut emu.records {
            // For analysis only; the agent never sees the trace.
            r.capacity_bps = trace.capacity_at(r.decided_at);
        }
        // The other link model on the same emulated run, for what packets change.
        let mut other = config.clone();
        other.link.packets = match config.link.packets {
            Some(_) => None,
            None => Some(PacketModel {
                max_payload: ClientConfig::default().overhead.max_udp_payload,
                overhead: 0,
                window: PacketModel::QUINN.window,
            }),
        };
        let other_records =
            simulate_rows(&trace, &sim_profile, &wire_rows[..n], &args.policy, &other)?;
        let other_comparison = Comparison::of(&other_records, &emu.records);
        let other_link = OtherLink {
            model: if other.link.packets.is_some() {
                "packets"
            } else {
                "byte stream"
            },
            agreement: other_comparison.agreement,
            agreement_within_one_layer: other_comparison.agreement_within_one_layer,
            sim_miss_rate: other_comparison.sim.miss_rate,
            sim_mean_layers: other_comparison.sim.mean_layers,
        };
        let mut result = analyse(
            &args,
            &trace,
            &sim_profile,
            &wire_rows[..n],
            &config,
            &sim_records,
            &emu,
            &log,
        )?;
        result.sim_overheads = overheads;
        result.other_link = other_link;
        write_run(
            &out,
            &sim_records,
            &emu.records,
            &trace,
            args.capacity_window_s,
        )?;
        write_services(&out.join("service.csv"), &log.services, emu.server_epoch_s)?;
        write_packets(
            &out.join("uplink-packets.csv"),
            &emu.uplink_packets,
            emu.emulator_epoch_s,
        )?;
        write_packets(
            &out.join("downlink-packets.csv"),
            &emu.downlink_packets,
            emu.emulator_epoch_s,
        )?;
        write_json(&out.join("summary.json"), &result)?;
        print_result(&result);
        results.push(result);
    }
    write_json(&args.out.join("summary.json"), &results)?;
    let md = format!(
        "Model `{model_id}` (`{}`).\n\n{}",
        args.model.display(),
        markdown(&results, &args, &sim)
    );
    std::fs::write(args.out.join("summary.md"), &md)
        .with_context(|| format!("writing {}/summary.md", args.out.display()))?;
    println!("wrote {}/summary.md", args.out.display());
    Ok(())
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "trace".into())
}

fn simulate_rows(
    trace: &Trace,
    profile: &Profile,
    rows: &[Vec<u64>],
    policy: &str,
    config: &SimConfig,
) -> anyhow::Result<Vec<FrameRecord>> {
    let policy = offload_policies::load_preset(policy)?.build();
    let mut records = Vec::with_capacity(rows.len());
    simulate_with(trace, profile, FrameRows::new(rows), policy, config, |r| {
        records.push(r.clone())
    });
    Ok(records)
}

/// Keeps every observation and reply and shows progress.
struct Log {
    observations: Vec<(f64, Observation)>,
    replies: Vec<(u64, FrameReply)>,
    bar: ProgressBar,
}

impl AgentEvents for Log {
    fn decided(&mut self, frame: u64, decision: Decision, estimate_bps: f64) {
        self.bar.set_position(frame + 1);
        self.bar.set_message(format!(
            "{decision:<10} estimate {:>6.2} Mbit/s",
            estimate_bps / 1e6
        ));
    }

    fn observed(&mut self, at: f64, observation: &Observation) {
        self.observations.push((at, *observation));
    }

    fn replied(&mut self, frame: u64, reply: &FrameReply) {
        self.replies.push((frame, reply.clone()));
    }
}

/// What the emulated run's agent saw, besides its records.
struct EmulatedLog {
    observations: Vec<(f64, Observation)>,
    services: Vec<FrameService>,
    replies: Vec<(u64, FrameReply)>,
}

fn emulate(
    args: &Args,
    trace: &Trace,
    model: Arc<offload_model::SplitModel>,
    profile: &Profile,
    inputs: Vec<(Vec<u8>, Option<u32>)>,
    config: &SimConfig,
) -> anyhow::Result<(LoopbackRun, EmulatedLog)> {
    let bar = ProgressBar::new(inputs.len() as u64);
    bar.set_style(ProgressStyle::with_template(
        "  emulated {bar:30} {pos}/{len} frames  {msg}",
    )?);
    let mut log = Log {
        observations: Vec::new(),
        replies: Vec::new(),
        bar: bar.clone(),
    };
    let link = LoopbackLink {
        uplink: Arc::new(TraceSchedule(trace.clone())),
        downlink_bps: args.down_mbps * 1e6,
        one_way_s: config.link.rtt_s / 2.0,
        queue_bytes: args.queue_bytes,
        lead_s: 2.0,
        true_link_samples: args.true_link_samples,
    };
    let policy = offload_policies::load_preset(&args.policy)?.build();
    let runtime = tokio::runtime::Runtime::new()?;
    let run = runtime.block_on(run_loopback(
        Arc::new(SplitDevice::new(model.clone())),
        Arc::new(SplitHandler::new(model)),
        link,
        policy,
        inputs,
        agent_config(config, profile),
        ClientConfig {
            reply_timed_link_samples: args.reply_timed_link_samples,
            min_rtt_one_way: args.min_rtt_one_way,
            ..ClientConfig::default()
        },
        Box::new(SimulatedBattery::new(config.battery)),
        &mut log,
    ))?;
    bar.finish_and_clear();
    let mut observations = log.observations;
    observations.sort_by(|a, b| a.0.total_cmp(&b.0));
    let services = match_frames(
        &log.replies,
        &run.uplink_packets,
        run.emulator_epoch_s,
        config.link.rtt_s / 2.0,
    );
    Ok((
        run,
        EmulatedLog {
            observations,
            services,
            replies: log.replies,
        },
    ))
}

/// Mean capacity of the trace over `window` seconds before `t` (from 0 early on).
fn trailing_capacity(trace: &Trace, t: f64, window: f64) -> f64 {
    let from = (t - window).max(0.0);
    if t - from < 1e-6 {
        return trace.capacity_at(t);
    }
    trace.bits_between(from, t) / (t - from)
}

fn estimate_pairs<'a>(
    records: &'a [FrameRecord],
    trace: &'a Trace,
    window: f64,
) -> impl Iterator<Item = (f64, f64)> + 'a {
    records
        .iter()
        .filter(|r| r.decision != "skipped")
        .map(move |r| {
            (
                r.estimate_bps,
                trailing_capacity(trace, r.decided_at, window),
            )
        })
}

#[allow(clippy::too_many_arguments)]
fn analyse(
    args: &Args,
    trace: &Trace,
    profile: &Profile,
    rows: &[Vec<u64>],
    config: &SimConfig,
    sim: &[FrameRecord],
    emu: &LoopbackRun,
    emulated: &EmulatedLog,
) -> anyhow::Result<TraceResult> {
    let log = &emulated.observations;
    let window = args.capacity_window_s;
    let decided: Vec<&FrameRecord> = emu
        .records
        .iter()
        .filter(|r| r.decision != "skipped")
        .collect();
    let times: Vec<f64> = decided.iter().map(|r| r.decided_at).collect();
    let mut sim_estimator_errors = Vec::new();
    let mut emu_estimator_errors = Vec::new();
    for name in ESTIMATORS {
        let estimator = super::common::parse_estimator(name)?;
        let mut c = config.clone();
        c.controller.estimator = estimator.clone();
        let records = simulate_rows(trace, profile, rows, &args.policy, &c)?;
        sim_estimator_errors.push((
            name.to_owned(),
            EstimateError::of(estimate_pairs(&records, trace, window)),
        ));
        let replayed = replay_estimates(&estimator, log, &times);
        emu_estimator_errors.push((
            name.to_owned(),
            EstimateError::of(
                replayed
                    .iter()
                    .zip(&times)
                    .map(|(&e, &t)| (e, trailing_capacity(trace, t, window))),
            ),
        ));
    }
    let modelled_uplink_bytes = log
        .iter()
        .filter_map(|(_, o)| match o {
            Observation::Sent { bytes, .. } => Some(*bytes),
            _ => None,
        })
        .sum();
    Ok(TraceResult {
        trace: trace.name().to_owned(),
        seconds: sim.len() as f64 / config.fps,
        mean_mbps: trace.mean_bps() / 1e6,
        comparison: Comparison::of(sim, &emu.records),
        sim_estimate_error: EstimateError::of(estimate_pairs(sim, trace, window)),
        emu_estimate_error: EstimateError::of(estimate_pairs(&emu.records, trace, window)),
        sim_estimator_errors,
        emu_estimator_errors,
        emulator_uplink_bytes: emu.emulator.uplink.delivered_bytes,
        modelled_uplink_bytes,
        emulator_queue_drops: emu.emulator.uplink.queue_drops,
        start_skew_s: emu.start_skew_s,
        sample_error: SampleError::of(&emulated.services, &emu.uplink_packets),
        sim_overheads: Overheads::none(profile),
        other_link: OtherLink {
            model: "",
            agreement: 0.0,
            agreement_within_one_layer: 0.0,
            sim_miss_rate: 0.0,
            sim_mean_layers: 0.0,
        },
        timing: Timing {
            decide_ms: Spread::of(
                decided
                    .iter()
                    .map(|r| 1e3 * (r.decided_at - r.captured_at))
                    .collect(),
            ),
            uplink_egress_late_ms: Spread::of(
                emu.egress_lateness[0].iter().map(|l| 1e3 * l).collect(),
            ),
            downlink_egress_late_ms: Spread::of(
                emu.egress_lateness[1].iter().map(|l| 1e3 * l).collect(),
            ),
        },
    })
}

fn write_run(
    out: &Path,
    sim: &[FrameRecord],
    emu: &[FrameRecord],
    trace: &Trace,
    window: f64,
) -> anyhow::Result<()> {
    for (dir, records) in [("sim", sim), ("emu", emu)] {
        let d = out.join(dir);
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        let mut csv = FramesCsv::create(&d.join("frames.csv"))?;
        for r in records {
            csv.write(r)?;
        }
        csv.finish()?;
    }
    let path = out.join("frames.csv");
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    writeln!(
        w,
        "frame,captured_at,sim_decision,emu_decision,agree,sim_met,emu_met,sim_latency,emu_latency,sim_estimate_bps,emu_estimate_bps,capacity_bps,window_capacity_bps"
    )?;
    let latency = |r: &FrameRecord| r.latency.map(|l| format!("{l:.6}")).unwrap_or_default();
    for (s, e) in sim.iter().zip(emu) {
        writeln!(
            w,
            "{},{:.6},{},{},{},{},{},{},{},{:.0},{:.0},{:.0},{:.0}",
            s.frame,
            s.captured_at,
            s.decision,
            e.decision,
            s.decision == e.decision,
            s.met_deadline,
            e.met_deadline,
            latency(s),
            latency(e),
            s.estimate_bps,
            e.estimate_bps,
            trace.capacity_at(s.decided_at),
            trailing_capacity(trace, s.decided_at, window),
        )?;
    }
    w.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The agent's link sample and the emulator's service of each offloaded frame (agent's clock,
/// seconds since the client's epoch).
/// `server_epoch_s` puts the server's clock (`server_last`, `server_reply`) on the agent's.
fn write_services(
    path: &Path,
    services: &[FrameService],
    server_epoch_s: f64,
) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    writeln!(
        w,
        "frame,send_start,sample_start,sample_end,sample_bytes,offered,start,end,bytes,packets,behind_control,rate_error,rtt,held,reply_received,server_last,server_reply,server_clock_shift,server_epoch,server_arrived,wire_send_start,uplink_delay_probes"
    )?;
    for s in services {
        writeln!(
            w,
            "{},{:.6},{:.6},{:.6},{},{:.6},{:.6},{:.6},{},{},{},{:.4},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{}",
            s.frame,
            s.send_start,
            s.sample.0,
            s.sample.1,
            s.sample.2,
            s.offered,
            s.start,
            s.end,
            s.bytes,
            s.packets,
            s.behind_control,
            s.rate_error(),
            s.rtt,
            s.held,
            s.reply_received,
            s.server_last,
            s.server_reply,
            s.server_clock_shift,
            server_epoch_s,
            s.server_arrived,
            s.wire_send_start,
            s.uplink_delay_probes,
        )?;
    }
    w.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// One direction's packets of the emulated link, on the agent's clock (seconds since the
/// client's epoch; the emulator's time zero is `epoch_s` there).
fn write_packets(path: &Path, packets: &[PacketRecord], epoch_s: f64) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    writeln!(w, "offered,start,end,bytes,verdict")?;
    let at = |t: f64| t + epoch_s;
    for p in packets {
        writeln!(
            w,
            "{:.6},{:.6},{:.6},{},{:?}",
            at(p.offered),
            at(p.start),
            at(p.end),
            p.bytes,
            p.verdict
        )?;
    }
    w.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn print_result(r: &TraceResult) {
    let c = &r.comparison;
    println!(
        "  agreement {:.1} % (within one layer {:.1} %; {} frames the same choices one frame apart); misses sim {:.2} % vs emulated {:.2} %; offloaded {:.1} % vs {:.1} %, mean layers {:.2} vs {:.2}",
        100.0 * c.agreement,
        100.0 * c.agreement_within_one_layer,
        c.one_frame_apart,
        100.0 * c.sim.miss_rate,
        100.0 * c.emu.miss_rate,
        100.0 * c.sim.offload_fraction,
        100.0 * c.emu.offload_fraction,
        c.sim.mean_layers,
        c.emu.mean_layers,
    );
    println!(
        "  estimate error (|rel| mean/median, bias): sim {:.2}/{:.2}, {:+.2}; emulated {:.2}/{:.2}, {:+.2}; uplink bytes emulator {} vs modelled {}",
        r.sim_estimate_error.mean_abs_rel,
        r.sim_estimate_error.median_abs_rel,
        r.sim_estimate_error.bias,
        r.emu_estimate_error.mean_abs_rel,
        r.emu_estimate_error.median_abs_rel,
        r.emu_estimate_error.bias,
        r.emulator_uplink_bytes,
        r.modelled_uplink_bytes,
    );
    let e = &r.sample_error;
    println!(
        "  link samples vs the emulator's service ({} frames): start {:+.2}/{:+.2}/{:+.2} ms, end {:+.2}/{:+.2}/{:+.2} ms (p10/p50/p90), rate {:+.3} median {:+.3} mean; bytes {:+.3}; {:.2} control packets per frame ({:.0} B), {} frames behind one",
        e.frames,
        e.start_ms.p10,
        e.start_ms.p50,
        e.start_ms.p90,
        e.end_ms.p10,
        e.end_ms.p50,
        e.end_ms.p90,
        e.rate.p50,
        e.rate.mean,
        e.bytes.p50,
        e.control_per_frame,
        e.control_bytes,
        e.behind_control,
    );
    let o = &r.other_link;
    println!(
        "  against the simulator with the other link model ({}): agreement {:.1} % (within one layer {:.1} %), simulated misses {:.2} %, mean layers {:.2}",
        o.model,
        100.0 * o.agreement,
        100.0 * o.agreement_within_one_layer,
        100.0 * o.sim_miss_rate,
        o.sim_mean_layers,
    );
    let t = &r.timing;
    println!(
        "  server hold {:.2}/{:.2}/{:.2} ms; capture to decision {:.2}/{:.2}/{:.2} ms; emulator egress late: uplink {:.2}/{:.2}/{:.2} ms, downlink {:.2}/{:.2}/{:.2} ms (p10/p50/p90)",
        e.held_ms.p10,
        e.held_ms.p50,
        e.held_ms.p90,
        t.decide_ms.p10,
        t.decide_ms.p50,
        t.decide_ms.p90,
        t.uplink_egress_late_ms.p10,
        t.uplink_egress_late_ms.p50,
        t.uplink_egress_late_ms.p90,
        t.downlink_egress_late_ms.p10,
        t.downlink_egress_late_ms.p50,
        t.downlink_egress_late_ms.p90,
    );
    for d in c.divergences.iter().take(3) {
        println!(
            "  diverged {:.2}-{:.2} s ({} frames): sim {} at {:.2} Mbit/s, emulated {} at {:.2} Mbit/s",
            d.start_s,
            d.end_s,
            d.frames(),
            d.sim_decision,
            d.sim_estimate_bps / 1e6,
            d.emu_decision,
            d.emu_estimate_bps / 1e6,
        );
    }
}

fn markdown(results: &[TraceResult], args: &Args, sim: &SimConfig) -> String {
    let mut s = String::new();
    let est = |e: &EstimateError| {
        format!(
            "{:.2} / {:.2} / {:+.2}",
            e.mean_abs_rel, e.median_abs_rel, e.bias
        )
    };
    s.push_str(&format!(
        "Policy `{}`, profile `{}`, {} fps, deadline {:.0} ms, RTT {:.0} ms, emulator queue {} B, simulated link {}{}.\n\n",
        args.policy,
        args.profile.display(),
        sim.fps,
        sim.deadline_s * 1e3,
        sim.link.rtt_s * 1e3,
        args.queue_bytes,
        sim.link.packets.map_or_else(
            || "a byte stream".to_owned(),
            |p| format!("in packets of up to {} B", p.max_payload)
        ),
        if args.true_link_samples {
            ", emulated link samples from the emulator's record (--true-link-samples)"
        } else if args.reply_timed_link_samples {
            ", emulated link samples timed with each frame's reply (--reply-timed-link-samples)"
        } else if args.min_rtt_one_way {
            ", emulated link samples timed with the minimum RTT's propagation delay (--min-rtt-one-way)"
        } else {
            ""
        }
    ));
    s.push_str("| trace | s | mean Mbit/s | agreement | within 1 layer | same choices one frame apart | misses sim | misses emulated | offloaded sim / emu | mean k sim / emu | p95 latency sim / emu (ms) |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in results {
        let c = &r.comparison;
        s.push_str(&format!(
            "| {} | {:.0} | {:.2} | {:.1} % | {:.1} % | {} ({:.1} %) | {:.2} % | {:.2} % | {:.1} / {:.1} % | {:.2} / {:.2} | {:.0} / {:.0} |\n",
            r.trace,
            r.seconds,
            r.mean_mbps,
            100.0 * c.agreement,
            100.0 * c.agreement_within_one_layer,
            c.one_frame_apart,
            100.0 * c.one_frame_apart as f64 / c.frames.max(1) as f64,
            100.0 * c.sim.miss_rate,
            100.0 * c.emu.miss_rate,
            100.0 * c.sim.offload_fraction,
            100.0 * c.emu.offload_fraction,
            c.sim.mean_layers,
            c.emu.mean_layers,
            1e3 * c.sim.latency_p95,
            1e3 * c.emu.latency_p95,
        ));
    }
    s.push_str("\nProcessing times the simulator was given (measured on the emulated run unless `--profile-times-only`): capture to decision (the simulator's encoder time) and the server's hold beyond the profile's server time, medians.\n\n| trace | capture to decision (ms) | server hold beyond the profile (ms) |\n|---|---|---|\n");
    for r in results {
        s.push_str(&format!(
            "| {} | {:.2} | {:.2} |\n",
            r.trace,
            1e3 * r.sim_overheads.decide_s,
            1e3 * r.sim_overheads.server_extra_s
        ));
    }
    s.push_str("\nThe same emulated runs against the simulator with the other link model:\n\n| trace | simulated link | agreement | within 1 layer | misses sim | mean k sim |\n|---|---|---|---|---|---|\n");
    for r in results {
        let o = &r.other_link;
        s.push_str(&format!(
            "| {} | {} | {:.1} % | {:.1} % | {:.2} % | {:.2} |\n",
            r.trace,
            o.model,
            100.0 * o.agreement,
            100.0 * o.agreement_within_one_layer,
            100.0 * o.sim_miss_rate,
            o.sim_mean_layers
        ));
    }
    s.push_str(&format!(
        "\nThroughput estimate at each decision vs the trace's mean capacity over the {} s before it: |relative error| mean / median / bias.\n\n",
        args.capacity_window_s
    ));
    s.push_str("| trace | controller, sim | controller, emulated |");
    for name in ESTIMATORS {
        s.push_str(&format!(" {name} sim | {name} emulated |"));
    }
    s.push_str("\n|---|---|---|");
    for _ in ESTIMATORS {
        s.push_str("---|---|");
    }
    s.push('\n');
    for r in results {
        s.push_str(&format!(
            "| {} | {} | {} |",
            r.trace,
            est(&r.sim_estimate_error),
            est(&r.emu_estimate_error)
        ));
        for ((_, a), (_, b)) in r.sim_estimator_errors.iter().zip(&r.emu_estimator_errors) {
            s.push_str(&format!(" {} | {} |", est(a), est(b)));
        }
        s.push('\n');
    }
    s.push_str("\nLongest stretches of disagreement:\n\n| trace | from s | to s | frames | sim | emulated | sim estimate Mbit/s | emulated estimate Mbit/s |\n|---|---|---|---|---|---|---|---|\n");
    for r in results {
        for d in r.comparison.divergences.iter().take(3) {
            s.push_str(&format!(
                "| {} | {:.2} | {:.2} | {} | {} | {} | {:.3} | {:.3} |\n",
                r.trace,
                d.start_s,
                d.end_s,
                d.frames(),
                d.sim_decision,
                d.emu_decision,
                d.sim_estimate_bps / 1e6,
                d.emu_estimate_bps / 1e6
            ));
        }
    }
    s.push_str("\nThe agent's link samples against the emulator's service of the same frames (start and end errors in ms, rate error as a fraction; p10 / p50 / p90), the server's hold of a frame, capture to decision, and the emulator's own lateness (ms, p10 / p50 / p90):\n\n| trace | frames | start error | end error | rate error | ACK-only packets per frame | frames behind one | server hold | capture to decision | egress late up / down (p90) |\n|---|---|---|---|---|---|---|---|---|---|\n");
    let spread = |x: &Spread, scale: f64| {
        format!(
            "{:+.2} / {:+.2} / {:+.2}",
            scale * x.p10,
            scale * x.p50,
            scale * x.p90
        )
    };
    for r in results {
        let e = &r.sample_error;
        let t = &r.timing;
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.2} | {} | {} | {} | {:.2} / {:.2} |\n",
            r.trace,
            e.frames,
            spread(&e.start_ms, 1.0),
            spread(&e.end_ms, 1.0),
            spread(&e.rate, 1.0),
            e.control_per_frame,
            e.behind_control,
            spread(&e.held_ms, 1.0),
            spread(&t.decide_ms, 1.0),
            t.uplink_egress_late_ms.p90,
            t.downlink_egress_late_ms.p90,
        ));
    }
    s.push_str("\nUplink bytes: emulator-counted vs modelled for the frames sent (the rest: handshake, keep-alives, reply acknowledgements beyond the model):\n\n| trace | emulator | modelled | ratio | queue drops | start skew ms |\n|---|---|---|---|---|---|\n");
    for r in results {
        s.push_str(&format!(
            "| {} | {} | {} | {:.3} | {} | {:.2} |\n",
            r.trace,
            r.emulator_uplink_bytes,
            r.modelled_uplink_bytes,
            r.emulator_uplink_bytes as f64 / r.modelled_uplink_bytes.max(1) as f64,
            r.emulator_queue_drops,
            1e3 * r.start_skew_s
        ));
    }
    s
}
