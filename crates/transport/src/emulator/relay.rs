//! The UDP relay: agents send to it, it forwards to the server through the emulated uplink and
//! sends the server's packets back through the emulated downlink. One upstream socket per
//! agent address keeps flows apart.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use super::link::{LinkConfig, LinkModel, LinkStats, PacketRecord, Verdict};
use super::schedule::CapacitySchedule;

/// Largest UDP payload relayed.
const MAX_DATAGRAM: usize = 65_535;
/// Packets waiting for their exit time per direction, at most (beyond: dropped and counted).
const MAX_IN_FLIGHT_PACKETS: usize = 1 << 16;
/// Longest an egress thread sleeps before checking whether the relay stopped.
const EGRESS_NAP: Duration = Duration::from_millis(50);
/// Attempts to send a packet while the socket's buffer is full, a few microseconds apart.
const SEND_ATTEMPTS: u32 = 100;

/// Settings of the relay.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Address agents send to.
    pub listen: SocketAddr,
    /// The server's address.
    pub upstream: SocketAddr,
    /// Agent → server direction.
    pub uplink: LinkConfig,
    /// Server → agent direction.
    pub downlink: LinkConfig,
    /// Most agent addresses relayed at once; packets from more are dropped.
    pub max_flows: usize,
    /// A flow without packets for this long is forgotten.
    pub flow_idle_timeout: Duration,
    /// Packets to keep in each direction's packet log ([`Emulator::uplink_packets`],
    /// [`Emulator::downlink_packets`]); 0 keeps none.
    pub uplink_packet_log: usize,
}

impl EmulatorConfig {
    /// A relay from `listen` to `upstream` with default link settings.
    pub fn new(listen: SocketAddr, upstream: SocketAddr) -> Self {
        Self {
            listen,
            upstream,
            uplink: LinkConfig::default(),
            downlink: LinkConfig::default(),
            max_flows: 4096,
            flow_idle_timeout: Duration::from_secs(60),
            uplink_packet_log: 0,
        }
    }
}

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// A socket could not be bound.
    #[error("binding UDP {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An egress thread could not be started.
    #[error("starting the emulator's {direction} egress thread: {source}")]
    Thread {
        /// `uplink` or `downlink`.
        direction: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Counts of both directions and the flows seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EmulatorStats {
    /// Agent → server.
    pub uplink: LinkStats,
    /// Server → agent.
    pub downlink: LinkStats,
    /// Flows currently relayed.
    pub active_flows: usize,
    /// Flows created since start.
    pub flows_created: u64,
    /// Packets dropped because the flow table or an exit line was full, or a send failed.
    pub relay_drops: u64,
}

struct Flow {
    /// The flow's upstream socket, for the uplink's egress thread (the downlink's ingress task
    /// holds its tokio half).
    sender: Arc<std::net::UdpSocket>,
    last_seen: Mutex<Instant>,
    downlink_task: JoinHandle<()>,
}

struct Shared {
    start: Instant,
    config: EmulatorConfig,
    listen: Arc<UdpSocket>,
    /// The listen socket, for the downlink's egress thread.
    listen_sender: Arc<std::net::UdpSocket>,
    uplink: Mutex<LinkModel>,
    downlink: Mutex<LinkModel>,
    flows: Mutex<HashMap<SocketAddr, Arc<Flow>>>,
    stats: Mutex<EmulatorStats>,
    /// How late each direction's packets left after their exit time (uplink, downlink),
    /// seconds; the first `uplink_packet_log` of each.
    lateness: [Mutex<Vec<f64>>; 2],
    /// Set when the relay stops; the egress threads then end.
    stopped: AtomicBool,
}

impl Shared {
    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn count_drop(&self) {
        if let Ok(mut s) = self.stats.lock() {
            s.relay_drops += 1;
        }
    }
}

/// A packet on its way out of the link.
struct Exit {
    at: f64,
    payload: Bytes,
    socket: Arc<std::net::UdpSocket>,
    to: Option<SocketAddr>,
}

/// A non-blocking UDP socket bound to `addr`, as a tokio socket for receiving and a clone of
/// it for the egress threads.
fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, std::net::UdpSocket), EmulatorError> {
    let bind = |source| EmulatorError::Bind { addr, source };
    let socket = std::net::UdpSocket::bind(addr).map_err(bind)?;
    socket.set_nonblocking(true).map_err(bind)?;
    let sender = socket.try_clone().map_err(bind)?;
    Ok((UdpSocket::from_std(socket).map_err(bind)?, sender))
}

