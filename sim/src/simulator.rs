//! The trace-driven simulator: a virtual clock driving the real controller and policy.
//!
//! Per frame `i` (captured at `i / fps`): the device runs the task encoder when its CPU is free
//! (a frame is *skipped* if a newer one was captured before the CPU got to it: real-time
//! pipelines always take the newest frame); the controller, fed every observation that became
//! known before that moment, decides; local execution occupies the CPU; offloading spends the
//! coding time, then queues the exact bytes on the uplink FIFO, which carries them through the
//! trace's capacity (an RRC promotion first if the radio went idle). Unsent bytes are cancelled
//! at the last moment a result can still come back in time (deadline − RTT − server time; with
//! [`SimConfig::partial_results`] off, at the deadline), and the server decodes the complete
//! layers that arrived by then: any prefix of the scalable codec decodes. The server finishes the
//! model and the result comes back after the return propagation delay. Energy: compute power ×
//! compute time, and the radio model's promotion, active and tail energy; the battery drains by
//! that plus a baseline draw. The controller only ever sees what a real agent sees: its own
//! sends, the server's delivery reports (bytes and receive times), the path's RTT when the first
//! reply arrives (it is constant; see `Pending`), battery readings — never the trace.
//!
//! The physics (link, CPU, radio, battery) lives in [`SimState`], a small cloneable value that
//! only the decisions change: [`simulate`] drives it with the controller, and the offline oracle
//! ([`crate::oracle`]) clones it to explore decision sequences. Both run the very same step code,
//! so a schedule the oracle finds scores exactly the same when [`simulate`] replays it.

use std::collections::VecDeque;
use std::fmt::Write as _;

use offload_controller::{
    Controller, ControllerConfig, Decision, FrameOptions, LocalOption, Observation, Policy,
    Profile, RadioModel, RadioState, RateSample, Utility, send_cutoff, silence_check_at,
};
use serde::{Deserialize, Serialize};

use crate::battery::{Battery, BatteryConfig};
use crate::fallback::{FallbackOutcome, FallbackQueue, Waiting};
use crate::frames::{FrameSizes, FrameSource};
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
    /// Partial results: an offloaded frame stops sending at the last moment its result can
    /// still come back in time (deadline − RTT − the server time of its layer count), and the
    /// server decodes the complete layers that arrived by then. When off, sending goes on until
    /// the deadline itself and a frame cut short delivers nothing (how the project ran before).
    pub partial_results: bool,
    /// Local fallback: the device runs the local path for an offloaded frame, before any newer
    /// frame and if it can still finish by the deadline, when it learns the offload is failing:
    /// the uplink silent a round trip and a slack after sending (no packet could have crossed
    /// in time to be acknowledged by [`offload_controller::silence_check_at`]), or the server's
    /// empty report (no layer arrived by the cutoff) back. The agent does the same. When off,
    /// such a frame keeps the offload's outcome.
    pub local_fallback: bool,
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
            partial_results: true,
            local_fallback: true,
        }
    }
}

/// Where the physics reports what the agent will observe, and when.
pub trait ObservationSink {
    /// The agent learns `observation` at time `at`.
    fn push(&mut self, at: f64, observation: Observation);
}

/// Discards observations: the oracle plans without a controller.
impl ObservationSink for () {
    #[inline]
    fn push(&mut self, _at: f64, _observation: Observation) {}
}

/// Observations waiting for the moment the agent learns them, in the order the agent learns
/// them: by time, and in push order among equal times.
///
/// Two queues, each kept sorted by insertion from the back, merged when popping by (time, push
/// number): the agent's own sends and battery readings (learnt about now) in one, the server's
/// reports and frame completions (learnt about a round trip or a deadline later) in the other.
/// Within each, pushes come almost in time order, so a push moves past one entry at most;
/// in a single queue every send would have to pass the reports of all frames in flight, and a
/// binary heap sifts on every push and pop.
///
/// An RTT sample equal to the previous one is dropped: the simulated path's delay is constant
/// within a run, so after the first report a repeat tells the controller nothing it uses (the
/// smoothed, minimum and latest RTT stay the same; only RFC 6298's deviation would keep
/// decaying, and no policy reads it), while one more observation per offloaded frame was ~5 %
/// of a sweep's instructions. Frame completions are left out for a policy that does not use
/// them ([`Policy::observes_frame_done`]; the controller itself does not).
#[derive(Default)]
struct Pending {
    lanes: [Lane; 2],
    seq: u64,
    /// Whether frame completions are queued.
    frame_done: bool,
    /// The last RTT sample queued (its bits; `None` before the first).
    last_rtt: Option<u64>,
}

