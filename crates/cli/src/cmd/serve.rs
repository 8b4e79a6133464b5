//! `offload serve`: the edge server running the server halves of one or more split models (the
//! Fashion-MNIST classifier, the SSD detector), each frame decoded by the model its id names.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use offload_cli::detector_glue::is_detector_split_dir;
use offload_cli::{DetectorHandler, SplitHandler, model_id32};
use offload_model::SplitModel;
use offload_model::detector_split::DetectorSplit;
use offload_transport::{AuthToken, EdgeServer, ModelRegistry, ServerIdentity, ServerLimits};

/// Arguments of `offload serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// UDP address to listen on.
    #[arg(long, default_value = "127.0.0.1:4433")]
    listen: SocketAddr,
    /// Folder of a trained split model: a Fashion-MNIST classifier (e.g. models/fmnist) or the
    /// split detector's codec (e.g. models/ssd-split). Repeat to serve several models; each
    /// frame goes to the model its id names [default: models/fmnist].
    #[arg(long)]
    model: Vec<PathBuf>,
    /// The converted SSD-MobileNetV2 weights a split detector runs on [default: converted/ in
    /// the detector cache that scripts/install-detector.sh fills].
    #[arg(long)]
    detector: Option<PathBuf>,
    /// Certificate (PEM) the operator provides; with --key. Without them a self-signed one is
    /// generated in --identity-dir and its fingerprint printed for the agents to pin.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Where the generated certificate and key are kept across restarts.
    #[arg(long, default_value = ".offload/server")]
    identity_dir: PathBuf,
    /// File holding the token agents must present (its first line).
    #[arg(long, env = "OFFLOAD_TOKEN_FILE", conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// The token agents must present.
    #[arg(long, env = "OFFLOAD_TOKEN")]
    token: Option<String>,
    /// Most frames received or decoded at once over all agents.
    #[arg(long, default_value_t = 512)]
    max_frames_in_flight: usize,
    /// Most agents connected at once.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<f64>,
}

/// Reads the token from `--token` or the first line of `--token-file`.
pub fn token(token: Option<&str>, file: Option<&std::path::Path>) -> anyhow::Result<AuthToken> {
    let text = match (token, file) {
        (Some(t), _) => t.to_owned(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("reading token file {}", f.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
        (None, None) => anyhow::bail!("give the agents' token with --token or --token-file"),
    };
    Ok(AuthToken::new(text.trim().as_bytes().to_vec())?)
}

/// Loads the operator's certificate or the generated one.
pub fn identity(
    cert: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
    dir: &std::path::Path,
) -> anyhow::Result<ServerIdentity> {
    Ok(match (cert, key) {
        (Some(c), Some(k)) => ServerIdentity::from_pem_files(c, k)?,
        _ => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            ServerIdentity::load_or_generate(
                &dir.join("cert.pem"),
                &dir.join("key.pem"),
                &["localhost", "offload-edge"],
            )?
        }
    })
}

/// Loads every model folder into a registry keyed by model id; a folder holding the split
/// detector's codec ([`is_detector_split_dir`]) runs on the converted detector in
/// `detector_dir`.
pub fn registry(models: &[PathBuf], detector_dir: &Path) -> anyhow::Result<ModelRegistry> {
    let mut registry = ModelRegistry::new();
    for dir in models {
        let name = dir.display().to_string();
        if is_detector_split_dir(dir) {
            let split = Arc::new(DetectorSplit::load(dir, detector_dir).with_context(|| {
                format!(
                    "loading the split detector {name} on {}",
                    detector_dir.display()
                )
            })?);
            let id = model_id32(&split.model_id());
            registry.insert(id, name, Arc::new(DetectorHandler::new(split)))?;
        } else {
            let model =
                Arc::new(SplitModel::load(dir).with_context(|| format!("loading model {name}"))?);
            let id = model_id32(&model.model_id());
            registry.insert(id, name, Arc::new(SplitHandler::new(model)))?;
        }
    }
    Ok(registry)
}

/// Runs `offload serve`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let models = if args.model.is_empty() {
        vec![PathBuf::from("models/fmnist")]
    } else {
        args.model.clone()
    };
    let detector_dir = args
        .detector
        .clone()
        .unwrap_or_else(offload_model::detector::default_model_dir);
    let registry = registry(&models, &detector_dir)?;
    let token = token(args.token.as_deref(), args.token_file.as_deref())?;
    let identity = identity(
        args.cert.as_deref(),
        args.key.as_deref(),
        &args.identity_dir,
    )?;
    let limits = ServerLimits {
        max_frames_in_flight: args.max_frames_in_flight,
        max_connections: args.max_connections,
        ..ServerLimits::default()
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let server = EdgeServer::bind(
            args.listen,
            &identity,
            token,
            Arc::new(registry.clone()),
            limits,
        )?;
        println!("offload edge server on {}", server.local_addr());
        for (id, name) in registry.models() {
            println!("  model {id:08x}: {name}");
        }
        println!("certificate fingerprint: {}", identity.fingerprint());
        match args.duration {
            Some(s) => tokio::time::sleep(Duration::from_secs_f64(s)).await,
            None => tokio::signal::ctrl_c().await?,
        }
        let stats = server.stats();
        println!("{stats:?}");
        server.shutdown(Duration::from_secs(2)).await;
        anyhow::Ok(())
    })
}
