//! The agent's frame loop on the real clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use offload_controller::{
    Controller, ControllerConfig, Decision, FrameOptions, Observation, Policy, Profile, RadioModel,
    RadioState, RateSample, Utility,
};
use offload_sim::record::SummaryBuilder;
use offload_sim::{FrameRecord, Summary};
use offload_transport::{AgentClient, FrameHeader, FrameReply, TransportError};
use tokio::sync::mpsc;

use crate::battery::BatterySource;
use crate::cpu::CpuMonitor;
use crate::model::{DeviceModel, ModelFailure, Prediction};

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Camera frame rate.
    pub fps: f64,
    /// Result deadline after capture.
    pub deadline: Duration,
    /// Controller settings (estimator, utility, radio model).
    pub controller: ControllerConfig,
    /// The model's profile: accuracy per layer count and device power, for the frame options.
    pub profile: Profile,
    /// Time between battery and CPU readings.
    pub sensor_interval: Duration,
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The local path failed on a frame: the agent cannot produce a result for it.
    #[error("frame {frame}: the local model failed: {source}")]
    Local {
        /// The frame.
        frame: u64,
        /// The model's failure.
        source: ModelFailure,
    },
    /// A frame task panicked or was cancelled.
    #[error("frame task failed: {0}")]
    Task(String),
}

/// One input frame and, where known, its true label (then accuracy is measured, not assumed).
pub type LabelledInput<I> = (I, Option<u32>);

/// What a finished frame reports back to the loop.
struct Outcome {
    record: Option<FrameRecord>,
    observations: Vec<(f64, Observation)>,
}