/// An observation waiting in a [`Lane`]: when the agent learns it, push number, what.
type Entry = (f64, u64, Observation);

/// A time-sorted queue in a plain vector: entries before `head` are consumed and dropped in bulk
/// (when the lane empties, or when they outnumber the live ones), so a push at the back and a
/// pop at the front are slice operations, without a ring buffer's index arithmetic.
#[derive(Default)]
struct Lane {
    entries: Vec<Entry>,
    head: usize,
}

impl Lane {
    #[inline]
    fn front(&self) -> Option<&Entry> {
        self.entries.get(self.head)
    }

    #[inline]
    fn pop_front(&mut self) -> Option<Entry> {
        let entry = *self.entries.get(self.head)?;
        self.head += 1;
        if self.head == self.entries.len() {
            self.entries.clear();
            self.head = 0;
        }
        Some(entry)
    }

    /// Inserts after every entry at or before `entry`'s time (pushes at equal times keep their
    /// order).
    // Forced inline: as a call it spent more on moving the entry than on queueing it.
    #[inline(always)]
    fn push(&mut self, entry: Entry) {
        let at = entry.0;
        // Most pushes come in time order: append.
        if self.entries[self.head..]
            .last()
            .is_none_or(|b| b.0.total_cmp(&at).is_le())
        {
            if self.head > 64 && self.head * 2 > self.entries.len() {
                self.entries.drain(..self.head);
                self.head = 0;
            }
            self.entries.push(entry);
            return;
        }
        let mut index = self.entries.len();
        while index > self.head && self.entries[index - 1].0.total_cmp(&at).is_gt() {
            index -= 1;
        }
        self.entries.insert(index, entry);
    }
}

impl ObservationSink for Pending {
    #[inline(always)]
    fn push(&mut self, at: f64, obs: Observation) {
        if let Observation::Rtt { rtt } = obs {
            if self.last_rtt == Some(rtt.to_bits()) {
                return;
            }
            self.last_rtt = Some(rtt.to_bits());
        } else if !self.frame_done && matches!(obs, Observation::FrameDone { .. }) {
            return;
        }
        let lane = match obs {
            Observation::Sent { .. } | Observation::Battery { .. } => 0,
            _ => 1,
        };
        let seq = self.seq;
        self.seq += 1;
        self.lanes[lane].push((at, seq, obs));
    }
}

impl Pending {
    #[inline]
    fn pop_until(&mut self, now: f64) -> Option<(f64, Observation)> {
        let first = |q: &Lane| q.front().map(|e| (e.0, e.1));
        let lane = match (first(&self.lanes[0]), first(&self.lanes[1])) {
            (None, None) => return None,
            (Some(_), None) => 0,
            (None, Some(_)) => 1,
            (Some((ta, sa)), Some((tb, sb))) => {
                if ta.total_cmp(&tb).then(sa.cmp(&sb)).is_le() {
                    0
                } else {
                    1
                }
            }
        };
        match self.lanes[lane].front() {
            Some(&(at, _, _)) if at <= now => self.lanes[lane].pop_front().map(|e| (e.0, e.2)),
            _ => None,
        }
    }
}

/// The constants of a run, derived once from the configuration, the profile and the trace.
#[derive(Debug, Clone, Copy)]
pub struct RunSetup {
    /// Time between captures (s).
    pub interval: f64,
    /// Run start within the trace (s).
    pub t0: f64,
    /// Frames in the run.
    pub n_frames: u64,
    /// Deadline after capture (s).
    pub deadline_s: f64,
    /// Device compute slowdown from the configured CPU load.
    pub slowdown: f64,
    /// Device compute power (W).
    pub power_w: f64,
    /// Task-encoder time under that load (s).
    pub encoder_time: f64,
    /// One-way propagation delay (s).
    pub one_way: f64,
    /// The objective.
    pub utility: Utility,
    /// The radio power model.
    pub radio: RadioModel,
    /// See [`SimConfig::partial_results`].
    pub partial_results: bool,
    /// See [`SimConfig::local_fallback`].
    pub local_fallback: bool,
    /// The local path under the CPU load: what [`Self::fill_options`] gives every frame.
    pub local: LocalOption,
}

