//! End-to-end tests across the offload crates live in this package's test targets; this library
//! holds what several of them share.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use offload_controller::Profile;
use offload_model::detector::default_model_dir;
use offload_model::{Dataset, Split, SplitModel};

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The committed Fashion-MNIST split model, its profile, and real test images with their labels
/// (as the agent takes its inputs).
pub struct Fmnist {
    /// `models/fmnist`.
    pub model: Arc<SplitModel>,
    /// `profiles/fmnist.toml`.
    pub profile: Profile,
    /// The first test images, each with its label.
    pub inputs: Vec<(Vec<u8>, Option<u32>)>,
}

/// [`Fmnist`] with the first `frames` test images (Fashion-MNIST installed by `scripts/setup.sh`).
pub fn fmnist(frames: usize) -> Fmnist {
    let model = Arc::new(SplitModel::load(&repo().join("models/fmnist")).expect("committed model"));
    let profile = Profile::load(&repo().join("profiles/fmnist.toml")).expect("committed profile");
    let test = Dataset::load(
        Path::new(offload_model::data::DEFAULT_FASHION_MNIST_DIR),
        Split::Test,
    )
    .expect("Fashion-MNIST installed by scripts/setup.sh");
    let inputs = (0..frames)
        .map(|i| (test.image(i).to_vec(), Some(u32::from(test.labels[i]))))
        .collect();
    Fmnist {
        model,
        profile,
        inputs,
    }
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
