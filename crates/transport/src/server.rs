//! The edge server: accepts agents over QUIC, authenticates them, reads frames up to their
//! deadline, runs the [`FrameHandler`] on the received prefix and replies.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use quinn::{RecvStream, SendStream, VarInt};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::auth::AuthToken;
use crate::handler::{FrameHandler, ReceivedFrame};
use crate::receive_clock::{ReceiveStamps, StampingSocket};
use crate::server_stats::{ServerStats, StatsSnapshot};
use crate::tls::{ServerIdentity, TlsError};
use crate::wire::{
    self, AUTH_ACCEPTED, AUTH_FIXED_LEN, AuthHello, FRAME_FIXED_LEN, FrameFixed, LAYER_PREFIX_LEN,
    Limits, Reply, ReplyFixed, ReplyStatus, WireReceipt, codes,
};

/// Bounds on the server's resources, and its timeouts.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Limits on sizes read from the wire.
    pub wire: Limits,
    /// Most agents connected at once; more are refused.
    pub max_connections: usize,
    /// Most frames one agent may have open at once (QUIC bidirectional stream credit).
    pub max_frames_per_connection: u32,
    /// Most frames being received or handled at once, over all agents; more get `Overloaded`.
    pub max_frames_in_flight: usize,
    /// Most handler calls running at once (blocking threads).
    pub max_concurrent_handlers: usize,
    /// Time an agent has to present its token after the handshake.
    pub auth_timeout: Duration,
    /// Time a frame's fixed header and codec header have to arrive.
    pub header_timeout: Duration,
    /// Extra time after a frame's upload budget (counted from its first byte) before the
    /// server stops waiting for layers. Zero by default: the agent announces the budget after
    /// which a result could no longer reach it in time, so the server is the one that cuts
    /// the frame and decodes the complete layers it has (partial results, docs/protocol.md).
    pub deadline_grace: Duration,
    /// Close a connection after this long without any packet.
    pub idle_timeout: Duration,
    /// How often throughput and latency percentiles are logged.
    pub stats_interval: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            wire: Limits::default(),
            max_connections: 1024,
            max_frames_per_connection: 16,
            max_frames_in_flight: 512,
            max_concurrent_handlers: std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(2),
            auth_timeout: Duration::from_secs(5),
            header_timeout: Duration::from_secs(5),
            deadline_grace: Duration::ZERO,
            idle_timeout: Duration::from_secs(30),
            stats_interval: Duration::from_secs(10),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The TLS identity could not be turned into a QUIC configuration.
    #[error("server TLS setup: {0}")]
    Tls(#[from] TlsError),
    /// A limit does not fit QUIC's fields.
    #[error("server limit {field} = {value} is out of range")]
    Limit {
        /// The limit.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// The UDP socket could not be bound.
    #[error("binding UDP {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

struct Shared<H> {
    token: AuthToken,
    handler: Arc<H>,
    limits: ServerLimits,
    /// Admission: a frame holds one until its reply is written.
    frames: Arc<Semaphore>,
    /// Drain: a frame stream holds one until the agent acknowledges its reply, so shutdown can
    /// wait for replies to be delivered without counting them against admission.
    unfinished: Arc<Semaphore>,
    handlers: Arc<Semaphore>,
    connections: AtomicUsize,
    stats: Arc<ServerStats>,
    shutdown: watch::Receiver<bool>,
    /// Time zero of the server's clock, which replies report their frames' origins on.
    clock: Instant,
    /// When the socket received each agent's latest datagram.
    stamps: Arc<ReceiveStamps>,
    /// The identity of `clock` the replies carry (`server_id`): its start on the wall clock.
    server_id: u64,
}

/// The latest reply of one connection that the agent acknowledged with an ACK-only packet,
/// and when the server's socket received that packet: the next reply tells the agent, which
/// knows when it sent the packet, and so measures the uplink's one-way delay on the same
/// layers as its link samples (docs/protocol.md, "link sample").
type AckedReply = Arc<std::sync::Mutex<Option<(u64, Instant)>>>;

/// A running edge server. Dropping it without [`EdgeServer::shutdown`] aborts it.
pub struct EdgeServer {
    endpoint: quinn::Endpoint,
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    accept_task: JoinHandle<()>,
    stats_task: JoinHandle<()>,
    stats: Arc<ServerStats>,
    unfinished: Arc<Semaphore>,
    max_unfinished: usize,
    clock: Instant,
}

impl EdgeServer {
    /// Binds `addr` and starts serving. Must be called inside a tokio runtime.
    pub fn bind<H: FrameHandler>(
        addr: SocketAddr,
        identity: &ServerIdentity,
        token: AuthToken,
        handler: Arc<H>,
        limits: ServerLimits,
    ) -> Result<Self, ServerError> {
        let mut config = identity.quic_server_config()?;
        let mut transport = quinn::TransportConfig::default();
        transport.max_concurrent_bidi_streams(VarInt::from_u32(limits.max_frames_per_connection));
        transport.max_concurrent_uni_streams(VarInt::from_u32(0));
        let idle =
            quinn::IdleTimeout::try_from(limits.idle_timeout).map_err(|_| ServerError::Limit {
                field: "idle_timeout",
                value: limits.idle_timeout.as_millis() as u64,
            })?;
        transport.max_idle_timeout(Some(idle));
        config.transport_config(Arc::new(transport));
        let stamps = Arc::new(ReceiveStamps::default());
        let endpoint = stamping_endpoint(config, addr, stamps.clone())
            .map_err(|source| ServerError::Bind { addr, source })?;
        let local_addr = endpoint
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let clock = Instant::now();
        let stats = Arc::new(ServerStats::new());
        let frames = Arc::new(Semaphore::new(limits.max_frames_in_flight));
        // QUIC stream credit bounds the open frame streams to this many.
        let max_unfinished = limits
            .max_connections
            .saturating_mul(limits.max_frames_per_connection as usize)
            .clamp(1, u32::MAX as usize);
        let unfinished = Arc::new(Semaphore::new(max_unfinished));
        let stats_interval = limits.stats_interval;
        let shared = Arc::new(Shared {
            token,
            handler,
            frames,
            unfinished: unfinished.clone(),
            handlers: Arc::new(Semaphore::new(limits.max_concurrent_handlers.max(1))),
            limits,
            connections: AtomicUsize::new(0),
            stats: stats.clone(),
            shutdown: shutdown_rx.clone(),
            clock,
            stamps,
            server_id: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| micros_u64(d).max(1)),
        });
        let accept_task = tokio::spawn(accept_loop(endpoint.clone(), shared));
        let stats_task = tokio::spawn(report_loop(stats.clone(), stats_interval, shutdown_rx));
        tracing::info!(%local_addr, fingerprint = %identity.fingerprint(), "edge server listening");
        Ok(Self {
            endpoint,
            local_addr,
            shutdown: shutdown_tx,
            accept_task,
            stats_task,
            stats,
            unfinished,
            max_unfinished,
            clock,
        })
    }

    /// Time zero of the clock the replies' `origin_us` count from (for analysis: a loopback
    /// run maps the server's times onto the agent's clock exactly with it).
    pub fn clock_epoch(&self) -> Instant {
        self.clock
    }

    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Totals and the latest window's throughput and latency percentiles.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Stops accepting agents and frames, lets frames in flight finish for up to `grace`, then
    /// closes every connection.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.shutdown.send(true);
        self.endpoint.set_server_config(None);
        let all = u32::try_from(self.max_unfinished).unwrap_or(u32::MAX);
        // Holding every drain permit means every reply has been acknowledged (or given up on).
        let drained = tokio::time::timeout(grace, self.unfinished.acquire_many(all)).await;
        if drained.is_err() {
            tracing::warn!(?grace, "frames still in flight at shutdown; closing anyway");
        }
        self.endpoint
            .close(codes::SHUTDOWN, b"server shutting down");
        let _ = tokio::time::timeout(grace, self.endpoint.wait_idle()).await;
        self.accept_task.abort();
        self.stats_task.abort();
        self.stats.roll_window();
        tracing::info!(stats = ?self.stats.snapshot(), "edge server stopped");
    }
}

