//! Offloading policies: each a sans-IO implementation of [`offload_controller::Policy`], in its
//! own file, built from a [`PolicyConfig`] (a preset file or inline TOML), the way quinn-proto's
//! congestion controllers are built from a factory.
//!
//! | preset | policy | origin |
//! |---|---|---|
//! | `local-only` | [`LocalOnly`] | baseline: never offload |
//! | `fixed-k` | [`FixedK`] | baseline: always send `k` layers (the seed's single-rate operating point) |
//! | `throughput-rule` | [`ThroughputRule`] | rate-based adaptation as in FESTIVE / rate-based ABR |
#![warn(missing_docs)]

mod config;
mod fixed_k;
mod local_only;
mod throughput_rule;

pub use config::{PolicyConfig, PresetError, load_preset, preset, preset_names};
pub use fixed_k::FixedK;
pub use local_only::LocalOnly;
pub use throughput_rule::ThroughputRule;
