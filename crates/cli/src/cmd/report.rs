//! `offload report codec`: measures the committed model's rate–accuracy on the real
//! Fashion-MNIST test set (real layered coding) next to a JPEG baseline, and writes
//! docs/results/fmnist.md and its SVG plot.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use offload_model::data::{DEFAULT_FASHION_MNIST_DIR, IMAGE_SIDE};
use offload_model::measure::{RateAccuracy, rate_accuracy};
use offload_model::{Dataset, Split, SplitModel};
use plotters::prelude::*;

/// Which document to regenerate.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Report {
    /// The Fashion-MNIST codec results (docs/results/fmnist.md + fmnist.svg).
    Codec,
}

/// Arguments of `offload report`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The document to regenerate.
    #[arg(value_enum)]
    pub report: Report,
    /// Model directory.
    #[arg(long, default_value = "models/fmnist")]
    pub model: PathBuf,
    /// Directory of the Fashion-MNIST IDX files.
    #[arg(long, default_value = DEFAULT_FASHION_MNIST_DIR)]
    pub data: PathBuf,
    /// Test images used (all 10 000 by default).
    #[arg(long, default_value_t = 10_000)]
    pub images: usize,
    /// Output markdown; the SVG is written beside it with the same stem.
    #[arg(long, default_value = "docs/results/fmnist.md")]
    pub out: PathBuf,
}

/// JPEG qualities of the image-coding baseline.
const JPEG_QUALITIES: [u8; 5] = [10, 25, 50, 75, 95];

/// One JPEG operating point.
struct JpegPoint {
    quality: u8,
    mean_bytes: f64,
    accuracy: f64,
}

/// Runs `offload report`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.report {
        Report::Codec => codec_report(&args),
    }
}

fn codec_report(args: &Args) -> anyhow::Result<()> {
    let model = SplitModel::load(&args.model)?;
    let test = Dataset::load(&args.data, Split::Test)?.take(args.images);
    tracing::info!(images = test.len(), "coding the test set");
    let rate = rate_accuracy(&model, &test, 500)?;
    tracing::info!("JPEG baseline");
    let jpeg = JPEG_QUALITIES
        .iter()
        .map(|&q| jpeg_point(&model, &test, q))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let svg = args.out.with_extension("svg");
    plot(&svg, &rate, &jpeg)?;
    let md = markdown(&model, &rate, &jpeg, &svg);
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, md).with_context(|| format!("writing {}", args.out.display()))?;
    println!("wrote {} and {}", args.out.display(), svg.display());
    Ok(())
}

/// Mean wire bytes of the first k layers over all frames.
fn mean_bytes(rate: &RateAccuracy, k: usize) -> f64 {
    rate.frame_bytes.iter().map(|f| f[k] as f64).sum::<f64>() / rate.frame_bytes.len().max(1) as f64
}

/// Codes each test image as a grey JPEG, decodes it and classifies it with the local path
/// (encoder + uncompressed rest of the model).
fn jpeg_point(model: &SplitModel, test: &Dataset, quality: u8) -> anyhow::Result<JpegPoint> {
    let mut bytes = 0usize;
    let mut correct = 0usize;
    for i in 0..test.len() {
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, quality).encode(
            test.image(i),
            IMAGE_SIDE as u32,
            IMAGE_SIDE as u32,
            image::ExtendedColorType::L8,
        )?;
        bytes += jpeg.len();
        let decoded =
            image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg)?.to_luma8();
        let probs = model.local_infer(decoded.as_raw())?;
        let best = probs
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(c, _)| c);
        if best == usize::from(test.labels[i]) {
            correct += 1;
        }
    }
    let n = test.len().max(1) as f64;
    Ok(JpegPoint {
        quality,
        mean_bytes: bytes as f64 / n,
        accuracy: correct as f64 / n,
    })
}