impl RunSetup {
    /// The constants of running `trace` with `profile` under `config`.
    pub fn new(trace: &Trace, profile: &Profile, config: &SimConfig) -> Self {
        let fps = config.fps.max(1e-3);
        let duration = config.duration_s.unwrap_or_else(|| trace.duration());
        let slowdown = 1.0 / (1.0 - config.cpu_load.clamp(0.0, 0.95));
        RunSetup {
            interval: 1.0 / fps,
            t0: config.start_offset_s,
            n_frames: (duration * fps).floor().max(0.0) as u64,
            deadline_s: config.deadline_s,
            slowdown,
            power_w: profile.device.compute_power_w,
            encoder_time: profile.device.encoder_time_s * slowdown,
            one_way: config.link.rtt_s / 2.0,
            utility: config.controller.utility,
            radio: config.controller.radio,
            partial_results: config.partial_results,
            local_fallback: config.local_fallback,
            local: LocalOption {
                accuracy: profile.local.accuracy,
                device_time: profile.local.time_s * slowdown,
                energy_j: profile.device.compute_power_w * profile.local.time_s * slowdown,
            },
        }
    }

    /// Capture time of frame `i` (s, trace time).
    #[inline]
    pub fn captured(&self, i: u64) -> f64 {
        self.t0 + i as f64 * self.interval
    }

    /// Fills `options` for frame `i` with `sizes`, scaled by the CPU load.
    pub fn fill_options(
        &self,
        profile: &Profile,
        i: u64,
        sizes: &[u64],
        options: &mut FrameOptions,
    ) {
        let captured = self.captured(i);
        profile.fill_options(i, captured, captured + self.deadline_s, sizes, options);
        for o in options.offload.iter_mut() {
            o.device_time *= self.slowdown;
            o.device_energy_j *= self.slowdown;
        }
        options.local = self.local;
    }

    /// Like [`Self::fill_options`], for an `options` that already holds an earlier frame of the
    /// same run filled by this setup: only what changes between frames (number, capture time,
    /// deadline, sizes) is rewritten, which gives the same values as filling it afresh.
    #[inline]
    pub fn refill_options(
        &self,
        profile: &Profile,
        i: u64,
        sizes: &[u64],
        options: &mut FrameOptions,
    ) {
        if options.offload.len() != sizes.len() || options.offload.len() != profile.layers.len() {
            self.fill_options(profile, i, sizes, options);
            return;
        }
        let captured = self.captured(i);
        options.frame = i;
        options.captured_at = captured;
        options.deadline = captured + self.deadline_s;
        for (o, &bytes) in options.offload.iter_mut().zip(sizes) {
            o.bytes = bytes;
        }
    }
}

/// What happened to one decided frame, in trace time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// When the result reached the device, if it did.
    pub result_at: Option<f64>,
    /// Layers the server decoded: the decision's `k`, or the `j < k` that arrived by the
    /// cutoff (partial results); 0 for local execution.
    pub layers: u32,
    /// Payload bytes of those layers: what the decision asked to send, or the `j`-layer
    /// prefix's size.
    pub bytes: u64,
    /// Payload bytes that crossed the uplink.
    pub bytes_sent: u64,
    /// Whether the result arrived by the deadline.
    pub met: bool,
    /// Accuracy delivered (0 when missed).
    pub accuracy: f64,
    /// Energy accounted to the frame (J).
    pub energy_j: f64,
    /// The frame's utility.
    pub utility: f64,
    /// Whether the frame's offload is failing and the frame waits for the moment the device
    /// learns so, to run the local path ([`SimConfig::local_fallback`]): [`SimState::begin`] or
    /// [`SimState::finish`] reports how it ends.
    pub fallback_waiting: bool,
}

/// What one transmission delivered, as [`Outcome`] counts it.
#[derive(Debug, Clone, Copy)]
struct Transmitted {
    result_at: Option<f64>,
    layers: u32,
    bytes: u64,
    bytes_sent: u64,
    accuracy: f64,
    /// When the device learns the offload is failing: the silence check if the uplink was
    /// silent until then, else the server's report that no layer arrived (with partial results,
    /// for a frame that gets no result).
    failing_at: Option<f64>,
}

/// Payload bytes of one QUIC packet: the uplink is silent when not even one could have crossed
/// in time for its acknowledgement to be back at the silence check.
const PACKET_BYTES: f64 = 1200.0;

/// The physical state of a run: link queue, CPU, radio and battery. Only decisions change it,
/// never the controller, so it can be cloned to explore alternatives.
#[derive(Debug, Clone)]
pub struct SimState<'t> {
    link: Link<'t>,
    battery: Battery,
    radio_state: RadioState,
    cpu_free: f64,
    fallbacks: FallbackQueue,
}