/// Runs the agent over `inputs` at the configured frame rate; `client` is `None` to run with no
/// server at all (everything local). `on_decision` sees every decision as it is made (frame,
/// decision, throughput estimate in bit/s), for progress displays. Returns the per-frame records
/// in frame order and the summary.
pub async fn run_agent<M: DeviceModel>(
    model: Arc<M>,
    client: Option<Arc<AgentClient>>,
    policy: Box<dyn Policy>,
    inputs: Vec<LabelledInput<M::Input>>,
    config: AgentConfig,
    mut battery: Box<dyn BatterySource>,
    on_decision: &mut (dyn FnMut(u64, Decision, f64) + Send),
) -> Result<(Vec<FrameRecord>, Summary), AgentError> {
    tracing::info!("battery: {}", battery.describe());
    let epoch = client.as_ref().map_or_else(Instant::now, |c| c.epoch());
    let now = move || epoch.elapsed().as_secs_f64();
    let mut controller = Controller::new(config.controller.clone(), policy);
    if client.is_none() {
        controller.observe(now(), Observation::ServerUnreachable);
    }
    let utility = config.controller.utility;
    let radio = config.controller.radio;
    let power = config.profile.device.compute_power_w;
    let interval = 1.0 / config.fps.max(1e-3);
    let deadline_s = config.deadline.as_secs_f64();
    let (tx, mut rx) = mpsc::unbounded_channel::<Outcome>();
    let reconnecting = Arc::new(AtomicBool::new(false));
    let mut cpu = CpuMonitor::new();
    let mut radio_state = RadioState::default();
    let mut options = FrameOptions::default();
    let mut records: Vec<FrameRecord> = Vec::with_capacity(inputs.len());
    let mut tasks = Vec::new();
    let mut next_sensor = 0.0;
    let mut last_loss = (0u64, 0u64, 0u64);
    let start = now();
    let n = inputs.len();

    for (i, (input, label)) in inputs.into_iter().enumerate() {
        let i = i as u64;
        let captured = start + i as f64 * interval;
        let wait = captured - now();
        if wait > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
        while let Ok(o) = rx.try_recv() {
            absorb(&mut controller, &mut records, o);
        }
        let t = now();
        if t >= next_sensor {
            next_sensor = t + config.sensor_interval.as_secs_f64();
            if let Some(r) = battery.read() {
                controller.observe(
                    t,
                    Observation::Battery {
                        level: r.level,
                        power_w: r.power_w,
                        charging: r.charging,
                    },
                );
            }
            if let Some(load) = cpu.sample() {
                controller.observe(t, Observation::CpuLoad { load });
            }
            if let Some(c) = &client
                && let Some(p) = c.path_stats().await
            {
                controller.observe(t, Observation::Rtt { rtt: p.rtt });
                let (lost, sent, events) = last_loss;
                controller.observe(
                    t,
                    Observation::Loss {
                        lost: p.lost_packets.saturating_sub(lost),
                        sent: p.sent_packets.saturating_sub(sent),
                    },
                );
                for _ in events..p.congestion_events {
                    controller.observe(t, Observation::CongestionEvent);
                }
                last_loss = (p.lost_packets, p.sent_packets, p.congestion_events);
            }
        }
        if (i as usize) + 1 < n && t >= captured + interval {
            // A newer frame is already waiting, as in the simulator: skip this one.
            let level = battery.read().map_or(1.0, |r| r.level);
            records.push(skipped_record(
                i,
                captured - start,
                level,
                &controller,
                &utility,
            ));
            continue;
        }

        let t_enc = Instant::now();
        let frame = tokio::task::block_in_place(|| model.encode(&input));
        let encode_time = t_enc.elapsed().as_secs_f64();
        let decided_at = now();
        let frame = match frame {
            Ok(f) => f,
            Err(source) => return Err(AgentError::Local { frame: i, source }),
        };
        let sizes = frame.cumulative_sizes();
        config
            .profile
            .fill_options(i, captured, captured + deadline_s, &sizes, &mut options);
        let decision = controller.decide(decided_at, &options);
        let estimate_bps = controller.estimates().throughput.map_or(0.0, |e| e.bps);
        on_decision(i, decision, estimate_bps);
        let level = battery.read().map_or(1.0, |r| r.level);
        let base = FrameRecord {
            frame: i,
            captured_at: captured - start,
            decision: decision.to_string(),
            layers: decision.layers(),
            bytes: 0,
            bytes_sent: 0,
            decided_at: decided_at - start,
            result_at: None,
            latency: None,
            met_deadline: false,
            accuracy: 0.0,
            energy_j: power * encode_time,
            battery: level,
            estimate_bps,
            capacity_bps: 0.0,
            utility: 0.0,
        };
        match (decision, &client) {
            (Decision::Offload { layers }, Some(client)) => {
                let k = layers as usize;
                let bytes = sizes[k - 1];
                controller.observe(decided_at, Observation::Sent { frame: i, bytes });
                let header = FrameHeader {
                    frame_id: i,
                    model_id: model.model_id(),
                    codec_header: frame.header.clone(),
                };
                let layers_out: Vec<Bytes> = frame.layers[..k].to_vec();
                let remaining = Duration::from_secs_f64((captured + deadline_s - now()).max(0.0));
                let accuracy_expected = options.accuracy_of(decision);
                // Promotion and marginal tail now; the active part once the transfer's duration
                // is known from the server's receive times.
                let radio_energy = radio.predict_uplink_j(&radio_state, decided_at, 0.0, 0.0);
                radio_state.record_activity(decided_at);
                let task = OffloadTask {
                    client: client.clone(),
                    model: model.clone(),
                    features: frame.features,
                    header,
                    layers: layers_out,
                    remaining,
                    base: FrameRecord {
                        bytes,
                        energy_j: base.energy_j + radio_energy,
                        ..base
                    },
                    label,
                    accuracy_expected,
                    start,
                    captured,
                    deadline_s,
                    epoch,
                    utility,
                    level,
                    power,
                    radio,
                    reconnecting: reconnecting.clone(),
                    tx: tx.clone(),
                };
                tasks.push(tokio::spawn(task.run()));
            }
            _ => {
                let t_local = Instant::now();
                let pred = tokio::task::block_in_place(|| model.finish_locally(frame.features))
                    .map_err(|source| AgentError::Local { frame: i, source })?;
                let done = now();
                let energy = base.energy_j + power * t_local.elapsed().as_secs_f64();
                battery.account(energy, done);
                let record = finished(
                    base,
                    done,
                    captured,
                    start,
                    deadline_s,
                    pred,
                    label,
                    options.local.accuracy,
                    energy,
                    &utility,
                    level,
                );
                records.push(record);
            }
        }
    }
    drop(tx);
    for t in tasks {
        t.await.map_err(|e| AgentError::Task(e.to_string()))??;
    }
    while let Some(o) = rx.recv().await {
        if let Some(r) = &o.record {
            battery.account(r.energy_j, now());
        }
        absorb(&mut controller, &mut records, o);
    }
    records.sort_by_key(|r| r.frame);
    let mut summary = SummaryBuilder::default();
    for r in &records {
        summary.add(r);
    }
    Ok((records, summary.finish()))
}

fn absorb(controller: &mut Controller, records: &mut Vec<FrameRecord>, o: Outcome) {
    for (t, obs) in o.observations {
        controller.observe(t, obs);
    }
    records.extend(o.record);
}

#[allow(clippy::too_many_arguments)]
fn finished(
    base: FrameRecord,
    done: f64,
    captured: f64,
    start: f64,
    deadline_s: f64,
    pred: Prediction,
    label: Option<u32>,
    expected: f64,
    energy: f64,
    utility: &Utility,
    level: f64,
) -> FrameRecord {
    let latency = done - captured;
    let met = latency <= deadline_s;
    let correct = label.map_or(expected, |l| if l == pred.class { 1.0 } else { 0.0 });
    let delivered = met.then_some(correct);
    FrameRecord {
        result_at: Some(done - start),
        latency: Some(latency),
        met_deadline: met,
        accuracy: delivered.unwrap_or(0.0),
        energy_j: energy,
        utility: utility.frame(delivered, energy, level),
        ..base
    }
}

fn skipped_record(
    i: u64,
    captured: f64,
    level: f64,
    controller: &Controller,
    utility: &Utility,
) -> FrameRecord {
    FrameRecord {
        frame: i,
        captured_at: captured,
        decision: "skipped".into(),
        layers: 0,
        bytes: 0,
        bytes_sent: 0,
        decided_at: captured,
        result_at: None,
        latency: None,
        met_deadline: false,
        accuracy: 0.0,
        energy_j: 0.0,
        battery: level,
        estimate_bps: controller.estimates().throughput.map_or(0.0, |e| e.bps),
        capacity_bps: 0.0,
        utility: utility.frame(None, 0.0, level),
    }
}

