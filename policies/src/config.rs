//! Policy configuration, presets and the factory.

use std::path::{Path, PathBuf};

use offload_controller::Policy;
use serde::{Deserialize, Serialize};

use crate::{
    DeadlineAware, EnergyAware, FixedK, ForecastError, LocalOnly, Mpc, QueueBola, ThroughputRule,
};

/// A policy and its parameters; the `kind` field names the policy.
///
/// ```toml
/// kind = "throughput-rule"
/// safety = 0.8
/// probe_after_s = 1.0
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", deny_unknown_fields)]
pub enum PolicyConfig {
    /// [`LocalOnly`].
    LocalOnly,
    /// [`FixedK`].
    FixedK {
        /// Layers sent for every frame.
        k: u32,
    },
    /// [`ThroughputRule`].
    ThroughputRule {
        /// Fraction of the estimate to plan with.
        safety: f64,
        /// Seconds without a sample after which the base layer is sent as a probe.
        probe_after_s: f64,
    },
    /// [`DeadlineAware`].
    DeadlineAware {
        /// Standard deviations of the estimate's uncertainty taken off the rate.
        z: f64,
        /// Slack kept before the deadline (s).
        margin_s: f64,
        /// Fraction of the conservative rate a steady stream may use.
        sustain: f64,
        /// Seconds without a sample after which the base layer is sent as a probe.
        probe_after_s: f64,
        /// Plan with the estimate's own measured error instead of `z` standard deviations
        /// (absent: `z`).
        #[serde(default)]
        adaptive: Option<AdaptiveMargin>,
        /// Treat the link as down once a frame's report is this late (s; absent: only after
        /// `probe_after_s` without a sample).
        #[serde(default)]
        stall_slack_s: Option<f64>,
        /// Ceiling of the probe interval, which doubles after each probe that brings no
        /// sample (s; absent: a probe every `probe_after_s`).
        #[serde(default)]
        probe_backoff_max_s: Option<f64>,
        /// Send a probe beside the local path instead of in its place, when the local result
        /// would be in time (absent: the probe replaces the frame's local run).
        #[serde(default)]
        probe_beside_local: bool,
        /// Treat the link as down while the uplink is silent (nothing came back by a frame's
        /// silence check; absent: only the estimate's age and the stall slack count).
        #[serde(default)]
        silence_means_down: bool,
        /// Also run locally whenever the local path's value per frame of CPU time beats the
        /// chosen offload (absent: local only when nothing arrives in time, the issue's rule).
        #[serde(default)]
        local_by_value: bool,
    },
    /// [`Mpc`].
    Mpc {
        /// Frames planned ahead.
        horizon: u32,
        /// Standard deviations taken off the rate for the forecast.
        z: f64,
        /// Seconds without a sample after which the base layer is sent as a probe.
        probe_after_s: f64,
        /// Plan with the estimate's own measured error instead of `z` standard deviations
        /// (absent: `z`).
        #[serde(default)]
        adaptive: Option<AdaptiveMargin>,
        /// Treat the link as down once a frame's report is this late (s; absent: only after
        /// `probe_after_s` without a sample).
        #[serde(default)]
        stall_slack_s: Option<f64>,
        /// Ceiling of the probe interval, which doubles after each probe that brings no
        /// sample (s; absent: a probe every `probe_after_s`).
        #[serde(default)]
        probe_backoff_max_s: Option<f64>,
        /// Send a probe beside the local path instead of in its place, when the local result
        /// would be in time (absent: the probe replaces the frame's local run).
        #[serde(default)]
        probe_beside_local: bool,
        /// Treat the link as down while the uplink is silent (nothing came back by a frame's
        /// silence check; absent: only the estimate's age and the stall slack count).
        #[serde(default)]
        silence_means_down: bool,
        /// Also plan a first frame larger than the link sustains, followed by smaller ones
        /// (absent: every plan's later frames send at least as much as the first).
        #[serde(default)]
        bursts: bool,
    },
    /// [`EnergyAware`].
    EnergyAware {
        /// Standard deviations taken off the rate the expectation is centred on.
        z: f64,
        /// Slack a candidate must keep before the deadline (s).
        margin_s: f64,
        /// Fraction of the conservative rate a candidate's steady stream may use.
        sustain: f64,
        /// Smallest throughput uncertainty assumed, as a fraction of the estimate.
        min_std_fraction: f64,
        /// Multiplier of the switching margin derived from the radio tail.
        hysteresis: f64,
        /// Seconds without a sample after which the base layer is sent as a probe.
        probe_after_s: f64,
        /// Utility the policy gives a joule at a full battery; absent: the objective's.
        #[serde(default)]
        joule_value: Option<f64>,
    },
    /// [`QueueBola`].
    QueueBola {
        /// Slack (s) below which only the base layer is sent.
        min_slack_s: f64,
        /// Slack (s) from which all layers are sent.
        target_slack_s: f64,
    },
}