impl<'t> SimState<'t> {
    /// The state at the start of a run: idle link, CPU and radio, battery at its start level.
    pub fn new(trace: &'t Trace, config: &SimConfig) -> Self {
        SimState {
            link: Link::new(trace, config.link),
            battery: Battery::new(config.battery),
            radio_state: RadioState::default(),
            cpu_free: f64::NEG_INFINITY,
            fallbacks: FallbackQueue::default(),
        }
    }

    /// When the uplink finishes what is queued.
    #[inline]
    pub fn link_free_at(&self) -> f64 {
        self.link.free_at()
    }

    /// When the CPU finishes its current work.
    #[inline]
    pub fn cpu_free_at(&self) -> f64 {
        self.cpu_free
    }

    /// The radio's state.
    #[inline]
    pub fn radio_state(&self) -> &RadioState {
        &self.radio_state
    }

    /// The battery level.
    #[inline]
    pub fn battery_level(&self) -> f64 {
        self.battery.level()
    }

    /// The battery.
    pub fn battery(&self) -> &Battery {
        &self.battery
    }

    /// The link.
    pub fn link(&self) -> &Link<'t> {
        &self.link
    }

    /// Frames waiting for their local fallback ([`SimConfig::local_fallback`]).
    #[inline]
    pub fn fallbacks_waiting(&self) -> usize {
        self.fallbacks.len()
    }

    /// Whether `frame` waits for its local fallback.
    #[inline]
    pub fn fallback_waiting(&self, frame: u64) -> bool {
        self.fallbacks.contains(frame)
    }

    /// Starts frame `i`: the CPU picks it up when free (the battery's baseline drain runs up to
    /// then). Returns that moment; the frame is skipped when [`Self::is_skipped`] says so.
    ///
    /// Before it, the CPU runs the local fallback of every waiting frame whose failing offload
    /// the device has learnt of by then (if it can still finish by that frame's deadline), reporting each
    /// waiting frame's end to `on_fallback` and its completion to `sink`.
    #[inline]
    pub fn begin(
        &mut self,
        setup: &RunSetup,
        i: u64,
        sink: &mut impl ObservationSink,
        on_fallback: impl FnMut(FallbackOutcome),
    ) -> f64 {
        let captured = setup.captured(i);
        if !self.fallbacks.is_empty() {
            self.run_fallbacks(setup, captured, sink, on_fallback);
        }
        let start = captured.max(self.cpu_free);
        self.battery.advance(start);
        start
    }

    /// Ends the run: the frames still waiting get their fallback when the CPU is free.
    pub fn finish(
        &mut self,
        setup: &RunSetup,
        sink: &mut impl ObservationSink,
        on_fallback: impl FnMut(FallbackOutcome),
    ) {
        self.run_fallbacks(setup, f64::INFINITY, sink, on_fallback);
    }

    /// Runs the fallbacks whose reports arrive by the time the CPU would pick up a frame
    /// captured at `next_capture`.
    #[cold]
    fn run_fallbacks(
        &mut self,
        setup: &RunSetup,
        next_capture: f64,
        sink: &mut impl ObservationSink,
        mut on_fallback: impl FnMut(FallbackOutcome),
    ) {
        while let Some(w) = self.fallbacks.front() {
            if w.known_at > next_capture.max(self.cpu_free) {
                break;
            }
            let Some(w) = self.fallbacks.pop_front() else {
                break;
            };
            let captured = setup.captured(w.frame);
            let deadline = captured + setup.deadline_s;
            let end = self.cpu_free.max(w.known_at) + setup.local.device_time;
            let outcome = if end <= deadline {
                self.cpu_free = end;
                self.battery.drain(setup.local.energy_j);
                let energy_j = w.energy_j + setup.local.energy_j;
                let accuracy = setup.local.accuracy;
                let utility = setup
                    .utility
                    .frame(Some(accuracy), energy_j, w.battery_level);
                sink.push(
                    end,
                    Observation::FrameDone {
                        frame: w.frame,
                        latency: Some(end - captured),
                    },
                );
                FallbackOutcome {
                    frame: w.frame,
                    ran: true,
                    result_at: Some(end),
                    accuracy,
                    energy_j,
                    utility,
                    gain: utility - w.utility,
                }
            } else {
                // Too late for the local path: the frame keeps the offload's outcome.
                sink.push(
                    w.result_at.unwrap_or(deadline).max(w.known_at),
                    Observation::FrameDone {
                        frame: w.frame,
                        latency: w.result_at.map(|r| r - captured),
                    },
                );
                FallbackOutcome {
                    frame: w.frame,
                    ran: false,
                    result_at: w.result_at,
                    accuracy: w.accuracy,
                    energy_j: w.energy_j,
                    utility: w.utility,
                    gain: 0.0,
                }
            };
            on_fallback(outcome);
        }
    }

    /// Whether frame `i`, picked up at `start`, is dropped because a newer frame is waiting.
    #[inline]
    pub fn is_skipped(setup: &RunSetup, i: u64, start: f64) -> bool {
        i + 1 < setup.n_frames && start >= setup.captured(i) + setup.interval
    }

    /// The utility of a skipped frame.
    #[inline]
    pub fn skipped_utility(&self, setup: &RunSetup) -> f64 {
        setup.utility.frame(None, 0.0, self.battery.level())
    }

    /// Executes `decision` for frame `i` decided at `decided_at` (after the encoder), reporting
    /// what the agent observes to `sink`. `decision` must name an option of `options`.
    pub fn commit(
        &mut self,
        setup: &RunSetup,
        options: &FrameOptions,
        decided_at: f64,
        decision: Decision,
        sink: &mut impl ObservationSink,
    ) -> Outcome {
        let i = options.frame;
        let captured = setup.captured(i);
        let deadline = captured + setup.deadline_s;
        let battery_level = self.battery.level();
        let mut energy = setup.power_w * setup.encoder_time;
        let local = |cpu_free: f64, bytes_sent: u64| Transmitted {
            result_at: Some(cpu_free),
            layers: 0,
            bytes: 0,
            bytes_sent,
            accuracy: options.local.accuracy,
            failing_at: None,
        };
        let t = match decision {
            Decision::Local => {
                self.cpu_free = decided_at + options.local.device_time;
                energy += options.local.energy_j;
                local(self.cpu_free, 0)
            }
            Decision::Offload { layers } => {
                self.transmit(setup, options, layers, decided_at, &mut energy, sink)
            }
            Decision::LocalWithProbe { layers } => {
                // The probe's layers are coded and queued first; the local path runs after.
                let probe = self.transmit(setup, options, layers, decided_at, &mut energy, sink);
                self.cpu_free += options.local.device_time;
                energy += options.local.energy_j;
                local(self.cpu_free, probe.bytes_sent)
            }
        };
        let met = t.result_at.is_some_and(|r| r <= deadline);
        let latency = t.result_at.map(|r| r - captured);
        self.battery.drain(energy);
        let delivered = met.then_some(t.accuracy);
        let utility = setup.utility.frame(delivered, energy, battery_level);
        // A frame whose offload is failing waits for the moment the device learns so, if the
        // local path could still finish by the deadline after it.
        let fallback_waiting = setup.local_fallback
            && matches!(decision, Decision::Offload { .. })
            && t.failing_at.is_some_and(|at| {
                at + options.local.device_time <= deadline
                    && self.fallbacks.push(Waiting {
                        frame: i,
                        known_at: at,
                        result_at: t.result_at.filter(|_| met),
                        accuracy: delivered.unwrap_or(0.0),
                        energy_j: energy,
                        battery_level,
                        utility,
                    })
            });
        if !fallback_waiting {
            sink.push(
                t.result_at.unwrap_or(deadline),
                Observation::FrameDone {
                    frame: i,
                    latency: latency.filter(|_| met),
                },
            );
        }
        Outcome {
            result_at: t.result_at,
            layers: t.layers,
            bytes: t.bytes,
            bytes_sent: t.bytes_sent,
            met,
            accuracy: delivered.unwrap_or(0.0),
            energy_j: energy,
            utility,
            fallback_waiting,
        }
    }

    /// Codes and sends the first `layers` layers of the frame decided at `decided_at`, as the
    /// sender does (cancelling at the cutoff), pushing what the agent observes to `sink` and
    /// adding the coding and radio energy to `energy`. Leaves the CPU free when the coding ends.
    // Always inlined: as a call it cost the online sweep 1.8 % more instructions (callgrind).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn transmit(
        &mut self,
        setup: &RunSetup,
        options: &FrameOptions,
        layers: u32,
        decided_at: f64,
        energy: &mut f64,
        sink: &mut impl ObservationSink,
    ) -> Transmitted {
        let i = options.frame;
        let deadline = setup.captured(i) + setup.deadline_s;
        let radio = &setup.radio;
        let one_way = setup.one_way;
        let o = options.offload[layers as usize - 1];
        let ready = decided_at + o.device_time;
        self.cpu_free = ready;
        *energy += o.device_energy_j;
        let mut ready = ready;
        if radio.needs_promotion(&self.radio_state, ready) {
            // The radio is promoted even if the frame is then cancelled, and the burst
            // that follows ends in a full tail: both are paid here, once per burst.
            *energy += radio.promotion_s * radio.promotion_w + radio.tail_s * radio.tail_w;
            ready += radio.promotion_s;
            self.radio_state.record_activity(ready);
        }
        sink.push(
            ready,
            Observation::Sent {
                frame: i,
                bytes: o.bytes,
            },
        );
        // With partial results the agent stops sending when a result could no longer
        // come back in time; bytes after that would only delay the next frames.
        let cutoff = if setup.partial_results {
            send_cutoff(deadline, 2.0 * one_way, options.cutoff_server_time(layers))
        } else {
            deadline
        }
        .max(ready);
        let tx = self.link.send(ready, o.bytes, cutoff);
        // Nothing comes back by the silence check if not even the first packet could have
        // crossed in time for its acknowledgement to be back then. A frame that crossed whole
        // by then settles it without a lookup (most frames: the lookup was 4 % of a sweep).
        let check = silence_check_at(ready, 2.0 * one_way);
        let by = check - one_way;
        let heard = (tx.complete && tx.end <= by)
            || self
                .link
                .could_carry(ready, PACKET_BYTES.min(o.bytes as f64), by);
        let silent_at = (!heard).then_some(check);
        if silent_at.is_some() {
            sink.push(check, Observation::Silent { frame: i });
        }
        let bits = tx.bytes_sent as f64 * 8.0;
        if tx.end > tx.start {
            *energy += radio.predict_uplink_j(&self.radio_state, tx.start, bits, tx.end - tx.start);
            self.radio_state.record_activity(tx.end);
        }
        if tx.complete {
            let at_server = tx.end + one_way;
            let result = at_server + o.server_time + one_way;
            let sample = RateSample {
                start: tx.start + one_way,
                end: at_server,
                bytes: o.bytes,
            };
            sink.push(result, Observation::Delivered { frame: i, sample });
            sink.push(result, Observation::Rtt { rtt: 2.0 * one_way });
            self.radio_state.record_activity(result);
            Transmitted {
                result_at: Some(result),
                layers,
                bytes: o.bytes,
                bytes_sent: o.bytes,
                accuracy: o.accuracy,
                failing_at: silent_at,
            }
        } else {
            // Cancelled at the cutoff; the server decodes the complete layers that
            // arrived by then (with partial results) and reports what arrived.
            let prefix = if setup.partial_results {
                options.offload[..layers as usize - 1]
                    .iter()
                    .rposition(|p| p.bytes <= tx.bytes_by_cutoff)
            } else {
                None
            };
            // The server learns of the cancellation one way after the cutoff, decodes
            // the prefix and answers: (prefix, when the result is back).
            let decoded = prefix.map(|j| {
                let at = cutoff + 2.0 * one_way + options.offload[j].server_time;
                (j, at)
            });
            let reported = decoded.map_or(cutoff + 2.0 * one_way, |(_, at)| at);
            if tx.bytes_sent > 0 {
                let sample = RateSample {
                    start: tx.start + one_way,
                    end: tx.end + one_way,
                    bytes: tx.bytes_sent,
                };
                sink.push(reported, Observation::Delivered { frame: i, sample });
            }
            sink.push(
                cutoff,
                Observation::Abandoned {
                    frame: i,
                    bytes: o.bytes - tx.bytes_sent,
                },
            );
            match decoded {
                Some((j, at)) => {
                    sink.push(at, Observation::Rtt { rtt: 2.0 * one_way });
                    self.radio_state.record_activity(at);
                    let p = &options.offload[j];
                    Transmitted {
                        result_at: Some(at),
                        layers: p.layers,
                        bytes: p.bytes,
                        bytes_sent: tx.bytes_sent,
                        accuracy: p.accuracy,
                        failing_at: silent_at,
                    }
                }
                None => Transmitted {
                    result_at: None,
                    layers,
                    bytes: o.bytes,
                    bytes_sent: tx.bytes_sent,
                    accuracy: 0.0,
                    failing_at: silent_at.or(setup.partial_results.then_some(reported)),
                },
            }
        }
    }
}