/// A running relay. Dropping it stops it.
pub struct Emulator {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Emulator {
    /// Binds the listen address and starts relaying. Time zero of both schedules is now.
    /// Must be called inside a tokio runtime.
    pub async fn start(
        config: EmulatorConfig,
        uplink: Arc<dyn CapacitySchedule>,
        downlink: Arc<dyn CapacitySchedule>,
    ) -> Result<Self, EmulatorError> {
        let (listen, listen_sender) = bind_pair(config.listen)?;
        let shared = Arc::new(Shared {
            start: Instant::now(),
            listen: Arc::new(listen),
            listen_sender: Arc::new(listen_sender),
            uplink: Mutex::new(
                LinkModel::new(uplink, config.uplink).with_packet_log(config.uplink_packet_log),
            ),
            downlink: Mutex::new(
                LinkModel::new(downlink, config.downlink).with_packet_log(config.uplink_packet_log),
            ),
            config,
            flows: Mutex::new(HashMap::new()),
            stats: Mutex::new(EmulatorStats::default()),
            lateness: [Mutex::new(Vec::new()), Mutex::new(Vec::new())],
            stopped: AtomicBool::new(false),
        });
        let (up_tx, up_rx) = std::sync::mpsc::sync_channel(MAX_IN_FLIGHT_PACKETS);
        let (down_tx, down_rx) = std::sync::mpsc::sync_channel(MAX_IN_FLIGHT_PACKETS);
        // Egress runs on its own threads: tokio's timers have millisecond granularity, and
        // a packet sent up to a millisecond late at each end of a frame's round trip was
        // measured as 1.1 ms median lateness per direction, as large as the rest of the
        // agent's timing error on a slow link. A thread sleeping to the exit time is late by
        // the OS timer slack (~50 µs) and scheduling only.
        for (direction, name, rx) in [(0, "uplink", up_rx), (1, "downlink", down_rx)] {
            let for_thread = shared.clone();
            if let Err(source) = std::thread::Builder::new()
                .name(format!("emulator-{name}"))
                .spawn(move || egress(&for_thread, &rx, direction))
            {
                shared.stopped.store(true, Ordering::Relaxed);
                return Err(EmulatorError::Thread {
                    direction: name,
                    source,
                });
            }
        }
        let tasks = vec![
            tokio::spawn(uplink_ingress(shared.clone(), up_tx, down_tx)),
            tokio::spawn(janitor(shared.clone())),
        ];
        Ok(Self { shared, tasks })
    }

    /// The address agents should send to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared
            .listen
            .local_addr()
            .unwrap_or(self.shared.config.listen)
    }

    /// Time zero of the schedules.
    pub fn started_at(&self) -> Instant {
        self.shared.start
    }

    /// Counts so far.
    pub fn stats(&self) -> EmulatorStats {
        let mut stats = self.shared.stats.lock().map(|s| *s).unwrap_or_default();
        if let Ok(l) = self.shared.uplink.lock() {
            stats.uplink = l.stats();
        }
        if let Ok(l) = self.shared.downlink.lock() {
            stats.downlink = l.stats();
        }
        stats.active_flows = self.shared.flows.lock().map(|f| f.len()).unwrap_or(0);
        stats
    }

