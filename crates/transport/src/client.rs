//! The agent's side: one QUIC connection to the edge server, one stream per frame, layers
//! written in order until the deadline, then cancelled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use quinn::{SendStream, VarInt};
use tokio::sync::{Mutex, Notify};

use crate::auth::AuthToken;
use crate::backlog::Backlog;
use crate::error::TransportError;
use crate::observe::{
    DeliverySample, LayerReceipt, PathStats, PropagationRtt, ServerClock, ServiceTiming,
    frame_samples,
};
use crate::overhead::WireOverhead;
use crate::rate_sampler::{CongestionAlgorithm, RateSampleLog, SamplingFactory};
use crate::send_clock::{LoggingSocket, SMALL_DATAGRAM_BYTES, SocketLog};
use crate::tls::{MismatchLog, ServerTrust, quic_client_crypto};
use crate::uplink_delay::{IdlePacket, UplinkDelay};
use crate::uplink_log::UplinkLog;
use crate::wire::{
    self, AUTH_ACCEPTED, AuthHello, FRAME_FIXED_LEN, FrameFixed, Limits, Reply, ReplyStatus, codes,
};

/// The agent's connection settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Time allowed for the QUIC handshake plus the token exchange.
    pub connect_timeout: Duration,
    /// Time allowed for the reply after a frame's deadline (server compute plus the way back).
    pub reply_timeout: Duration,
    /// How much longer than `reply_timeout` an agent that has answered a frame without its
    /// reply (a local fallback, a probe beside the local path) still waits for it
    /// ([`SendWindow::reply_by`]): the reply carries the link's sample of the frame's service,
    /// which after a stall is the first news that the link is back — as in the simulator, whose
    /// frames that waited out a stall give their samples when they cross.
    pub sample_wait: Duration,
    /// Close the connection after this long without any packet.
    pub idle_timeout: Duration,
    /// Keep-alive interval (keeps NAT bindings and detects a dead server while idle).
    pub keep_alive: Option<Duration>,
    /// Wait after the first failed connection attempt; doubles per failure.
    pub backoff_initial: Duration,
    /// Longest wait between attempts.
    pub backoff_max: Duration,
    /// Attempts made by [`AgentClient::reconnect`].
    pub reconnect_attempts: u32,
    /// Bounds on what the agent accepts in replies.
    pub limits: Limits,
    /// Congestion controller used for the uplink.
    pub congestion: CongestionAlgorithm,
    /// Delivery-rate samples kept for [`AgentClient::take_rate_samples`] (0 disables sampling).
    pub rate_sample_capacity: usize,
    /// The uplink bytes a frame costs beyond its layers, for [`FrameReply::link_sample`].
    pub overhead: WireOverhead,
    /// For analysis only: the link's own record of each frame's service, which then times
    /// [`FrameReply::link_sample`] instead of the reply's times (a loopback run through the
    /// in-process emulator; `None` everywhere else).
    pub link_truth: Option<LinkTruth>,
    /// For analysis only (A/B against the samples before 2026-11-26, pass F): time
    /// [`FrameReply::link_sample`] with this frame's own reply — when the agent read it and
    /// when the server's task read the last byte — instead of the server's socket stamp
    /// mapped through the fastest recent reply, and start it without the wait behind the
    /// agent's ACK packets.
    pub reply_timed_link_samples: bool,
    /// For analysis only (A/B against pass F): time [`FrameReply::link_sample`] with the
    /// propagation delay of [`PropagationRtt`] (half the server's minimum RTT less the ACK
    /// packet's serialisation) from the frame's task's send start, instead of the one-way
    /// delay measured on the agent's ACK packets ([`UplinkDelay`]) from the socket's send of
    /// the frame's first packet; the server clock's window starts over with each connection.
    pub min_rtt_one_way: bool,
}

/// A record of when the uplink served a frame, outside the agent: given the frame's send
/// start (agent's clock, seconds since [`AgentClient::epoch`]) and how many data packets it
/// took, the bottleneck's start of service of the first data packet sent from then on and its
/// end of service of the last, on the same clock, if it has them.
///
/// With it a loopback run can feed its controller link samples without the agent's and the
/// server's timing error, and so tell that error's effect on the decisions apart from the
/// rest (`offload compare --true-link-samples`).
#[derive(Clone)]
pub struct LinkTruth(Arc<TruthFn>);

type TruthFn = dyn Fn(f64, u64) -> Option<(f64, f64)> + Send + Sync;

impl LinkTruth {
    /// A record answered by `service(send_start, packets)`.
    pub fn new(service: impl Fn(f64, u64) -> Option<(f64, f64)> + Send + Sync + 'static) -> Self {
        Self(Arc::new(service))
    }

    /// The service of the `packets` data packets of the frame sent at `send_start`.
    pub fn service(&self, send_start: f64, packets: u64) -> Option<(f64, f64)> {
        (self.0)(send_start, packets)
    }
}

impl std::fmt::Debug for LinkTruth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkTruth(..)")
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            reply_timeout: Duration::from_secs(2),
            // A few seconds' stall (mahimahi's driving traces have 4.6 s at zero) and the
            // queue behind it; within the 10 s idle timeout.
            sample_wait: Duration::from_secs(4),
            idle_timeout: Duration::from_secs(10),
            keep_alive: Some(Duration::from_secs(2)),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            reconnect_attempts: 5,
            limits: Limits::default(),
            congestion: CongestionAlgorithm::Cubic,
            rate_sample_capacity: 4096,
            overhead: WireOverhead::default(),
            link_truth: None,
            reply_timed_link_samples: false,
            min_rtt_one_way: false,
        }
    }
}

