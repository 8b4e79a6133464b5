//! The model profile: a versioned TOML file describing an operating model.
//!
//! A profile says, for a split model on a given device and server, how many layers there are,
//! how large the first `k` layers are (a distribution, and optionally measured per-frame sizes),
//! what accuracy each `k` gives, and how long and how much power each stage takes. The simulator
//! draws frames from it; `offload profile` writes one from measurements. Example:
//!
//! ```toml
//! format = "offload-profile"
//! version = 1
//! name = "example"
//! illustrative = true
//! description = "hand-written numbers"
//!
//! [device]
//! compute_power_w = 3.0
//! encoder_time_s = 0.020
//!
//! [local]
//! time_s = 0.150
//! accuracy = 0.74
//!
//! [[layers]]
//! k = 1
//! accuracy = 0.40
//! bytes_median = 300.0
//! bytes_sigma = 0.3
//! device_time_s = 0.002
//! server_time_s = 0.006
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::frame::{FrameOptions, LocalOption, OffloadOption};

/// The `format` value every profile carries.
pub const PROFILE_FORMAT: &str = "offload-profile";
/// The profile format version this code reads and writes.
pub const PROFILE_VERSION: u32 = 1;
/// Most layers a profile may describe (bounds allocations sized by the file).
pub const MAX_LAYERS: usize = 64;
/// Most measured frames a profile may carry.
pub const MAX_FRAMES: usize = 1_000_000;

/// Why a profile could not be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for a profile.
    #[error("{path}: not a valid profile: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message (with line and column).
        message: String,
    },
    /// A field has a value the format does not allow.
    #[error("{path}: field `{field}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The field, e.g. `layers[2].bytes_median`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// An operating model for the simulator and the controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Always `"offload-profile"`.
    pub format: String,
    /// Format version ([`PROFILE_VERSION`]).
    pub version: u32,
    /// A short name for reports.
    pub name: String,
    /// True when the numbers are not measured (e.g. a hand-written example).
    #[serde(default)]
    pub illustrative: bool,
    /// Where the numbers come from.
    #[serde(default)]
    pub description: String,
    /// Identifier of the model the profile measures (its manifest hash), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// Device-side costs shared by all options.
    pub device: DeviceProfile,
    /// The local path.
    pub local: LocalProfile,
    /// One entry per layer count `k = 1..=N`, in order.
    pub layers: Vec<LayerProfile>,
    /// Measured cumulative sizes: `frames[i][k-1]` = bytes of the first `k` layers of frame `i`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<Vec<u64>>,
}

/// Device costs that every frame pays before the decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceProfile {
    /// Power drawn by the device while computing (W).
    pub compute_power_w: f64,
    /// Time of the task encoder, run for every frame before the decision (s).
    pub encoder_time_s: f64,
}

/// The local path: the rest of the model on the device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalProfile {
    /// Device time after the encoder (s).
    pub time_s: f64,
    /// Accuracy of the local path.
    pub accuracy: f64,
}

/// Costs and benefit of sending the first `k` layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerProfile {
    /// Number of layers.
    pub k: u32,
    /// Accuracy when the server decodes the first `k` layers.
    pub accuracy: f64,
    /// Median size of the first `k` layers, headers included (bytes).
    pub bytes_median: f64,
    /// Standard deviation of the log of that size (log-normal spread across frames).
    pub bytes_sigma: f64,
    /// Device time for reduction and entropy coding of `k` layers (s).
    pub device_time_s: f64,
    /// Server time to decode `k` layers and finish the model (s).
    pub server_time_s: f64,
}

