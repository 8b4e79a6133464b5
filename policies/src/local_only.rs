//! Never offload.

use offload_controller::{Context, Decision, FrameOptions, Policy};

/// Runs every frame on the device: the baseline every offloading policy must beat.
#[derive(Debug, Clone, Default)]
pub struct LocalOnly;

impl Policy for LocalOnly {
    fn name(&self) -> &str {
        "local-only"
    }

    fn observes_frame_done(&self) -> bool {
        false
    }

    fn reads_throughput_estimate(&self) -> bool {
        false
    }

    fn decide(&mut self, _frame: &FrameOptions, _ctx: &Context<'_>) -> Decision {
        Decision::Local
    }
}