/// What the agent says about the frame it sends (besides the layers).
#[derive(Debug, Clone)]
pub struct FrameHeader {
    /// Agent-chosen id, echoed in the reply.
    pub frame_id: u64,
    /// Which split model produced the layers.
    pub model_id: u32,
    /// The codec's frame header, opaque to the transport.
    pub codec_header: Bytes,
}

/// When a frame's sending ends (see [`AgentClient::send_frame_within`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendWindow {
    /// The instant (agent's clock) up to which the server should read layers: the frame
    /// announces `server_cut − send start` as its upload budget, which the server counts from
    /// the frame's first byte. Layers complete by then are decoded; later ones are not waited
    /// for.
    pub server_cut: Instant,
    /// The instant at which the agent resets whatever QUIC has not had acknowledged.
    pub reset_at: Instant,
    /// The instant up to which the reply is awaited ([`AgentClient::send_frame`]: `reset_at`
    /// plus [`ClientConfig::reply_timeout`]).
    pub reply_by: Instant,
}

/// The server's answer to one frame, and what the agent learnt about the link from it.
#[derive(Debug, Clone)]
pub struct FrameReply {
    /// The frame.
    pub frame_id: u64,
    /// The handler's result.
    pub payload: Vec<u8>,
    /// Layers handed to QUIC before the deadline (not necessarily delivered).
    pub layers_written: usize,
    /// Whether unsent data was cancelled at the deadline.
    pub cancelled: bool,
    /// The upload budget the frame announced (`deadline_us`), seconds: the server stops
    /// reading layers this long after the frame's first byte, in its receipts' time.
    pub budget: f64,
    /// Complete layers the server received and decoded (a prefix of those sent).
    pub layers_received: usize,
    /// When each received layer arrived (server-relative seconds) and its record size.
    pub receipts: Vec<LayerReceipt>,
    /// When the codec header had arrived, server-relative seconds.
    pub header_done: f64,
    /// How long the server's handler ran, seconds.
    pub handler_time: f64,
    /// When the server wrote the reply, server-relative seconds (like the receipts).
    pub reply_written: f64,
    /// The time zero of the server-relative times on the server's clock, seconds.
    pub server_origin: f64,
    /// The shift from the server's clock to the agent's the sample was timed with (see
    /// [`ServerClock`]): the fastest of the connection's recent replies, seconds.
    pub server_clock_shift: f64,
    /// When the server's socket received the datagram that completed the last received
    /// layer, on the server's clock (seconds), if the server said.
    pub server_arrived: Option<f64>,
    /// When the agent started sending, seconds since [`AgentClient::epoch`].
    pub send_start: f64,
    /// When the agent's socket sent the frame's first data packet, seconds since
    /// [`AgentClient::epoch`] (`send_start` where it is not known): the start the link sample
    /// is timed from, unless [`ClientConfig::min_rtt_one_way`] or
    /// [`ClientConfig::reply_timed_link_samples`].
    pub wire_send_start: f64,
    /// From starting to send until the whole reply was read, seconds.
    pub round_trip: f64,
    /// Bytes of all received layers over [header complete, last layer complete].
    pub train_sample: Option<DeliverySample>,
    /// Bytes of the frame over [send start, last layer complete] (includes one-way delay).
    pub end_to_end_sample: Option<DeliverySample>,
    /// When the whole reply had been read, seconds since [`AgentClient::epoch`].
    pub reply_received: f64,
    /// The propagation round trip the timing assumes, seconds: the server clock's shift plus
    /// the uplink's one-way delay measured on the agent's ACK packets ([`UplinkDelay`]), the
    /// round trip through both stacks at their typical latencies; until it has
    /// [`UplinkDelay::MIN_PROBES`] measurements of the server's clock (and with
    /// [`ClientConfig::min_rtt_one_way`]), [`PropagationRtt`]'s. Never more than the agent's
    /// own QUIC minimum RTT.
    pub propagation_rtt: f64,
    /// Measurements of the uplink's one-way delay on ACK packets the timing had
    /// ([`UplinkDelay`]; 0: timed with [`PropagationRtt`]).
    pub uplink_delay_probes: usize,
    /// Uplink bytes of what the server received: the stream bytes of the frame header, the
    /// codec header and the complete layers, with [`ClientConfig::overhead`] added.
    pub wire_bytes_received: u64,
    /// When the last received layer reached the server, on the agent's clock (see
    /// [`ServiceTiming`]).
    pub arrival: f64,
    /// The frame's packets' bytes (`wire_bytes_received` without the reply's ACK packet, which
    /// crosses later) over the uplink's service of this frame: from when the bottleneck could
    /// start on it (sent, or done with the frame before) to its arrival, both shifted by the
    /// propagation delay. The rate of the link while it carried this frame.
    pub link_sample: Option<DeliverySample>,
}

struct ConnState {
    conn: Option<quinn::Connection>,
    failures: u32,
    next_attempt: Option<Instant>,
}