/// Writes `decision` as its `Display` form does, without the formatting machinery for the
/// usual single-digit layer counts (it ran on every change of decision).
fn write_decision(out: &mut String, decision: Decision) {
    match decision {
        Decision::Local => out.push_str("local"),
        Decision::Offload { layers } if layers < 10 => {
            out.push_str("offload:");
            out.push(char::from(b'0' + layers as u8));
        }
        Decision::LocalWithProbe { layers } if layers < 10 => {
            out.push_str("local+probe:");
            out.push(char::from(b'0' + layers as u8));
        }
        // Writing into a String cannot fail.
        d => {
            let _ = write!(out, "{d}");
        }
    }
}

/// Runs one trace with one profile and policy; calls `on_frame` for every frame in order and
/// returns the summary. The same inputs always give the same records, bit for bit.
///
/// One [`FrameRecord`] is reused for every frame (its decision text is rewritten only when the
/// decision changes), so the loop allocates nothing per frame once warm.
pub fn simulate(
    trace: &Trace,
    profile: &Profile,
    policy: Box<dyn Policy>,
    config: &SimConfig,
    on_frame: impl FnMut(&FrameRecord),
) -> Summary {
    let sizes = FrameSizes::new(profile, config.seed);
    simulate_with(trace, profile, sizes, policy, config, on_frame)
}

