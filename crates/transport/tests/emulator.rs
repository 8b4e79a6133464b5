//! The link emulator on loopback: delivered throughput follows the schedule, and a frame on a
//! slow emulated link is cut at its deadline.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::saturate::saturate;
use common::*;
use offload_transport::ServerLimits;
use offload_transport::emulator::{
    ConstantRate, Emulator, EmulatorConfig, LinkConfig, PiecewiseConstant,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_throughput_follows_the_trace_within_5_percent() {
    // 2 → 8 → 1 Mbit/s, one second each.
    let schedule =
        Arc::new(PiecewiseConstant::new(&[(1.0, 2e6), (1.0, 8e6), (1.0, 1e6)]).expect("valid"));
    // Saturate at about 16 Mbit/s: 8 packets of 1200 B every 5 ms.
    for (w, (delivered, capacity)) in saturate(schedule, 3, 8).await.into_iter().enumerate() {
        let ratio = delivered / capacity;
        println!("window {w}: {delivered} B delivered, {capacity} B capacity, ratio {ratio:.4}");
        assert!((ratio - 1.0).abs() <= 0.05, "window {w}: ratio {ratio:.4}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_cancels_layers_on_a_slow_link() {
    let (server, identity) = start_server(ServerLimits::default());
    let mut config = EmulatorConfig::new("127.0.0.1:0".parse().expect("addr"), server.local_addr());
    config.uplink = LinkConfig {
        delay: 0.010,
        queue_bytes: 64 * 1024,
        loss: 0.0,
        seed: 3,
    };
    config.downlink = LinkConfig {
        delay: 0.010,
        ..LinkConfig::default()
    };
    let uplink_bps = 1e6;
    let emulator = Emulator::start(
        config,
        Arc::new(ConstantRate { bps: uplink_bps }),
        Arc::new(ConstantRate { bps: 5e7 }),
    )
    .await
    .expect("emulator");
    let client = agent(emulator.local_addr(), &identity).await;

    // Ten 20 kB layers need 1.6 s at 1 Mbit/s; the deadline allows 0.4 s.
    let deadline = Duration::from_millis(400);
    let sent = layers(9, &[20_000; 10]);
    let reply = client
        .send_frame(header(1), sent.clone(), deadline)
        .await
        .expect("partial frame still answered");
    println!(
        "received {} of 10 layers, written {}, cancelled {}, train {:?}",
        reply.layers_received, reply.layers_written, reply.cancelled, reply.train_sample
    );
    assert!(reply.cancelled);
    assert!(
        reply.layers_received >= 1 && reply.layers_received < 10,
        "{}",
        reply.layers_received
    );
    let expected = summary(&header(1).codec_header, &sent[..reply.layers_received]);
    assert_eq!(
        String::from_utf8(reply.payload.clone()).expect("utf8"),
        expected
    );
    // Nothing the server used arrived after the deadline plus the server's grace.
    let last = reply.receipts.last().expect("receipts").last_byte;
    assert!(last < deadline.as_secs_f64() + 0.5, "{last}");
    // The bytes that made it cannot have crossed the 1 Mbit/s bottleneck faster than it runs.
    if let Some(train) = reply.train_sample {
        let rate = train.rate_bps().expect("rate");
        assert!(rate < uplink_bps * 1.15, "train rate {rate}");
    }

    // With a generous deadline a small frame arrives whole through the same link.
    let reply = client
        .send_frame(
            header(2),
            layers(2, &[2_000, 2_000, 2_000]),
            Duration::from_secs(3),
        )
        .await
        .expect("whole frame");
    assert_eq!(reply.layers_received, 3);
    assert!(!reply.cancelled);
    client.close().await;
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_flows_are_relayed_independently() {
    let (server, identity) = start_server(ServerLimits::default());
    let config = EmulatorConfig::new("127.0.0.1:0".parse().expect("addr"), server.local_addr());
    let emulator = Emulator::start(
        config,
        Arc::new(ConstantRate { bps: 1e8 }),
        Arc::new(ConstantRate { bps: 1e8 }),
    )
    .await
    .expect("emulator");
    let relay = emulator.local_addr();
    let mut tasks = Vec::new();
    for a in 0..8u64 {
        let identity_fp = identity.fingerprint();
        tasks.push(tokio::spawn(async move {
            let client = offload_transport::AgentClient::connect(
                relay,
                "localhost",
                offload_transport::ServerTrust::Pinned(identity_fp),
                offload_transport::AuthToken::new(TOKEN).expect("token"),
                quick_config(),
            )
            .await
            .expect("connect through relay");
            for f in 0..3 {
                let sent = layers(a as u8, &[1_000, 3_000]);
                let reply = client
                    .send_frame(header(a * 10 + f), sent.clone(), Duration::from_secs(2))
                    .await
                    .expect("reply");
                assert_eq!(
                    String::from_utf8(reply.payload).expect("utf8"),
                    summary(&header(a * 10 + f).codec_header, &sent)
                );
            }
        }));
    }
    for t in tasks {
        t.await.expect("agent task");
    }
    let stats = emulator.stats();
    assert_eq!(stats.flows_created, 8);
    assert_eq!(stats.active_flows, 8);
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_samples_measure_the_emulated_bottleneck() {
    let (server, identity) = start_server(ServerLimits::default());
    let mut config = EmulatorConfig::new("127.0.0.1:0".parse().expect("addr"), server.local_addr());
    config.uplink = LinkConfig {
        delay: 0.010,
        queue_bytes: 32 * 1024,
        loss: 0.0,
        seed: 5,
    };
    config.downlink.delay = 0.010;
    let bottleneck = 4e6;
    let emulator = Emulator::start(
        config,
        Arc::new(ConstantRate { bps: bottleneck }),
        Arc::new(ConstantRate { bps: 5e7 }),
    )
    .await
    .expect("emulator");
    let client = agent(emulator.local_addr(), &identity).await;
    client.take_rate_samples();
    // 600 kB: 1.2 s at 4 Mbit/s, long enough for the window to fill the pipe.
    let reply = client
        .send_frame(header(1), layers(1, &[100_000; 6]), Duration::from_secs(5))
        .await
        .expect("whole frame");
    assert_eq!(reply.layers_received, 6);
    let train = reply
        .train_sample
        .expect("train sample")
        .rate_bps()
        .expect("rate");
    let mut per_ack: Vec<f64> = client
        .take_rate_samples()
        .iter()
        .filter_map(|s| s.rate_bps())
        .collect();
    per_ack.sort_by(f64::total_cmp);
    assert!(per_ack.len() >= 10, "{} per-ack samples", per_ack.len());
    let median = offload_transport::percentile(&per_ack, 0.5);
    println!(
        "bottleneck {bottleneck} bit/s: train {train:.0} bit/s, per-ack median {median:.0} bit/s over {} samples",
        per_ack.len()
    );
    // QUIC and UDP headers make the goodput a few percent lower than the link rate.
    assert!((train / bottleneck - 0.95).abs() < 0.10, "train {train}");
    assert!(
        (median / bottleneck - 0.95).abs() < 0.15,
        "per-ack median {median}"
    );
    client.close().await;
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_survive_random_loss_and_path_stats_see_it() {
    let (server, identity) = start_server(ServerLimits::default());
    let mut config = EmulatorConfig::new("127.0.0.1:0".parse().expect("addr"), server.local_addr());
    config.uplink = LinkConfig {
        delay: 0.005,
        queue_bytes: 64 * 1024,
        loss: 0.03,
        seed: 11,
    };
    config.downlink.delay = 0.005;
    let emulator = Emulator::start(
        config,
        Arc::new(ConstantRate { bps: 2e7 }),
        Arc::new(ConstantRate { bps: 5e7 }),
    )
    .await
    .expect("emulator");
    let client = agent(emulator.local_addr(), &identity).await;
    for id in 0..5 {
        let sent = layers(id as u8, &[10_000, 30_000, 60_000]);
        let reply = client
            .send_frame(header(id), sent.clone(), Duration::from_secs(3))
            .await
            .expect("frame crosses a lossy link");
        assert_eq!(reply.layers_received, 3);
        assert_eq!(
            String::from_utf8(reply.payload).expect("utf8"),
            summary(&header(id).codec_header, &sent)
        );
    }
    let path = client.path_stats().await.expect("connected");
    let relay = emulator.stats();
    println!("path {path:?}; relay uplink {:?}", relay.uplink);
    assert!(relay.uplink.random_losses > 0);
    assert!(path.lost_packets > 0, "{path:?}");
    assert!(path.congestion_events > 0, "{path:?}");
    client.close().await;
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_fill_the_path_mtu_the_overhead_model_reads() {
    let (server, identity) = start_server(ServerLimits::default());
    let mut config = EmulatorConfig::new("127.0.0.1:0".parse().expect("addr"), server.local_addr());
    config.uplink_packet_log = 10_000;
    let emulator = Emulator::start(
        config,
        Arc::new(ConstantRate { bps: 5e7 }),
        Arc::new(ConstantRate { bps: 5e7 }),
    )
    .await
    .expect("emulator");
    let client = agent(emulator.local_addr(), &identity).await;
    // quinn probes the path MTU right after the handshake; give it time.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let overhead = client.overhead();
    let mtu = client.path_stats().await.expect("connected").mtu;
    println!("path MTU {mtu}, overhead model {overhead:?}");
    assert_eq!(overhead.max_udp_payload, u64::from(mtu));
    assert!(mtu > 1200, "path-MTU discovery found {mtu}");

    let before = emulator.uplink_packets().len();
    let sent = layers(5, &[1_000, 4_000, 8_000]);
    let stream = offload_transport::WireOverhead::stream_bytes(
        header(7).codec_header.len() as u64,
        sent.iter().map(|l| l.len() as u64),
    );
    client
        .send_frame(header(7), sent, Duration::from_secs(2))
        .await
        .expect("reply");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let packets = emulator.uplink_packets();
    let data: Vec<u64> = packets[before..]
        .iter()
        .map(|p| p.bytes)
        .filter(|&b| b > 80)
        .collect();
    let modelled = overhead.wire_bytes(stream) - overhead.per_frame;
    let real: u64 = data.iter().sum();
    println!(
        "{} data packets, largest {:?}, {real} B; modelled {modelled} B",
        data.len(),
        data.iter().max()
    );
    assert_eq!(data.iter().max().copied(), Some(u64::from(mtu)));
    assert_eq!(
        data.len() as u64,
        stream.div_ceil(overhead.max_udp_payload - overhead.per_packet)
    );
    let error = real as f64 / modelled as f64 - 1.0;
    assert!(error.abs() < 0.02, "model off by {error:+.3}");
}
