//! The whole system on one machine: an edge server, the trace-driven link emulator in front of
//! it, and the agent connected through the emulator, all on loopback. `offload demo`,
//! `offload compare` and the end-to-end tests run the real system this way.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use offload_controller::Policy;
use offload_sim::{FrameRecord, Summary};
use offload_transport::emulator::{
    CapacitySchedule, ConstantRate, Delayed, Emulator, EmulatorConfig, EmulatorError,
    EmulatorStats, LinkConfig, PacketRecord, Verdict,
};
use offload_transport::{
    AgentClient, AuthToken, ClientConfig, EdgeServer, FrameHandler, FrameHeader, LinkTruth,
    ServerError, ServerIdentity, ServerLimits, ServerTrust, StatsSnapshot, TlsError, TokenError,
    TransportError,
};

use crate::battery::BatterySource;
use crate::model::DeviceModel;
use crate::run::{AgentConfig, AgentError, AgentEvents, LabelledInput, run_agent};
use crate::sample_error::CONTROL_PACKET_MAX;

/// The emulated link between agent and server.
#[derive(Clone)]
pub struct LoopbackLink {
    /// Uplink capacity over time; its time zero is the capture of the first frame.
    pub uplink: Arc<dyn CapacitySchedule>,
    /// Fixed downlink rate, bit/s.
    pub downlink_bps: f64,
    /// One-way propagation delay of each direction, seconds.
    pub one_way_s: f64,
    /// Drop-tail queue of the uplink, bytes.
    pub queue_bytes: u64,
    /// How long before the first frame the relay starts (the QUIC handshake crosses the link at
    /// the uplink's initial rate meanwhile), seconds.
    pub lead_s: f64,
    /// For analysis only: time the agent's link samples with the emulator's own record of each
    /// frame's service instead of the reply's times ([`offload_transport::LinkTruth`]), so that
    /// the agent's and the server's timing error is out of the controller's view.
    pub true_link_samples: bool,
}

impl std::fmt::Debug for LoopbackLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopbackLink")
            .field("downlink_bps", &self.downlink_bps)
            .field("one_way_s", &self.one_way_s)
            .field("queue_bytes", &self.queue_bytes)
            .field("lead_s", &self.lead_s)
            .field("true_link_samples", &self.true_link_samples)
            .finish_non_exhaustive()
    }
}

/// What a loopback run produced.
#[derive(Debug)]
pub struct LoopbackRun {
    /// Per-frame records, in frame order.
    pub records: Vec<FrameRecord>,
    /// Their summary.
    pub summary: Summary,
    /// The server's counters at the end.
    pub server: StatsSnapshot,
    /// The emulator's counters at the end.
    pub emulator: EmulatorStats,
    /// How late the first frame started after the uplink schedule's time zero, seconds.
    pub start_skew_s: f64,
    /// The emulated uplink's packets (the first [`UPLINK_PACKET_LOG`]), in seconds since the
    /// emulator's start, which is `emulator_epoch_s` on the agent's clock.
    pub uplink_packets: Vec<PacketRecord>,
    /// The emulated downlink's packets, on the same clock as `uplink_packets`.
    pub downlink_packets: Vec<PacketRecord>,
    /// The emulator's time zero in seconds since the agent client's epoch (negative: the
    /// relay starts before the agent connects), to put the packet log on the agent's clock.
    pub emulator_epoch_s: f64,
    /// The server's clock's time zero ([`EdgeServer::clock_epoch`]) in seconds since the
    /// agent client's epoch, to put the server's own times on the agent's clock (analysis).
    pub server_epoch_s: f64,
    /// How late the emulator sent its uplink and downlink packets after their exit times,
    /// seconds ([`Emulator::egress_lateness`]).
    pub egress_lateness: [Vec<f64>; 2],
}

/// Uplink packets the loopback emulator logs (~40 bytes each): a minute of frames at 30 fps
/// is a few thousand.
pub const UPLINK_PACKET_LOG: usize = 100_000;

