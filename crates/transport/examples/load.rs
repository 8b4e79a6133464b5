//! Load generator: one edge server and N agents on 127.0.0.1, each sending frames back to back
//! for a fixed number of frames; prints frames/s and latency percentiles.
//!
//! `cargo run --release -p offload-transport --example load -- --agents 100 --frames 50`

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use offload_transport::{
    AgentClient, AuthToken, ClientConfig, EdgeServer, FrameHeader, HandlerError, ReceivedFrame,
    ServerIdentity, ServerLimits, ServerTrust, percentile,
};

/// Command-line options.
#[derive(Parser, Debug)]
struct Args {
    /// Concurrent agents (each its own QUIC connection).
    #[arg(long, default_value_t = 50)]
    agents: u64,
    /// Frames each agent sends, one after another.
    #[arg(long, default_value_t = 40)]
    frames: u64,
    /// Layer sizes in bytes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,4000,8000,16000")]
    layers: Vec<usize>,
    /// Deadline per frame, milliseconds.
    #[arg(long, default_value_t = 2000)]
    deadline_ms: u64,
}

fn handler(frame: &ReceivedFrame) -> Result<Vec<u8>, HandlerError> {
    // A stand-in for inference that still reads every byte.
    let sum = frame
        .layers
        .iter()
        .flat_map(|l| l.iter())
        .fold(0u64, |acc, &b| {
            acc.wrapping_mul(31).wrapping_add(u64::from(b))
        });
    Ok(sum.to_le_bytes().to_vec())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let identity = ServerIdentity::generate(&["localhost"])?;
    let token = "load-test-token";
    let server = EdgeServer::bind(
        "127.0.0.1:0".parse::<SocketAddr>()?,
        &identity,
        AuthToken::new(token)?,
        Arc::new(handler),
        ServerLimits::default(),
    )?;
    let addr = server.local_addr();
    let fingerprint = identity.fingerprint();
    let layers: Vec<Bytes> = args
        .layers
        .iter()
        .map(|&n| Bytes::from((0..n).map(|i| i as u8).collect::<Vec<u8>>()))
        .collect();
    let payload_bytes: usize = args.layers.iter().sum();

    // Connect everyone first, so the measured phase is frames only.
    let mut clients = Vec::new();
    for _ in 0..args.agents {
        clients.push(
            AgentClient::connect(
                addr,
                "localhost",
                ServerTrust::Pinned(fingerprint),
                AuthToken::new(token)?,
                ClientConfig::default(),
            )
            .await?,
        );
    }
    let deadline = Duration::from_millis(args.deadline_ms);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (a, client) in clients.into_iter().enumerate() {
        let layers = layers.clone();
        let frames = args.frames;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(frames as usize);
            let mut failures = 0u64;
            for f in 0..frames {
                let header = FrameHeader {
                    frame_id: a as u64 * 1_000_000 + f,
                    model_id: 1,
                    codec_header: Bytes::from_static(b"load"),
                };
                match client.send_frame(header, layers.clone(), deadline).await {
                    Ok(reply) if reply.layers_received == layers.len() => {
                        latencies.push(reply.round_trip)
                    }
                    Ok(_) | Err(_) => failures += 1,
                }
            }
            client.close().await;
            (latencies, failures)
        }));
    }
    let mut latencies = Vec::new();
    let mut failures = 0;
    for t in tasks {
        let (l, f) = t.await?;
        latencies.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let frames = latencies.len() as f64;
    println!(
        "agents {} frames/agent {} layers {:?} ({} B/frame)",
        args.agents, args.frames, args.layers, payload_bytes
    );
    println!(
        "complete frames {} failed {} in {:.2} s: {:.0} frames/s, {:.1} Mbit/s of layers",
        latencies.len(),
        failures,
        elapsed,
        frames / elapsed,
        frames * payload_bytes as f64 * 8.0 / elapsed / 1e6
    );
    println!(
        "latency (send start to reply): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&latencies, 0.50) * 1e3,
        percentile(&latencies, 0.90) * 1e3,
        percentile(&latencies, 0.99) * 1e3,
        latencies.last().copied().unwrap_or(0.0) * 1e3
    );
    server.shutdown(Duration::from_secs(2)).await;
    Ok(())
}