/// The agent's QUIC endpoint, connected to one edge server.
pub struct AgentClient {
    endpoint: quinn::Endpoint,
    server: SocketAddr,
    server_name: String,
    trust: ServerTrust,
    quic: quinn::ClientConfig,
    token: AuthToken,
    config: ClientConfig,
    epoch: Instant,
    mismatches: Arc<MismatchLog>,
    rate_log: Option<Arc<RateSampleLog>>,
    state: Mutex<ConnState>,
    uplink: std::sync::Mutex<UplinkLog>,
    propagation: std::sync::Mutex<PropagationRtt>,
    server_clock: std::sync::Mutex<ServerClock>,
    socket_log: Arc<SocketLog>,
    uplink_delay: std::sync::Mutex<UplinkDelay>,
    /// The latest replies' frames and when their tasks read them, to find the ACK-only
    /// packet the server reports later.
    reply_reads: std::sync::Mutex<std::collections::VecDeque<(u64, Instant)>>,
}

/// Replies whose read time is kept for matching the server's report of their ACK packet.
const REPLY_READS_KEPT: usize = 64;

/// A send time taken back from seconds on the agent's clock to an `Instant` may come out this
/// much after it was.
const SEND_TIME_ROUNDING_S: f64 = 1e-6;

/// How long before a packet reached the bottleneck everything sent earlier must have left it
/// for the packet to count as finding the link idle: a frame's arrival is placed within a few
/// tenths of a millisecond.
const IDLE_MARGIN_S: f64 = 0.5e-3;

