//! QUIC transport between wearable agent and edge server, and the trace-driven link emulator.
//!
//! - [`AgentClient`] (agent side): connects with a pinned certificate fingerprint or a CA,
//!   authenticates with a token, sends one frame per stream (header, then layers in order),
//!   cancels what is unsent at the deadline, and returns the server's result together with
//!   per-layer receive times, delivery samples and QUIC path statistics.
//! - [`EdgeServer`] (server side): generic over a [`FrameHandler`], bounded in every size it
//!   reads and in the work it accepts; logs throughput and latency percentiles. A
//!   [`ModelRegistry`] serves several models at once, picked by each frame's model id.
//! - [`wire`]: the byte layout (see `docs/protocol.md`), sans-IO.
//! - [`emulator`]: a user-space UDP relay that shapes the uplink to a bandwidth trace.
#![warn(missing_docs)]

mod auth;
mod backlog;
mod client;
pub mod emulator;
mod error;
mod handler;
mod observe;
mod overhead;
mod rate_sampler;
mod receive_clock;
mod registry;
mod send_clock;
mod server;
mod server_stats;
mod tls;
mod uplink_delay;
mod uplink_log;
pub mod wire;

pub use auth::{AuthToken, TokenError};
pub use client::{AgentClient, ClientConfig, FrameHeader, FrameReply, LinkTruth, SendWindow};
pub use error::TransportError;
pub use handler::{FrameHandler, HandlerError, ReceivedFrame};
pub use observe::{
    DeliverySample, LayerReceipt, MIN_SERVICE_S, PathStats, PropagationRtt, ServerClock,
    ServiceTiming,
};
pub use overhead::WireOverhead;
pub use rate_sampler::{CongestionAlgorithm, RateSampleLog, SamplingController, SamplingFactory};
pub use registry::{DuplicateModel, ModelRegistry};
pub use server::{EdgeServer, ServerError, ServerLimits};
pub use server_stats::{StatsSnapshot, percentile};
pub use tls::{Fingerprint, ServerIdentity, ServerTrust, TlsError};
pub use uplink_delay::{IdlePacket, UplinkDelay};
