//! The agent's frame loop on the real clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use offload_controller::{
    Controller, ControllerConfig, Decision, FrameOptions, Observation, Policy, Profile, RadioModel,
    RadioState, RateSample, Utility, send_cutoff, silence_check_at,
};
use offload_sim::record::SummaryBuilder;
use offload_sim::{FrameRecord, Summary};
use offload_transport::{
    AgentClient, FrameHeader, FrameReply, SendWindow, TransportError, WireOverhead,
};
use tokio::sync::mpsc;

use crate::battery::BatterySource;
use crate::cpu::CpuMonitor;
use crate::model::{DeviceModel, ModelFailure};
use crate::result::TaskResult;

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
    /// Partial results: an offloaded frame's upload ends when its result could no longer come
    /// back in time (deadline − propagation RTT − the server's time for the planned layers),
    /// and a frame answered from fewer layers by its deadline counts with those layers. When
    /// off, the upload runs until the deadline itself, as before (see [`send_window`]).
    pub partial_results: bool,
    /// Local fallback: an offloaded frame is finished by the local path when no
    /// acknowledgement at all has come back from the server a round trip and a slack after
    /// sending it (`offload_controller::silence_check_at`), as the simulator's
    /// `SimConfig::local_fallback` does. A frame the server reports empty, or whose transfer
    /// fails, falls back in any case.
    pub local_fallback: bool,
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

/// What the agent reports while it runs, for progress displays and for analysis. Times are
/// seconds since the run's start, like the records'.
pub trait AgentEvents: Send {
    /// Frame `frame` was decided with the controller holding `estimate_bps` (0 before any
    /// sample).
    fn decided(&mut self, frame: u64, decision: Decision, estimate_bps: f64) {
        let _ = (frame, decision, estimate_bps);
    }
    /// The controller was fed `observation`, made at `at`.
    fn observed(&mut self, at: f64, observation: &Observation) {
        let _ = (at, observation);
    }
    /// Frame `frame` got its result: from the server's decoders on `layers` layers, or from the
    /// device's local path when `layers` is 0 (chosen, or the fallback after a failed offload).
    fn answered(&mut self, frame: u64, layers: u16, result: &TaskResult) {
        let _ = (frame, layers, result);
    }
    /// The server replied to offloaded frame `frame` (before the observations taken from the
    /// reply are reported). Its times are seconds since the client's epoch, not the run's start.
    fn replied(&mut self, frame: u64, reply: &FrameReply) {
        let _ = (frame, reply);
    }
}

/// No reporting.
impl AgentEvents for () {}

/// Feeds `obs` to the controller and reports it.
fn feed(
    controller: &mut Controller,
    events: &mut dyn AgentEvents,
    start: f64,
    at: f64,
    obs: Observation,
) {
    events.observed(at - start, &obs);
    controller.observe(at, obs);
}

/// What a finished frame reports back to the loop.
#[derive(Default)]
struct Outcome {
    record: Option<FrameRecord>,
    observations: Vec<(f64, Observation)>,
    /// The frame, the layers its result was decoded from (0: local) and the result.
    answer: Option<(u64, u16, TaskResult)>,
    /// The server's reply, when there was one, and its frame.
    reply: Option<(u64, FrameReply)>,
    /// Whether the reply is a probe's: it counts for the server's hold, but is not reported
    /// with [`AgentEvents::replied`].
    probe: bool,
    /// The transfer of a frame whose record was handed over before it ended (a probe beside
    /// the local path, or an offload answered locally first): its frame, the energy of the
    /// transfer and the bytes that reached the server, added to the frame's record.
    transfer: Option<(u64, f64, u64)>,
}

impl Outcome {
    /// Observations only.
    fn observed(observations: Vec<(f64, Observation)>) -> Self {
        Self {
            observations,
            ..Self::default()
        }
    }