    /// The uplink's packet log (times since [`Emulator::started_at`]; empty unless
    /// [`EmulatorConfig::uplink_packet_log`] is set).
    pub fn uplink_packets(&self) -> Vec<PacketRecord> {
        self.shared
            .uplink
            .lock()
            .map(|l| l.packet_log().to_vec())
            .unwrap_or_default()
    }

    /// The first `limit` packets of the uplink's log offered at or after `from` (seconds since
    /// [`Emulator::started_at`]), without copying the rest of the log.
    pub fn uplink_packets_from(&self, from: f64, limit: usize) -> Vec<PacketRecord> {
        self.shared
            .uplink
            .lock()
            .map(|l| {
                let log = l.packet_log();
                // Offer times never decrease: the relay stamps packets as it reads them.
                let first = log.partition_point(|p| p.offered < from);
                log[first..log.len().min(first.saturating_add(limit))].to_vec()
            })
            .unwrap_or_default()
    }

    /// The downlink's packet log, like [`Emulator::uplink_packets`]: with it, the time from a
    /// frame's arrival at the server to its reply entering the downlink, and from the reply's
    /// exit to the agent reading it, can be told apart.
    pub fn downlink_packets(&self) -> Vec<PacketRecord> {
        self.shared
            .downlink
            .lock()
            .map(|l| l.packet_log().to_vec())
            .unwrap_or_default()
    }

    /// How late the uplink's and the downlink's packets were sent after their exit times,
    /// seconds (as many as [`EmulatorConfig::uplink_packet_log`] per direction): the relay's
    /// own timer and scheduling error, which the endpoints see as link jitter.
    pub fn egress_lateness(&self) -> [Vec<f64>; 2] {
        let get = |m: &Mutex<Vec<f64>>| m.lock().map(|v| v.clone()).unwrap_or_default();
        [get(&self.shared.lateness[0]), get(&self.shared.lateness[1])]
    }

    /// Stops relaying.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::Relaxed);
        for t in &self.tasks {
            t.abort();
        }
        if let Ok(mut flows) = self.shared.flows.lock() {
            for (_, flow) in flows.drain() {
                flow.downlink_task.abort();
            }
        }
    }
}

/// Reads agents' packets, finds or creates their flow, and passes them through the uplink.
async fn uplink_ingress(shared: Arc<Shared>, up: SyncSender<Exit>, down: SyncSender<Exit>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (len, from) = match shared.listen.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors from earlier sends surface here on some systems; keep going.
                tracing::debug!(error = %e, "emulator listen socket");
                continue;
            }
        };
        let Some(flow) = flow_for(&shared, from, &down).await else {
            shared.count_drop();
            continue;
        };
        let now = shared.now();
        let verdict = match shared.uplink.lock() {
            Ok(mut link) => link.offer(now, len),
            Err(_) => return,
        };
        if let Verdict::Deliver { at } = verdict {
            let exit = Exit {
                at,
                payload: Bytes::copy_from_slice(&buf[..len]),
                socket: flow.sender.clone(),
                to: None,
            };
            if up.try_send(exit).is_err() {
                shared.count_drop();
            }
        }
    }
}

async fn flow_for(
    shared: &Arc<Shared>,
    from: SocketAddr,
    down: &SyncSender<Exit>,
) -> Option<Arc<Flow>> {
    if let Some(flow) = shared.flows.lock().ok()?.get(&from).cloned() {
        if let Ok(mut seen) = flow.last_seen.lock() {
            *seen = Instant::now();
        }
        return Some(flow);
    }
    if shared.flows.lock().ok()?.len() >= shared.config.max_flows {
        return None;
    }
    let bind: SocketAddr = if shared.config.upstream.is_ipv6() {
        (Ipv6Addr::LOCALHOST, 0).into()
    } else if shared.config.upstream.ip().is_loopback() {
        (Ipv4Addr::LOCALHOST, 0).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let (socket, sender) = match bind_pair(bind) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "emulator: cannot open an upstream socket");
            return None;
        }
    };
    // Connecting the tokio half connects the shared socket, the egress thread's clone too.
    if let Err(e) = socket.connect(shared.config.upstream).await {
        tracing::warn!(error = %e, upstream = %shared.config.upstream, "emulator: cannot reach upstream");
        return None;
    }
    let socket = Arc::new(socket);
    let downlink_task = tokio::spawn(downlink_ingress(shared.clone(), socket, from, down.clone()));
    let flow = Arc::new(Flow {
        sender: Arc::new(sender),
        last_seen: Mutex::new(Instant::now()),
        downlink_task,
    });
    shared.flows.lock().ok()?.insert(from, flow.clone());
    if let Ok(mut s) = shared.stats.lock() {
        s.flows_created += 1;
    }
    tracing::debug!(agent = %from, "emulator: new flow");
    Some(flow)
}

