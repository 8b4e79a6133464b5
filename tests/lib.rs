//! End-to-end tests across the offload crates live in this package's test targets; this library
//! holds what several of them share.

use std::path::{Path, PathBuf};

use offload_model::detector::default_model_dir;

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The converted detector's folder and the video frames' folder, or `None` when they are not
/// installed (the test named `test` is then skipped, saying so). Under `CI=true` their absence
/// fails the test instead: CI installs them with `scripts/install-detector.sh`.
pub fn detector_installed(test: &str) -> Option<(PathBuf, PathBuf)> {
    let detector = default_model_dir();
    let frames = offload_model::tf_import::detector_cache_dir()
        .join("frames")
        .join("vtest");
    if detector.is_dir() && frames.is_dir() {
        return Some((detector, frames));
    }
    assert!(
        !std::env::var("CI").is_ok_and(|v| v == "true"),
        "CI=true but the detector or its frames are not installed (scripts/install-detector.sh)"
    );
    eprintln!(
        "SKIPPED {test}: no converted detector in {} or no frames in {}; run scripts/install-detector.sh",
        detector.display(),
        frames.display()
    );
    None
}
