//! The detector's inference kernels (packed matrix kernel with fused bias/residual/ReLU6, direct
//! depthwise 3×3) must compute what candle's own `conv2d` computes on the same folded weights,
//! on real frames: the device half (`encode_to_split` vs `encode_to_split_autograd`) and the
//! server half (`predict_from_split` vs `predict_from_split_autograd`).
//!
//! Needs the model and frames installed by `scripts/install-detector.sh`; without them the test
//! says so and passes, except under `CI=true`, where their absence is a failure.

use std::path::PathBuf;

use candle_core::Tensor;
use offload_model::detector::{Detector, default_model_dir};

/// Largest difference allowed between the two paths (the split tensor's values reach ~15; the
/// kernels sum in a different order, and use FMA).
const TOLERANCE: f32 = 1e-3;

fn model_dir() -> Option<PathBuf> {
    let dir = Some(default_model_dir()).filter(|d| d.is_dir());
    if dir.is_none() {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "CI=true but the converted detector is not installed (scripts/install-detector.sh)"
        );
        eprintln!(
            "skipped: no converted detector at {} (run scripts/install-detector.sh)",
            default_model_dir().display()
        );
    }
    dir
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.max_all())
        .and_then(|d| d.to_scalar::<f32>())
        .expect("difference of two f32 tensors")
}

#[test]
fn inference_kernels_equal_candle_conv2d_on_real_frames() {
    let Some(dir) = model_dir() else { return };
    let detector = Detector::load(&dir).expect("converted detector loads");
    let frames = dir.join("../frames/vtest");
    let mut checked = 0;
    for name in ["frame_0001.png", "frame_0040.png", "frame_0080.png"] {
        let path = frames.join(name);
        let frame = image::open(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .to_rgb8();
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let input = detector
            .preprocess(frame.as_raw(), w, h)
            .expect("frame preprocesses");

        let fast = detector.encode_to_split(&input).expect("fast encoder runs");
        let reference = detector
            .encode_to_split_autograd(&input)
            .expect("candle conv2d encoder runs");
        let diff = max_abs_diff(&fast, &reference);
        let peak = reference
            .abs()
            .and_then(|t| t.max_all())
            .and_then(|t| t.to_scalar::<f32>())
            .expect("peak value");
        eprintln!("{name}: encoder max |fast − conv2d| = {diff:.2e} (peak value {peak:.2})");
        assert!(peak > 1.0, "{name}: split tensor is (nearly) zero");
        assert!(diff < TOLERANCE, "{name}: encoder differs by {diff}");

        let raw = detector
            .predict_from_split(&fast)
            .expect("server half runs");
        let (boxes, logits) = detector
            .predict_from_split_autograd(&fast)
            .expect("differentiable server half runs");
        let n = raw.box_encodings.len();
        let fast_boxes = Tensor::from_vec(
            raw.box_encodings.concat(),
            (1, n, 4),
            &candle_core::Device::Cpu,
        )
        .expect("box tensor");
        let fast_logits = Tensor::from_vec(
            raw.class_logits.clone(),
            logits.dims(),
            &candle_core::Device::Cpu,
        )
        .expect("logit tensor");
        let box_diff = max_abs_diff(&fast_boxes, &boxes);
        let logit_diff = max_abs_diff(&fast_logits, &logits);
        eprintln!("{name}: server half max diff boxes {box_diff:.2e}, logits {logit_diff:.2e}");
        assert!(
            box_diff < TOLERANCE,
            "{name}: box encodings differ by {box_diff}"
        );
        assert!(
            logit_diff < TOLERANCE,
            "{name}: class logits differ by {logit_diff}"
        );
        checked += 1;
    }
    assert_eq!(checked, 3);
}