impl Drop for EdgeServer {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.stats_task.abort();
    }
}

/// `quinn::Endpoint::server` with the socket wrapped in a [`StampingSocket`].
fn stamping_endpoint(
    config: quinn::ServerConfig,
    addr: SocketAddr,
    stamps: Arc<ReceiveStamps>,
) -> std::io::Result<quinn::Endpoint> {
    let runtime: Arc<dyn quinn::Runtime> = Arc::new(quinn::TokioRuntime);
    let socket = std::net::UdpSocket::bind(addr)?;
    let stamp_handle = socket.try_clone()?;
    let wrapped = runtime.wrap_udp_socket(socket)?;
    quinn::Endpoint::new_with_abstract_socket(
        quinn::EndpointConfig::default(),
        Some(config),
        Arc::new(StampingSocket::new(wrapped, stamp_handle, stamps)),
        runtime,
    )
}

async fn report_loop(
    stats: Arc<ServerStats>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(every.max(Duration::from_millis(100)));
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => stats.roll_window(),
            _ = shutdown.changed() => return,
        }
    }
}

async fn accept_loop<H: FrameHandler>(endpoint: quinn::Endpoint, shared: Arc<Shared<H>>) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            _ = shutdown.changed() => return,
        };
        let Some(incoming) = incoming else { return };
        if shared.connections.load(Ordering::Relaxed) >= shared.limits.max_connections {
            tracing::warn!(peer = %incoming.remote_address(), "refusing agent: too many connections");
            shared.stats.record_refused();
            incoming.refuse();
            continue;
        }
        shared.connections.fetch_add(1, Ordering::Relaxed);
        let shared = shared.clone();
        tokio::spawn(async move {
            let peer = incoming.remote_address();
            match incoming.await {
                Ok(conn) => serve_connection(conn, shared.clone()).await,
                Err(e) => tracing::debug!(%peer, error = %e, "handshake failed"),
            }
            shared.connections.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

async fn serve_connection<H: FrameHandler>(conn: quinn::Connection, shared: Arc<Shared<H>>) {
    let peer = conn.remote_address();
    match tokio::time::timeout(shared.limits.auth_timeout, authenticate(&conn, &shared)).await {
        Ok(Ok(())) => tracing::debug!(%peer, "agent authenticated"),
        Ok(Err((code, why))) => {
            tracing::warn!(%peer, reason = %why, "refusing agent");
            shared.stats.record_refused();
            conn.close(code, why.as_bytes());
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, "refusing agent: no token within the auth timeout");
            shared.stats.record_refused();
            conn.close(codes::UNAUTHENTICATED, b"no token in time");
            return;
        }
    }
    let mut shutdown = shared.shutdown.clone();
    let acked: AckedReply = Arc::default();
    loop {
        let accepted = tokio::select! {
            a = conn.accept_bi() => a,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((send, recv)) => {
                let shared = shared.clone();
                let conn = conn.clone();
                let acked = acked.clone();
                tokio::spawn(async move { serve_frame(&conn, send, recv, shared, acked).await });
            }
            Err(e) => {
                tracing::debug!(%peer, reason = %e, "agent connection ended");
                return;
            }
        }
    }
}

/// Reads the auth message on the connection's first stream; `Err` carries the close code.
async fn authenticate<H>(
    conn: &quinn::Connection,
    shared: &Shared<H>,
) -> Result<(), (VarInt, String)> {
    let (mut send, mut recv) = conn
        .accept_bi()
        .await
        .map_err(|e| (codes::UNAUTHENTICATED, format!("no auth stream: {e}")))?;
    let mut fixed = [0u8; AUTH_FIXED_LEN];
    recv.read_exact(&mut fixed)
        .await
        .map_err(|e| (codes::UNAUTHENTICATED, format!("reading auth message: {e}")))?;
    let hello = AuthHello::decode(&fixed).map_err(|e| (codes::BAD_HELLO, e.to_string()))?;
    let mut token = BytesMut::new();
    match read_exactly(&mut recv, usize::from(hello.token_len), &mut token).await {
        ReadOutcome::Done => {}
        other => return Err((codes::UNAUTHENTICATED, format!("reading token: {other:?}"))),
    }
    if !shared.token.verify(&token) {
        return Err((codes::UNAUTHENTICATED, "invalid token".into()));
    }
    send.write_all(&[AUTH_ACCEPTED])
        .await
        .map_err(|e| (codes::UNAUTHENTICATED, format!("acknowledging token: {e}")))?;
    let _ = send.finish();
    Ok(())
}

#[derive(Debug)]
enum ReadOutcome {
    /// The requested bytes were read.
    Done,
    /// The stream finished after `got` of the requested bytes.
    Eof { got: usize },
    /// The agent reset the stream (its deadline passed).
    Reset,
    /// The connection or stream failed.
    Failed(String),
}

/// Reads exactly `want` bytes into `buf`, growing it only as data arrives (never by a size
/// taken from the wire), and notes when the first byte came.
async fn read_exactly(recv: &mut RecvStream, want: usize, buf: &mut BytesMut) -> ReadOutcome {
    let mut got = 0;
    while got < want {
        match recv.read_chunk(want - got, true).await {
            Ok(Some(chunk)) => {
                got += chunk.bytes.len();
                buf.extend_from_slice(&chunk.bytes);
            }
            Ok(None) => return ReadOutcome::Eof { got },
            Err(quinn::ReadError::Reset(_)) => return ReadOutcome::Reset,
            Err(e) => return ReadOutcome::Failed(e.to_string()),
        }
    }
    ReadOutcome::Done
}

/// What was read of a frame before it ended.
struct Received {
    fixed: FrameFixed,
    header: Bytes,
    header_done: Duration,
    layers: Vec<Bytes>,
    receipts: Vec<WireReceipt>,
    bytes: u64,
    /// When the socket received the datagram that completed the last layer (see
    /// `receive_clock`).
    completed_at: Option<Instant>,
}

/// Why reading a frame stopped early with nothing to hand to the handler.
enum FrameFailure {
    /// Reply with this status and message.
    Reply(ReplyStatus, u64, String),
    /// The connection is gone; no reply possible.
    Lost(String),
}

async fn serve_frame<H: FrameHandler>(
    conn: &quinn::Connection,
    mut send: SendStream,
    mut recv: RecvStream,
    shared: Arc<Shared<H>>,
    acked: AckedReply,
) {
    let peer = conn.remote_address();
    let origin = Instant::now();
    // Never empty while stream credit holds; if it were, the frame is only untracked at shutdown.
    let _unfinished = shared.unfinished.clone().try_acquire_owned().ok();
    let Ok(frame_permit) = shared.frames.clone().try_acquire_owned() else {
        let _ = recv.stop(codes::STOP_READING);
        let msg = format!(
            "server busy: {} frames in flight",
            shared.limits.max_frames_in_flight
        );
        shared.stats.record_frame(false, 0, origin.elapsed());
        write_reply(
            &mut send,
            error_reply(ReplyStatus::Overloaded, 0, &msg),
            &shared.limits.wire,
        )
        .await;
        await_reply_ack(&send).await;
        return;
    };
    let received = match read_frame(&mut recv, origin, &shared.limits, || {
        shared.stamps.latest(conn.remote_address())
    })
    .await
    {
        Ok(r) => r,
        Err(FrameFailure::Lost(why)) => {
            tracing::debug!(%peer, reason = %why, "frame stream lost");
            return;
        }
        Err(FrameFailure::Reply(status, frame_id, msg)) => {
            tracing::debug!(%peer, frame_id, %status, reason = %msg, "rejecting frame");
            let _ = recv.stop(codes::STOP_READING);
            shared.stats.record_frame(false, 0, origin.elapsed());
            write_reply(
                &mut send,
                error_reply(status, frame_id, &msg),
                &shared.limits.wire,
            )
            .await;
            drop(frame_permit);
            await_reply_ack(&send).await;
            return;
        }
    };
    // Whatever else the agent still sends for this frame is of no use any more.
    let _ = recv.stop(codes::STOP_READING);
    let frame_id = received.fixed.frame_id;
    let header_done_us = micros_u32(received.header_done);
    let arrived_us = received.completed_at.map_or(0, |t| {
        micros_u64(t.saturating_duration_since(shared.clock)).max(1)
    });
    let bytes = received.bytes;
    let receipts = received.receipts.clone();
    let (status, payload, handler_time) = if received.layers.is_empty() {
        (ReplyStatus::NoLayers, Vec::new(), Duration::ZERO)
    } else {
        run_handler(peer, received, &shared).await
    };
    let ok = status == ReplyStatus::Ok;
    let (acked_frame_id, ack_arrived_us) = acked
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .map_or((0, 0), |(frame, at)| {
            (
                frame,
                micros_u64(at.saturating_duration_since(shared.clock)).max(1),
            )
        });
    let reply = Reply {
        fixed: ReplyFixed {
            status,
            frame_id,
            layers_received: receipts.len() as u16,
            header_done_us,
            handler_us: micros_u32(handler_time),
            reply_us: micros_u32(origin.elapsed()),
            min_rtt_us: micros_u32(conn.stats().path.min_rtt),
            origin_us: micros_u64(origin.saturating_duration_since(shared.clock)),
            arrived_us,
            server_id: shared.server_id,
            acked_frame_id,
            ack_arrived_us,
        },
        receipts,
        payload,
    };
    shared.stats.record_frame(ok, bytes, origin.elapsed());
    let written = Instant::now();
    write_reply(&mut send, reply, &shared.limits.wire).await;
    // The agent may have the reply before its acknowledgement reaches us; its next frame must
    // find room, so admission ends with the write.
    drop(frame_permit);
    if await_reply_ack(&send).await && ok {
        // Right after the acknowledgement: the sender's latest small datagram is the ACK-only
        // packet that carried it, unless the acknowledgement rode on a data packet (then the
        // latest small one is older than the reply and says nothing) or another small one
        // came in since (the agent matches only the packet it sent right after the reply).
        if let Some(at) = shared.stamps.latest_small(peer).filter(|&t| t > written) {
            let mut latest = acked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if latest.is_none_or(|(_, t)| t < at) {
                *latest = Some((frame_id, at));
            }
        }
    }
}

async fn run_handler<H: FrameHandler>(
    peer: SocketAddr,
    received: Received,
    shared: &Shared<H>,
) -> (ReplyStatus, Vec<u8>, Duration) {
    let Ok(_slot) = shared.handlers.acquire().await else {
        return (
            ReplyStatus::Overloaded,
            b"server shutting down".to_vec(),
            Duration::ZERO,
        );
    };
    let frame = ReceivedFrame {
        peer,
        frame_id: received.fixed.frame_id,
        model_id: received.fixed.model_id,
        layers_announced: received.fixed.layer_count,
        header: received.header,
        layers: received.layers,
    };
    let handler = shared.handler.clone();
    let started = Instant::now();
    let outcome = tokio::task::spawn_blocking(move || handler.handle(&frame)).await;
    let took = started.elapsed();
    let max_payload = shared.limits.wire.max_payload_bytes as usize;
    match outcome {
        Ok(Ok(payload)) if payload.len() <= max_payload => (ReplyStatus::Ok, payload, took),
        Ok(Ok(payload)) => {
            let msg = format!(
                "result payload of {} bytes exceeds the {max_payload}-byte limit",
                payload.len()
            );
            tracing::error!(%peer, %msg, "handler result too large");
            (ReplyStatus::HandlerFailed, msg.into_bytes(), took)
        }
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "handler failed");
            (
                ReplyStatus::HandlerFailed,
                truncate_message(&e.message, max_payload),
                took,
            )
        }
        Err(join) => {
            tracing::error!(%peer, error = %join, "handler panicked");
            (
                ReplyStatus::HandlerFailed,
                b"handler panicked".to_vec(),
                took,
            )
        }
    }
}

