//! `offload agent`: the wearable agent on real Fashion-MNIST test images (`--task
//! classification`) or on the frames of a video with the split SSD detector (`--task
//! detection`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use offload_agent::run::LabelledInput;
use offload_agent::{AgentConfig, AgentEvents, BatterySource, DeviceModel, TaskResult, battery};
use offload_cli::detector_glue::{RgbFrame, load_frames, to_detections};
use offload_cli::{DetectorDevice, SplitDevice};
use offload_controller::Profile;
use offload_model::detector::Detector;
use offload_model::detector_split::DetectorSplit;
use offload_model::detector_split::fidelity::{FramePair, mean_average_precision};
use offload_model::{Dataset, Split, SplitModel};
use offload_sim::output::{FramesCsv, RunReport, write_json};
use offload_sim::{FrameRecord, SimConfig, Summary};
use offload_transport::{AgentClient, ClientConfig, Fingerprint, ServerTrust};

use super::common::SimSettings;

/// Arguments of `offload agent`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The edge server (or the link emulator in front of it).
    #[arg(long, default_value = "127.0.0.1:4433")]
    server: SocketAddr,
    /// SHA-256 fingerprint of the server's certificate, as `offload serve` prints it.
    #[arg(long, conflicts_with = "ca")]
    fingerprint: Option<String>,
    /// CA certificate (PEM) to trust instead of a pinned fingerprint.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Server name for TLS.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// The token to present.
    #[arg(long, env = "OFFLOAD_TOKEN")]
    token: Option<String>,
    /// File holding the token (first line).
    #[arg(long, env = "OFFLOAD_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    #[command(flatten)]
    task: TaskArgs,
    /// Policy preset or policy .toml file.
    #[arg(long, default_value = "deadline-aware")]
    policy: String,
    /// Frames to process (Fashion-MNIST test images, or the first frames of --frame-dir, in
    /// order).
    #[arg(long, default_value_t = 300)]
    frames: usize,
    /// Folder with the Fashion-MNIST files.
    #[arg(long, default_value = offload_model::data::DEFAULT_FASHION_MNIST_DIR)]
    data: PathBuf,
    /// Root of the sysfs tree to read the battery from.
    #[arg(long, default_value = "/sys")]
    sysfs_root: PathBuf,
    /// Output folder for frames.csv and summary.json.
    #[arg(long, default_value = "out/agent")]
    out: PathBuf,
    #[command(flatten)]
    settings: SimSettings,
}

/// Which model the agent runs.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// The Fashion-MNIST split classifier on test images.
    Classification,
    /// The split SSD-MobileNetV2 detector on video frames.
    Detection,
}

/// The model, its profile and its inputs, as options shared by `agent` and `demo`.
#[derive(clap::Args, Debug, Clone)]
pub struct TaskArgs {
    /// What the agent runs.
    #[arg(long, value_enum, default_value_t = Task::Classification)]
    pub task: Task,
    /// Folder of the trained split model [default: models/fmnist, or models/ssd-split for
    /// detection].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The model's profile (accuracy per layer count, device power), as `offload profile`
    /// writes it [default: profiles/fmnist.toml; for detection profiles/ssd-mobilenet-v2.toml
    /// (written by `offload report detector`), else profiles/illustrative-detector.toml].
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Detection: the converted SSD-MobileNetV2 weights [default: converted/ in the detector
    /// cache that scripts/install-detector.sh fills].
    #[arg(long)]
    pub detector: Option<PathBuf>,
    /// Detection: folder of PNG video frames [default: frames/vtest in the detector cache].
    #[arg(long)]
    pub frame_dir: Option<PathBuf>,
}

/// Where the detection defaults live.
pub const DETECTOR_SPLIT_DIR: &str = "models/ssd-split";
/// The detector's measured profile.
pub const DETECTOR_PROFILE: &str = "profiles/ssd-mobilenet-v2.toml";
/// The hand-written detector profile, used while no measured one exists.
pub const ILLUSTRATIVE_DETECTOR_PROFILE: &str = "profiles/illustrative-detector.toml";

impl TaskArgs {
    /// The split model's folder.
    pub fn model_dir(&self) -> PathBuf {
        self.model.clone().unwrap_or_else(|| {
            PathBuf::from(match self.task {
                Task::Classification => "models/fmnist",
                Task::Detection => DETECTOR_SPLIT_DIR,
            })
        })
    }

