//! Acceptance test of the candle SSD-MobileNetV2 (issue 6): on the real photos and video frames
//! of `tests/fixtures/ssd_reference.json` (made by `scripts/detector_reference.py` with OpenCV DNN
//! on the same frozen graph), the candle detections must be OpenCV's — same classes, scores
//! within 1e-3, boxes within 1 pixel.
//!
//! The tight tolerance applies where the Rust decoder yields exactly the pixels OpenCV detected on
//! (the fixture's `rgb_sha256`): all PNGs. JPEG decoders differ (the `image` crate's from
//! libjpeg-turbo by up to a few levels on some pixels), so on JPEGs whose pixels differ the test
//! can only ask for the same objects with scores within 5e-2 and boxes within 4 pixels, and says
//! how many images it compared each way.
//!
//! The model and the images are installed outside git by `scripts/install-detector.sh`. Without
//! them the test says so and passes, except under `CI=true` (where `.ci/run` installs them), where
//! their absence is a failure.

use std::path::{Path, PathBuf};

use candle_core::Tensor;
use offload_model::detector::{Detection, Detector, default_model_dir};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Tolerances on identical input pixels (the acceptance criterion).
const EXACT: Tolerance = Tolerance {
    score: 1e-3,
    box_px: 1.0,
};
/// Tolerances when only the JPEG decoders' rounding differs.
const DECODER: Tolerance = Tolerance {
    score: 5e-2,
    box_px: 4.0,
};

#[derive(Clone, Copy)]
struct Tolerance {
    score: f32,
    box_px: f32,
}

#[derive(Deserialize)]
struct Fixture {
    /// Detections below this score are not listed.
    score_threshold: f32,
    images: Vec<FixtureImage>,
}

#[derive(Deserialize)]
struct FixtureImage {
    /// Path relative to the detector cache directory.
    file: String,
    /// SHA-256 of the file.
    sha256: String,
    /// SHA-256 of the H×W×3 RGB bytes OpenCV decoded.
    rgb_sha256: String,
    width: usize,
    height: usize,
    detections: Vec<ReferenceDetection>,
}

#[derive(Deserialize, Debug)]
struct ReferenceDetection {
    class_id: usize,
    score: f32,
    /// x_min, y_min, x_max, y_max in pixels, clipped to the image.
    box_px: [f32; 4],
}

fn fixture() -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ssd_reference.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The converted model's directory, or `None` (skip) when it is not installed outside CI.
fn installed_model() -> Option<PathBuf> {
    let dir = Some(default_model_dir()).filter(|d| d.is_dir());
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    match dir {
        Some(d) => Some(d),
        None if ci => panic!(
            "CI=true but the converted detector is not installed (scripts/install-detector.sh)"
        ),
        None => {
            eprintln!(
                "SKIPPED detector_reference: no converted detector in {}; run scripts/install-detector.sh",
                default_model_dir().display()
            );
            None
        }
    }
}

/// The detection's box clipped to the image, as the fixture lists it.
fn clipped_box(d: &Detection, width: usize, height: usize) -> [f32; 4] {
    let (w, h) = (width as f32, height as f32);
    [
        d.x_min.clamp(0.0, w),
        d.y_min.clamp(0.0, h),
        d.x_max.clamp(0.0, w),
        d.y_max.clamp(0.0, h),
    ]
}

/// Largest score and box-edge differences of the matched pairs, and the mismatches.
#[derive(Default)]
struct Outcome {
    images: usize,
    detections: usize,
    worst_score: f32,
    worst_box: f32,
    failures: Vec<String>,
}

/// Matches the reference detections of one image one to one with ours.
fn compare(
    image: &FixtureImage,
    ours: &[Detection],
    threshold: f32,
    tol: Tolerance,
    out: &mut Outcome,
) {
    out.images += 1;
    // Scores near the listing threshold may fall either side of it within the tolerance.
    let candidates: Vec<(&Detection, [f32; 4])> = ours
        .iter()
        .filter(|d| d.score >= threshold - tol.score)
        .map(|d| (d, clipped_box(d, image.width, image.height)))
        .collect();
    let mut used = vec![false; candidates.len()];
    for r in &image.detections {
        out.detections += 1;
        let found = candidates.iter().enumerate().find(|(i, (d, b))| {
            !used[*i]
                && d.class_id == r.class_id
                && (d.score - r.score).abs() <= tol.score
                && b.iter()
                    .zip(&r.box_px)
                    .all(|(a, e)| (a - e).abs() <= tol.box_px)
        });
        match found {
            Some((i, (d, b))) => {
                used[i] = true;
                out.worst_score = out.worst_score.max((d.score - r.score).abs());
                for (a, e) in b.iter().zip(&r.box_px) {
                    out.worst_box = out.worst_box.max((a - e).abs());
                }
            }
            None if r.score < threshold + tol.score => {} // borderline: may be just below ours
            None => out.failures.push(format!(
                "{}: reference {r:?} not found among {:?}",
                image.file,
                candidates.iter().map(|(d, _)| d).collect::<Vec<_>>()
            )),
        }
    }
    for ((d, _), _) in candidates.iter().zip(&used).filter(|(_, u)| !**u) {
        if d.score >= threshold + tol.score {
            out.failures
                .push(format!("{}: extra detection {d:?}", image.file));
        }
    }
}

