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
}

impl Decision {
    /// Number of layers sent: 0 for local execution.
    #[inline]
    pub fn layers(self) -> u32 {
        match self {
            Decision::Local => 0,
            Decision::Offload { layers } => layers,
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::Local => f.write_str("local"),
            Decision::Offload { layers } => write!(f, "offload:{layers}"),
        }
    }
}