    /// The profile's path. For detection without `--profile`: the measured profile when
    /// `offload report detector` has written it, else the illustrative detector profile (said
    /// on stderr: its times and accuracies are not this model's).
    pub fn profile_path(&self) -> PathBuf {
        if let Some(p) = &self.profile {
            return p.clone();
        }
        match self.task {
            Task::Classification => PathBuf::from("profiles/fmnist.toml"),
            Task::Detection if Path::new(DETECTOR_PROFILE).exists() => {
                PathBuf::from(DETECTOR_PROFILE)
            }
            Task::Detection => {
                eprintln!(
                    "no measured detector profile at {DETECTOR_PROFILE} (offload report detector writes it): using the ILLUSTRATIVE {ILLUSTRATIVE_DETECTOR_PROFILE}"
                );
                PathBuf::from(ILLUSTRATIVE_DETECTOR_PROFILE)
            }
        }
    }

    /// The converted detector's folder.
    pub fn detector_dir(&self) -> PathBuf {
        self.detector
            .clone()
            .unwrap_or_else(offload_model::detector::default_model_dir)
    }

    /// The video frames' folder.
    pub fn frame_dir(&self) -> PathBuf {
        self.frame_dir.clone().unwrap_or_else(|| {
            offload_model::tf_import::detector_cache_dir()
                .join("frames")
                .join("vtest")
        })
    }
}

/// What the detection agent runs on: the split detector, its profile and the video frames.
pub type LoadedDetection = (Arc<DetectorSplit>, Profile, Vec<RgbFrame>);

/// Loads the split detector, its profile and the first `n` frames of the task's frame folder.
pub fn load_detection(task: &TaskArgs, n: usize) -> anyhow::Result<LoadedDetection> {
    let (codec, detector) = (task.model_dir(), task.detector_dir());
    let split = Arc::new(DetectorSplit::load(&codec, &detector).with_context(|| {
        format!(
            "loading the split detector (codec {}, detector {}; run scripts/install-detector.sh)",
            codec.display(),
            detector.display()
        )
    })?);
    let profile = load_profile(&task.profile_path())?;
    let frames = load_frames(&task.frame_dir(), n)?;
    Ok((split, profile, frames))
}

fn load_profile(path: &Path) -> anyhow::Result<Profile> {
    Profile::load(path).with_context(|| {
        format!(
            "the model's profile {} (write it with `offload profile`)",
            path.display()
        )
    })
}

/// Every frame's result as the agent reported it, and the layers it was decoded from (0:
/// the device's local path).
#[derive(Debug, Default)]
pub struct ResultLog {
    /// `(frame, layers, result)` in the order the results came.
    pub results: Vec<(u64, u16, TaskResult)>,
}

impl AgentEvents for ResultLog {
    fn answered(&mut self, frame: u64, layers: u16, result: &TaskResult) {
        self.results.push((frame, layers, result.clone()));
    }
}

/// Detections scoring at least this count as objects in summaries, and are the reference
/// objects of the fidelity measure (as in `offload report detector`).
pub const OBJECT_SCORE: f32 = 0.5;

/// What the detection run's results say, against the full detector run on the same frames.
#[derive(Debug, Clone, Default)]
pub struct DetectionSummary {
    /// Frames with a result.
    pub answered: usize,
    /// Of which decoded by the server.
    pub offloaded: usize,
    /// Mean layers of the offloaded results.
    pub mean_layers: f64,
    /// Mean objects (score ≥ [`OBJECT_SCORE`]) per answered frame.
    pub mean_objects: f64,
    /// mAP@0.5 of the offloaded results against the full detector's objects on the same frames
    /// (`offload_model::detector_split::fidelity`; `None` without offloaded frames or
    /// reference objects).
    pub offloaded_map50: Option<f64>,
    /// mAP@0.5 of the local results against the same reference.
    pub local_map50: Option<f64>,
}

/// Summarises `log`; with `reference`, runs that full (uncompressed, unsplit) detector on every
/// answered frame to measure fidelity.
pub fn summarise_detections(
    log: &ResultLog,
    frames: &[RgbFrame],
    reference: Option<&Detector>,
) -> anyhow::Result<DetectionSummary> {
    let mut s = DetectionSummary::default();
    let (mut offloaded, mut local) = (Vec::new(), Vec::new());
    let mut layers = 0u64;
    let mut objects = 0usize;
    for (frame, k, result) in &log.results {
        let TaskResult::Detections(list) = result else {
            anyhow::bail!("frame {frame}: a classification from the detector");
        };
        s.answered += 1;
        objects += list.iter().filter(|d| d.score >= OBJECT_SCORE).count();
        if *k > 0 {
            s.offloaded += 1;
            layers += u64::from(*k);
        }
        let Some(detector) = reference else { continue };
        let f = usize::try_from(*frame)
            .ok()
            .and_then(|i| frames.get(i))
            .with_context(|| format!("result for frame {frame}, which was not sent"))?;
        let full = detector
            .detect(&f.rgb, f.width, f.height)
            .with_context(|| format!("full detector on {}", f.path.display()))?;
        let pair = FramePair {
            detected: to_detections(list, f.width, f.height),
            reference: full
                .into_iter()
                .filter(|d| d.score >= OBJECT_SCORE)
                .collect(),
        };
        if *k > 0 {
            offloaded.push(pair);
        } else {
            local.push(pair);
        }
    }
    s.mean_layers = layers as f64 / s.offloaded.max(1) as f64;
    s.mean_objects = objects as f64 / s.answered.max(1) as f64;
    s.offloaded_map50 = mean_average_precision(&offloaded);
    s.local_map50 = mean_average_precision(&local);
    Ok(s)
}

/// Prints a detection summary line.
pub fn print_detection_summary(s: &DetectionSummary) {
    let pct = |m: Option<f64>| m.map_or("n/a".to_owned(), |v| format!("{:.3}", v));
    println!(
        "detection: {} frames answered, {} offloaded (mean {:.2} layers), {} local; {:.2} objects/frame (score >= {OBJECT_SCORE}); fidelity mAP@0.5 vs the full detector: offloaded {}, local {}",
        s.answered,
        s.offloaded,
        s.mean_layers,
        s.answered - s.offloaded,
        s.mean_objects,
        pct(s.offloaded_map50),
        pct(s.local_map50),
    );
}

/// What the agent runs on: the model, its profile and labelled test images.
pub type Loaded = (Arc<SplitModel>, Profile, Vec<LabelledInput<Vec<u8>>>);

/// Loads the model, its profile and `n` labelled test images.
pub fn load_inputs(
    model_dir: &Path,
    profile_path: &Path,
    data: &Path,
    n: usize,
) -> anyhow::Result<Loaded> {
    let model = Arc::new(
        SplitModel::load(model_dir)
            .with_context(|| format!("loading model {}", model_dir.display()))?,
    );
    let profile = load_profile(profile_path)?;
    let test = Dataset::load(data, Split::Test)
        .with_context(|| format!("Fashion-MNIST in {} (run scripts/setup.sh)", data.display()))?;
    anyhow::ensure!(!test.is_empty(), "no test images in {}", data.display());
    let inputs = (0..n)
        .map(|i| {
            let j = i % test.len();
            (test.image(j).to_vec(), Some(u32::from(test.labels[j])))
        })
        .collect();
    Ok((model, profile, inputs))
}

/// The agent's settings from a simulation configuration and the model's profile, so that a
/// live run and a simulated one use the same frame rate, deadline and controller.
pub fn agent_config(sim: &SimConfig, profile: &Profile) -> AgentConfig {
    AgentConfig {
        fps: sim.fps,
        deadline: Duration::from_secs_f64(sim.deadline_s),
        controller: sim.controller.clone(),
        profile: profile.clone(),
        sensor_interval: Duration::from_secs(1),
        partial_results: sim.partial_results,
        local_fallback: sim.local_fallback,
    }
}

/// Writes the agent's records and summary like the simulator's.
pub fn write_outputs(
    out: &Path,
    records: &[FrameRecord],
    summary: &Summary,
    policy: &str,
    profile: &str,
    settings: &impl serde::Serialize,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut csv = FramesCsv::create(&out.join("frames.csv"))?;
    for r in records {
        csv.write(r)?;
    }
    csv.finish()?;
    write_json(
        &out.join("summary.json"),
        &RunReport {
            trace: "live",
            policy,
            profile,
            config: settings,
            summary,
        },
    )?;
    Ok(())
}

/// Runs `offload agent`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let sim = args.settings.to_config()?;
    let token = super::serve::token(args.token.as_deref(), args.token_file.as_deref())?;
    let trust = match (&args.fingerprint, &args.ca) {
        (Some(f), _) => ServerTrust::Pinned(f.parse::<Fingerprint>()?),
        (None, Some(ca)) => ServerTrust::ca_pem_file(ca)?,
        (None, None) => anyhow::bail!("give --fingerprint (printed by `offload serve`) or --ca"),
    };
    let policy = offload_policies::load_preset(&args.policy)?.build();
    let policy_name = policy.name().to_owned();
    let battery = battery::open(&args.sysfs_root, sim.battery);
    let connection = Connection {
        server: args.server,
        server_name: args.server_name.clone(),
        trust,
        token,
    };
    let mut log = ResultLog::default();
    let (records, summary, profile_name) = match args.task.task {
        Task::Classification => {
            let (model, profile, inputs) = load_inputs(
                &args.task.model_dir(),
                &args.task.profile_path(),
                &args.data,
                args.frames,
            )?;
            let config = agent_config(&sim, &profile);
            let (records, summary) = run_live(
                SplitDevice::new(model),
                inputs,
                connection,
                policy,
                config,
                battery,
                &mut log,
            )?;
            (records, summary, profile.name)
        }
        Task::Detection => {
            let (split, profile, frames) = load_detection(&args.task, args.frames)?;
            let inputs = frames.iter().map(|f| (f.clone(), None)).collect();
            let config = agent_config(&sim, &profile);
            let (records, summary) = run_live(
                DetectorDevice::new(split),
                inputs,
                connection,
                policy,
                config,
                battery,
                &mut log,
            )?;
            let s = summarise_detections(&log, &frames, None)?;
            print_detection_summary(&s);
            (records, summary, profile.name)
        }
    };
    write_outputs(
        &args.out,
        &records,
        &summary,
        &policy_name,
        &profile_name,
        &sim,
    )?;
    print_summary(&summary, &policy_name);
    println!("wrote {}/frames.csv and summary.json", args.out.display());
    Ok(())
}