/// The split API on a real frame: a batch encodes like its images one by one, and the
/// differentiable server half (for distillation) gives the fast path's head outputs.
fn check_split_api(detector: &Detector, rgb: &[u8], width: usize, height: usize) {
    let x = detector.preprocess(rgb, width, height).expect("preprocess");
    let split = detector.encode_to_split(&x).expect("encoder");
    let flipped = x
        .flip(&[3])
        .expect("flip")
        .contiguous()
        .expect("contiguous");
    let batch = Tensor::cat(&[&flipped, &x], 0).expect("batch");
    let batch_split = detector.encode_to_split(&batch).expect("batched encoder");
    assert_eq!(batch_split.dims(), [2, 96, 19, 19]);
    let second = batch_split
        .get(1)
        .expect("second")
        .unsqueeze(0)
        .expect("unsqueeze");
    let diff = (&second - &split)
        .and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>())
        .expect("difference");
    assert!(diff <= 1e-6, "batched encoding differs by {diff}");
    let fast = detector.predict_from_split(&split).expect("fast head");
    let (boxes, logits) = detector
        .predict_from_split_autograd(&split)
        .expect("autograd head");
    let boxes: Vec<f32> = boxes.flatten_all().unwrap().to_vec1().unwrap();
    let logits: Vec<f32> = logits.flatten_all().unwrap().to_vec1().unwrap();
    let fast_boxes: Vec<f32> = fast.box_encodings.iter().flatten().copied().collect();
    assert_eq!(boxes.len(), fast_boxes.len());
    assert_eq!(logits.len(), fast.class_logits.len());
    let worst = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    };
    let (db, dl) = (
        worst(&boxes, &fast_boxes),
        worst(&logits, &fast.class_logits),
    );
    eprintln!("autograd server half vs fast path: box encodings {db:.2e}, logits {dl:.2e}");
    assert!(db < 1e-3 && dl < 1e-3, "autograd path differs: {db}, {dl}");
}

#[test]
fn candle_detections_match_opencv_reference() {
    let Some(model_dir) = installed_model() else {
        return;
    };
    let cache = model_dir.join("..");
    let fixture = fixture();
    let detector = Detector::load(&model_dir).expect("converted detector loads");
    let (mut exact, mut decoder) = (Outcome::default(), Outcome::default());
    let mut autograd_checked = false;
    for image in &fixture.images {
        let path = cache.join(&image.file);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            format!("{:x}", Sha256::digest(&bytes)),
            image.sha256,
            "{}: not the file the fixture was made from",
            image.file
        );
        let rgb = image::load_from_memory(&bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .to_rgb8();
        assert_eq!(
            (rgb.width() as usize, rgb.height() as usize),
            (image.width, image.height),
            "{}",
            image.file
        );
        let ours = detector
            .detect(rgb.as_raw(), image.width, image.height)
            .expect("detector runs");
        let same_pixels = format!("{:x}", Sha256::digest(rgb.as_raw())) == image.rgb_sha256;
        if same_pixels && !autograd_checked {
            check_split_api(&detector, rgb.as_raw(), image.width, image.height);
            autograd_checked = true;
        }
        let (tol, out) = if same_pixels {
            (EXACT, &mut exact)
        } else {
            (DECODER, &mut decoder)
        };
        compare(image, &ours, fixture.score_threshold, tol, out);
    }
    for (name, out) in [
        ("identical pixels", &exact),
        ("JPEG decoded differently", &decoder),
    ] {
        eprintln!(
            "{name}: {} images, {} reference detections; largest score difference {:.2e}, \
             largest box-edge difference {:.3} px",
            out.images, out.detections, out.worst_score, out.worst_box
        );
    }
    assert!(
        exact.detections > 0,
        "no reference detection on an image decoded to identical pixels"
    );
    let failures: Vec<&String> = exact.failures.iter().chain(&decoder.failures).collect();
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}