/// Why a loopback run failed.
#[derive(Debug, thiserror::Error)]
pub enum LoopbackError {
    /// The server's certificate could not be made.
    #[error("loopback server identity: {0}")]
    Identity(#[from] TlsError),
    /// The token was rejected before use.
    #[error("loopback token: {0}")]
    Token(#[from] TokenError),
    /// The server did not start.
    #[error("loopback server: {0}")]
    Server(#[from] ServerError),
    /// The emulator did not start.
    #[error("loopback emulator: {0}")]
    Emulator(#[from] EmulatorError),
    /// The agent could not connect through the emulator.
    #[error("loopback agent connection: {0}")]
    Connect(#[from] TransportError),
    /// The agent failed.
    #[error(transparent)]
    Agent(#[from] AgentError),
}

/// Frames sent before the run (at most: the warm-up stops 350 ms before the run) so the
/// server's minimum RTT is measured on the agent's small ACK packets rather than on the
/// handshake's larger ones, and the agent has its ACK/frame pairs. Each idle ACK packet but the
/// last pairs with the frames around it once a frame later than the pairing window has come
/// back, so eight frames gave three pairs at ~150 kbit/s, just the three the agent needs
/// (`UplinkDelay::MIN_PROBES`); twelve fit in the 2 s lead there.
const WARM_UP_FRAMES: u64 = 12;

/// Wait between a warm-up frame's reply and the next frame. The reply's ACK-only packet leaves
/// as the reply comes in, so the next frame follows it by this much (plus the encoder's time):
/// well inside [`offload_transport::UplinkDelay::PAIR_WINDOW_S`] (100 ms), which the 100 ms
/// waited until pass H just missed, so no warm-up ACK packet was ever paired and every run
/// started on the fallback round trip (`PropagationRtt`; its first samples read up to 40 % low
/// on mahimahi, docs/results/emulation.md, pass G item 2).
const WARM_UP_GAP: Duration = Duration::from_millis(50);

/// Sends the first input's base layer a few times, each [`WARM_UP_GAP`] after the previous
/// one's reply, while there is time before `zero` (the replies are dropped; the controller
/// never sees them). Until the server has
/// seen an RTT sample acknowledged by an ACK-only packet that did not wait behind quinn's
/// path-MTU probes (up to 1452 bytes: 84 ms each at 140 kbit/s, sent right after the
/// handshake), its minimum RTT holds the serialisation of larger packets (7 ms at
/// 140 kbit/s), the agent's first link samples are timed with that and read several times the
/// link's rate (measured: +300 % on the first frame), and the controller's forecast errors
/// carry that for the next ~60 frames. A lead of about 2 s leaves room for the handshake,
/// the probes and the warm-up on a 140 kbit/s link.
///
/// The warm-up also gives the agent its first round trips measured on its own idle packets
/// ([`offload_transport::UplinkDelay`]): each reply's ACK-only packet is paired with the
/// warm-up frames sent just before and after it, within
/// [`offload_transport::UplinkDelay::PAIR_WINDOW_S`]; so the run's first frames are timed
/// with pairs and not with the fallback.
async fn warm_up<M: DeviceModel>(
    client: &AgentClient,
    model: &M,
    inputs: &[LabelledInput<M::Input>],
    zero: std::time::Instant,
) {
    let Some((input, _)) = inputs.first() else {
        return;
    };
    let Ok(frame) = tokio::task::block_in_place(|| model.encode(input)) else {
        return;
    };
    let Some(base) = frame.layers.first() else {
        return;
    };
    for k in 0..WARM_UP_FRAMES {
        // Leave the link a quarter of a second to drain before the run.
        if zero.saturating_duration_since(std::time::Instant::now()) < Duration::from_millis(350) {
            break;
        }
        let header = FrameHeader {
            frame_id: u64::MAX - k,
            model_id: model.model_id(),
            codec_header: frame.header.clone(),
        };
        if let Err(e) = client
            .send_frame(header, vec![base.clone()], Duration::from_millis(100))
            .await
        {
            tracing::debug!("loopback warm-up frame: {e}");
        }
        tokio::time::sleep(WARM_UP_GAP).await;
    }
}

/// The emulator's record of each frame's service for [`LoopbackLink::true_link_samples`], on the
/// agent's clock (the emulator's time zero is at `epoch_s` there, known once the agent has
/// connected): the first `packets` data packets offered after the frame's send start. Control
/// packets (ACK-only and the like, at most [`CONTROL_PACKET_MAX`] bytes) are not the frame's.
fn emulator_record(emulator: &Arc<Emulator>, epoch_s: Arc<OnceLock<f64>>) -> LinkTruth {
    let relay = Arc::downgrade(emulator);
    LinkTruth::new(move |send_start, packets| {
        let relay = relay.upgrade()?;
        let epoch = *epoch_s.get()?;
        let mut data = relay
            .uplink_packets_from(send_start - epoch, 64)
            .into_iter()
            .filter(|p| {
                p.bytes > CONTROL_PACKET_MAX && matches!(p.verdict, Verdict::Deliver { .. })
            })
            .take(usize::try_from(packets).unwrap_or(usize::MAX).max(1));
        let first = data.next()?;
        let last = data.last().unwrap_or(first);
        Some((first.start + epoch, last.end + epoch))
    })
}

/// Starts a server running `handler`, an emulator shaped by `link` in front of it and an agent
/// running `model` through it; runs the agent over `inputs` and shuts everything down.
#[allow(clippy::too_many_arguments)]
pub async fn run_loopback<M: DeviceModel, H: FrameHandler>(
    model: Arc<M>,
    handler: Arc<H>,
    link: LoopbackLink,
    policy: Box<dyn Policy>,
    inputs: Vec<LabelledInput<M::Input>>,
    config: AgentConfig,
    client_config: ClientConfig,
    battery: Box<dyn BatterySource>,
    events: &mut dyn AgentEvents,
) -> Result<LoopbackRun, LoopbackError> {
    let identity = ServerIdentity::generate(&["localhost"])?;
    let token = AuthToken::new(format!("loopback-{}", std::process::id()).into_bytes())?;
    let server = EdgeServer::bind(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        &identity,
        token.clone(),
        handler,
        ServerLimits::default(),
    )?;
    let mut emu = EmulatorConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), server.local_addr());
    emu.uplink = LinkConfig {
        delay: link.one_way_s,
        queue_bytes: link.queue_bytes,
        ..LinkConfig::default()
    };
    emu.uplink_packet_log = UPLINK_PACKET_LOG;
    emu.downlink = LinkConfig {
        delay: link.one_way_s,
        ..LinkConfig::default()
    };
    let uplink = Delayed::new(link.uplink.clone(), link.lead_s);
    let downlink = ConstantRate {
        bps: link.downlink_bps,
    };
    let emulator = Arc::new(Emulator::start(emu, Arc::new(uplink), Arc::new(downlink)).await?);
    let mut client_config = client_config;
    let epoch_s = Arc::new(OnceLock::new());
    if link.true_link_samples {
        client_config.link_truth = Some(emulator_record(&emulator, epoch_s.clone()));
    }
    let connected = AgentClient::connect(
        emulator.local_addr(),
        "localhost",
        ServerTrust::Pinned(identity.fingerprint()),
        token,
        client_config,
    )
    .await;
    let client = match connected {
        Ok(c) => c,
        Err(e) => {
            server.shutdown(Duration::from_millis(100)).await;
            drop(emulator);
            return Err(e.into());
        }
    };
    let emulator_epoch_s = -(client.epoch() - emulator.started_at()).as_secs_f64();
    let server_epoch_s = -(client.epoch() - server.clock_epoch()).as_secs_f64();
    let _ = epoch_s.set(emulator_epoch_s);
    let zero = emulator.started_at() + Duration::from_secs_f64(link.lead_s);
    warm_up(&client, model.as_ref(), &inputs, zero).await;
    tokio::time::sleep_until(zero.into()).await;
    let start_skew_s = zero.elapsed().as_secs_f64();
    let out = run_agent(
        model,
        Some(Arc::new(client)),
        policy,
        inputs,
        config,
        battery,
        events,
    )
    .await;
    let server_stats = server.stats();
    let emulator_stats = emulator.stats();
    let uplink_packets = emulator.uplink_packets();
    let downlink_packets = emulator.downlink_packets();
    let egress_lateness = emulator.egress_lateness();
    server.shutdown(Duration::from_millis(500)).await;
    // The relay stops when its last handle goes; the link record only holds a weak one.
    drop(emulator);
    let (records, summary) = out?;
    Ok(LoopbackRun {
        records,
        summary,
        server: server_stats,
        emulator: emulator_stats,
        start_skew_s,
        uplink_packets,
        downlink_packets,
        emulator_epoch_s,
        server_epoch_s,
        egress_lateness,
    })
}