/// [`simulate`] with the frames' sizes taken from `sizes`, which must yield the sequence
/// `FrameSizes::new(profile, config.seed)` yields (e.g. a [`crate::frames::FrameTable`] drawn
/// once and shared by every policy run on the same trace) for the results to be the same.
pub fn simulate_with(
    trace: &Trace,
    profile: &Profile,
    sizes: impl FrameSource,
    policy: Box<dyn Policy>,
    config: &SimConfig,
    on_frame: impl FnMut(&FrameRecord),
) -> Summary {
    simulate_records(trace, profile, sizes, policy, config, true, on_frame)
}

/// [`simulate_with`], filling each record's `capacity_bps` and `estimate_bps` only when
/// `series` (else they stay 0): the trace lookup and the estimate are a few percent of a
/// frame's cost each, and a sweep that keeps only the summaries needs neither. Everything else
/// is the same, bit for bit.
pub fn simulate_records(
    trace: &Trace,
    profile: &Profile,
    mut sizes: impl FrameSource,
    policy: Box<dyn Policy>,
    config: &SimConfig,
    series: bool,
    mut on_frame: impl FnMut(&FrameRecord),
) -> Summary {
    // The policies model the sender this run simulates.
    let controller_config = ControllerConfig {
        partial_results: config.partial_results,
        ..config.controller.clone()
    };
    let mut controller = Controller::new(controller_config, policy);
    let setup = RunSetup::new(trace, profile, config);
    let mut state = SimState::new(trace, config);
    let mut pending = Pending {
        frame_done: controller.observes_frame_done(),
        ..Pending::default()
    };
    let mut options = FrameOptions::default();
    // Room for every frame's latency up front (capped: the length comes from the configuration).
    let mut summary = SummaryBuilder::with_capacity(setup.n_frames.min(1 << 20) as usize);
    let mut record = FrameRecord {
        frame: 0,
        captured_at: 0.0,
        decision: String::with_capacity(16),
        layers: 0,
        bytes: 0,
        bytes_sent: 0,
        decided_at: 0.0,
        result_at: None,
        latency: None,
        met_deadline: false,
        accuracy: 0.0,
        energy_j: 0.0,
        battery: 0.0,
        estimate_bps: 0.0,
        capacity_bps: 0.0,
        utility: 0.0,
    };
    // What `record.decision` holds: `None` = "skipped".
    let mut written: Option<Option<Decision>> = None;
    let t0 = setup.t0;
    let mut next_battery_report = t0;
    // Trace segment of the previous capacity lookup for the records (times only move forward).
    let mut capacity_segment = 0usize;
    // Records held back, in frame order, while the oldest of them waits for its fallback: the
    // records go out in frame order and final.
    let mut held: VecDeque<FrameRecord> = VecDeque::new();

    for i in 0..setup.n_frames {
        let captured = setup.captured(i);
        let frame_sizes = sizes.next_frame();
        let start = state.begin(&setup, i, &mut pending, |f| amend(&mut held, &f, t0));
        if !held.is_empty() {
            flush(&mut held, &state, &mut summary, &mut on_frame);
        }
        while next_battery_report <= start {
            pending.push(
                next_battery_report,
                Observation::Battery {
                    level: state.battery_level(),
                    power_w: None,
                    charging: false,
                },
            );
            next_battery_report += state.battery().report_interval();
        }
        if SimState::is_skipped(&setup, i, start) {
            // A newer frame is already waiting: drop this one.
            if written != Some(None) {
                record.decision.clear();
                record.decision.push_str("skipped");
                written = Some(None);
            }
            let battery = state.battery_level();
            record.frame = i;
            record.captured_at = captured - t0;
            record.layers = 0;
            record.bytes = 0;
            record.bytes_sent = 0;
            record.decided_at = captured - t0;
            record.result_at = None;
            record.latency = None;
            record.met_deadline = false;
            record.accuracy = 0.0;
            record.energy_j = 0.0;
            record.battery = battery;
            if series {
                record.estimate_bps = controller.estimates().throughput.map_or(0.0, |e| e.bps);
                record.capacity_bps = trace.capacity_near(start, &mut capacity_segment);
            }
            record.utility = state.skipped_utility(&setup);
            pending.push(
                start,
                Observation::FrameDone {
                    frame: i,
                    latency: None,
                },
            );
            emit(&record, false, &mut held, &mut summary, &mut on_frame);
            continue;
        }
        let decided_at = start + setup.encoder_time;
        while let Some((at, obs)) = pending.pop_until(decided_at) {
            controller.observe(at, obs);
        }
        setup.refill_options(profile, i, frame_sizes, &mut options);
        let decision = controller.decide(decided_at, &options);
        let estimate_bps = if series {
            controller.estimates().throughput.map_or(0.0, |e| e.bps)
        } else {
            0.0
        };
        let out = state.commit(&setup, &options, decided_at, decision, &mut pending);
        if written != Some(Some(decision)) {
            record.decision.clear();
            write_decision(&mut record.decision, decision);
            written = Some(Some(decision));
        }
        record.frame = i;
        record.captured_at = captured - t0;
        record.layers = out.layers;
        record.bytes = out.bytes;
        record.bytes_sent = out.bytes_sent;
        record.decided_at = decided_at - t0;
        record.result_at = out.result_at.map(|t| t - t0);
        record.latency = out.result_at.map(|t| t - captured);
        record.met_deadline = out.met;
        record.accuracy = out.accuracy;
        record.energy_j = out.energy_j;
        record.battery = state.battery_level();
        record.estimate_bps = estimate_bps;
        if series {
            record.capacity_bps = trace.capacity_near(decided_at, &mut capacity_segment);
        }
        record.utility = out.utility;
        emit(
            &record,
            out.fallback_waiting,
            &mut held,
            &mut summary,
            &mut on_frame,
        );
    }
    state.finish(&setup, &mut pending, |f| amend(&mut held, &f, t0));
    flush(&mut held, &state, &mut summary, &mut on_frame);
    summary.finish()
}

