//! `offload detect`: runs the SSD-MobileNetV2 COCO detector (candle, converted by
//! `offload convert-detector`) on image files and prints what it finds, one line per detection.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use offload_model::detector::labels::coco_name;
use offload_model::detector::{Detector, default_model_dir};

/// Arguments of `offload detect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory of the converted model (ssd_mobilenet_v2_coco.safetensors); by default the cache
    /// scripts/install-detector.sh fills ($OFFLOAD_CACHE or ~/.cache/offload, detector/converted).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Print detections scoring at least this.
    #[arg(long, default_value_t = 0.3)]
    pub min_score: f32,
    /// Images to run on (PNG or JPEG).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

/// Loads the detector once and prints the detections of every image.
pub fn run(args: Args) -> anyhow::Result<()> {
    let model = args.model.unwrap_or_else(default_model_dir);
    let started = Instant::now();
    let detector = Detector::load(&model).with_context(|| {
        format!(
            "loading the detector from {} (run scripts/install-detector.sh)",
            model.display()
        )
    })?;
    println!(
        "# model {} loaded in {:.3} s",
        model.display(),
        started.elapsed().as_secs_f64()
    );
    println!("# image\tclass_id\tclass\tscore\tx_min\ty_min\tx_max\ty_max (pixels)");
    for path in &args.images {
        let rgb = image::open(path)
            .with_context(|| format!("decoding {}", path.display()))?
            .to_rgb8();
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        let started = Instant::now();
        let detections = detector
            .detect(rgb.as_raw(), w, h)
            .with_context(|| format!("detecting in {}", path.display()))?;
        let seconds = started.elapsed().as_secs_f64();
        let shown: Vec<_> = detections
            .iter()
            .filter(|d| d.score >= args.min_score)
            .collect();
        println!(
            "# {} ({w}×{h}): {} detections ≥ {}, {seconds:.3} s",
            path.display(),
            shown.len(),
            args.min_score
        );
        for d in shown {
            println!(
                "{}\t{}\t{}\t{:.4}\t{:.1}\t{:.1}\t{:.1}\t{:.1}",
                path.display(),
                d.class_id,
                coco_name(d.class_id).unwrap_or("?"),
                d.score,
                d.x_min,
                d.y_min,
                d.x_max,
                d.y_max
            );
        }
    }
    Ok(())
}
