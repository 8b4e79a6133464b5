//! What the controller decides for one frame.

use serde::{Deserialize, Serialize};

/// The decision for one frame: finish the model on the device, or send the first `layers` layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Decision {
    /// Run the rest of the model on the device (the local path).
    Local,
    /// Send the first `layers` coded layers (a prefix, `layers >= 1`) to the edge server.
    Offload {
        /// Number of layers sent, counted from the base layer.
        layers: u32,
    },
    /// Run the local path, and send the first `layers` layers beside it only to measure the
    /// link: the frame's result is the local one. A probe that costs no frame, only the
    /// radio's energy and the uplink time it takes.
    LocalWithProbe {
        /// Number of layers sent as the probe, counted from the base layer.
        layers: u32,
    },
}

impl Decision {
    /// Number of layers the frame's result comes from: 0 for local execution (with or
    /// without a probe).
    #[inline]
    pub fn layers(self) -> u32 {
        match self {
            Decision::Local | Decision::LocalWithProbe { .. } => 0,
            Decision::Offload { layers } => layers,
        }
    }

    /// Number of layers sent over the uplink: the offloaded prefix or the probe.
    #[inline]
    pub fn layers_sent(self) -> u32 {
        match self {
            Decision::Local => 0,
            Decision::Offload { layers } | Decision::LocalWithProbe { layers } => layers,
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::Local => f.write_str("local"),
            Decision::Offload { layers } => write!(f, "offload:{layers}"),
            Decision::LocalWithProbe { layers } => write!(f, "local+probe:{layers}"),
        }
    }
}

/// A decision's text that is not one [`Decision`]'s `Display` form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a decision: {0:?} (expected local, offload:<k> or local+probe:<k>, k >= 1)")]
pub struct ParseDecisionError(String);

impl std::str::FromStr for Decision {
    type Err = ParseDecisionError;

    /// Reads the `Display` form back: `local`, `offload:<k>` or `local+probe:<k>`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let layers = |k: &str| k.parse::<u32>().ok().filter(|&k| k >= 1);
        let parsed = if s == "local" {
            Some(Decision::Local)
        } else if let Some(k) = s.strip_prefix("offload:") {
            layers(k).map(|layers| Decision::Offload { layers })
        } else if let Some(k) = s.strip_prefix("local+probe:") {
            layers(k).map(|layers| Decision::LocalWithProbe { layers })
        } else {
            None
        };
        parsed.ok_or_else(|| ParseDecisionError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_display_form_reads_back() {
        for d in [
            Decision::Local,
            Decision::Offload { layers: 3 },
            Decision::LocalWithProbe { layers: 1 },
            Decision::Offload { layers: 12 },
        ] {
            assert_eq!(d.to_string().parse::<Decision>(), Ok(d));
        }
        for bad in [
            "skipped",
            "offload:0",
            "offload:",
            "local+probe:x",
            "Local",
            "",
        ] {
            assert!(bad.parse::<Decision>().is_err(), "{bad}");
        }
    }
}
