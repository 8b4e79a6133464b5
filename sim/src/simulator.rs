//! The trace-driven simulator: a virtual clock driving the real controller and policy.
//!
//! Per frame `i` (captured at `i / fps`): the device runs the task encoder when its CPU is free
//! (a frame is *skipped* if a newer one was captured before the CPU got to it: real-time
//! pipelines always take the newest frame); the controller, fed every observation that became
//! known before that moment, decides; local execution occupies the CPU; offloading spends the
//! coding time, then queues the exact bytes on the uplink FIFO, which carries them through the
//! trace's capacity (an RRC promotion first if the radio went idle). Unsent bytes are cancelled
//! at the deadline. The server finishes the model and the result comes back after the return
//! propagation delay. Energy: compute power × compute time, and the radio model's promotion,
//! active and tail energy; the battery drains by that plus a baseline draw. The controller only
//! ever sees what a real agent sees: its own sends, the server's delivery reports (bytes and
//! receive times) and RTT samples when replies arrive, battery readings — never the trace.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use offload_controller::{
    Controller, ControllerConfig, Decision, FrameOptions, Observation, Policy, Profile, RadioState,
    RateSample,
};
use serde::{Deserialize, Serialize};

use crate::battery::{Battery, BatteryConfig};
use crate::frames::FrameSizes;
use crate::link::{Link, LinkConfig};
use crate::record::{FrameRecord, Summary, SummaryBuilder};
use crate::trace::Trace;

/// Everything about a run except the trace, the profile and the policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Camera frame rate.
    pub fps: f64,
    /// Result deadline after capture (s).
    pub deadline_s: f64,
    /// Run length (s); `None` = the trace's duration.
    pub duration_s: Option<f64>,
    /// Where in the trace the run starts (s).
    pub start_offset_s: f64,
    /// Seed for frame sizes.
    pub seed: u64,
    /// Extra CPU load from other work on the device, in `[0, 1)`.
    pub cpu_load: f64,
    /// Bytes of a result sent back by the server.
    pub result_bytes: u64,
    /// The uplink.
    pub link: LinkConfig,
    /// The battery.
    pub battery: BatteryConfig,
    /// The controller (estimator, utility, radio model).
    pub controller: ControllerConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            fps: 30.0,
            deadline_s: 0.2,
            duration_s: None,
            start_offset_s: 0.0,
            seed: 1,
            cpu_load: 0.0,
            result_bytes: 256,
            link: LinkConfig::default(),
            battery: BatteryConfig::default(),
            controller: ControllerConfig::default(),
        }
    }
}

/// Observations waiting for the moment the agent learns them.
#[derive(Default)]
struct Pending {
    heap: BinaryHeap<Reverse<(Time, u64)>>,
    items: Vec<Option<Observation>>,
    free: Vec<usize>,
    seq: u64,
}

/// A time with a total order, for the heap.
struct Time(f64);
impl PartialEq for Time {
    fn eq(&self, other: &Self) -> bool {
        self.0.total_cmp(&other.0).is_eq()
    }
}
impl Eq for Time {}
impl PartialOrd for Time {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Time {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl Pending {
    fn push(&mut self, at: f64, obs: Observation) {
        let slot = match self.free.pop() {
            Some(i) => {
                self.items[i] = Some(obs);
                i
            }
            None => {
                self.items.push(Some(obs));
                self.items.len() - 1
            }
        };
        // Sequence in the high bits keeps equal-time observations in insertion order.
        self.heap
            .push(Reverse((Time(at), (self.seq << 20) | slot as u64)));
        self.seq += 1;
    }