/// Reads the fixed header, the codec header and as many complete layers as arrive before the
/// deadline (plus grace), the agent's reset, or the end of the stream.
/// `received_at` says when the socket received the sender's latest datagram.
async fn read_frame(
    recv: &mut RecvStream,
    origin: Instant,
    limits: &ServerLimits,
    received_at: impl Fn() -> Option<Instant>,
) -> Result<Received, FrameFailure> {
    let wire = &limits.wire;
    let header_deadline = tokio::time::Instant::from_std(origin + limits.header_timeout);
    let mut fixed_buf = BytesMut::new();
    let fixed = match tokio::time::timeout_at(
        header_deadline,
        read_exactly(recv, FRAME_FIXED_LEN, &mut fixed_buf),
    )
    .await
    {
        Ok(ReadOutcome::Done) => {
            let mut raw = [0u8; FRAME_FIXED_LEN];
            raw.copy_from_slice(&fixed_buf);
            FrameFixed::decode(&raw, wire).map_err(|e| {
                FrameFailure::Reply(ReplyStatus::BadFrame, 0, format!("frame header: {e}"))
            })?
        }
        Ok(ReadOutcome::Eof { got }) => {
            return Err(FrameFailure::Reply(
                ReplyStatus::BadFrame,
                0,
                format!(
                    "truncated frame header: stream ended after {got} of {FRAME_FIXED_LEN} bytes"
                ),
            ));
        }
        Ok(ReadOutcome::Reset) => {
            return Err(FrameFailure::Reply(
                ReplyStatus::NoLayers,
                0,
                "frame cancelled before its header arrived".into(),
            ));
        }
        Ok(ReadOutcome::Failed(why)) => return Err(FrameFailure::Lost(why)),
        Err(_) => {
            return Err(FrameFailure::Reply(
                ReplyStatus::BadFrame,
                0,
                "frame header did not arrive in time".into(),
            ));
        }
    };
    let id = fixed.frame_id;
    let mut header = BytesMut::new();
    match tokio::time::timeout_at(
        header_deadline,
        read_exactly(recv, fixed.header_len as usize, &mut header),
    )
    .await
    {
        Ok(ReadOutcome::Done) => {}
        Ok(ReadOutcome::Eof { got }) => {
            return Err(FrameFailure::Reply(
                ReplyStatus::BadFrame,
                id,
                format!(
                    "truncated codec header: stream ended after {got} of {} bytes",
                    fixed.header_len
                ),
            ));
        }
        Ok(ReadOutcome::Reset) => {
            return Err(FrameFailure::Reply(
                ReplyStatus::NoLayers,
                id,
                "frame cancelled during its header".into(),
            ));
        }
        Ok(ReadOutcome::Failed(why)) => return Err(FrameFailure::Lost(why)),
        Err(_) => {
            return Err(FrameFailure::Reply(
                ReplyStatus::BadFrame,
                id,
                "codec header did not arrive in time".into(),
            ));
        }
    }
    let header_done = origin.elapsed();
    let layer_deadline =
        tokio::time::Instant::from_std(origin + fixed.deadline(wire) + limits.deadline_grace);
    let mut received = Received {
        fixed,
        header: header.freeze(),
        header_done,
        layers: Vec::new(),
        receipts: Vec::new(),
        bytes: 0,
        completed_at: None,
    };
    let mut frame_bytes = u64::from(fixed.header_len);
    for index in 0..usize::from(fixed.layer_count) {
        let step = tokio::time::timeout_at(
            layer_deadline,
            read_layer(recv, index, origin, frame_bytes, wire),
        )
        .await;
        match step {
            Ok(LayerOutcome::Layer(body, receipt)) => {
                // Right after the read: the datagram with the layer's last byte is the
                // sender's latest unless another came in since (then it is no later than now).
                received.completed_at = received_at();
                frame_bytes += u64::from(receipt.bytes) - LAYER_PREFIX_LEN as u64;
                received.bytes += u64::from(receipt.bytes);
                received.layers.push(body);
                received.receipts.push(receipt);
            }
            // The agent chose to send fewer layers than announced, or cancelled the rest.
            Ok(LayerOutcome::EndOfFrame | LayerOutcome::Cancelled) => break,
            Ok(LayerOutcome::Truncated(msg) | LayerOutcome::Invalid(msg)) => {
                return Err(FrameFailure::Reply(ReplyStatus::BadFrame, id, msg));
            }
            Ok(LayerOutcome::Lost(why)) => return Err(FrameFailure::Lost(why)),
            Err(_) => break,
        }
    }
    Ok(received)
}