impl std::fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentClient")
            .field("server", &self.server)
            .field("server_name", &self.server_name)
            .field("trust", &self.trust)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl AgentClient {
    /// Connects and authenticates. `server_name` is checked against the certificate when
    /// trusting a CA; with a pinned fingerprint it is only sent as SNI.
    pub async fn connect(
        server: SocketAddr,
        server_name: &str,
        trust: ServerTrust,
        token: AuthToken,
        config: ClientConfig,
    ) -> Result<Self, TransportError> {
        let epoch = Instant::now();
        let mismatches = Arc::new(MismatchLog::default());
        let crypto = quic_client_crypto(&trust, mismatches.clone())?;
        let mut quic = quinn::ClientConfig::new(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        let idle = quinn::IdleTimeout::try_from(config.idle_timeout).map_err(|_| {
            TransportError::InvalidFrame {
                frame_id: 0,
                reason: format!("idle timeout {:?} out of range", config.idle_timeout),
            }
        })?;
        transport.max_idle_timeout(Some(idle));
        transport.keep_alive_interval(config.keep_alive);
        transport.max_concurrent_uni_streams(VarInt::from_u32(0));
        let rate_log = (config.rate_sample_capacity > 0)
            .then(|| Arc::new(RateSampleLog::new(epoch, config.rate_sample_capacity)));
        transport.congestion_controller_factory(Arc::new(SamplingFactory::new(
            config.congestion,
            rate_log.clone(),
        )));
        quic.transport_config(Arc::new(transport));
        let bind: SocketAddr = if server.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let socket_log = Arc::new(SocketLog::default());
        let endpoint = logging_endpoint(bind, socket_log.clone()).map_err(TransportError::Bind)?;
        let ack_bytes = config.overhead.per_frame;
        let client = Self {
            endpoint,
            server,
            server_name: server_name.to_owned(),
            trust,
            quic,
            token,
            config,
            epoch,
            mismatches,
            rate_log,
            state: Mutex::new(ConnState {
                conn: None,
                failures: 0,
                next_attempt: None,
            }),
            uplink: std::sync::Mutex::new(UplinkLog::default()),
            propagation: std::sync::Mutex::new(PropagationRtt::new(ack_bytes)),
            server_clock: std::sync::Mutex::new(ServerClock::default()),
            socket_log,
            uplink_delay: std::sync::Mutex::new(UplinkDelay::default()),
            reply_reads: std::sync::Mutex::new(std::collections::VecDeque::new()),
        };
        client.connection(client.config.connect_timeout).await?;
        Ok(client)
    }

    /// The instant all `f64` times of this client count from.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// The settings this client was made with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Seconds since [`AgentClient::epoch`].
    pub fn now(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    /// The uplink overhead model this client reports wire bytes with: the configured one,
    /// with the connection's current path MTU as the packet size once quinn's path-MTU
    /// discovery has run (on loopback it grows packets from 1200 to 1452 bytes of UDP
    /// payload within the first second). `None` of the connection (being re-established)
    /// keeps the configured size.
    pub fn overhead(&self) -> WireOverhead {
        let mtu = self.state.try_lock().ok().and_then(|state| {
            state
                .conn
                .as_ref()
                .map(|c| u64::from(c.stats().path.current_mtu))
        });
        self.config.overhead.with_mtu(mtu)
    }

    /// The server this client talks to.
    pub fn server_addr(&self) -> SocketAddr {
        self.server
    }

    /// The current connection's path statistics, if connected. `None` too while a
    /// (re)connection attempt holds the connection state: the agent's frame loop reads these
    /// between frames and must never wait for the network.
    pub async fn path_stats(&self) -> Option<PathStats> {
        let state = self.state.try_lock().ok()?;
        state
            .conn
            .as_ref()
            .filter(|c| c.close_reason().is_none())
            .map(|c| PathStats::from_quinn(&c.stats()))
    }

    /// Delivery-rate samples taken per acknowledgement by the congestion-controller wrapper
    /// since the last call (application-limited samples are skipped).
    pub fn take_rate_samples(&self) -> Vec<DeliverySample> {
        self.rate_log.as_ref().map(|l| l.take()).unwrap_or_default()
    }

    /// The live QUIC connection (for diagnostics and protocol tests).
    pub async fn raw_connection(&self) -> Result<quinn::Connection, TransportError> {
        self.connection(self.config.connect_timeout).await
    }

    /// Drops the current connection and connects again, waiting with exponential backoff
    /// between at most `config.reconnect_attempts` attempts.
    pub async fn reconnect(&self) -> Result<(), TransportError> {
        {
            let mut state = self.state.lock().await;
            if let Some(conn) = state.conn.take() {
                conn.close(codes::CLOSED, b"reconnecting");
            }
            state.next_attempt = None;
        }
        let mut last = None;
        for _ in 0..self.config.reconnect_attempts.max(1) {
            // Each wait is at most `backoff_max` and each attempt at most `connect_timeout`.
            if let Some(wait) = self.backoff_remaining().await {
                tokio::time::sleep(wait).await;
            }
            match self.connection(self.config.connect_timeout).await {
                Ok(_) => return Ok(()),
                Err(e) if e.server_unavailable() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(TransportError::Refused {
            addr: self.server,
            reason: "no connection attempt was made".into(),
        }))
    }

    /// Time until the backoff allows the next connection attempt, if any.
    async fn backoff_remaining(&self) -> Option<Duration> {
        let state = self.state.lock().await;
        state
            .next_attempt
            .map(|at| at.saturating_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
    }

    /// Closes the connection and waits briefly for the close to reach the server.
    pub async fn close(&self) {
        let mut state = self.state.lock().await;
        if let Some(conn) = state.conn.take() {
            conn.close(codes::CLOSED, b"agent closing");
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), self.endpoint.wait_idle()).await;
    }

    /// The live connection, connecting (for at most `budget`, capped by `connect_timeout`) if
    /// there is none and the backoff allows it.
    async fn connection(&self, budget: Duration) -> Result<quinn::Connection, TransportError> {
        let mut state = self.state.lock().await;
        if let Some(conn) = state.conn.as_ref() {
            if conn.close_reason().is_none() {
                return Ok(conn.clone());
            }
            state.conn = None;
        }
        if let Some(at) = state.next_attempt {
            let now = Instant::now();
            if at > now {
                return Err(TransportError::Backoff {
                    addr: self.server,
                    failures: state.failures,
                    retry_in: at - now,
                });
            }
        }
        match self
            .connect_once(budget.min(self.config.connect_timeout))
            .await
        {
            Ok(conn) => {
                state.conn = Some(conn.clone());
                state.failures = 0;
                state.next_attempt = None;
                Ok(conn)
            }
            Err(e) => {
                state.failures = state.failures.saturating_add(1);
                let exp = state.failures.saturating_sub(1).min(16);
                let wait = self
                    .config
                    .backoff_initial
                    .saturating_mul(1 << exp)
                    .min(self.config.backoff_max);
                state.next_attempt = Some(Instant::now() + wait);
                tracing::debug!(server = %self.server, failures = state.failures, ?wait, error = %e, "connection attempt failed");
                Err(e)
            }
        }
    }

    async fn connect_once(&self, timeout: Duration) -> Result<quinn::Connection, TransportError> {
        let attempt = async {
            let connecting = self
                .endpoint
                .connect_with(self.quic.clone(), self.server, &self.server_name)
                .map_err(|e| TransportError::Refused {
                    addr: self.server,
                    reason: e.to_string(),
                })?;
            let conn = connecting.await.map_err(|e| self.classify(e))?;
            self.authenticate(&conn).await?;
            Ok(conn)
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::ConnectTimeout {
                addr: self.server,
                after: timeout,
            }),
        }
    }

    async fn authenticate(&self, conn: &quinn::Connection) -> Result<(), TransportError> {
        let hello =
            AuthHello::encode(self.token.as_bytes()).map_err(|e| TransportError::InvalidFrame {
                frame_id: 0,
                reason: format!("token: {e}"),
            })?;
        let lost = |conn: &quinn::Connection| match conn.close_reason() {
            Some(e) => self.classify(e),
            None => TransportError::Refused {
                addr: self.server,
                reason: "auth stream failed".into(),
            },
        };
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| self.classify(e))?;
        send.write_all(&hello).await.map_err(|_| lost(conn))?;
        let _ = send.finish();
        let mut ack = [0u8; 1];
        match recv.read_exact(&mut ack).await {
            Ok(()) if ack[0] == AUTH_ACCEPTED => Ok(()),
            Ok(()) => Err(TransportError::Unauthenticated {
                addr: self.server,
                reason: format!("unexpected auth reply byte {}", ack[0]),
            }),
            Err(_) => {
                // The server closes the connection right after a bad token; wait for the close
                // so the error names the real cause.
                let closed = tokio::time::timeout(Duration::from_millis(500), conn.closed()).await;
                Err(match closed {
                    Ok(e) => self.classify(e),
                    Err(_) => lost(conn),
                })
            }
        }
    }

    fn classify(&self, error: quinn::ConnectionError) -> TransportError {
        use quinn::ConnectionError as E;
        if let (Some(actual), ServerTrust::Pinned(expected)) = (self.mismatches.take(), &self.trust)
        {
            return TransportError::CertificateMismatch {
                expected: *expected,
                actual,
            };
        }
        match error {
            E::ApplicationClosed(close)
                if close.error_code == codes::UNAUTHENTICATED
                    || close.error_code == codes::BAD_HELLO =>
            {
                TransportError::Unauthenticated {
                    addr: self.server,
                    reason: String::from_utf8_lossy(&close.reason).into_owned(),
                }
            }
            E::TimedOut => TransportError::ConnectTimeout {
                addr: self.server,
                after: self.config.connect_timeout,
            },
            e @ (E::ConnectionClosed(_) | E::Reset | E::VersionMismatch | E::TransportError(_)) => {
                TransportError::Refused {
                    addr: self.server,
                    reason: e.to_string(),
                }
            }
            e => TransportError::ConnectionLost {
                addr: self.server,
                source: e,
            },
        }
    }

    /// Sends one frame: the header, then the layers in order, until `deadline` after the call;
    /// then cancels what is unsent and waits (up to `config.reply_timeout` more) for the reply.
    /// The server reads layers for as long (from the frame's first byte).
    pub async fn send_frame(
        &self,
        header: FrameHeader,
        layers: Vec<Bytes>,
        deadline: Duration,
    ) -> Result<FrameReply, TransportError> {
        let at = Instant::now() + deadline;
        self.send_frame_within(
            header,
            layers,
            SendWindow {
                server_cut: at,
                reset_at: at,
                reply_by: at + self.config.reply_timeout,
            },
        )
        .await
    }

    /// Sends one frame within `window`: the server is asked to stop reading layers
    /// `window.server_cut − send start` after the frame's first byte reached it and to decode
    /// the complete layers it has by then; the agent resets what is still unacknowledged at
    /// `window.reset_at`, and waits for the reply until `config.reply_timeout` after that.
    pub async fn send_frame_within(
        &self,
        header: FrameHeader,
        layers: Vec<Bytes>,
        window: SendWindow,
    ) -> Result<FrameReply, TransportError> {
        let called = Instant::now();
        let deadline = window.reset_at.saturating_duration_since(called);
        let frame_id = header.frame_id;
        let invalid = |reason: String| TransportError::InvalidFrame { frame_id, reason };
        let layer_count = u16::try_from(layers.len())
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| invalid(format!("{} layers (need 1..=65535)", layers.len())))?;
        let header_len = u32::try_from(header.codec_header.len())
            .map_err(|_| invalid("codec header over 4 GiB".into()))?;
        let mut prefixes = Vec::with_capacity(layers.len());
        for layer in &layers {
            prefixes.push(wire::encode_layer_len(layer.len()).map_err(|e| invalid(e.to_string()))?);
        }
        // A reconnect made for this frame must not outlive its deadline.
        let conn = self.connection(deadline).await?;
        let deadline_at = window.reset_at;
        // No stream by the deadline: the server's credit for open frames is held by this
        // agent's earlier frames (a stalled link); a closed connection says so itself.
        let (send, mut recv) = tokio::time::timeout_at(deadline_at.into(), conn.open_bi())
            .await
            .map_err(|_| match conn.close_reason() {
                Some(reason) => self.lost(reason),
                None => TransportError::ReplyTimeout {
                    frame_id,
                    waited: deadline,
                },
            })?
            .map_err(|e| self.lost(e))?;
        let send_start = Instant::now();
        let budget = window.server_cut.saturating_duration_since(send_start);
        let fixed = FrameFixed {
            frame_id,
            model_id: header.model_id,
            deadline_us: u32::try_from(budget.as_micros()).unwrap_or(u32::MAX),
            layer_count,
            header_len,
        };
        let rtt = conn.rtt();
        let mut first = BytesMut::with_capacity(FRAME_FIXED_LEN + header.codec_header.len());
        first.extend_from_slice(&fixed.encode());
        first.extend_from_slice(&header.codec_header);
        let records: Vec<(Bytes, Bytes)> = prefixes
            .into_iter()
            .map(|p| Bytes::copy_from_slice(&p))
            .zip(layers)
            .collect();
        // Earliest deadline first among this agent's concurrent frames: QUIC sends the
        // stream with the highest priority first.
        let deadline_ms = deadline_at
            .saturating_duration_since(self.epoch)
            .as_millis();
        let _ = send.set_priority(-i32::try_from(deadline_ms).unwrap_or(i32::MAX));
        let written = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(Notify::new());
        let writer = tokio::spawn(write_frame(
            send,
            first.freeze(),
            records,
            deadline_at,
            written.clone(),
            done.clone(),
        ));

        let reply_at = window.reply_by.max(deadline_at);
        let max_reply = Reply::max_encoded_len(&self.config.limits);
        let read = tokio::time::timeout_at(reply_at.into(), recv.read_to_end(max_reply)).await;
        let cancelled = if writer.is_finished() {
            writer.await.unwrap_or(false)
        } else {
            // The reply is in (or the wait is over): the writer resets what is left.
            done.notify_one();
            false
        };
        let bytes = match read {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(quinn::ReadToEndError::TooLong)) => {
                return Err(TransportError::BadReply {
                    frame_id,
                    source: wire::WireError::TooLarge {
                        field: "reply".into(),
                        value: max_reply as u64 + 1,
                        limit: max_reply as u64,
                    },
                });
            }
            Ok(Err(quinn::ReadToEndError::Read(e))) => {
                return Err(match conn.close_reason() {
                    Some(c) => self.lost(c),
                    None => TransportError::Stream {
                        frame_id,
                        reason: format!("reading reply: {e}"),
                    },
                });
            }
            Err(_) => {
                return Err(match conn.close_reason() {
                    Some(reason) => self.lost(reason),
                    None => TransportError::ReplyTimeout {
                        frame_id,
                        waited: reply_at - called,
                    },
                });
            }
        };
        let reply_received = Instant::now();
        let round_trip = (reply_received - send_start).as_secs_f64();
        let reply = Reply::decode(&bytes, &self.config.limits)
            .map_err(|source| TransportError::BadReply { frame_id, source })?;
        // Frame id 0 on an error reply means the server could not (or did not) read the header.
        let anonymous_error = reply.fixed.frame_id == 0 && reply.fixed.status != ReplyStatus::Ok;
        if reply.fixed.frame_id != frame_id && !anonymous_error {
            return Err(TransportError::BadReply {
                frame_id,
                source: wire::WireError::Inconsistent(format!(
                    "reply is for frame {}",
                    reply.fixed.frame_id
                )),
            });
        }
        match reply.fixed.status {
            ReplyStatus::Ok => {}
            ReplyStatus::NoLayers => {
                return Err(TransportError::NothingDelivered { frame_id, deadline });
            }
            status => {
                return Err(TransportError::Rejected {
                    frame_id,
                    status,
                    message: String::from_utf8_lossy(&reply.payload).into_owned(),
                });
            }
        }
        let receipts: Vec<LayerReceipt> = reply
            .receipts
            .iter()
            .map(|r| LayerReceipt {
                bytes: r.bytes.into(),
                first_byte: r.first_us as f64 * 1e-6,
                last_byte: r.last_us as f64 * 1e-6,
            })
            .collect();
        let header_done = f64::from(reply.fixed.header_done_us) * 1e-6;
        let send_start_s = send_start.duration_since(self.epoch).as_secs_f64();
        let header_bytes = (FRAME_FIXED_LEN + header.codec_header.len()) as u64;
        let (train, end_to_end) =
            frame_samples(send_start_s, rtt, header_done, header_bytes, &receipts);
        let stream_bytes = header_bytes + receipts.iter().map(|r| r.bytes).sum::<u64>();
        let overhead = self
            .config
            .overhead
            .with_mtu(Some(u64::from(conn.stats().path.current_mtu)));
        let wire_bytes_received = overhead.wire_bytes(stream_bytes);
        // The reply's ACK packet crosses the link after the frame, outside its interval.
        let in_interval = wire_bytes_received.saturating_sub(self.config.overhead.per_frame);
        let reply_received_s = reply_received.duration_since(self.epoch).as_secs_f64();
        let server_origin = reply.fixed.origin_us as f64 * 1e-6;
        let reply_written = f64::from(reply.fixed.reply_us) * 1e-6;
        let server_id = reply.fixed.server_id;
        // The one-way delay measured on the agent's ACK packets, from the socket's send; the
        // A/B modes keep pass F's (or the earlier) timing.
        let acked_delay =
            !self.config.reply_timed_link_samples && !self.config.min_rtt_one_way && server_id != 0;
        let clock_key = if acked_delay {
            server_id
        } else {
            conn.stable_id() as u64
        };
        let server_clock_shift = self
            .server_clock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .observe(clock_key, server_origin + reply_written, reply_received_s);
        let on_agent = |t: Instant| {
            t.checked_duration_since(self.epoch)
                .map_or(0.0, |d| d.as_secs_f64())
        };
        let first_datagram = self.socket_log.first_data_after(send_start, reply_received);
        let wire_send_start = first_datagram.map_or(send_start_s, |d| on_agent(d.at));
        let timing_start = if acked_delay {
            wire_send_start
        } else {
            send_start_s
        };
        // When the reply would have been read had it crossed as fast as the fastest recent
        // one: the late parts of this reply's way back are not the uplink's.
        let reply_fastest_s = server_origin + reply_written + server_clock_shift;
        let server_arrived =
            (reply.fixed.arrived_us > 0).then_some(reply.fixed.arrived_us as f64 * 1e-6);
        // The frame's last byte on the server's clock: when its socket had it, else when its
        // task read it (never later than that).
        let read_last = receipts.last().map_or(header_done, |r| r.last_byte);
        let (reply_at, last_byte) = if self.config.reply_timed_link_samples {
            (reply_received_s, read_last)
        } else {
            (
                reply_fastest_s,
                server_arrived.map_or(read_last, |t| (t - server_origin).min(read_last)),
            )
        };
        let ack_bytes = if self.config.reply_timed_link_samples {
            0
        } else {
            self.config.overhead.per_frame
        };
        let (propagation_rtt, uplink_delay_probes, arrival, link_sample) = {
            // A poisoned log only loses the queueing correction, never the sample.
            let mut log = self
                .uplink
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let timing = |rtt: f64| {
                let mut timing = ServiceTiming {
                    send_start: timing_start,
                    reply_received: reply_at,
                    one_way: rtt / 2.0,
                    last_byte,
                    reply_written,
                    previous_arrival: None,
                };
                timing.previous_arrival = match first_datagram.filter(|_| acked_delay) {
                    Some(datagram) => self.busy_before(&log, &timing, datagram.at, in_interval),
                    None => log.busy_until(timing_start, rtt / 2.0, ack_bytes),
                };
                timing
            };
            // The server's minimum RTT is measured with small uplink packets (ACKs); the
            // agent's own carries frames up the uplink and so their serialisation.
            let own = conn.stats().path.min_rtt.as_secs_f64();
            let server =
                (reply.fixed.min_rtt_us > 0).then(|| f64::from(reply.fixed.min_rtt_us) * 1e-6);
            let min_rtt = self
                .propagation
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .update(server, own, |rtt| {
                    timing(rtt).sample(in_interval).and_then(|s| s.rate_bps())
                });
            let (propagation_rtt, probes) = if acked_delay {
                self.acked_round_trip(server_id, own)
                    .unwrap_or((min_rtt, 0))
            } else {
                (min_rtt, 0)
            };
            let timing = timing(propagation_rtt);
            let arrival = timing.arrival();
            let sample = match &self.config.link_truth {
                Some(truth) => truth
                    .service(send_start_s, overhead.packets(stream_bytes))
                    .and_then(|(from, to)| {
                        (in_interval > 0 && to > from).then_some(DeliverySample {
                            start: from + timing.one_way,
                            end: to + timing.one_way,
                            bytes: in_interval,
                        })
                    }),
                None => timing.sample(in_interval),
            };
            log.record_frame(
                timing_start,
                arrival,
                overhead.packets(stream_bytes),
                timing.sample(in_interval).and_then(|s| s.rate_bps()),
            );
            log.record_reply(reply_received_s);
            if acked_delay {
                // This frame, if it found the link idle, and the ACK packet the reply reports
                // (after this frame is in the log: it may have been on the link then).
                if let (Some(datagram), Some(stamped)) = (first_datagram, server_arrived) {
                    let previous = timing.previous_arrival.unwrap_or(f64::NEG_INFINITY);
                    let rate = log.median_rate().unwrap_or(0.0);
                    if previous < timing_start + timing.one_way - IDLE_MARGIN_S
                        && !self.socket_log.queued_at(datagram.at, rate)
                    {
                        // One datagram: its own size; else the model's.
                        let bytes = if overhead.packets(stream_bytes) == 1 {
                            datagram.len as u64
                        } else {
                            in_interval
                        };
                        self.uplink_delay
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .idle_frame(
                                server_id,
                                IdlePacket {
                                    sent: timing_start,
                                    stamped,
                                    bytes,
                                    shift: server_clock_shift,
                                },
                            );
                    }
                }
                self.record_ack_probe(&reply.fixed, &log, timing.one_way, server_clock_shift);
            }
            (propagation_rtt, probes, arrival, sample)
        };
        {
            let mut reads = self
                .reply_reads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if reads.len() == REPLY_READS_KEPT {
                reads.pop_front();
            }
            reads.push_back((frame_id, reply_received));
        }
        Ok(FrameReply {
            frame_id,
            payload: reply.payload,
            layers_written: written.load(Ordering::Relaxed),
            cancelled,
            budget: f64::from(fixed.deadline_us) * 1e-6,
            layers_received: receipts.len(),
            receipts,
            header_done,
            handler_time: f64::from(reply.fixed.handler_us) * 1e-6,
            reply_written,
            server_origin,
            server_clock_shift,
            server_arrived,
            send_start: send_start_s,
            wire_send_start,
            round_trip,
            train_sample: train,
            end_to_end_sample: end_to_end,
            reply_received: reply_received_s,
            propagation_rtt,
            uplink_delay_probes,
            wire_bytes_received,
            arrival,
            link_sample,
        })
    }

    /// When the bottleneck was done with what the agent sent before the frame of `timing`,
    /// whose first datagram left at `first` and which put `bytes` on the link, on the clock
    /// shifted by the one-way delay: the previous frame's arrival, then everything the socket
    /// sent after the previous frame's datagrams and before `first` — ACK packets (also those
    /// sent while the previous frame was still on the link: they queued behind it),
    /// keep-alives, a new connection's handshake and path-MTU probes (after a reconnection
    /// these hold the link for 100–200 ms at 300 kbit/s, and the first frames' samples read
    /// 70 % low without them) — served one after the other at the rate of the moment
    /// ([`Backlog::before_frame`]; the samples' median rate where none fits).
    fn busy_before(
        &self,
        log: &UplinkLog,
        timing: &ServiceTiming,
        first: Instant,
        bytes: u64,
    ) -> Option<f64> {
        let one_way = timing.one_way;
        let window = self.on_agent(first) - SocketLog::BACKLOG_WINDOW.as_secs_f64();
        // The previous frame's own datagrams (its first sent at its `sent`) are in its arrival.
        let previous = log
            .previous_frame(timing.send_start)
            .filter(|f| f.sent >= window);
        let from = previous.map_or(window, |f| f.sent - SEND_TIME_ROUNDING_S);
        let mut own = previous.map_or(0, |f| f.packets);
        let from = self.epoch + Duration::try_from_secs_f64(from.max(0.0)).unwrap_or_default();
        let datagrams = self
            .socket_log
            .sent_between(from, first)
            .into_iter()
            .filter(|d| {
                if own == 0 {
                    return true;
                }
                if d.len > SMALL_DATAGRAM_BYTES {
                    own -= 1;
                }
                false
            })
            .map(|d| (self.on_agent(d.at) + one_way, d.len as f64 * 8.0))
            .collect();
        Backlog {
            previous_end: log.frames_done(timing.send_start),
            datagrams,
        }
        .before_frame(
            timing.send_start + one_way,
            timing.arrival(),
            bytes as f64 * 8.0,
            log.median_rate(),
        )
    }

    /// `t` on the agent's clock (seconds since the epoch; 0 before it).
    fn on_agent(&self, t: Instant) -> f64 {
        t.checked_duration_since(self.epoch)
            .map_or(0.0, |d| d.as_secs_f64())
    }

    /// The round trip to time a frame's sample with, measured on ACK packets
    /// ([`UplinkDelay`]), and the number of measurements. `None` before there are enough, or
    /// if it is not a round trip (not positive, or above the agent's own minimum RTT `own`).
    fn acked_round_trip(&self, server_id: u64, own: f64) -> Option<(f64, usize)> {
        let delay = self
            .uplink_delay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let rtt = delay.round_trip(server_id)?;
        (rtt > 0.0 && rtt <= own).then_some((rtt, delay.probes(server_id)))
    }

    /// Takes the server's report of the ACK-only packet that acknowledged an earlier reply
    /// for [`UplinkDelay`], if the agent's socket sent that packet right after the reply came
    /// in and it found the link idle: no frame in `log` (this one included) on it then,
    /// judged with the propagation delay `one_way`, and nothing else the socket sent before
    /// it; `shift` maps the server's clock.
    fn record_ack_probe(
        &self,
        fixed: &wire::ReplyFixed,
        log: &UplinkLog,
        one_way: f64,
        shift: f64,
    ) {
        if fixed.ack_arrived_us == 0 {
            return;
        }
        // Each reply's ACK is taken once: later replies report it again until a newer one.
        let read = {
            let mut reads = self
                .reply_reads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            reads
                .iter()
                .position(|(frame, _)| *frame == fixed.acked_frame_id)
                .and_then(|i| reads.remove(i))
                .map(|(_, read)| read)
        };
        let Some(packet) = read.and_then(|read| self.socket_log.ack_after_reply(read)) else {
            return;
        };
        let Some(sent) = packet.at.checked_duration_since(self.epoch) else {
            return;
        };
        let ack = IdlePacket {
            sent: sent.as_secs_f64(),
            stamped: fixed.ack_arrived_us as f64 * 1e-6,
            bytes: packet.len as u64,
            shift,
        };
        let rate = log.median_rate().unwrap_or(0.0);
        let idle = !log.busy_at(ack.sent, one_way - IDLE_MARGIN_S)
            && !self.socket_log.queued_at(packet.at, rate);
        tracing::debug!(
            frame = fixed.acked_frame_id,
            sent = ack.sent,
            stamped = ack.stamped,
            bytes = ack.bytes,
            idle,
            shift,
            "ACK packet"
        );
        if idle {
            self.uplink_delay
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .idle_ack(fixed.server_id, ack);
        }
    }

    fn lost(&self, error: quinn::ConnectionError) -> TransportError {
        match error {
            quinn::ConnectionError::ApplicationClosed(_) | quinn::ConnectionError::TimedOut => {
                TransportError::ConnectionLost {
                    addr: self.server,
                    source: error,
                }
            }
            other => self.classify(other),
        }
    }
}

