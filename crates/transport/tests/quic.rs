//! Real QUIC on 127.0.0.1: round trips, authentication, certificate pinning, dead servers.

mod common;

use std::time::Duration;

use common::*;
use offload_transport::{
    AgentClient, AuthToken, ServerIdentity, ServerLimits, ServerTrust, TransportError,
    wire::ReplyStatus,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_round_trip_returns_result_and_receipts() {
    let (server, identity) = start_server(ServerLimits::default());
    let client = agent(server.local_addr(), &identity).await;
    let sizes = [300, 2_000, 20_000, 50_000];
    let sent = layers(7, &sizes);
    let h = header(42);
    let expected = summary(&h.codec_header, &sent);
    let reply = client
        .send_frame(h, sent, Duration::from_secs(2))
        .await
        .expect("reply");
    assert_eq!(reply.frame_id, 42);
    assert_eq!(String::from_utf8(reply.payload).expect("utf8"), expected);
    assert_eq!(reply.layers_received, 4);
    assert_eq!(reply.layers_written, 4);
    assert!(!reply.cancelled);
    let record_sizes: Vec<u64> = reply.receipts.iter().map(|r| r.bytes).collect();
    assert_eq!(record_sizes, vec![304, 2_004, 20_004, 50_004]);
    for pair in reply.receipts.windows(2) {
        assert!(
            pair[0].last_byte <= pair[1].first_byte + 1e-6,
            "layers arrive in order"
        );
    }
    assert!(reply.receipts[0].first_byte >= reply.header_done - 1e-6);
    let e2e = reply.end_to_end_sample.expect("end-to-end sample");
    assert_eq!(e2e.bytes, 72_316 + 22 + 15);
    assert!(e2e.end > e2e.start && reply.round_trip > 0.0);
    let stats = client.path_stats().await.expect("connected");
    assert!(stats.rtt > 0.0 && stats.cwnd > 0 && stats.sent_packets > 0);

    // A handler error comes back typed, and the connection keeps working.
    let mut bad = header(43);
    bad.model_id = 666;
    match client
        .send_frame(bad, layers(1, &[10]), Duration::from_secs(1))
        .await
    {
        Err(TransportError::Rejected {
            status: ReplyStatus::HandlerFailed,
            message,
            ..
        }) => {
            assert!(message.contains("666"), "{message}");
        }
        other => panic!("expected a handler error, got {other:?}"),
    }
    let again = client
        .send_frame(header(44), layers(2, &[100]), Duration::from_secs(1))
        .await
        .expect("still serving");
    assert_eq!(again.layers_received, 1);
    client.close().await;
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_rate_samples_are_taken_per_ack() {
    let (server, identity) = start_server(ServerLimits::default());
    let client = agent(server.local_addr(), &identity).await;
    client.take_rate_samples();
    for id in 0..3 {
        client
            .send_frame(
                header(id),
                layers(3, &[200_000, 200_000]),
                Duration::from_secs(3),
            )
            .await
            .expect("reply");
    }
    let samples = client.take_rate_samples();
    assert!(!samples.is_empty(), "bulk transfers produce rate samples");
    for s in &samples {
        assert!(s.end > s.start && s.bytes > 0, "{s:?}");
        assert!(s.end <= client.now() + 1e-6);
    }
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_agent_is_refused() {
    let (server, identity) = start_server(ServerLimits::default());
    let result = AgentClient::connect(
        server.local_addr(),
        "localhost",
        ServerTrust::Pinned(identity.fingerprint()),
        AuthToken::new("not-the-token").expect("token"),
        quick_config(),
    )
    .await;
    match result {
        Err(TransportError::Unauthenticated { reason, .. }) => {
            assert!(reason.contains("token"), "{reason}")
        }
        Err(other) => panic!("expected Unauthenticated, got {other}"),
        Ok(_) => panic!("a wrong token must not connect"),
    }
    // The server is unharmed.
    let client = agent(server.local_addr(), &identity).await;
    client
        .send_frame(header(1), layers(0, &[10]), Duration::from_secs(1))
        .await
        .expect("valid agent served");
    assert!(server.stats().connections_refused >= 1);
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_fingerprint_is_refused() {
    let (server, identity) = start_server(ServerLimits::default());
    let impostor = ServerIdentity::generate(&["localhost"]).expect("rcgen");
    let result = AgentClient::connect(
        server.local_addr(),
        "localhost",
        ServerTrust::Pinned(impostor.fingerprint()),
        AuthToken::new(TOKEN).expect("token"),
        quick_config(),
    )
    .await;
    match result {
        Err(TransportError::CertificateMismatch { expected, actual }) => {
            assert_eq!(expected, impostor.fingerprint());
            assert_eq!(actual, identity.fingerprint());
        }
        Err(other) => panic!("expected CertificateMismatch, got {other}"),
        Ok(_) => panic!("a wrong pin must not connect"),
    }
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_trust_checks_the_server_name() {
    let (server, identity) = start_server(ServerLimits::default());
    let roots = ServerTrust::Roots(vec![identity.certificate().clone()]);
    let token = || AuthToken::new(TOKEN).expect("token");
    let ok = AgentClient::connect(
        server.local_addr(),
        "localhost",
        roots.clone(),
        token(),
        quick_config(),
    )
    .await
    .expect("name in certificate");
    ok.send_frame(header(5), layers(5, &[64]), Duration::from_secs(1))
        .await
        .expect("served");
    let wrong = AgentClient::connect(
        server.local_addr(),
        "evil.example",
        roots,
        token(),
        quick_config(),
    )
    .await;
    assert!(
        matches!(wrong, Err(TransportError::Refused { .. })),
        "{:?}",
        wrong.err()
    );
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_server_gives_typed_errors_and_backoff() {
    // Bind and drop a UDP socket to get a loopback port nobody listens on.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("ephemeral port");
    let identity = ServerIdentity::generate(&["localhost"]).expect("rcgen");
    let mut config = quick_config();
    config.connect_timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let result = AgentClient::connect(
        port,
        "localhost",
        ServerTrust::Pinned(identity.fingerprint()),
        AuthToken::new(TOKEN).expect("token"),
        config,
    )
    .await;
    let err = result.expect_err("nobody listens");
    assert!(err.server_unavailable(), "{err}");
    assert!(
        matches!(err, TransportError::ConnectTimeout { .. }),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_reconnects_after_server_restart_with_backoff() {
    let (server, identity) = start_server(ServerLimits::default());
    let addr = server.local_addr();
    let client = agent(addr, &identity).await;
    client
        .send_frame(header(1), layers(1, &[10]), Duration::from_secs(1))
        .await
        .expect("first frame");
    server.shutdown(Duration::from_millis(200)).await;

    // The connection is gone: frames fail with a typed error within their deadline (a
    // reconnect attempt made for a frame is cut at the frame's deadline), and right after a
    // failed attempt the backoff answers at once.
    for id in 2..5 {
        let asked = std::time::Instant::now();
        let err = client
            .send_frame(header(id), layers(1, &[10]), Duration::from_millis(300))
            .await
            .expect_err("server is down");
        assert!(err.server_unavailable(), "{err}");
        assert!(
            asked.elapsed() < Duration::from_millis(600),
            "{err} after {:?}",
            asked.elapsed()
        );
    }
    let err = client
        .send_frame(header(5), layers(1, &[10]), Duration::from_millis(300))
        .await
        .expect_err("server is down");
    assert!(
        matches!(
            err,
            TransportError::Backoff { .. } | TransportError::ConnectTimeout { .. }
        ),
        "{err}"
    );

    // A new server on the same port with the same identity: reconnect() gets there.
    let server = offload_transport::EdgeServer::bind(
        addr,
        &identity,
        AuthToken::new(TOKEN).expect("token"),
        std::sync::Arc::new(Summariser),
        ServerLimits::default(),
    )
    .expect("rebind");
    client.reconnect().await.expect("reconnects");
    let reply = client
        .send_frame(header(4), layers(4, &[10, 20]), Duration::from_secs(1))
        .await
        .expect("served again");
    assert_eq!(reply.layers_received, 2);
    server.shutdown(Duration::from_secs(1)).await;
}
