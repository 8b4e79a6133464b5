//! `offload agent`: the wearable agent on real Fashion-MNIST test images.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use offload_agent::run::LabelledInput;
use offload_agent::{AgentConfig, battery};
use offload_cli::SplitDevice;
use offload_controller::Profile;
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
    /// Folder of the trained model.
    #[arg(long, default_value = "models/fmnist")]
    model: PathBuf,
    /// The model's profile (accuracy per layer count, device power), as `offload profile`
    /// writes it.
    #[arg(long, default_value = "profiles/fmnist.toml")]
    profile: PathBuf,
    /// Policy preset or policy .toml file.
    #[arg(long, default_value = "deadline-aware")]
    policy: String,
    /// Frames to process (Fashion-MNIST test images, in order).
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
    let profile = Profile::load(profile_path).with_context(|| {
        format!(
            "the model's profile {} (write it with `offload profile`)",
            profile_path.display()
        )
    })?;
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
    let (model, profile, inputs) =
        load_inputs(&args.model, &args.profile, &args.data, args.frames)?;
    let sim = args.settings.to_config()?;
    let token = super::serve::token(args.token.as_deref(), args.token_file.as_deref())?;
    let trust = match (&args.fingerprint, &args.ca) {
        (Some(f), _) => ServerTrust::Pinned(f.parse::<Fingerprint>()?),
        (None, Some(ca)) => ServerTrust::ca_pem_file(ca)?,
        (None, None) => anyhow::bail!("give --fingerprint (printed by `offload serve`) or --ca"),
    };
    let policy = offload_policies::load_preset(&args.policy)?.build();
    let policy_name = policy.name().to_owned();
    let config = agent_config(&sim, &profile);
    let battery = battery::open(&args.sysfs_root, sim.battery);
    let runtime = tokio::runtime::Runtime::new()?;
    let (records, summary) = runtime.block_on(async {
        let client = match AgentClient::connect(
            args.server,
            &args.server_name,
            trust,
            token,
            ClientConfig::default(),
        )
        .await
        {
            Ok(c) => Some(Arc::new(c)),
            Err(e) => {
                tracing::warn!(
                    "server {} unreachable ({e}): every frame runs locally",
                    args.server
                );
                None
            }
        };
        offload_agent::run_agent(
            Arc::new(SplitDevice::new(model)),
            client,
            policy,
            inputs,
            config,
            battery,
            &mut (),
        )
        .await
    })?;
    write_outputs(
        &args.out,
        &records,
        &summary,
        &policy_name,
        &profile.name,
        &sim,
    )?;
    print_summary(&summary, &policy_name);
    println!("wrote {}/frames.csv and summary.json", args.out.display());
    Ok(())
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
