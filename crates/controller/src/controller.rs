//! The controller: estimators + device state + the current policy, driven by observations.

use serde::{Deserialize, Serialize};

use crate::decision::Decision;
use crate::device::DeviceState;
use crate::estimate::{Estimates, EstimatorConfig, RttEstimator, ThroughputEstimator};
use crate::frame::FrameOptions;
use crate::observation::Observation;
use crate::policy::{Context, Policy};
use crate::radio::{RadioModel, RadioState};
use crate::utility::Utility;

/// How the controller is set up; everything but the policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControllerConfig {
    /// The uplink throughput estimator.
    pub estimator: EstimatorConfig,
    /// The objective.
    pub utility: Utility,
    /// The radio power model.
    pub radio: RadioModel,
    /// Expected time between frames (seconds).
    pub frame_interval: f64,
    /// RTT to assume before the first sample (seconds).
    pub default_rtt: f64,
    /// Weight of a new loss-rate sample in the loss EWMA.
    pub loss_smoothing: f64,
    /// Whether the sender delivers partial results: it stops sending a frame when its result
    /// could no longer come back in time (deadline − RTT − server time) and the server decodes
    /// the complete layers that arrived. Policies that model the link use it.
    pub partial_results: bool,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            estimator: EstimatorConfig::default(),
            utility: Utility::default(),
            radio: RadioModel::default(),
            frame_interval: 1.0 / 30.0,
            default_rtt: 0.05,
            loss_smoothing: 0.125,
            partial_results: true,
        }
    }
}

/// The sans-IO controller: feed it [`Observation`]s with [`observe`](Self::observe), ask it for
/// a [`Decision`] per frame with [`decide`](Self::decide).
#[derive(Debug)]
pub struct Controller {
    config: ControllerConfig,
    throughput: Box<dyn ThroughputEstimator>,
    rtt: RttEstimator,
    estimates: Estimates,
    /// The estimator has samples that `estimates.throughput` does not reflect yet: the estimate
    /// is computed when read, not at every sample, because half the built-in policies never
    /// read it and a sweep's simulator does not record it.
    throughput_stale: bool,
    device: DeviceState,
    radio_state: RadioState,
    policy: Box<dyn Policy>,
}

impl Controller {
    /// A controller with the given configuration and policy.
    pub fn new(config: ControllerConfig, policy: Box<dyn Policy>) -> Self {
        Controller {
            throughput: config.estimator.build(),
            rtt: RttEstimator::default(),
            estimates: Estimates {
                server_reachable: true,
                ..Estimates::default()
            },
            throughput_stale: false,
            device: DeviceState::default(),
            radio_state: RadioState::default(),
            config,
            policy,
        }
    }

    /// Feeds one observation made at `now`.
    pub fn observe(&mut self, now: f64, observation: Observation) {
        let e = &mut self.estimates;
        match observation {
            Observation::Sent { bytes, .. } => {
                e.in_flight_bytes = e.in_flight_bytes.saturating_add(bytes);
                self.radio_state.record_activity(now);
            }
            Observation::Delivered { frame, sample } => {
                // A report of a frame sent before the silent one says nothing about now.
                if e.silent_since_frame.is_some_and(|s| frame >= s) {
                    e.silent_since_frame = None;
                }
                e.in_flight_bytes = e.in_flight_bytes.saturating_sub(sample.bytes);
                self.throughput.on_sample(now, &sample);
                self.throughput_stale = true;
                self.radio_state.record_activity(sample.end.min(now));
            }
            Observation::Abandoned { bytes, .. } => {
                e.in_flight_bytes = e.in_flight_bytes.saturating_sub(bytes);
            }
            Observation::Silent { frame } => {
                if e.silent_since_frame.is_none_or(|s| frame < s) {
                    e.silent_since_frame = Some(frame);
                }
            }
            Observation::Rtt { rtt } => {
                self.rtt.on_sample(rtt);
                e.rtt = self.rtt.stats();
            }
            Observation::Loss { lost, sent } => {
                if sent > 0 {
                    let rate = (lost as f64 / sent as f64).min(1.0);
                    let a = self.config.loss_smoothing;
                    e.loss_rate = (1.0 - a) * e.loss_rate + a * rate;
                }
            }
            Observation::CongestionEvent => e.congestion_events += 1,
            Observation::ServerUnreachable => {
                if e.server_reachable {
                    e.unreachable_since = Some(now);
                }
                e.server_reachable = false;
                // Whatever was in flight is gone with the connection.
                e.in_flight_bytes = 0;
            }
            Observation::ServerReachable => {
                e.server_reachable = true;
                e.unreachable_since = None;
            }
            Observation::Battery {
                level,
                power_w,
                charging,
            } => {
                if level.is_finite() {
                    self.device.battery_level = Some(level.clamp(0.0, 1.0));
                }
                self.device.battery_power_w = power_w.filter(|p| p.is_finite());
                self.device.charging = charging;
            }
            Observation::CpuLoad { load } => {
                if load.is_finite() {
                    self.device.cpu_load = Some(load.clamp(0.0, 1.0));
                }
            }
            Observation::FrameDone { .. } => {}
        }
        self.policy.observe(now, &observation);
    }