impl PolicyConfig {
    /// Builds the policy.
    pub fn build(&self) -> Box<dyn Policy> {
        match *self {
            PolicyConfig::LocalOnly => Box::new(LocalOnly),
            PolicyConfig::FixedK { k } => Box::new(FixedK::new(k)),
            PolicyConfig::ThroughputRule {
                safety,
                probe_after_s,
            } => Box::new(ThroughputRule::new(safety, probe_after_s)),
            PolicyConfig::DeadlineAware {
                z,
                margin_s,
                sustain,
                probe_after_s,
                adaptive,
                stall_slack_s,
                probe_backoff_max_s,
                probe_beside_local,
                silence_means_down,
                local_by_value,
            } => Box::new(
                DeadlineAware::new(z, margin_s, sustain, probe_after_s)
                    .with_margin(adaptive.map(|a| a.build(z)))
                    .with_stall_detection(stall_slack_s)
                    .with_probe_backoff(probe_backoff_max_s)
                    .with_probe_beside_local(probe_beside_local)
                    .with_silence_means_down(silence_means_down)
                    .with_local_by_value(local_by_value),
            ),
            PolicyConfig::Mpc {
                horizon,
                z,
                probe_after_s,
                adaptive,
                stall_slack_s,
                probe_backoff_max_s,
                probe_beside_local,
                silence_means_down,
                bursts,
            } => Box::new(
                Mpc::new(horizon, z, probe_after_s)
                    .with_margin(adaptive.map(|a| a.build(z)))
                    .with_stall_detection(stall_slack_s)
                    .with_probe_backoff(probe_backoff_max_s)
                    .with_probe_beside_local(probe_beside_local)
                    .with_silence_means_down(silence_means_down)
                    .with_bursts(bursts),
            ),
            PolicyConfig::EnergyAware {
                z,
                margin_s,
                sustain,
                min_std_fraction,
                hysteresis,
                probe_after_s,
                joule_value,
            } => Box::new(EnergyAware::new(
                z,
                margin_s,
                sustain,
                min_std_fraction,
                hysteresis,
                probe_after_s,
                joule_value,
            )),
            PolicyConfig::QueueBola {
                min_slack_s,
                target_slack_s,
            } => Box::new(QueueBola::new(min_slack_s, target_slack_s)),
        }
    }
}

/// The settings of a [`ForecastError`] margin.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveMargin {
    /// Standard deviations of the log forecast error taken off the estimate.
    pub z: f64,
    /// Frames the error statistics remember (about).
    pub memory: f64,
}

impl AdaptiveMargin {
    /// The margin, falling back to `fallback_z` standard deviations of the estimate while cold.
    pub fn build(&self, fallback_z: f64) -> ForecastError {
        ForecastError::new(self.z, self.memory, fallback_z)
    }
}

/// Why a preset could not be found or read.
#[derive(Debug, thiserror::Error)]
pub enum PresetError {
    /// No built-in preset has this name and no such file exists.
    #[error("unknown policy `{name}`: not a preset ({known}) nor a readable .toml file")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The preset names, comma-separated.
        known: String,
    },
    /// The preset file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The preset file is not a valid policy configuration.
    #[error("{path}: not a valid policy preset: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message.
        message: String,
    },
}

/// The built-in presets, embedded from `policies/presets/*.toml`.
const PRESETS: &[(&str, &str)] = &[
    ("local-only", include_str!("../presets/local-only.toml")),
    ("fixed-k1", include_str!("../presets/fixed-k1.toml")),
    ("fixed-k2", include_str!("../presets/fixed-k2.toml")),
    ("fixed-k4", include_str!("../presets/fixed-k4.toml")),
    ("fixed-k8", include_str!("../presets/fixed-k8.toml")),
    (
        "throughput-rule",
        include_str!("../presets/throughput-rule.toml"),
    ),
    (
        "deadline-aware",
        include_str!("../presets/deadline-aware.toml"),
    ),
    ("mpc", include_str!("../presets/mpc.toml")),
    ("energy-aware", include_str!("../presets/energy-aware.toml")),
    ("queue-bola", include_str!("../presets/queue-bola.toml")),
];

/// Names of the built-in presets.
pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|(n, _)| *n).collect()
}

/// Parses policy TOML; `path` only names the source in errors.
fn parse(text: &str, path: &Path) -> Result<PolicyConfig, PresetError> {
    toml::from_str(text).map_err(|e| PresetError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// A built-in preset by name, e.g. `throughput-rule` or `fixed-k4`.
pub fn preset(name: &str) -> Result<PolicyConfig, PresetError> {
    match PRESETS.iter().find(|(n, _)| *n == name) {
        Some((n, text)) => parse(text, Path::new(&format!("presets/{n}.toml"))),
        None => Err(PresetError::Unknown {
            name: name.to_owned(),
            known: preset_names().join(", "),
        }),
    }
}

/// A preset by name, or a policy TOML file by path (anything ending in `.toml`).
pub fn load_preset(name_or_path: &str) -> Result<PolicyConfig, PresetError> {
    if name_or_path.ends_with(".toml") {
        let path = Path::new(name_or_path);
        let text = std::fs::read_to_string(path).map_err(|source| PresetError::Io {
            path: path.to_owned(),
            source,
        })?;
        return parse(&text, path);
    }
    preset(name_or_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_and_builds_with_its_name() {
        for name in preset_names() {
            let policy = preset(name).unwrap().build();
            assert_eq!(policy.name(), name);
        }
        assert!(matches!(preset("nope"), Err(PresetError::Unknown { .. })));
    }
}