/// Sends `record` out, or holds it back (a copy) if it waits for its fallback or an earlier
/// record does.
#[inline]
fn emit(
    record: &FrameRecord,
    waiting: bool,
    held: &mut VecDeque<FrameRecord>,
    summary: &mut SummaryBuilder,
    on_frame: &mut impl FnMut(&FrameRecord),
) {
    if waiting || !held.is_empty() {
        held.push_back(record.clone());
    } else {
        summary.add(record);
        on_frame(record);
    }
}

/// Writes a fallback's end into its frame's held record (`t0`: the run's start in the trace).
fn amend(held: &mut VecDeque<FrameRecord>, f: &FallbackOutcome, t0: f64) {
    if !f.ran {
        return;
    }
    let Some(record) = held.iter_mut().find(|r| r.frame == f.frame) else {
        return;
    };
    if let Some(at) = f.result_at {
        let result_at = at - t0;
        record.result_at = Some(result_at);
        record.latency = Some(result_at - record.captured_at);
        record.met_deadline = true;
        record.layers = 0;
        record.bytes = 0;
    }
    record.accuracy = f.accuracy;
    record.energy_j = f.energy_j;
    record.utility = f.utility;
}

/// Sends out the held records up to the first that still waits for its fallback.
fn flush(
    held: &mut VecDeque<FrameRecord>,
    state: &SimState,
    summary: &mut SummaryBuilder,
    on_frame: &mut impl FnMut(&FrameRecord),
) {
    while let Some(record) = held.front() {
        if state.fallback_waiting(record.frame) {
            break;
        }
        summary.add(record);
        on_frame(record);
        held.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_text_is_the_display_form() {
        let mut text = String::new();
        for d in [0, 1, 7, 9, 10, 12, 255]
            .map(|layers| Decision::Offload { layers })
            .into_iter()
            .chain([Decision::Local])
        {
            text.clear();
            write_decision(&mut text, d);
            assert_eq!(text, d.to_string());
        }
    }
}