/// Where and how the agent connects.
struct Connection {
    server: SocketAddr,
    server_name: String,
    trust: ServerTrust,
    token: offload_transport::AuthToken,
}

/// Connects (or, if the server is unreachable, runs every frame locally) and runs the agent.
fn run_live<M: DeviceModel>(
    model: M,
    inputs: Vec<LabelledInput<M::Input>>,
    connection: Connection,
    policy: Box<dyn offload_controller::Policy>,
    config: AgentConfig,
    battery: Box<dyn BatterySource>,
    events: &mut dyn AgentEvents,
) -> anyhow::Result<(Vec<FrameRecord>, Summary)> {
    let runtime = tokio::runtime::Runtime::new()?;
    Ok(runtime.block_on(async {
        let client = match AgentClient::connect(
            connection.server,
            &connection.server_name,
            connection.trust,
            connection.token,
            ClientConfig::default(),
        )
        .await
        {
            Ok(c) => Some(Arc::new(c)),
            Err(e) => {
                tracing::warn!(
                    "server {} unreachable ({e}): every frame runs locally",
                    connection.server
                );
                None
            }
        };
        offload_agent::run_agent(
            Arc::new(model),
            client,
            policy,
            inputs,
            config,
            battery,
            events,
        )
        .await
    })?)
}

/// One line per run, as `offload sim` prints it.
pub fn print_summary(s: &Summary, policy: &str) {
    println!(
        "{} frames with {policy}: utility {:.4}, accuracy {:.4}, misses {:.2} %, offloaded {:.1} % (mean {:.2} layers), latency p50/p95 {:.0}/{:.0} ms, {:.3} J/frame, {:.0} B/frame",
        s.frames,
        s.utility,
        s.accuracy,
        100.0 * s.deadline_miss_rate,
        100.0 * s.offload_fraction,
        s.mean_layers,
        1e3 * s.latency_p50,
        1e3 * s.latency_p95,
        s.energy_per_frame_j,
        s.bytes_per_frame,
    );
}