    fn pop_until(&mut self, now: f64) -> Option<(f64, Observation)> {
        let Reverse((Time(at), key)) = self.heap.peek()?;
        if *at > now {
            return None;
        }
        let at = *at;
        let slot = (*key & ((1 << 20) - 1)) as usize;
        self.heap.pop();
        self.free.push(slot);
        self.items[slot].take().map(|o| (at, o))
    }
}

/// Runs one trace with one profile and policy; calls `on_frame` for every frame in order and
/// returns the summary. The same inputs always give the same records, bit for bit.
pub fn simulate(
    trace: &Trace,
    profile: &Profile,
    policy: Box<dyn Policy>,
    config: &SimConfig,
    mut on_frame: impl FnMut(&FrameRecord),
) -> Summary {
    let mut controller = Controller::new(config.controller.clone(), policy);
    let utility = config.controller.utility;
    let radio = config.controller.radio;
    let mut link = Link::new(trace, config.link);
    let one_way = link.one_way();
    let mut battery = Battery::new(config.battery);
    let mut sizes = FrameSizes::new(profile, config.seed);
    let mut pending = Pending::default();
    let mut radio_state = RadioState::default();
    let mut options = FrameOptions::default();
    let mut summary = SummaryBuilder::default();

    let fps = config.fps.max(1e-3);
    let interval = 1.0 / fps;
    let t0 = config.start_offset_s;
    let duration = config.duration_s.unwrap_or_else(|| trace.duration());
    let n_frames = (duration * fps).floor().max(0.0) as u64;
    let slowdown = 1.0 / (1.0 - config.cpu_load.clamp(0.0, 0.95));
    let power = profile.device.compute_power_w;
    let encoder_time = profile.device.encoder_time_s * slowdown;
    let mut cpu_free = f64::NEG_INFINITY;
    let mut next_battery_report = t0;

    let feed = |controller: &mut Controller, pending: &mut Pending, now: f64| {
        while let Some((at, obs)) = pending.pop_until(now) {
            controller.observe(at, obs);
        }
    };

    for i in 0..n_frames {
        let captured = t0 + i as f64 * interval;
        let deadline = captured + config.deadline_s;
        let frame_sizes = sizes.next_frame();
        let start = captured.max(cpu_free);
        battery.advance(start);
        while next_battery_report <= start {
            pending.push(
                next_battery_report,
                Observation::Battery {
                    level: battery.level(),
                    power_w: None,
                    charging: false,
                },
            );
            next_battery_report += battery.report_interval();
        }
        if i + 1 < n_frames && start >= captured + interval {
            // A newer frame is already waiting: drop this one.
            let r = skipped(
                i,
                captured - t0,
                &battery,
                &controller,
                link.capacity_at(start),
                &utility,
            );
            pending.push(
                start,
                Observation::FrameDone {
                    frame: i,
                    latency: None,
                },
            );
            summary.add(&r);
            on_frame(&r);
            continue;
        }
        let decided_at = start + encoder_time;
        feed(&mut controller, &mut pending, decided_at);
        profile.fill_options(i, captured, deadline, frame_sizes, &mut options);
        for o in options.offload.iter_mut() {
            o.device_time *= slowdown;
            o.device_energy_j *= slowdown;
        }
        options.local.device_time *= slowdown;
        options.local.energy_j *= slowdown;
        let decision = controller.decide(decided_at, &options);
        let estimate_bps = controller.estimates().throughput.map_or(0.0, |e| e.bps);
        let battery_level = battery.level();
        let mut energy = power * encoder_time;
        let (result_at, bytes, bytes_sent, accuracy) = match decision {
            Decision::Local => {
                cpu_free = decided_at + options.local.device_time;
                energy += options.local.energy_j;
                (Some(cpu_free), 0, 0, options.local.accuracy)
            }
            Decision::Offload { layers } => {
                // The controller only returns options that exist.
                let o = options.offload[layers as usize - 1];
                let ready = decided_at + o.device_time;
                cpu_free = ready;
                energy += o.device_energy_j;
                let mut ready = ready;
                if radio.needs_promotion(&radio_state, ready) {
                    // The radio is promoted even if the frame is then cancelled, and the burst
                    // that follows ends in a full tail: both are paid here, once per burst.
                    energy += radio.promotion_s * radio.promotion_w + radio.tail_s * radio.tail_w;
                    ready += radio.promotion_s;
                    radio_state.record_activity(ready);
                }
                pending.push(
                    ready,
                    Observation::Sent {
                        frame: i,
                        bytes: o.bytes,
                    },
                );
                let cutoff = deadline.max(ready);
                let tx = link.send(ready, o.bytes, cutoff);
                let bits = tx.bytes_sent as f64 * 8.0;
                if tx.end > tx.start {
                    energy +=
                        radio.predict_uplink_j(&radio_state, tx.start, bits, tx.end - tx.start);
                    radio_state.record_activity(tx.end);
                }
                if tx.complete {
                    let at_server = tx.end + one_way;
                    let result = at_server + o.server_time + one_way;
                    let sample = RateSample {
                        start: tx.start + one_way,
                        end: at_server,
                        bytes: o.bytes,
                    };
                    pending.push(result, Observation::Delivered { frame: i, sample });
                    pending.push(result, Observation::Rtt { rtt: 2.0 * one_way });
                    radio_state.record_activity(result);
                    (Some(result), o.bytes, o.bytes, o.accuracy)
                } else {
                    // Cancelled at the deadline; the server reports what arrived.
                    if tx.bytes_sent > 0 {
                        let sample = RateSample {
                            start: tx.start + one_way,
                            end: tx.end + one_way,
                            bytes: tx.bytes_sent,
                        };
                        pending.push(
                            cutoff + 2.0 * one_way,
                            Observation::Delivered { frame: i, sample },
                        );
                    }
                    pending.push(
                        cutoff,
                        Observation::Abandoned {
                            frame: i,
                            bytes: o.bytes - tx.bytes_sent,
                        },
                    );
                    (None, o.bytes, tx.bytes_sent, 0.0)
                }
            }
        };
        let met = result_at.is_some_and(|t| t <= deadline);
        let latency = result_at.map(|t| t - captured);
        pending.push(
            result_at.unwrap_or(deadline),
            Observation::FrameDone {
                frame: i,
                latency: latency.filter(|_| met),
            },
        );
        battery.drain(energy);
        let delivered = met.then_some(accuracy);
        let r = FrameRecord {
            frame: i,
            captured_at: captured - t0,
            decision: decision.to_string(),
            layers: decision.layers(),
            bytes,
            bytes_sent,
            decided_at: decided_at - t0,
            result_at: result_at.map(|t| t - t0),
            latency,
            met_deadline: met,
            accuracy: delivered.unwrap_or(0.0),
            energy_j: energy,
            battery: battery.level(),
            estimate_bps,
            capacity_bps: link.capacity_at(decided_at),
            utility: utility.frame(delivered, energy, battery_level),
        };
        summary.add(&r);
        on_frame(&r);
    }
    summary.finish()
}

fn skipped(
    i: u64,
    captured: f64,
    battery: &Battery,
    controller: &Controller,
    capacity_bps: f64,
    utility: &offload_controller::Utility,
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
        battery: battery.level(),
        estimate_bps: controller.estimates().throughput.map_or(0.0, |e| e.bps),
        capacity_bps,
        utility: utility.frame(None, 0.0, battery.level()),
    }
}
