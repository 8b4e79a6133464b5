//! `offload serve`: the edge server running the split model's server half.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use offload_cli::SplitHandler;
use offload_model::SplitModel;
use offload_transport::{AuthToken, EdgeServer, ServerIdentity, ServerLimits};

/// Arguments of `offload serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// UDP address to listen on.
    #[arg(long, default_value = "127.0.0.1:4433")]
    listen: SocketAddr,
    /// Folder of the trained model (manifest + safetensors).
    #[arg(long, default_value = "models/fmnist")]
    model: PathBuf,
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

/// Runs `offload serve`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let model = Arc::new(
        SplitModel::load(&args.model)
            .with_context(|| format!("loading model {}", args.model.display()))?,
    );
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
            Arc::new(SplitHandler::new(model)),
            limits,
        )?;
        println!(
            "offload edge server on {} (model {})",
            server.local_addr(),
            args.model.display()
        );
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