fn plot(path: &Path, rate: &RateAccuracy, jpeg: &[JpegPoint]) -> anyhow::Result<()> {
    // Text layout needs a font even for SVG: the harness registers the system's DejaVu Sans.
    if !offload_sim::harness::plot::register_font() {
        anyhow::bail!("no font for the plot's labels (install fonts-dejavu-core)");
    }
    let ours: Vec<(f64, f64)> = (0..rate.accuracy.len())
        .map(|k| (mean_bytes(rate, k), 100.0 * rate.accuracy[k]))
        .collect();
    let base: Vec<(f64, f64)> = jpeg
        .iter()
        .map(|p| (p.mean_bytes, 100.0 * p.accuracy))
        .collect();
    let x_max = ours.iter().chain(&base).map(|p| p.0).fold(1.0, f64::max) * 1.1;
    let y_min = ours
        .iter()
        .chain(&base)
        .map(|p| p.1)
        .fold(100.0, f64::min)
        .min(100.0 * rate.local_accuracy)
        - 2.0;
    let root = SVGBackend::new(path, (720, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..x_max, y_min.max(0.0)..100.0)?;
    chart
        .configure_mesh()
        .x_desc("mean bytes per frame (headers included)")
        .y_desc("top-1 accuracy (%)")
        .draw()?;
    chart
        .draw_series(LineSeries::new(ours.clone(), BLUE.stroke_width(2)))?
        .label("scalable feature codec (k = 1..N)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
    chart.draw_series(ours.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))?;
    chart
        .draw_series(LineSeries::new(base.clone(), RED.stroke_width(2)))?
        .label("JPEG + full model")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
    chart.draw_series(
        base.iter()
            .map(|&p| TriangleMarker::new(p, 5, RED.filled())),
    )?;
    let local = 100.0 * rate.local_accuracy;
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, local), (x_max, local)],
            BLACK.stroke_width(1),
        ))?
        .label("uncompressed split model (local path)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn markdown(model: &SplitModel, rate: &RateAccuracy, jpeg: &[JpegPoint], svg: &Path) -> String {
    let m = model.manifest();
    let mut s = String::new();
    let _ = writeln!(s, "# Fashion-MNIST: scalable feature codec\n");
    let _ = writeln!(
        s,
        "Generated by `offload report codec --model models/fmnist` on the {} real Fashion-MNIST \
         test images. Model `{}` (id `{}`), {} layers; architecture and training recipe in \
         `models/fmnist/model.json`. Every frame is coded with the real layered codec \
         (`offload-codec`); sizes include the frame header and the per-layer record headers.\n",
        rate.images,
        m.name,
        model.model_id(),
        model.num_layers()
    );
    let _ = writeln!(
        s,
        "Uncompressed split model (encoder + local decoder): **{:.2} %** top-1.\n",
        100.0 * rate.local_accuracy
    );
    let _ = writeln!(
        s,
        "| k | decoder | accuracy | mean bytes | payload bits | model estimate (bits) | codec cross-entropy (bits) | payload / estimate |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for k in 0..rate.accuracy.len() {
        let kind = model.network().decoder_kind_for(k + 1).name();
        let _ = writeln!(
            s,
            "| {} | {} | {:.2} % | {:.1} | {:.1} | {:.1} | {:.1} | {:+.2} % |",
            k + 1,
            kind,
            100.0 * rate.accuracy[k],
            mean_bytes(rate, k),
            rate.payload_bits[k],
            rate.model_bits[k],
            rate.codec_bits[k],
            100.0 * (rate.payload_bits[k] / rate.model_bits[k] - 1.0)
        );
    }
    let _ = writeln!(
        s,
        "\nJPEG baseline (grey 28×28 JPEG, decoded, classified by the local path):\n"
    );
    let _ = writeln!(s, "| quality | mean bytes | accuracy |");
    let _ = writeln!(s, "|---|---|---|");
    for p in jpeg {
        let _ = writeln!(
            s,
            "| {} | {:.1} | {:.2} % |",
            p.quality,
            p.mean_bytes,
            100.0 * p.accuracy
        );
    }
    let name = svg
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let _ = writeln!(s, "\n![rate–accuracy]({name})\n");
    s
}