/// An offloaded frame in flight: sends, waits for the reply, falls back to local on failure.
struct OffloadTask<M: DeviceModel> {
    client: Arc<AgentClient>,
    model: Arc<M>,
    features: M::Features,
    header: FrameHeader,
    layers: Vec<Bytes>,
    remaining: Duration,
    base: FrameRecord,
    label: Option<u32>,
    accuracy_expected: f64,
    start: f64,
    captured: f64,
    deadline_s: f64,
    epoch: Instant,
    utility: Utility,
    level: f64,
    power: f64,
    radio: RadioModel,
    reconnecting: Arc<AtomicBool>,
    tx: mpsc::UnboundedSender<Outcome>,
}

impl<M: DeviceModel> OffloadTask<M> {
    async fn run(self) -> Result<(), AgentError> {
        let frame = self.header.frame_id;
        let bytes = self.base.bytes;
        let result = self
            .client
            .send_frame(self.header.clone(), self.layers.clone(), self.remaining)
            .await;
        let now = self.epoch.elapsed().as_secs_f64();
        let mut observations = Vec::new();
        let (pred, sent, energy, expected) = match result
            .and_then(|reply| parse(&reply).map(|p| (reply, p)))
        {
            Ok((reply, pred)) => {
                // Bytes the server received: the codec header and the complete layers (record
                // length prefixes count as the transport's, like packet headers).
                let delivered = self.header.codec_header.len() as u64
                    + reply
                        .receipts
                        .iter()
                        .map(|r| r.bytes.saturating_sub(4))
                        .sum::<u64>();
                // The frame's delivery time as the server saw it, from the first byte of its
                // stream to the last byte of its last layer: transmission and queueing without
                // the propagation delay. A frame that fits in a packet or two arrives in well
                // under a millisecond; the 1 ms floor makes that a lower bound on the rate
                // rather than an infinite one.
                if let Some(last) = reply.receipts.last() {
                    let dt = last.last_byte.max(1e-3);
                    let sample = RateSample {
                        start: now - dt,
                        end: now,
                        bytes: delivered,
                    };
                    observations.push((now, Observation::Delivered { frame, sample }));
                }
                observations.push((
                    now,
                    Observation::Abandoned {
                        frame,
                        bytes: bytes.saturating_sub(delivered),
                    },
                ));
                let tx_time = reply.end_to_end_sample.map_or(0.0, |s| s.end - s.start);
                let energy = self.base.energy_j
                    + self.radio.uplink_energy_j(delivered as f64 * 8.0, tx_time);
                (pred, delivered, energy, self.accuracy_expected)
            }
            Err(e) => {
                tracing::warn!("frame {frame}: offload failed ({e}); finishing locally");
                observations.push((now, Observation::Abandoned { frame, bytes }));
                if e.server_unavailable() {
                    observations.push((now, Observation::ServerUnreachable));
                    self.spawn_reconnect();
                }
                let t = Instant::now();
                let pred = tokio::task::block_in_place(|| self.model.finish_locally(self.features))
                    .map_err(|source| AgentError::Local { frame, source })?;
                let energy = self.base.energy_j + self.power * t.elapsed().as_secs_f64();
                (pred, 0, energy, self.accuracy_expected)
            }
        };
        let done = self.epoch.elapsed().as_secs_f64();
        let mut record = finished(
            self.base,
            done,
            self.captured,
            self.start,
            self.deadline_s,
            pred,
            self.label,
            expected,
            energy,
            &self.utility,
            self.level,
        );
        record.bytes_sent = sent;
        observations.push((
            done,
            Observation::FrameDone {
                frame,
                latency: record.met_deadline.then_some(done - self.captured),
            },
        ));
        // The loop may have finished already; then the outcome is collected from the channel.
        let _ = self.tx.send(Outcome {
            record: Some(record),
            observations,
        });
        Ok(())
    }

    fn spawn_reconnect(&self) {
        if self.reconnecting.swap(true, Ordering::SeqCst) {
            return;
        }
        let client = self.client.clone();
        let flag = self.reconnecting.clone();
        let tx = self.tx.clone();
        let epoch = self.epoch;
        tokio::spawn(async move {
            // Bounded: each call makes a bounded series of attempts with backoff.
            for _ in 0..20 {
                if client.reconnect().await.is_ok() {
                    let at = epoch.elapsed().as_secs_f64();
                    let _ = tx.send(Outcome {
                        record: None,
                        observations: vec![(at, Observation::ServerReachable)],
                    });
                    break;
                }
            }
            flag.store(false, Ordering::SeqCst);
        });
    }
}

fn parse(reply: &FrameReply) -> Result<Prediction, TransportError> {
    Prediction::from_bytes(&reply.payload).map_err(|e| TransportError::InvalidFrame {
        frame_id: reply.frame_id,
        reason: e.0,
    })
}
