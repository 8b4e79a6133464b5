//! `offload emulate`: the trace-driven user-space link emulator, a UDP relay between agents
//! and the edge server whose uplink follows a bandwidth trace.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use offload_cli::TraceSchedule;
use offload_sim::trace::{LoadOptions, Trace};
use offload_transport::emulator::{
    CapacitySchedule, ConstantRate, Emulator, EmulatorConfig, EmulatorStats, LinkConfig,
};

/// Arguments of `offload emulate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address agents send to (UDP).
    #[arg(long, default_value = "127.0.0.1:4434")]
    pub listen: SocketAddr,
    /// The edge server's address (UDP).
    #[arg(long)]
    pub upstream: SocketAddr,
    /// Uplink bandwidth trace, in any format `offload trace` reads; replayed from the relay's
    /// start and repeated at its end.
    #[arg(long)]
    pub trace: PathBuf,
    /// Downlink bandwidth trace (instead of --down-mbps).
    #[arg(long, conflicts_with = "down_mbps")]
    pub down_trace: Option<PathBuf>,
    /// Fixed downlink rate, Mbit/s.
    #[arg(long, default_value_t = 100.0)]
    pub down_mbps: f64,
    /// One-way propagation delay of each direction, milliseconds.
    #[arg(long, default_value_t = 20.0)]
    pub delay_ms: f64,
    /// Drop-tail queue of each direction, bytes.
    #[arg(long, default_value_t = 256 * 1024)]
    pub queue_bytes: u64,
    /// Random loss probability of uplink packets (after the bottleneck).
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// Seed of the loss process.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Most agent addresses relayed at once.
    #[arg(long, default_value_t = 4096)]
    pub max_flows: usize,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub duration_s: Option<f64>,
    /// Log the relay's counters this often, seconds.
    #[arg(long, default_value_t = 5.0)]
    pub stats_every_s: f64,
}

fn load_trace(path: &Path) -> anyhow::Result<Trace> {
    let trace = Trace::load(path, &LoadOptions::default())
        .with_context(|| format!("loading trace {}", path.display()))?;
    tracing::info!(
        trace = %path.display(),
        duration_s = trace.duration(),
        mean_mbps = trace.mean_bps() / 1e6,
        "trace loaded"
    );
    Ok(trace)
}

/// Runs `offload emulate`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.loss) {
        bail!("--loss must be a probability in [0, 1], got {}", args.loss);
    }
    if !(args.delay_ms.is_finite() && args.delay_ms >= 0.0) {
        bail!(
            "--delay-ms must be a non-negative number, got {}",
            args.delay_ms
        );
    }
    if !(args.down_mbps.is_finite() && args.down_mbps > 0.0) {
        bail!("--down-mbps must be positive, got {}", args.down_mbps);
    }
    if !(args.stats_every_s.is_finite() && args.stats_every_s > 0.0) {
        bail!(
            "--stats-every-s must be positive, got {}",
            args.stats_every_s
        );
    }
    let uplink: Arc<dyn CapacitySchedule> = Arc::new(TraceSchedule(load_trace(&args.trace)?));
    let downlink: Arc<dyn CapacitySchedule> = match &args.down_trace {
        Some(path) => Arc::new(TraceSchedule(load_trace(path)?)),
        None => Arc::new(ConstantRate {
            bps: args.down_mbps * 1e6,
        }),
    };
    let delay = args.delay_ms / 1e3;
    let mut config = EmulatorConfig::new(args.listen, args.upstream);
    config.max_flows = args.max_flows;
    config.uplink = LinkConfig {
        delay,
        queue_bytes: args.queue_bytes,
        loss: args.loss,
        seed: args.seed,
    };
    config.downlink = LinkConfig {
        delay,
        queue_bytes: args.queue_bytes,
        loss: 0.0,
        seed: args.seed.wrapping_add(1),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(relay(config, uplink, downlink, &args))
}

async fn relay(
    config: EmulatorConfig,
    uplink: Arc<dyn CapacitySchedule>,
    downlink: Arc<dyn CapacitySchedule>,
    args: &Args,
) -> anyhow::Result<()> {
    let upstream = config.upstream;
    let emulator = Emulator::start(config, uplink, downlink).await?;
    tracing::info!(listen = %emulator.local_addr(), %upstream, "emulator relaying");
    let stop_after = args
        .duration_s
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::MAX);
    let stop = tokio::time::sleep(stop_after.min(Duration::from_secs(100 * 365 * 86_400)));
    tokio::pin!(stop);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(args.stats_every_s));
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            signal = tokio::signal::ctrl_c() => {
                signal.context("waiting for Ctrl-C")?;
                break;
            }
            _ = ticker.tick() => log_stats(&emulator.stats()),
        }
    }
    let stats = emulator.stats();
    log_stats(&stats);
    emulator.stop();
    println!(
        "uplink: {} of {} packets delivered ({} queue drops, {} random losses); downlink: {} of {}; flows: {}",
        stats.uplink.delivered_packets,
        stats.uplink.offered_packets,
        stats.uplink.queue_drops,
        stats.uplink.random_losses,
        stats.downlink.delivered_packets,
        stats.downlink.offered_packets,
        stats.flows_created
    );
    Ok(())
}

fn log_stats(s: &EmulatorStats) {
    tracing::info!(
        up_delivered_bytes = s.uplink.delivered_bytes,
        up_queue_drops = s.uplink.queue_drops,
        up_random_losses = s.uplink.random_losses,
        down_delivered_bytes = s.downlink.delivered_bytes,
        down_queue_drops = s.downlink.queue_drops,
        active_flows = s.active_flows,
        relay_drops = s.relay_drops,
        "emulator"
    );
}
