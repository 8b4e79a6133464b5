//! Offloading policies: each a sans-IO implementation of [`offload_controller::Policy`], in its
//! own file, built from a [`PolicyConfig`] (a preset file or inline TOML), the way quinn-proto's
//! congestion controllers are built from a factory.
//!
//! | preset | policy | origin |
//! |---|---|---|
//! | `local-only` | [`LocalOnly`] | baseline: never offload |
//! | `fixed-k` | [`FixedK`] | baseline: always send `k` layers (the seed's single-rate operating point) |
//! | `throughput-rule` | [`ThroughputRule`] | rate-based adaptation as in FESTIVE / rate-based ABR |
//! | `deadline-aware` | [`DeadlineAware`] | largest `k` meeting the deadline at a conservative rate (Neurosurgeon-style) |
//! | `mpc` | [`Mpc`] | model-predictive control over the next frames (RobustMPC, Yin et al. SIGCOMM 2015) |
//! | `energy-aware` | [`EnergyAware`] | expected utility with battery-weighted energy and radio-tail hysteresis (MAUI, Huang et al. MobiSys 2012) |
//! | `queue-bola` | [`QueueBola`] | Lyapunov rule on the uplink queue, no throughput prediction (BOLA, Spiteri et al. INFOCOM 2016) |
//!
//! The offline oracle, which sees the whole trace, is not here: it is a planner of the simulator
//! (`offload_sim::oracle`).
#![warn(missing_docs)]

pub mod backlog;
mod config;
mod deadline_aware;
mod energy_aware;
mod fixed_k;
mod forecast_error;
mod local_only;
mod mpc;
pub mod probe;
mod queue_bola;
mod throughput_rule;
pub mod timing;

pub use config::{AdaptiveMargin, PolicyConfig, PresetError, load_preset, preset, preset_names};
pub use deadline_aware::DeadlineAware;
pub use energy_aware::EnergyAware;
pub use fixed_k::FixedK;
pub use forecast_error::ForecastError;
pub use local_only::LocalOnly;
pub use mpc::Mpc;
pub use queue_bola::QueueBola;
pub use throughput_rule::ThroughputRule;
