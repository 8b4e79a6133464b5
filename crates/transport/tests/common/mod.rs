//! Shared setup for the transport's integration tests: a real server on 127.0.0.1 with a
//! handler that summarises what it received, and agents that pin its certificate.

#![allow(dead_code)]

pub mod saturate;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use offload_transport::{
    AgentClient, AuthToken, ClientConfig, EdgeServer, FrameHandler, FrameHeader, HandlerError,
    ReceivedFrame, ServerIdentity, ServerLimits, ServerTrust,
};
use sha2::{Digest, Sha256};

pub const TOKEN: &str = "test-token-0123456789";

/// Replies with "layers=<n> bytes=<total> sha=<hex of the header and layers>" so a test can
/// check that exactly the bytes it sent arrived.
pub struct Summariser;

impl FrameHandler for Summariser {
    fn handle(&self, frame: &ReceivedFrame) -> Result<Vec<u8>, HandlerError> {
        if frame.model_id == 666 {
            return Err(HandlerError::new("model 666 is not loaded"));
        }
        Ok(summary(&frame.header, &frame.layers).into_bytes())
    }
}

/// What [`Summariser`] answers for these bytes.
pub fn summary(header: &[u8], layers: &[Bytes]) -> String {
    let mut h = Sha256::new();
    h.update(header);
    for l in layers {
        h.update(l);
    }
    let total: usize = layers.iter().map(|l| l.len()).sum();
    let digest: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("layers={} bytes={total} sha={digest}", layers.len())
}

/// A server on an ephemeral loopback port.
pub fn start_server(limits: ServerLimits) -> (EdgeServer, ServerIdentity) {
    let identity = ServerIdentity::generate(&["localhost", "127.0.0.1"]).expect("rcgen");
    let server = EdgeServer::bind(
        "127.0.0.1:0".parse().expect("addr"),
        &identity,
        AuthToken::new(TOKEN).expect("token"),
        Arc::new(Summariser),
        limits,
    )
    .expect("bind");
    (server, identity)
}

/// Client settings for tests: short timeouts so failures are quick.
pub fn quick_config() -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(2),
        reply_timeout: Duration::from_secs(2),
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        ..ClientConfig::default()
    }
}

/// An agent pinned to `identity`, connected to `addr` with the right token.
pub async fn agent(addr: SocketAddr, identity: &ServerIdentity) -> AgentClient {
    AgentClient::connect(
        addr,
        "localhost",
        ServerTrust::Pinned(identity.fingerprint()),
        AuthToken::new(TOKEN).expect("token"),
        quick_config(),
    )
    .await
    .expect("agent connects")
}

/// Deterministic layer contents: layer i has `sizes[i]` bytes of a pattern seeded by `seed`.
pub fn layers(seed: u8, sizes: &[usize]) -> Vec<Bytes> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            Bytes::from(
                (0..n)
                    .map(|j| {
                        (j as u8)
                            .wrapping_mul(31)
                            .wrapping_add(seed)
                            .wrapping_add(i as u8)
                    })
                    .collect::<Vec<u8>>(),
            )
        })
        .collect()
}

pub fn header(frame_id: u64) -> FrameHeader {
    FrameHeader {
        frame_id,
        model_id: 1,
        codec_header: Bytes::from(format!("codec-header-{frame_id}")),
    }
}