/// Reads the server's packets for one flow and passes them through the downlink.
async fn downlink_ingress(
    shared: Arc<Shared>,
    socket: Arc<UdpSocket>,
    agent: SocketAddr,
    down: SyncSender<Exit>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let len = match socket.recv(&mut buf).await {
            Ok(len) => len,
            Err(e) => {
                tracing::debug!(error = %e, %agent, "emulator upstream socket");
                continue;
            }
        };
        let now = shared.now();
        let verdict = match shared.downlink.lock() {
            Ok(mut link) => link.offer(now, len),
            Err(_) => return,
        };
        if let Verdict::Deliver { at } = verdict {
            let exit = Exit {
                at,
                payload: Bytes::copy_from_slice(&buf[..len]),
                socket: shared.listen_sender.clone(),
                to: Some(agent),
            };
            if down.try_send(exit).is_err() {
                shared.count_drop();
            }
        }
    }
}

/// Sends packets at their exit times, on its own thread, until the relay stops. Exit times of
/// one direction never decrease (FIFO bottleneck plus constant delay), so a plain queue in
/// arrival order suffices.
fn egress(shared: &Shared, exits: &Receiver<Exit>, direction: usize) {
    let stopped = || shared.stopped.load(Ordering::Relaxed);
    loop {
        let exit = match exits.recv_timeout(EGRESS_NAP) {
            Ok(exit) => exit,
            Err(RecvTimeoutError::Timeout) if !stopped() => continue,
            Err(_) => return,
        };
        let due = shared.start + Duration::from_secs_f64(exit.at.max(0.0));
        loop {
            if stopped() {
                return;
            }
            let now = Instant::now();
            if now >= due {
                break;
            }
            std::thread::sleep((due - now).min(EGRESS_NAP));
        }
        if let Ok(mut late) = shared.lateness[direction].lock()
            && late.len() < shared.config.uplink_packet_log
        {
            late.push(due.elapsed().as_secs_f64());
        }
        if !send(&exit) {
            shared.count_drop();
        }
    }
}

/// Sends `exit` on its non-blocking socket, retrying briefly while the socket buffer is full.
fn send(exit: &Exit) -> bool {
    for _ in 0..SEND_ATTEMPTS {
        let sent = match exit.to {
            Some(to) => exit.socket.send_to(&exit.payload, to),
            None => exit.socket.send(&exit.payload),
        };
        match sent {
            Ok(_) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_micros(20));
            }
            Err(_) => return false,
        }
    }
    false
}

/// Forgets idle flows so the table stays bounded.
async fn janitor(shared: Arc<Shared>) {
    let every = (shared.config.flow_idle_timeout / 4).max(Duration::from_millis(100));
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        let Ok(mut flows) = shared.flows.lock() else {
            return;
        };
        let timeout = shared.config.flow_idle_timeout;
        flows.retain(|_, flow| {
            let idle = flow
                .last_seen
                .lock()
                .map(|t| t.elapsed())
                .unwrap_or_default();
            let keep = idle < timeout;
            if !keep {
                flow.downlink_task.abort();
            }
            keep
        });
    }
}