impl Profile {
    /// Reads and validates a profile file.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Io {
            path: path.to_owned(),
            source,
        })?;
        Profile::parse(&text, path)
    }

    /// Parses and validates profile text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Profile, ProfileError> {
        let profile: Profile = toml::from_str(text).map_err(|e| ProfileError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        profile.validate(path)?;
        Ok(profile)
    }

    /// Writes the profile as TOML.
    pub fn save(&self, path: &Path) -> Result<(), ProfileError> {
        self.validate(path)?;
        let text = self.to_toml_string();
        std::fs::write(path, text).map_err(|source| ProfileError::Io {
            path: path.to_owned(),
            source,
        })
    }

    /// The profile as TOML text.
    pub fn to_toml_string(&self) -> String {
        // Serialising plain data with finite numbers cannot fail.
        toml::to_string(self).unwrap_or_default()
    }

    /// Number of layers `N`.
    pub fn layer_count(&self) -> usize {
        self.layers.len()
    }

    /// Checks every field; `path` names the source in errors.
    pub fn validate(&self, path: &Path) -> Result<(), ProfileError> {
        let bad = |field: String, message: &str| ProfileError::Invalid {
            path: path.to_owned(),
            field,
            message: message.to_owned(),
        };
        if self.format != PROFILE_FORMAT {
            return Err(bad("format".into(), "must be \"offload-profile\""));
        }
        if self.version != PROFILE_VERSION {
            return Err(bad(
                "version".into(),
                "unsupported version (this build reads 1)",
            ));
        }
        let non_neg = |field: &str, v: f64| -> Result<(), ProfileError> {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(bad(field.into(), "must be a finite number >= 0"))
            }
        };
        let fraction = |field: &str, v: f64| -> Result<(), ProfileError> {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(bad(field.into(), "must be in [0, 1]"))
            }
        };
        non_neg("device.compute_power_w", self.device.compute_power_w)?;
        non_neg("device.encoder_time_s", self.device.encoder_time_s)?;
        non_neg("local.time_s", self.local.time_s)?;
        fraction("local.accuracy", self.local.accuracy)?;
        if self.layers.is_empty() || self.layers.len() > MAX_LAYERS {
            return Err(bad("layers".into(), "must list 1 to 64 layer counts"));
        }
        let mut prev_median = 0.0;
        for (i, l) in self.layers.iter().enumerate() {
            let f = |name: &str| format!("layers[{i}].{name}");
            if l.k as usize != i + 1 {
                return Err(bad(f("k"), "layer counts must be 1, 2, … in order"));
            }
            fraction(&f("accuracy"), l.accuracy)?;
            non_neg(&f("bytes_median"), l.bytes_median)?;
            non_neg(&f("bytes_sigma"), l.bytes_sigma)?;
            non_neg(&f("device_time_s"), l.device_time_s)?;
            non_neg(&f("server_time_s"), l.server_time_s)?;
            if l.bytes_median < prev_median {
                return Err(bad(f("bytes_median"), "sizes must not shrink as k grows"));
            }
            prev_median = l.bytes_median;
        }
        if self.frames.len() > MAX_FRAMES {
            return Err(bad("frames".into(), "too many measured frames"));
        }
        for (i, row) in self.frames.iter().enumerate() {
            if row.len() != self.layers.len() {
                return Err(bad(
                    format!("frames[{i}]"),
                    "needs one size per layer count",
                ));
            }
            if row.windows(2).any(|w| w[1] < w[0]) {
                return Err(bad(
                    format!("frames[{i}]"),
                    "sizes must not shrink as k grows",
                ));
            }
        }
        Ok(())
    }

    /// Fills `out` with the options of one frame whose cumulative layer sizes are `sizes`
    /// (`sizes[k-1]` = bytes of the first `k` layers), reusing `out`'s allocation.
    ///
    /// Slower device compute under CPU load is the caller's business (scale the times).
    pub fn fill_options(
        &self,
        frame: u64,
        captured_at: f64,
        deadline: f64,
        sizes: &[u64],
        out: &mut FrameOptions,
    ) {
        let p = self.device.compute_power_w;
        out.frame = frame;
        out.captured_at = captured_at;
        out.deadline = deadline;
        out.local = LocalOption {
            accuracy: self.local.accuracy,
            device_time: self.local.time_s,
            energy_j: p * self.local.time_s,
        };
        out.offload.clear();
        out.offload.extend(
            self.layers
                .iter()
                .zip(sizes)
                .map(|(l, &bytes)| OffloadOption {
                    layers: l.k,
                    bytes,
                    accuracy: l.accuracy,
                    device_time: l.device_time_s,
                    device_energy_j: p * l.device_time_s,
                    server_time: l.server_time_s,
                }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
format = "offload-profile"
version = 1
name = "t"
[device]
compute_power_w = 3.0
encoder_time_s = 0.02
[local]
time_s = 0.15
accuracy = 0.74
[[layers]]
k = 1
accuracy = 0.4
bytes_median = 300.0
bytes_sigma = 0.3
device_time_s = 0.002
server_time_s = 0.006
[[layers]]
k = 2
accuracy = 0.6
bytes_median = 700.0
bytes_sigma = 0.3
device_time_s = 0.003
server_time_s = 0.006
"#;

    #[test]
    fn parses_round_trips_and_fills_options() {
        let p = Profile::parse(EXAMPLE, Path::new("example.toml")).unwrap();
        assert_eq!(p.layer_count(), 2);
        let again = Profile::parse(&p.to_toml_string(), Path::new("again.toml")).unwrap();
        assert_eq!(p, again);
        let mut o = FrameOptions::default();
        p.fill_options(3, 1.0, 1.2, &[310, 720], &mut o);
        assert_eq!(o.offload.len(), 2);
        assert_eq!(o.offload[1].bytes, 720);
        assert!((o.local.energy_j - 0.45).abs() < 1e-12);
    }

    #[test]
    fn invalid_fields_are_named() {
        let bad = EXAMPLE.replace("accuracy = 0.6", "accuracy = 1.6");
        let err = Profile::parse(&bad, Path::new("bad.toml")).unwrap_err();
        assert!(err.to_string().contains("layers[1].accuracy"), "{err}");
        let err = Profile::parse("format = 3", Path::new("x.toml")).unwrap_err();
        assert!(matches!(err, ProfileError::Parse { .. }));
        let shrink = EXAMPLE.replace("bytes_median = 700.0", "bytes_median = 100.0");
        let err = Profile::parse(&shrink, Path::new("s.toml")).unwrap_err();
        assert!(err.to_string().contains("bytes_median"), "{err}");
    }
}
