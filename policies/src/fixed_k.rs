//! Always send the same number of layers.

use offload_controller::{Context, Decision, FrameOptions, Policy};

/// Always sends the first `k` layers (clamped to what the frame offers): a single-rate codec's
/// behaviour, and the baseline the adaptive policies must beat for every `k`.
#[derive(Debug, Clone)]
pub struct FixedK {
    k: u32,
    name: String,
}

impl FixedK {
    /// A policy that always sends `k >= 1` layers.
    pub fn new(k: u32) -> Self {
        let k = k.max(1);
        FixedK {
            k,
            name: format!("fixed-k{k}"),
        }
    }
}

impl Policy for FixedK {
    fn name(&self) -> &str {
        &self.name
    }

    fn observes_frame_done(&self) -> bool {
        false
    }

    fn reads_throughput_estimate(&self) -> bool {
        false
    }

    fn decide(&mut self, frame: &FrameOptions, _ctx: &Context<'_>) -> Decision {
        let layers = self.k.min(frame.offload.len() as u32);
        if layers == 0 {
            Decision::Local
        } else {
            Decision::Offload { layers }
        }
    }
}
