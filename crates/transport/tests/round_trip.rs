//! The round trip the agent times its link samples with (`UplinkDelay`, docs/protocol.md,
//! "link sample"), through the link emulator: measured on the agent's own idle ACK packets and
//! frames, it is the emulated propagation round trip plus the hosts' small latencies, the
//! samples it times read the link's rate, and a reconnection to the same server keeps it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use offload_transport::emulator::{ConstantRate, Emulator, EmulatorConfig, LinkConfig};
use offload_transport::{AgentClient, FrameReply, ServerLimits, UplinkDelay};

const RATE: f64 = 150e3;
const ONE_WAY: f64 = 0.025;

/// One 250-byte frame (one packet, ~17 ms on the link), then a 10 ms pause after its reply:
/// the reply's ACK packet and the next frame both find the link idle.
async fn frame(client: &AgentClient, id: u64) -> FrameReply {
    let reply = client
        .send_frame(
            header(id),
            layers(id as u8, &[250]),
            Duration::from_millis(500),
        )
        .await
        .expect("frame answered");
    tokio::time::sleep(Duration::from_millis(10)).await;
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_round_trip_is_measured_on_idle_packets_and_survives_a_reconnection() {
    let (server, identity) = start_server(ServerLimits::default());
    let mut config = EmulatorConfig::new("127.0.0.1:0".parse().expect("addr"), server.local_addr());
    config.uplink = LinkConfig {
        delay: ONE_WAY,
        queue_bytes: 32 * 1024,
        loss: 0.0,
        seed: 1,
    };
    config.downlink.delay = ONE_WAY;
    let emulator = Emulator::start(
        config,
        Arc::new(ConstantRate { bps: RATE }),
        Arc::new(ConstantRate { bps: 5e7 }),
    )
    .await
    .expect("emulator");
    let client = agent(emulator.local_addr(), &identity).await;

    let mut replies = Vec::new();
    for id in 1..=60 {
        replies.push(frame(&client, id).await);
    }
    let last = replies.last().expect("replies");
    assert!(
        last.uplink_delay_probes >= UplinkDelay::MIN_PROBES,
        "{} pairs measured",
        last.uplink_delay_probes
    );
    // The emulated 50 ms, plus the two hosts' latencies between the socket calls and the
    // server's stamps (tenths of a millisecond; more on a loaded host).
    let extra = last.propagation_rtt - 2.0 * ONE_WAY;
    println!(
        "round trip {:.3} ms over {} pairs",
        1e3 * last.propagation_rtt,
        last.uplink_delay_probes
    );
    assert!((0.0..0.0025).contains(&extra), "round trip {extra} s over");
    // Timed with it, the samples read the link's rate (in the overhead model's bytes, within
    // a per cent or two of the packets').
    let mut rates: Vec<f64> = replies[30..]
        .iter()
        .filter_map(|r| r.link_sample.and_then(|s| s.rate_bps()))
        .collect();
    rates.sort_by(f64::total_cmp);
    let median = offload_transport::percentile(&rates, 0.5);
    println!("link samples: median {median:.0} bit/s");
    assert!((median / RATE - 1.0).abs() < 0.04, "median rate {median}");

    // A new connection to the same server: its first replies are timed with the round trip
    // measured before, not with the new connection's handshake-long minimum RTT.
    client.reconnect().await.expect("reconnected");
    let after = frame(&client, 100).await;
    assert!(
        after.uplink_delay_probes >= last.uplink_delay_probes,
        "{} pairs after the reconnection, {} before",
        after.uplink_delay_probes,
        last.uplink_delay_probes
    );
    assert!(
        (after.propagation_rtt - last.propagation_rtt).abs() < 3e-4,
        "round trip {} after the reconnection, {} before",
        after.propagation_rtt,
        last.propagation_rtt
    );
    let rate = after
        .link_sample
        .and_then(|s| s.rate_bps())
        .expect("a sample");
    assert!((rate / RATE - 1.0).abs() < 0.1, "first sample {rate} bit/s");
    client.close().await;
    server.shutdown(Duration::from_secs(1)).await;
}
