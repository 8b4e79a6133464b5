//! Many agents against one server on loopback.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use offload_transport::{ServerLimits, percentile};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_agents_share_one_server() {
    let (server, identity) = start_server(ServerLimits::default());
    let addr = server.local_addr();
    let identity = Arc::new(identity);
    let agents = 50u64;
    let frames_per_agent = 5u64;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for a in 0..agents {
        let identity = identity.clone();
        tasks.push(tokio::spawn(async move {
            let client = agent(addr, &identity).await;
            let mut latencies = Vec::new();
            for f in 0..frames_per_agent {
                let id = a * 1000 + f;
                let sent = layers((a + f) as u8, &[1_000, 4_000, 8_000, 16_000]);
                let reply = client
                    .send_frame(header(id), sent.clone(), Duration::from_secs(5))
                    .await
                    .unwrap_or_else(|e| panic!("agent {a} frame {f}: {e}"));
                assert_eq!(
                    String::from_utf8(reply.payload).expect("utf8"),
                    summary(&header(id).codec_header, &sent)
                );
                latencies.push(reply.round_trip);
            }
            client.close().await;
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("agent task"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    assert_eq!(latencies.len() as u64, agents * frames_per_agent);
    println!(
        "{agents} agents x {frames_per_agent} frames: {:.0} frames/s, p50 {:.1} ms, p99 {:.1} ms (incl. handshakes)",
        latencies.len() as f64 / elapsed,
        percentile(&latencies, 0.5) * 1e3,
        percentile(&latencies, 0.99) * 1e3
    );
    let stats = server.stats();
    assert_eq!(stats.frames_ok, agents * frames_per_agent);
    assert_eq!(stats.frames_failed, 0);
    server.shutdown(Duration::from_secs(2)).await;
}
