//! Server resource bounds and graceful shutdown, with a handler that takes its time.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use offload_transport::wire::ReplyStatus;
use offload_transport::{
    AgentClient, AuthToken, EdgeServer, HandlerError, ReceivedFrame, ServerIdentity, ServerLimits,
    ServerTrust, TransportError,
};

/// A handler that sleeps, standing in for slow inference.
fn slow_server(limits: ServerLimits, nap: Duration) -> (EdgeServer, ServerIdentity) {
    let identity = ServerIdentity::generate(&["localhost"]).expect("rcgen");
    let handler = move |frame: &ReceivedFrame| -> Result<Vec<u8>, HandlerError> {
        std::thread::sleep(nap);
        Ok(frame.frame_id.to_be_bytes().to_vec())
    };
    let server = EdgeServer::bind(
        "127.0.0.1:0".parse().expect("addr"),
        &identity,
        AuthToken::new(TOKEN).expect("token"),
        Arc::new(handler),
        limits,
    )
    .expect("bind");
    (server, identity)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_beyond_the_in_flight_bound_are_refused_not_queued() {
    let limits = ServerLimits {
        max_frames_in_flight: 1,
        ..ServerLimits::default()
    };
    let (server, identity) = slow_server(limits, Duration::from_millis(400));
    let client = Arc::new(agent(server.local_addr(), &identity).await);
    let first = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .send_frame(header(1), layers(1, &[100]), Duration::from_secs(2))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = client
        .send_frame(header(2), layers(1, &[100]), Duration::from_secs(2))
        .await;
    match second {
        Err(
            e @ TransportError::Rejected {
                status: ReplyStatus::Overloaded,
                ..
            },
        ) => {
            assert!(e.server_unavailable(), "{e}");
        }
        other => panic!("expected Overloaded, got {other:?}"),
    }
    let first = first.await.expect("task").expect("first frame served");
    assert_eq!(first.payload, 1u64.to_be_bytes());
    // Once the first is done there is room again.
    client
        .send_frame(header(3), layers(1, &[100]), Duration::from_secs(2))
        .await
        .expect("served after the first finished");
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_bound_are_refused() {
    let limits = ServerLimits {
        max_connections: 2,
        ..ServerLimits::default()
    };
    let (server, identity) = start_server(limits);
    let _a = agent(server.local_addr(), &identity).await;
    let _b = agent(server.local_addr(), &identity).await;
    let third = AgentClient::connect(
        server.local_addr(),
        "localhost",
        ServerTrust::Pinned(identity.fingerprint()),
        AuthToken::new(TOKEN).expect("token"),
        quick_config(),
    )
    .await;
    match third {
        Err(e @ TransportError::Refused { .. }) => assert!(e.server_unavailable()),
        other => panic!("expected Refused, got {:?}", other.err()),
    }
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_frames_in_flight_finish() {
    let (server, identity) = slow_server(ServerLimits::default(), Duration::from_millis(300));
    let client = Arc::new(agent(server.local_addr(), &identity).await);
    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .send_frame(header(7), layers(7, &[1_000]), Duration::from_secs(2))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.shutdown(Duration::from_secs(2)).await;
    let reply = in_flight
        .await
        .expect("task")
        .expect("answered before shutdown completed");
    assert_eq!(reply.payload, 7u64.to_be_bytes());
    // Afterwards the agent gets a typed "server unavailable" error.
    let err = client
        .send_frame(header(8), layers(8, &[10]), Duration::from_millis(300))
        .await
        .expect_err("server is gone");
    assert!(err.server_unavailable(), "{err}");
}

/// A reply later than the agent waits is this frame's failure, not the server's: the agent
/// keeps the connection (a stalled link would deliver the frames queued in it) and the next
/// frame goes over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_reply_keeps_the_connection() {
    let (server, identity) = slow_server(ServerLimits::default(), Duration::from_millis(800));
    let mut config = quick_config();
    config.reply_timeout = Duration::from_millis(100);
    let client = AgentClient::connect(
        server.local_addr(),
        "localhost",
        ServerTrust::Pinned(identity.fingerprint()),
        AuthToken::new(TOKEN).expect("token"),
        config,
    )
    .await
    .expect("agent connects");
    let before = client
        .raw_connection()
        .await
        .expect("connection")
        .stable_id();
    let err = client
        .send_frame(header(1), layers(1, &[100]), Duration::from_millis(200))
        .await
        .expect_err("the handler takes 800 ms");
    assert!(matches!(err, TransportError::ReplyTimeout { .. }), "{err}");
    assert!(!err.server_unavailable(), "{err}");
    // The next frame, with time for the handler, is answered on the same connection.
    let reply = client
        .send_frame(header(2), layers(2, &[100]), Duration::from_secs(3))
        .await
        .expect("served on the same connection");
    assert_eq!(reply.payload, 2u64.to_be_bytes());
    let after = client
        .raw_connection()
        .await
        .expect("connection")
        .stable_id();
    assert_eq!(before, after);
    server.shutdown(Duration::from_secs(1)).await;
}