    /// Decides what to do with one frame at time `now`.
    ///
    /// While the server is unreachable the answer is always local; an offload decision that
    /// names a layer count the frame does not offer is turned into local execution.
    pub fn decide(&mut self, now: f64, frame: &FrameOptions) -> Decision {
        if !self.estimates.server_reachable || frame.offload.is_empty() {
            return Decision::Local;
        }
        if self.policy.reads_throughput_estimate() {
            self.refresh_throughput();
        }
        let ctx = Context {
            now,
            estimates: &self.estimates,
            device: &self.device,
            utility: &self.config.utility,
            radio: &self.config.radio,
            radio_state: &self.radio_state,
            frame_interval: self.config.frame_interval,
            default_rtt: self.config.default_rtt,
            partial_results: self.config.partial_results,
        };
        match self.policy.decide(frame, &ctx) {
            Decision::Offload { layers } | Decision::LocalWithProbe { layers }
                if frame.option(layers).is_none() =>
            {
                Decision::Local
            }
            d => d,
        }
    }

    /// The current estimates (the throughput estimate is brought up to date first).
    #[inline]
    pub fn estimates(&mut self) -> &Estimates {
        self.refresh_throughput();
        &self.estimates
    }

    fn refresh_throughput(&mut self) {
        if self.throughput_stale {
            self.estimates.throughput = self.throughput.estimate();
            self.throughput_stale = false;
        }
    }

    /// Whether the policy uses [`Observation::FrameDone`] (see [`Policy::observes_frame_done`]).
    pub fn observes_frame_done(&self) -> bool {
        self.policy.observes_frame_done()
    }

    /// The device state as last observed.
    pub fn device(&self) -> &DeviceState {
        &self.device
    }

    /// The configuration.
    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    /// The policy's name.
    pub fn policy_name(&self) -> &str {
        self.policy.name()
    }

    /// The earliest time at which the controller wants to be called again without a new
    /// observation or frame. The current estimators are purely event-driven, so this is `None`;
    /// it exists so drivers are written against the full sans-IO shape.
    pub fn next_wakeup(&self) -> Option<f64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{LocalOption, OffloadOption};
    use crate::observation::RateSample;

    #[derive(Debug)]
    struct Always(Decision);
    impl Policy for Always {
        fn name(&self) -> &str {
            "always"
        }
        fn decide(&mut self, _: &FrameOptions, _: &Context<'_>) -> Decision {
            self.0
        }
    }

    fn frame() -> FrameOptions {
        FrameOptions {
            frame: 0,
            captured_at: 0.0,
            deadline: 0.2,
            local: LocalOption {
                accuracy: 0.7,
                device_time: 0.1,
                energy_j: 0.3,
            },
            offload: vec![OffloadOption {
                layers: 1,
                bytes: 500,
                accuracy: 0.5,
                ..Default::default()
            }],
        }
    }

