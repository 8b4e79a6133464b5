//! Truncated and hostile frames get an error reply; the connection and server keep serving.

mod common;

use std::time::Duration;

use common::*;
use offload_transport::ServerLimits;
use offload_transport::wire::{FrameFixed, Limits, Reply, ReplyStatus};
use rand::{RngCore, SeedableRng};

/// Opens a stream on the agent's connection, writes `bytes`, optionally finishes, and returns
/// the server's decoded reply.
async fn raw_frame(client: &offload_transport::AgentClient, bytes: &[u8], finish: bool) -> Reply {
    let conn = client.raw_connection().await.expect("connected");
    let (mut send, mut recv) = conn.open_bi().await.expect("stream");
    send.write_all(bytes).await.expect("write");
    if finish {
        send.finish().expect("finish");
    }
    let raw = tokio::time::timeout(Duration::from_secs(5), recv.read_to_end(1 << 20))
        .await
        .expect("reply in time")
        .expect("reply stream");
    Reply::decode(&raw, &Limits::default()).expect("well-formed error reply")
}

fn fixed(layer_count: u16, header_len: u32) -> Vec<u8> {
    FrameFixed {
        frame_id: 77,
        model_id: 1,
        deadline_us: 1_000_000,
        layer_count,
        header_len,
    }
    .encode()
    .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_get_error_replies_and_the_server_survives() {
    let limits = ServerLimits {
        header_timeout: Duration::from_millis(300),
        ..ServerLimits::default()
    };
    let (server, identity) = start_server(limits);
    let client = agent(server.local_addr(), &identity).await;

    let mut cases: Vec<(&str, Vec<u8>, bool, &str)> = vec![
        ("too many layers", fixed(u16::MAX, 0), true, "layer_count"),
        ("huge codec header", fixed(1, u32::MAX), true, "header_len"),
        ("zero layers", fixed(0, 0), true, "layer_count"),
        (
            "truncated fixed header",
            fixed(1, 0)[..10].to_vec(),
            true,
            "truncated frame header",
        ),
        (
            "truncated codec header",
            [fixed(1, 100), vec![1; 20]].concat(),
            true,
            "truncated codec header",
        ),
        (
            "stalled header",
            fixed(1, 0)[..5].to_vec(),
            false,
            "did not arrive in time",
        ),
    ];
    let mut oversized_layer = fixed(2, 0);
    oversized_layer.extend_from_slice(&u32::MAX.to_be_bytes());
    cases.push((
        "oversized layer length",
        oversized_layer,
        true,
        "layer[0].len",
    ));
    let mut truncated_layer = fixed(2, 0);
    truncated_layer.extend_from_slice(&1000u32.to_be_bytes());
    truncated_layer.extend_from_slice(&[9; 10]);
    cases.push((
        "truncated layer",
        truncated_layer,
        true,
        "truncated layer[0]",
    ));
    // A large declared length must not make the server allocate it: 64 bytes then the end.
    let mut declared_only = fixed(8, 0);
    declared_only.extend_from_slice(&(4u32 * 1024 * 1024).to_be_bytes());
    declared_only.extend_from_slice(&[0; 64]);
    cases.push((
        "declared layer without its bytes",
        declared_only,
        true,
        "truncated layer[0]",
    ));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    for i in 0..5 {
        let mut garbage = vec![0u8; 64 + i * 50];
        rng.fill_bytes(&mut garbage);
        cases.push(("garbage", garbage, true, ""));
    }

    for (name, bytes, finish, needle) in cases {
        let reply = raw_frame(&client, &bytes, finish).await;
        assert_eq!(reply.fixed.status, ReplyStatus::BadFrame, "{name}");
        let message = String::from_utf8_lossy(&reply.payload).into_owned();
        assert!(message.contains(needle), "{name}: {message}");
        // The next valid frame on the same connection is served.
        let ok = client
            .send_frame(header(1), layers(1, &[100, 200]), Duration::from_secs(1))
            .await
            .unwrap_or_else(|e| panic!("valid frame after {name}: {e}"));
        assert_eq!(ok.layers_received, 2, "{name}");
    }
    let stats = server.stats();
    assert!(
        stats.frames_failed >= 14 && stats.frames_ok >= 14,
        "{stats:?}"
    );
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_over_the_total_limit_is_refused_at_the_length_field() {
    let limits = ServerLimits {
        wire: Limits {
            max_layer_bytes: 1000,
            max_frame_bytes: 1500,
            ..Limits::default()
        },
        ..ServerLimits::default()
    };
    let (server, identity) = start_server(limits);
    let client = agent(server.local_addr(), &identity).await;
    let mut frame = fixed(2, 0);
    frame.extend_from_slice(&1000u32.to_be_bytes());
    frame.extend_from_slice(&[1; 1000]);
    frame.extend_from_slice(&1000u32.to_be_bytes());
    let reply = raw_frame(&client, &frame, false).await;
    assert_eq!(reply.fixed.status, ReplyStatus::BadFrame);
    let message = String::from_utf8_lossy(&reply.payload).into_owned();
    assert!(
        message.contains("frame bytes through layer[1]"),
        "{message}"
    );
    // The same sizes through the client API are caught by the server too.
    let err = client
        .send_frame(header(9), layers(0, &[1001]), Duration::from_secs(1))
        .await
        .expect_err("over the layer limit");
    assert!(err.to_string().contains("layer[0].len"), "{err}");
    server.shutdown(Duration::from_secs(1)).await;
}