enum LayerOutcome {
    Layer(Bytes, WireReceipt),
    EndOfFrame,
    Cancelled,
    Truncated(String),
    Invalid(String),
    Lost(String),
}

async fn read_layer(
    recv: &mut RecvStream,
    index: usize,
    origin: Instant,
    frame_bytes: u64,
    limits: &Limits,
) -> LayerOutcome {
    let mut prefix = BytesMut::new();
    match read_exactly(recv, LAYER_PREFIX_LEN, &mut prefix).await {
        ReadOutcome::Done => {}
        ReadOutcome::Eof { got: 0 } => return LayerOutcome::EndOfFrame,
        ReadOutcome::Eof { got } => {
            return LayerOutcome::Truncated(format!(
                "truncated length of layer[{index}]: {got} of {LAYER_PREFIX_LEN} bytes"
            ));
        }
        ReadOutcome::Reset => return LayerOutcome::Cancelled,
        ReadOutcome::Failed(why) => return LayerOutcome::Lost(why),
    }
    let first = origin.elapsed();
    let mut raw = [0u8; LAYER_PREFIX_LEN];
    raw.copy_from_slice(&prefix);
    let len = match wire::decode_layer_len(index, &raw, frame_bytes, limits) {
        Ok(len) => len,
        Err(e) => return LayerOutcome::Invalid(e.to_string()),
    };
    let mut body = BytesMut::new();
    match read_exactly(recv, len as usize, &mut body).await {
        ReadOutcome::Done => {}
        ReadOutcome::Eof { got } => {
            return LayerOutcome::Truncated(format!(
                "truncated layer[{index}]: stream ended after {got} of {len} bytes"
            ));
        }
        // A partial layer cannot be decoded: it is dropped with the rest.
        ReadOutcome::Reset => return LayerOutcome::Cancelled,
        ReadOutcome::Failed(why) => return LayerOutcome::Lost(why),
    }
    let receipt = WireReceipt {
        bytes: len + LAYER_PREFIX_LEN as u32,
        first_us: first.as_micros() as u64,
        last_us: origin.elapsed().as_micros() as u64,
    };
    LayerOutcome::Layer(body.freeze(), receipt)
}

