//! Cost of the SSD-MobileNetV2 detector per 300×300 frame on this CPU: the device-side encoder
//! (image → stride-16 split tensor), the server half (split tensor → detections) and the full
//! local detector, on a real frame of the pedestrian video installed by
//! `scripts/install-detector.sh`. Each half runs two ways side by side: the inference kernels
//! (`encode_to_split`, `predict_from_split`) and the same layers built from candle's own `conv2d`
//! (`encode_to_split_autograd`, `predict_from_split_autograd`, the differentiable path). The
//! thread count is RAYON_NUM_THREADS (candle's matrix products and the kernels both follow it).
//! Without the installed model the bench reports why and measures nothing.

use criterion::{Criterion, criterion_group, criterion_main};
use offload_model::detector::{Detector, default_model_dir};

fn detector(c: &mut Criterion) {
    let Some(model_dir) = Some(default_model_dir()).filter(|d| d.is_dir()) else {
        eprintln!("detector bench skipped: no converted model (run scripts/install-detector.sh)");
        return;
    };
    let detector = Detector::load(&model_dir).expect("converted detector loads");
    let frame_path = model_dir.join("../frames/vtest/frame_0001.png");
    let frame = image::open(&frame_path)
        .unwrap_or_else(|e| panic!("{}: {e}", frame_path.display()))
        .to_rgb8();
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let input = detector
        .preprocess(frame.as_raw(), w, h)
        .expect("frame preprocesses");
    let split = detector.encode_to_split(&input).expect("encoder runs");

    let mut group = c.benchmark_group("detector");
    group.sample_size(20);
    group.bench_function("preprocess_frame", |b| {
        b.iter(|| detector.preprocess(frame.as_raw(), w, h).unwrap())
    });
    group.bench_function("encoder_to_stride16", |b| {
        b.iter(|| detector.encode_to_split(&input).unwrap())
    });
    group.bench_function("encoder_to_stride16_candle_conv2d", |b| {
        b.iter(|| detector.encode_to_split_autograd(&input).unwrap())
    });
    group.bench_function("server_half_from_stride16", |b| {
        b.iter(|| detector.finish_from_split(&split, w, h).unwrap())
    });
    group.bench_function("server_heads_from_stride16", |b| {
        b.iter(|| detector.predict_from_split(&split).unwrap())
    });
    group.bench_function("server_heads_from_stride16_candle_conv2d", |b| {
        b.iter(|| detector.predict_from_split_autograd(&split).unwrap())
    });
    group.bench_function("full_detector", |b| {
        b.iter(|| {
            let f = detector.encode_to_split(&input).unwrap();
            detector.finish_from_split(&f, w, h).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, detector);
criterion_main!(benches);