/// `quinn::Endpoint::client` with the socket wrapped in a [`LoggingSocket`].
fn logging_endpoint(bind: SocketAddr, log: Arc<SocketLog>) -> std::io::Result<quinn::Endpoint> {
    let runtime: Arc<dyn quinn::Runtime> = Arc::new(quinn::TokioRuntime);
    let socket = std::net::UdpSocket::bind(bind)?;
    let wrapped = runtime.wrap_udp_socket(socket)?;
    quinn::Endpoint::new_with_abstract_socket(
        quinn::EndpointConfig::default(),
        None,
        Arc::new(LoggingSocket::new(wrapped, log)),
        runtime,
    )
}

/// Writes the frame until done and acknowledged, or until the deadline, when whatever QUIC
/// has not delivered yet is cancelled with a stream reset. Returns whether it cancelled.
///
/// When the server stops the stream (it cut the frame or rejected it) or the reply arrives
/// first (`done`), the rest is reset too: quinn keeps sending data already written to a
/// stream the peer stopped, and a dropped stream is finished, not reset, so without this the
/// tail of a frame the server has cut would still take its time on the uplink.
async fn write_frame(
    mut send: SendStream,
    first: Bytes,
    records: Vec<(Bytes, Bytes)>,
    deadline_at: Instant,
    written: Arc<AtomicUsize>,
    done: Arc<Notify>,
) -> bool {
    let work = async {
        send.write_chunk(first).await?;
        for (prefix, body) in records {
            send.write_chunk(prefix).await?;
            send.write_chunk(body).await?;
            written.fetch_add(1, Ordering::Relaxed);
        }
        send.finish().map_err(|_| quinn::WriteError::ClosedStream)?;
        // Completes once every byte is acknowledged (`None`) or the server stopped the stream;
        // until then a reset can still cancel.
        let stopped = send.stopped().await;
        Ok::<bool, quinn::WriteError>(matches!(stopped, Ok(Some(_))))
    };
    let outcome = tokio::select! {
        r = tokio::time::timeout_at(deadline_at.into(), work) => Some(r),
        () = done.notified() => None,
    };
    match outcome {
        Some(Ok(Ok(false))) => false,
        // The server stopped reading (it has what it wants, or rejected the frame), or the
        // reply is in: nothing more of this frame is wanted.
        Some(Ok(Ok(true) | Err(_))) | None => {
            let _ = send.reset(codes::CANCELLED);
            false
        }
        Some(Err(_)) => {
            let _ = send.reset(codes::CANCELLED);
            true
        }
    }
}