fn error_reply(status: ReplyStatus, frame_id: u64, message: &str) -> Reply {
    Reply {
        fixed: ReplyFixed {
            status,
            frame_id,
            layers_received: 0,
            header_done_us: 0,
            handler_us: 0,
            reply_us: 0,
            min_rtt_us: 0,
            origin_us: 0,
            arrived_us: 0,
            server_id: 0,
            acked_frame_id: 0,
            ack_arrived_us: 0,
        },
        receipts: Vec::new(),
        payload: message.as_bytes().to_vec(),
    }
}

fn truncate_message(message: &str, max: usize) -> Vec<u8> {
    let mut end = message.len().min(max);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message.as_bytes()[..end].to_vec()
}

async fn write_reply(send: &mut SendStream, reply: Reply, limits: &Limits) {
    let bytes = match reply.encode(limits) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "could not encode reply");
            let _ = send.reset(codes::STOP_READING);
            return;
        }
    };
    if let Err(e) = send.write_all(&bytes).await {
        tracing::debug!(error = %e, "reply not delivered");
        return;
    }
    let _ = send.finish();
}

/// Waits (bounded) until the agent has acknowledged the reply: if this stream held the last
/// handle on a connection that is shutting down, dropping it earlier would close the
/// connection with the reply still unsent. Returns whether every byte of it was acknowledged.
async fn await_reply_ack(send: &SendStream) -> bool {
    matches!(
        tokio::time::timeout(REPLY_ACK_WAIT, send.stopped()).await,
        Ok(Ok(None))
    )
}

/// Longest wait for an agent to acknowledge a reply.
const REPLY_ACK_WAIT: Duration = Duration::from_secs(2);

fn micros_u64(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn micros_u32(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}