    /// Reports the outcome and hands its record over.
    fn deliver(
        self,
        controller: &mut Controller,
        events: &mut dyn AgentEvents,
        start: f64,
        records: &mut Vec<FrameRecord>,
    ) {
        if let Some((frame, reply)) = self.reply.as_ref().filter(|_| !self.probe) {
            events.replied(*frame, reply);
        }
        for (at, obs) in self.observations {
            feed(controller, events, start, at, obs);
        }
        if let Some((frame, layers, result)) = &self.answer {
            events.answered(*frame, *layers, result);
        }
        if let Some((frame, energy, sent)) = self.transfer {
            // The frame's record is pushed before its transfer's outcome is collected: by the
            // loop (a probe's local record) or by an earlier outcome of the same task.
            if let Some(r) = records.iter_mut().rev().find(|r| r.frame == frame) {
                r.energy_j += energy;
                r.bytes_sent = sent;
            }
        }
        records.extend(self.record);
    }

    /// Energy this outcome adds to the device's account (J).
    fn energy_j(&self) -> f64 {
        self.record.as_ref().map_or(0.0, |r| r.energy_j) + self.transfer.map_or(0.0, |p| p.1)
    }
}

/// Runs the agent over `inputs` at the configured frame rate; `client` is `None` to run with no
/// server at all (everything local). `events` sees every decision as it is made and every
/// observation the controller is fed. Returns the per-frame records in frame order and the
/// summary.
///
/// The controller plans with the bytes a frame puts on the uplink — its layers plus the
/// protocol's and QUIC's overhead ([`WireOverhead`]) — and learns the uplink's rate from the
/// server's receive times as the link's service rate for each frame
/// ([`FrameReply::link_sample`]), in the same wire bytes. Its round-trip time is the
/// propagation RTT ([`FrameReply::propagation_rtt`], the round trip the link samples are timed
/// with, never more than the agent's QUIC minimum RTT): the time a frame waits behind earlier
/// ones is the policies' backlog and the rate's business, and a smoothed RTT would count it
/// twice.
pub async fn run_agent<M: DeviceModel>(
    model: Arc<M>,
    client: Option<Arc<AgentClient>>,
    policy: Box<dyn Policy>,
    inputs: Vec<LabelledInput<M::Input>>,
    config: AgentConfig,
    mut battery: Box<dyn BatterySource>,
    events: &mut dyn AgentEvents,
) -> Result<(Vec<FrameRecord>, Summary), AgentError> {
    tracing::info!("battery: {}", battery.describe());
    let epoch = client.as_ref().map_or_else(Instant::now, |c| c.epoch());
    let now = move || epoch.elapsed().as_secs_f64();
    // The policies model the sender this run is.
    let controller_config = ControllerConfig {
        partial_results: config.partial_results,
        ..config.controller.clone()
    };
    let mut controller = Controller::new(controller_config, policy);
    let start = now();
    if client.is_none() {
        feed(
            &mut controller,
            events,
            start,
            now(),
            Observation::ServerUnreachable,
        );
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
    // The connection's minimum RTT, for the cutoff before the first reply's RTT sample.
    let mut path_min_rtt = 0.0;
    let mut hold = ServerHold::default();
    let n = inputs.len();

    for (i, (input, label)) in inputs.into_iter().enumerate() {
        let i = i as u64;
        let captured = start + i as f64 * interval;
        let wait = captured - now();
        if wait > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
        while let Ok(o) = rx.try_recv() {
            if let Some((_, reply)) = &o.reply {
                hold.observe(reply, &config.profile);
            }
            battery.account(o.energy_j(), now());
            o.deliver(&mut controller, events, start, &mut records);
        }
        let t = now();
        if t >= next_sensor {
            next_sensor = t + config.sensor_interval.as_secs_f64();
            if let Some(r) = battery.read() {
                feed(
                    &mut controller,
                    events,
                    start,
                    t,
                    Observation::Battery {
                        level: r.level,
                        power_w: r.power_w,
                        charging: r.charging,
                    },
                );
            }
            if let Some(load) = cpu.sample() {
                feed(
                    &mut controller,
                    events,
                    start,
                    t,
                    Observation::CpuLoad { load },
                );
            }
            if let Some(c) = &client
                && let Some(p) = c.path_stats().await
            {
                path_min_rtt = p.min_rtt;
                let (lost, sent, congestion) = last_loss;
                feed(
                    &mut controller,
                    events,
                    start,
                    t,
                    Observation::Loss {
                        lost: p.lost_packets.saturating_sub(lost),
                        sent: p.sent_packets.saturating_sub(sent),
                    },
                );
                for _ in congestion..p.congestion_events {
                    feed(
                        &mut controller,
                        events,
                        start,
                        t,
                        Observation::CongestionEvent,
                    );
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
                &mut controller,
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
        let layer_lens: Vec<u64> = frame.layers.iter().map(|l| l.len() as u64).collect();
        // Per frame: the packet size follows the connection's path MTU.
        let overhead = client
            .as_ref()
            .map_or_else(WireOverhead::default, |c| c.overhead());
        let wire = overhead.cumulative(frame.header.len() as u64, &layer_lens);
        config
            .profile
            .fill_options(i, captured, captured + deadline_s, &wire, &mut options);
        let decision = controller.decide(decided_at, &options);
        let estimate_bps = controller.estimates().throughput.map_or(0.0, |e| e.bps);
        events.decided(i, decision, estimate_bps);
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
        // The features go to the offload task, or to the local path (with or without a probe).
        let offloads = matches!(decision, Decision::Offload { .. }) && client.is_some();
        let (mut task_features, local_features) = if offloads {
            (Some(frame.features), None)
        } else {
            (None, Some(frame.features))
        };
        let probe_energy = match (decision, &client) {
            (Decision::Offload { layers } | Decision::LocalWithProbe { layers }, Some(client)) => {
                // A probe beside the local path goes out like an offload, but only its link
                // sample is kept: the frame's result is the local one, computed below.
                let probe = matches!(decision, Decision::LocalWithProbe { .. });
                let k = layers as usize;
                let bytes = sizes[k - 1];
                let wire_bytes = wire[k - 1];
                feed(
                    &mut controller,
                    events,
                    start,
                    decided_at,
                    Observation::Sent {
                        frame: i,
                        bytes: wire_bytes,
                    },
                );
                let header = FrameHeader {
                    frame_id: i,
                    model_id: model.model_id(),
                    codec_header: frame.header.clone(),
                };
                let layers_out: Vec<Bytes> = frame.layers[..k].to_vec();
                let estimates = controller.estimates();
                let plan = CutPlan {
                    deadline: captured + deadline_s,
                    rtt: estimates.rtt.map_or(path_min_rtt, |r| r.min),
                    server_time: options.cutoff_server_time(k as u32) + hold.beyond_profile(),
                    first_packet_bytes: wire_bytes.min(overhead.max_udp_payload),
                    rate_bps: estimates.throughput.map(|e| e.bps),
                };
                let client_config = client.config();
                let window = send_window(
                    &plan,
                    config.partial_results,
                    epoch,
                    client_config.reply_timeout + client_config.sample_wait,
                );
                // The silence check, a round trip and a slack after sending; as in the
                // simulator, the frame falls back to the local path there if the uplink is
                // silent and the local path could still finish by the deadline.
                let silence_at = silence_check_at(now(), plan.rtt);
                let fallback = config.local_fallback
                    && !probe
                    && silence_at + options.local.device_time <= plan.deadline;
                let silence_at = epoch + Duration::from_secs_f64(silence_at.max(0.0));
                let accuracy_expected: Vec<f64> =
                    options.offload[..k].iter().map(|o| o.accuracy).collect();
                // Promotion and marginal tail now; the active part once the transfer's duration
                // is known from the server's receive times.
                let radio_energy = radio.predict_uplink_j(&radio_state, decided_at, 0.0, 0.0);
                radio_state.record_activity(decided_at);
                let task = OffloadTask {
                    client: client.clone(),
                    model: model.clone(),
                    features: task_features.take(),
                    header,
                    layers: layers_out,
                    window,
                    sizes: sizes[..k].to_vec(),
                    base: FrameRecord {
                        bytes,
                        energy_j: base.energy_j + radio_energy,
                        ..base.clone()
                    },
                    label,
                    accuracy_expected,
                    local_accuracy: options.local.accuracy,
                    wire_bytes,
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
                    probe,
                    silence_at,
                    fallback,
                };
                tasks.push(tokio::spawn(task.run()));
                // A probe's promotion and marginal tail are its frame's; the active part comes
                // with its reply (`Outcome::probe`).
                if probe { radio_energy } else { 0.0 }
            }
            _ => 0.0,
        };
        if let Some(features) = local_features {
            let t_local = Instant::now();
            let result = tokio::task::block_in_place(|| model.finish_locally(features))
                .map_err(|source| AgentError::Local { frame: i, source })?;
            let done = now();
            let energy = base.energy_j + probe_energy + power * t_local.elapsed().as_secs_f64();
            battery.account(energy, done);
            let record = finished(
                base,
                done,
                captured,
                start,
                deadline_s,
                result.correct_for(label),
                options.local.accuracy,
                energy,
                &utility,
                level,
            );
            records.push(record);
            events.answered(i, 0, &result);
        }
    }
    drop(tx);
    for t in tasks {
        t.await.map_err(|e| AgentError::Task(e.to_string()))??;
    }
    while let Some(o) = rx.recv().await {
        battery.account(o.energy_j(), now());
        o.deliver(&mut controller, events, start, &mut records);
    }
    records.sort_by_key(|r| r.frame);
    let mut summary = SummaryBuilder::default();
    for r in &records {
        summary.add(r);
    }
    Ok((records, summary.finish()))
}

#[allow(clippy::too_many_arguments)]
fn finished(
    base: FrameRecord,
    done: f64,
    captured: f64,
    start: f64,
    deadline_s: f64,
    correct: Option<bool>,
    expected: f64,
    energy: f64,
    utility: &Utility,
    level: f64,
) -> FrameRecord {
    let latency = done - captured;
    let met = latency <= deadline_s;
    // Measured where the result can be checked against a label, else the profile's expectation.
    let accuracy = correct.map_or(expected, |c| if c { 1.0 } else { 0.0 });
    let delivered = met.then_some(accuracy);
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
    controller: &mut Controller,
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
    /// For the local fallback; `None` for a probe, whose frame runs locally anyway.
    features: Option<M::Features>,
    header: FrameHeader,
    layers: Vec<Bytes>,
    window: SendWindow,
    /// Payload bytes of the first `j` layers, `j = 1..=k`.
    sizes: Vec<u64>,
    base: FrameRecord,
    label: Option<u32>,
    /// The profile's accuracy when the server decodes `j` layers, `j = 1..=k`.
    accuracy_expected: Vec<f64>,
    /// The profile's accuracy of the local path, for a frame that falls back to it.
    local_accuracy: f64,
    /// Uplink bytes the controller was told this frame would take.
    wire_bytes: u64,
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
    /// Whether this is a probe beside the local path: only the link sample counts.
    probe: bool,
    /// When the frame is checked for silence (`offload_controller::silence_check_at`).
    silence_at: Instant,
    /// Whether the frame falls back to the local path if the uplink is silent then.
    fallback: bool,
}

impl<M: DeviceModel> OffloadTask<M> {
    async fn run(mut self) -> Result<(), AgentError> {
        let frame = self.header.frame_id;
        // The server acknowledges whatever reaches it; if no acknowledgement at all has come
        // back by `silence_at` (a round trip and a slack after sending), the uplink is silent
        // and the frame falls back to the local path then (no empty report could come either:
        // the reset that asks for it is queued behind the frame).
        let mut heard = self.client.path_stats().await.map(|s| s.acks_received);
        let client = self.client.clone();
        let send = client.send_frame_within(self.header.clone(), self.layers.clone(), self.window);
        tokio::pin!(send);
        // A frame with no reply yet is finished locally the client's reply timeout after its
        // reset; the transfer itself waits on to `window.reply_by`.
        let result_by = self.window.reset_at + client.config().reply_timeout;
        // A probe's frame is answered by the loop; an offloaded frame here, by its reply or
        // the local path. Once answered, the transfer goes on only for its link sample (up to
        // `window.reply_by`): the app has its result as soon as there is one.
        let mut answered = self.probe;
        let result = loop {
            tokio::select! {
                result = &mut send => break result,
                () = tokio::time::sleep_until(self.silence_at.into()), if heard.is_some() => {
                    let before = heard.take();
                    let silent = client
                        .path_stats()
                        .await
                        .is_some_and(|s| Some(s.acks_received) == before);
                    if silent {
                        // The controller learns it now, not when the transfer ends.
                        self.send(Outcome::observed(vec![(
                            self.epoch.elapsed().as_secs_f64(),
                            Observation::Silent { frame },
                        )]));
                        if self.fallback && !answered {
                            tracing::debug!("frame {frame}: nothing heard from the server; finishing locally");
                            self.answer_locally(Vec::new())?;
                            answered = true;
                        }
                    }
                }
                () = tokio::time::sleep_until(result_by.into()), if !answered => {
                    // The reply is late: the frame is a miss either way, and its local result
                    // the sooner one.
                    tracing::warn!("frame {frame}: no reply by the reply timeout; finishing locally");
                    self.answer_locally(Vec::new())?;
                    answered = true;
                }
            }
        };
        let now = self.epoch.elapsed().as_secs_f64();
        let mut observations = Vec::new();
        match result.and_then(|reply| parse(&reply).map(|r| (reply, r))) {
            Ok((reply, result)) => {
                // Bytes the server received: the codec header and the complete layers (record
                // length prefixes count as the transport's, like packet headers).
                let delivered = self.header.codec_header.len() as u64
                    + reply
                        .receipts
                        .iter()
                        .map(|r| r.bytes.saturating_sub(4))
                        .sum::<u64>();
                // The link's service of this frame, in the wire bytes the controller planned
                // with (see `FrameReply::link_sample`).
                let mut delivered_wire = 0;
                if let Some(s) = reply.link_sample {
                    delivered_wire = s.bytes.min(self.wire_bytes);
                    let sample = RateSample {
                        start: s.start,
                        end: s.end,
                        bytes: delivered_wire,
                    };
                    observations.push((now, Observation::Delivered { frame, sample }));
                }
                observations.push((
                    now,
                    Observation::Rtt {
                        rtt: reply.propagation_rtt,
                    },
                ));
                // Whatever is not in the sample leaves the in-flight count here: layers that did
                // not arrive, and the allowance for the reply's ACK packet.
                observations.push((
                    now,
                    Observation::Abandoned {
                        frame,
                        bytes: self.wire_bytes.saturating_sub(delivered_wire),
                    },
                ));
                let tx_time = reply.end_to_end_sample.map_or(0.0, |s| s.end - s.start);
                let transfer_energy = self.radio.uplink_energy_j(delivered as f64 * 8.0, tx_time);
                if answered {
                    // A probe's, or a fallback's whose record is handed over already.
                    self.send(Outcome {
                        observations,
                        reply: Some((frame, reply)),
                        probe: self.probe,
                        transfer: Some((frame, transfer_energy, delivered)),
                        ..Outcome::default()
                    });
                } else {
                    let layers_used = u16::try_from(reply.layers_received).unwrap_or(u16::MAX);
                    self.hand_over(
                        result,
                        layers_used,
                        delivered,
                        self.base.energy_j + transfer_energy,
                        now,
                        observations,
                        Some(reply),
                    );
                }
            }
            Err(e) => {
                if self.probe {
                    tracing::debug!("frame {frame}: probe failed ({e})");
                } else if answered {
                    tracing::debug!("frame {frame}: transfer after the local answer failed ({e})");
                } else {
                    tracing::warn!("frame {frame}: offload failed ({e}); finishing locally");
                }
                observations.push((
                    now,
                    Observation::Abandoned {
                        frame,
                        bytes: self.wire_bytes,
                    },
                ));
                if e.server_unavailable() {
                    observations.push((now, Observation::ServerUnreachable));
                    self.spawn_reconnect();
                }
                if answered {
                    self.send(Outcome {
                        observations,
                        transfer: Some((frame, 0.0, 0)),
                        ..Outcome::default()
                    });
                } else {
                    self.answer_locally(observations)?;
                }
            }
        }
        Ok(())
    }

    /// Finishes the frame on the local path now and hands its record over, with
    /// `observations`.
    fn answer_locally(&mut self, observations: Vec<(f64, Observation)>) -> Result<(), AgentError> {
        let Some(features) = self.features.take() else {
            return Ok(());
        };
        let (result, local_energy) = self.finish_locally(features)?;
        let done = self.epoch.elapsed().as_secs_f64();
        self.hand_over(
            result,
            0,
            0,
            self.base.energy_j + local_energy,
            done,
            observations,
            None,
        );
        Ok(())
    }

    /// Hands the frame's record and result over to the loop: decoded by the server from
    /// `layers_used` layers (0: the local path) at `done`.
    #[allow(clippy::too_many_arguments)]
    fn hand_over(
        &self,
        result: TaskResult,
        layers_used: u16,
        sent: u64,
        energy: f64,
        done: f64,
        mut observations: Vec<(f64, Observation)>,
        reply: Option<FrameReply>,
    ) {
        let frame = self.header.frame_id;
        let planned = self.accuracy_expected.len();
        // A frame the server answered from a shorter prefix than planned (cut short, with
        // partial results) counts with those layers: their bytes and their expected accuracy.
        // A local fallback (no layers used) counts as the local path, as in the simulator.
        let used = usize::from(layers_used).clamp(1, planned.max(1));
        let mut base = self.base.clone();
        let expected = if layers_used == 0 {
            base.layers = 0;
            base.bytes = 0;
            self.local_accuracy
        } else {
            if used < planned {
                base.layers = used as u32;
                base.bytes = self.sizes.get(used - 1).copied().unwrap_or(base.bytes);
            }
            self.accuracy_expected.get(used - 1).copied().unwrap_or(0.0)
        };
        let mut record = finished(
            base,
            done,
            self.captured,
            self.start,
            self.deadline_s,
            result.correct_for(self.label),
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
        self.send(Outcome {
            record: Some(record),
            observations,
            answer: Some((frame, layers_used, result)),
            reply: reply.map(|r| (frame, r)),
            probe: false,
            transfer: None,
        });
    }

    /// The loop may have finished already; then the outcome is collected from the channel.
    fn send(&self, outcome: Outcome) {
        let _ = self.tx.send(outcome);
    }

    /// Runs the local path on the frame's features: its result and compute energy.
    fn finish_locally(&self, features: M::Features) -> Result<(TaskResult, f64), AgentError> {
        let t = Instant::now();
        let result = tokio::task::block_in_place(|| self.model.finish_locally(features)).map_err(
            |source| AgentError::Local {
                frame: self.header.frame_id,
                source,
            },
        )?;
        Ok((result, self.power * t.elapsed().as_secs_f64()))
    }

    fn spawn_reconnect(&self) {
        if self.reconnecting.swap(true, Ordering::SeqCst) {
            return;
        }
        let client = self.client.clone();
        let flag = self.reconnecting.clone();
        // Weak: the run's end waits for every strong sender, and a reconnect that keeps
        // failing (up to 20 rounds of backed-off attempts) must not hold it up.
        let tx = self.tx.downgrade();
        let epoch = self.epoch;
        tokio::spawn(async move {
            // Bounded: each call makes a bounded series of attempts with backoff.
            for _ in 0..20 {
                if tx.strong_count() == 0 {
                    break;
                }
                if client.reconnect().await.is_ok() {
                    let at = epoch.elapsed().as_secs_f64();
                    let Some(tx) = tx.upgrade() else {
                        break;
                    };
                    let _ = tx.send(Outcome::observed(vec![(at, Observation::ServerReachable)]));
                    break;
                }
            }
            flag.store(false, Ordering::SeqCst);
        });
    }
}

/// What the cutoff of an offloaded frame depends on, on the agent's clock (seconds since the
/// client's epoch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CutPlan {
    /// The frame's result deadline.
    pub deadline: f64,
    /// The propagation round trip (the smallest RTT sample seen).
    pub rtt: f64,
    /// The server's time for the planned layers: the profile's plus the hold measured beyond
    /// it ([`ServerHold`]).
    pub server_time: f64,
    /// Bytes of the frame's first packet on the link.
    pub first_packet_bytes: u64,
    /// The controller's uplink rate estimate, if it has one.
    pub rate_bps: Option<f64>,
}

impl CutPlan {
    /// The last moment bytes may leave the device and still be answered by the deadline:
    /// deadline − RTT − server time (the simulator's rule).
    pub fn cutoff(&self) -> f64 {
        send_cutoff(self.deadline, self.rtt, self.server_time)
    }

    /// How much later than one propagation delay after sending the server sees the frame's
    /// first byte: the serialisation of its first packet at the estimated rate (0 without an
    /// estimate). The server counts the upload budget from that first byte, so the agent
    /// announces its budget shorter by this much.
    pub fn first_packet_delay(&self) -> f64 {
        self.rate_bps
            .filter(|r| *r > 0.0)
            .map_or(0.0, |r| self.first_packet_bytes as f64 * 8.0 / r)
    }
}

/// When an offloaded frame's sending ends. With partial results the server cuts the frame at
/// the cutoff ([`CutPlan::cutoff`], as it will see it: shifted by the first packet's delay)
/// and decodes the complete layers it has; the agent itself only resets what is left at the
/// deadline, when nothing can be in time any more. The cut is the server's because a reset
/// from the agent travels behind the frame's packets and, in quinn, discards whatever the
/// server had received but not yet read (docs/protocol.md). Without partial results both are
/// the deadline, as before. The reply is awaited until `reply_wait` after the deadline.
pub fn send_window(
    plan: &CutPlan,
    partial_results: bool,
    epoch: Instant,
    reply_wait: Duration,
) -> SendWindow {
    let at = |t: f64| epoch + Duration::from_secs_f64(t.max(0.0));
    let reset_at = at(plan.deadline);
    let server_cut = if partial_results {
        at(plan.cutoff() - plan.first_packet_delay())
    } else {
        reset_at
    };
    SendWindow {
        server_cut,
        reset_at,
        reply_by: reset_at + reply_wait,
    }
}

/// How much longer the server holds a frame than the profile says: from reading the last
/// layer (or, for a frame it cut, from its cut) to writing the reply, less the profile's server
/// time for the layers it decoded. The profile's server times are the handler's alone,
/// measured on an idle host; the server also hands the frame to a blocking thread and back,
/// and on a shared host all of it runs later: a cutoff that ignored this would have partial
/// results arrive just after the deadline. Smoothed like TCP's RTT (RFC 6298), and the agent
/// allows the mean plus twice the mean deviation, so that the jitter of a loaded host does not
/// put half the cut frames just past their deadline.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServerHold {
    /// Smoothed excess and its mean deviation, seconds.
    smoothed: Option<(f64, f64)>,
}

impl ServerHold {
    /// Takes the hold of one reply into account.
    pub fn observe(&mut self, reply: &FrameReply, profile: &Profile) {
        let j = reply.layers_received;
        let Some(layer) = j.checked_sub(1).and_then(|i| profile.layers.get(i)) else {
            return;
        };
        let from = if j < reply.layers_written {
            // Cut: the server stopped waiting for the rest at the budget.
            reply.budget
        } else {
            reply
                .receipts
                .last()
                .map_or(reply.header_done, |r| r.last_byte)
        };
        let excess = (reply.reply_written - from - layer.server_time_s).max(0.0);
        if !excess.is_finite() {
            return;
        }
        self.smoothed = Some(match self.smoothed {
            None => (excess, excess / 2.0),
            Some((s, d)) => (
                s + 0.125 * (excess - s),
                d + 0.25 * ((excess - s).abs() - d),
            ),
        });
    }

    /// The allowance beyond the profile's server time, seconds: the smoothed excess plus twice
    /// its mean deviation (0 before any reply).
    pub fn beyond_profile(&self) -> f64 {
        self.smoothed.map_or(0.0, |(s, d)| s + 2.0 * d)
    }
}

fn parse(reply: &FrameReply) -> Result<TaskResult, TransportError> {
    TaskResult::decode(&reply.payload).map_err(|e| TransportError::InvalidFrame {
        frame_id: reply.frame_id,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use offload_transport::LayerReceipt;

    fn plan() -> CutPlan {
        CutPlan {
            deadline: 10.2,
            rtt: 0.05,
            server_time: 0.002,
            first_packet_bytes: 875,
            rate_bps: Some(140e3),
        }
    }

    #[test]
    fn the_cutoff_leaves_a_round_trip_and_the_server_time_before_the_deadline() {
        let p = plan();
        assert!((p.cutoff() - 10.148).abs() < 1e-12);
        // 875 B at 140 kbit/s: 50 ms of serialisation before the server sees the first byte.
        assert!((p.first_packet_delay() - 0.05).abs() < 1e-12);
        let unknown = CutPlan {
            rate_bps: None,
            ..p
        };
        assert_eq!(unknown.first_packet_delay(), 0.0);
    }

    #[test]
    fn with_partial_results_the_server_cuts_early_and_the_agent_resets_at_the_deadline() {
        let epoch = Instant::now();
        let p = plan();
        let at = |t: f64| epoch + Duration::from_secs_f64(t);
        let on = send_window(&p, true, epoch, Duration::from_secs(6));
        assert_eq!(on.reset_at, at(10.2));
        assert_eq!(on.reply_by, at(16.2));
        let cut = on.server_cut.duration_since(epoch).as_secs_f64();
        assert!((cut - (10.148 - 0.05)).abs() < 1e-6, "{cut}");
        let off = send_window(&p, false, epoch, Duration::from_secs(2));
        assert_eq!(off.server_cut, at(10.2));
        assert_eq!(off.reset_at, at(10.2));
    }

    fn reply(written: usize, received: usize, last_byte: f64, reply_written: f64) -> FrameReply {
        let receipts = (0..received)
            .map(|i| LayerReceipt {
                bytes: 100,
                first_byte: last_byte * i as f64 / received as f64,
                last_byte: last_byte * (i + 1) as f64 / received as f64,
            })
            .collect();
        FrameReply {
            frame_id: 1,
            payload: Vec::new(),
            layers_written: written,
            cancelled: false,
            budget: 0.1,
            layers_received: received,
            receipts,
            header_done: 0.0,
            handler_time: 0.001,
            reply_written,
            server_origin: 0.0,
            server_clock_shift: 0.0,
            server_arrived: None,
            send_start: 0.0,
            wire_send_start: 0.0,
            round_trip: 0.0,
            train_sample: None,
            end_to_end_sample: None,
            reply_received: 0.0,
            propagation_rtt: 0.05,
            uplink_delay_probes: 0,
            wire_bytes_received: 0,
            arrival: 0.0,
            link_sample: None,
        }
    }

    #[test]
    fn the_hold_allowance_follows_the_servers_excess_over_the_profile() {
        let profile = Profile::parse(PROFILE, std::path::Path::new("test.toml")).unwrap();
        let server_time = profile.layers[1].server_time_s;
        let mut hold = ServerHold::default();
        assert_eq!(hold.beyond_profile(), 0.0);
        // Whole frames: held 3 ms beyond the profile after the last layer.
        for _ in 0..50 {
            hold.observe(&reply(2, 2, 0.04, 0.04 + server_time + 0.003), &profile);
        }
        let steady = hold.beyond_profile();
        assert!((steady - 0.003).abs() < 2e-4, "{steady}");
        // A frame the server cut counts from the cut (its budget), not from its last layer.
        hold.observe(&reply(2, 1, 0.02, 0.1 + server_time + 0.003), &profile);
        assert!((hold.beyond_profile() - steady).abs() < 2e-4);
        // Jitter widens the allowance beyond the mean.
        for i in 0..50 {
            let excess = if i % 2 == 0 { 0.001 } else { 0.005 };
            hold.observe(&reply(2, 2, 0.04, 0.04 + server_time + excess), &profile);
        }
        assert!(hold.beyond_profile() > 0.004, "{}", hold.beyond_profile());
    }

    const PROFILE: &str = r#"
format = "offload-profile"
version = 1
name = "test"
illustrative = true
description = "two layers"

[device]
compute_power_w = 1.0
encoder_time_s = 0.003

[local]
time_s = 0.001
accuracy = 0.9

[[layers]]
k = 1
accuracy = 0.8
bytes_median = 200.0
bytes_sigma = 0.1
device_time_s = 0.0002
server_time_s = 0.0003

[[layers]]
k = 2
accuracy = 0.85
bytes_median = 400.0
bytes_sigma = 0.1
device_time_s = 0.0004
server_time_s = 0.0005
"#;
}
