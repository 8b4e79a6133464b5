//! Sans-IO offloading controller.
//!
//! The controller owns the estimators (uplink throughput, RTT, loss, battery, CPU load) and the
//! current [`Policy`]. Like `quinn-proto`, it has no clock and no socket: drivers feed it
//! timestamped [`Observation`]s with [`Controller::observe`] and ask for a [`Decision`] for each
//! frame with [`Controller::decide`]. The simulator drives it with a virtual clock, the agent with
//! the real one; both see exactly the same code.
//!
//! Units everywhere: time in seconds (`f64`, from an arbitrary epoch chosen by the driver), sizes
//! in bytes, rates in bit/s, energy in joules, power in watts, accuracy as a fraction in `[0, 1]`.
#![warn(missing_docs)]

pub mod controller;
pub mod decision;
pub mod device;
pub mod estimate;
pub mod frame;
pub mod observation;
pub mod policy;
pub mod profile;
pub mod radio;
pub mod utility;

pub use controller::{Controller, ControllerConfig};
pub use decision::{Decision, ParseDecisionError};
pub use device::DeviceState;
pub use estimate::{Estimate, Estimates, EstimatorConfig, ThroughputEstimator};
pub use frame::{
    FrameOptions, LocalOption, OffloadOption, SILENCE_SLACK_S, send_cutoff, silence_check_at,
};
pub use observation::{Observation, RateSample};
pub use policy::{Context, Policy};
pub use profile::{Profile, ProfileError};
pub use radio::{RadioModel, RadioState};
pub use utility::Utility;