    #[test]
    fn tracks_in_flight_bytes_and_throughput() {
        let mut c = Controller::new(
            ControllerConfig::default(),
            Box::new(Always(Decision::Local)),
        );
        c.observe(
            0.0,
            Observation::Sent {
                frame: 0,
                bytes: 1000,
            },
        );
        assert_eq!(c.estimates().in_flight_bytes, 1000);
        let sample = RateSample {
            start: 0.0,
            end: 0.008,
            bytes: 1000,
        };
        c.observe(0.01, Observation::Delivered { frame: 0, sample });
        assert_eq!(c.estimates().in_flight_bytes, 0);
        assert!((c.estimates().throughput.unwrap().bps - 1e6).abs() < 1.0);
    }

    #[test]
    fn unreachable_server_forces_local_and_invalid_layers_become_local() {
        let mut c = Controller::new(
            ControllerConfig::default(),
            Box::new(Always(Decision::Offload { layers: 1 })),
        );
        assert_eq!(c.decide(0.0, &frame()), Decision::Offload { layers: 1 });
        c.observe(0.0, Observation::ServerUnreachable);
        assert_eq!(c.decide(0.0, &frame()), Decision::Local);
        c.observe(1.0, Observation::ServerReachable);
        let mut c2 = Controller::new(
            ControllerConfig::default(),
            Box::new(Always(Decision::Offload { layers: 7 })),
        );
        assert_eq!(c2.decide(0.0, &frame()), Decision::Local);
    }

    /// Records the throughput estimate each decision saw.
    #[derive(Debug)]
    struct Seen(std::sync::Arc<std::sync::Mutex<Vec<Option<f64>>>>);
    impl Policy for Seen {
        fn name(&self) -> &str {
            "seen"
        }
        fn decide(&mut self, _: &FrameOptions, ctx: &Context<'_>) -> Decision {
            self.0
                .lock()
                .unwrap()
                .push(ctx.estimates.throughput.map(|e| e.bps));
            Decision::Local
        }
    }

    #[test]
    fn a_decision_sees_the_estimate_of_every_sample_before_it() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut c = Controller::new(ControllerConfig::default(), Box::new(Seen(seen.clone())));
        c.decide(0.0, &frame());
        for (i, kbps) in [1000.0, 4000.0, 2000.0].into_iter().enumerate() {
            let t = i as f64 * 0.1;
            let sample = RateSample {
                start: t,
                end: t + 0.01,
                bytes: (kbps * 1e3 * 0.01 / 8.0) as u64,
            };
            c.observe(t + 0.01, Observation::Delivered { frame: 0, sample });
            c.decide(t + 0.02, &frame());
        }
        // Harmonic means of the window after each sample.
        let expected = [None, Some(1e6), Some(1.6e6), Some(12e6 / 7.0)];
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), expected.len());
        for (got, want) in seen.iter().zip(expected) {
            match (got, want) {
                (None, None) => {}
                (Some(g), Some(w)) => assert!((g - w).abs() < 1.0, "{seen:?}"),
                _ => panic!("{seen:?}"),
            }
        }
        // The estimate read directly is the same as the last decision's.
        let last = c.estimates().throughput.unwrap().bps;
        assert!((last - 12e6 / 7.0).abs() < 1.0);
    }

    #[test]
    fn a_silent_uplink_lasts_until_a_report_of_that_frame_or_a_later_one() {
        let mut c = Controller::new(
            ControllerConfig::default(),
            Box::new(Always(Decision::Local)),
        );
        let report = |frame| Observation::Delivered {
            frame,
            sample: RateSample {
                start: 0.0,
                end: 0.1,
                bytes: 1000,
            },
        };
        assert!(!c.estimates().uplink_silent());
        c.observe(1.0, Observation::Silent { frame: 7 });
        c.observe(1.1, Observation::Silent { frame: 8 });
        assert!(c.estimates().uplink_silent());
        // A frame sent before the silent one was already on its way: its report does not end
        // the silence.
        c.observe(1.2, report(6));
        assert!(c.estimates().uplink_silent());
        c.observe(1.3, report(7));
        assert!(!c.estimates().uplink_silent());
    }
}
