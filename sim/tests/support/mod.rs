//! What several simulator tests share: the measured profile and a one-decision policy.

use std::path::Path;

use offload_controller::{Context, Decision, FrameOptions, Policy, Profile};

/// The measured SSD-MobileNetV2 profile committed in `profiles/`.
pub fn profile() -> Profile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/ssd-mobilenet-v2.toml");
    Profile::load(&path).expect("the measured detector profile loads")
}

/// The same decision for every frame.
#[derive(Debug)]
pub struct Always(pub Decision);

impl Policy for Always {
    fn name(&self) -> &str {
        "always"
    }

    fn decide(&mut self, _frame: &FrameOptions, _ctx: &Context<'_>) -> Decision {
        self.0
    }
}
