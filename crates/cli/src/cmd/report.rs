//! `offload report codec`: measures the committed model's rate–accuracy on the real
//! Fashion-MNIST test set (real layered coding) next to the seed's baselines — JPEG, PCA
//! layering of the encoder's features, single-rate models, the scalable model with one task
//! decoder — and writes docs/results/fmnist.md and its SVG plot.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use offload_model::data::{DEFAULT_FASHION_MNIST_DIR, IMAGE_SIDE};
use offload_model::measure::{RateAccuracy, rate_accuracy};
use offload_model::pca::{PcaBasis, PcaCodec, PcaRate};
use offload_model::{Dataset, Split, SplitModel};
use plotters::prelude::*;

/// Which document to regenerate.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Report {
    /// The Fashion-MNIST codec results (docs/results/fmnist.md + fmnist.svg).
    Codec,
    /// The split SSD-MobileNetV2 results (docs/results/detector.md + detector.svg) and the
    /// simulator profile profiles/ssd-mobilenet-v2.toml.
    Detector,
}

/// Arguments of `offload report`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The document to regenerate.
    #[arg(value_enum)]
    pub report: Report,
    /// Model directory (the scalable model with two task decoders).
    #[arg(long, default_value = "models/fmnist")]
    pub model: PathBuf,
    /// Directory of the baseline models (`one-decoder/`, `single-rate-k<k>/`); missing ones
    /// are skipped and the report says so.
    #[arg(long, default_value = "models/fmnist-baselines")]
    pub baselines: PathBuf,
    /// Directory of the Fashion-MNIST IDX files.
    #[arg(long, default_value = DEFAULT_FASHION_MNIST_DIR)]
    pub data: PathBuf,
    /// Test images used (all 10 000 by default).
    #[arg(long, default_value_t = 10_000)]
    pub images: usize,
    /// Training images the PCA basis and its coefficient tables are fitted on.
    #[arg(long, default_value_t = 10_000)]
    pub pca_train_images: usize,
    /// Output markdown; the SVG is written beside it with the same stem.
    #[arg(long, default_value = "docs/results/fmnist.md")]
    pub out: PathBuf,
    /// Detector report: the split codec's directory.
    #[arg(long, default_value = "models/ssd-split")]
    pub split_model: PathBuf,
    /// Detector report: the converted detector's directory (default: the installed one).
    #[arg(long)]
    pub detector: Option<PathBuf>,
    /// Detector report: held-out frames used (default: all).
    #[arg(long)]
    pub split_frames: Option<usize>,
    /// Detector report: reference detections are the full detector's with at least this score.
    #[arg(long, default_value_t = 0.5)]
    pub reference_score: f32,
    /// Detector report: frames timed one at a time.
    #[arg(long, default_value_t = 20)]
    pub timing_frames: usize,
    /// Detector report: output markdown (the SVG goes beside it).
    #[arg(long, default_value = "docs/results/detector.md")]
    pub detector_out: PathBuf,
    /// Detector report: output simulator profile.
    #[arg(long, default_value = "profiles/ssd-mobilenet-v2.toml")]
    pub profile_out: PathBuf,
    /// Detector report: device compute power written to the profile (an assumption, W).
    #[arg(long, default_value_t = 2.5)]
    pub compute_power_w: f64,
}

/// JPEG qualities of the image-coding baseline.
const JPEG_QUALITIES: [u8; 5] = [10, 25, 50, 75, 95];

/// Principal components per PCA layer, strongest first: 1, 1, 2, 4, … doubling, the last
/// group taking what is left of F's `channels`.
fn pca_groups(channels: usize) -> Vec<usize> {
    let mut groups = Vec::new();
    let mut total = 0;
    while total < channels {
        let size = total.max(1).min(channels - total);
        groups.push(size);
        total += size;
    }
    groups
}

/// PCA quantisation steps, in units of the standard deviation of F's strongest component.
const PCA_STEPS: [f64; 2] = [0.5, 0.25];

/// Single-rate baselines: (directory name, layer count).
const SINGLE_RATE: [(&str, usize); 3] = [
    ("single-rate-k1", 1),
    ("single-rate-k3", 3),
    ("single-rate-k6", 6),
];

/// One JPEG operating point.
struct JpegPoint {
    quality: u8,
    mean_bytes: f64,
    accuracy: f64,
}

/// A measured baseline model.
struct ModelPoints {
    label: String,
    dir: PathBuf,
    model_id: String,
    rate: RateAccuracy,
    /// Layer counts reported (1-based).
    ks: Vec<usize>,
}

/// The PCA baseline at one quantisation step.
struct PcaPoints {
    step_sigmas: f64,
    rate: PcaRate,
    container: Vec<u64>,
}

/// Everything the document shows.
struct Measured {
    main: ModelPoints,
    one_decoder: Option<ModelPoints>,
    single_rate: Vec<ModelPoints>,
    pca: Vec<PcaPoints>,
    pca_variances: Vec<f64>,
    jpeg: Vec<JpegPoint>,
    skipped: Vec<String>,
}

/// Runs `offload report`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.report {
        Report::Codec => codec_report(&args),
        Report::Detector => {
            super::report_detector::detector_report(&super::report_detector::DetectorReportArgs {
                model: args.split_model.clone(),
                detector: args.detector.clone(),
                frames: args.split_frames,
                reference_score: args.reference_score,
                timing_frames: args.timing_frames,
                out: args.detector_out.clone(),
                profile: args.profile_out.clone(),
                compute_power_w: args.compute_power_w,
            })
        }
    }
}

fn measure_model(
    label: &str,
    dir: &Path,
    test: &Dataset,
    ks: Option<Vec<usize>>,
) -> anyhow::Result<ModelPoints> {
    let model =
        SplitModel::load(dir).with_context(|| format!("loading {label} from {}", dir.display()))?;
    tracing::info!(model = label, images = test.len(), "coding the test set");
    let rate = rate_accuracy(&model, test, 500)?;
    let ks = ks.unwrap_or_else(|| (1..=model.num_layers()).collect());
    Ok(ModelPoints {
        label: label.to_string(),
        dir: dir.to_owned(),
        model_id: model.model_id().to_string(),
        rate,
        ks,
    })
}

fn codec_report(args: &Args) -> anyhow::Result<()> {
    let model = SplitModel::load(&args.model)?;
    let test = Dataset::load(&args.data, Split::Test)?.take(args.images);
    let main = measure_model("scalable, two decoders", &args.model, &test, None)?;
    let mut skipped = Vec::new();
    let one_dir = args.baselines.join("one-decoder");
    let one_decoder = if one_dir.join("model.json").exists() {
        Some(measure_model(
            "scalable, one decoder",
            &one_dir,
            &test,
            None,
        )?)
    } else {
        skipped.push(format!(
            "scalable model with one decoder: `{}` does not exist (not trained yet)",
            one_dir.display()
        ));
        None
    };
    let mut single_rate = Vec::new();
    for (name, k) in SINGLE_RATE {
        let dir = args.baselines.join(name);
        if !dir.join("model.json").exists() {
            skipped.push(format!(
                "single-rate model with {k} layer(s): `{}` does not exist (not trained yet)",
                dir.display()
            ));
            continue;
        }
        let m = measure_model(&format!("single-rate, {k} layer(s)"), &dir, &test, None)?;
        let own = m.rate.accuracy.len();
        if own != k {
            skipped.push(format!(
                "`{}` has {own} layers, expected {k}; reported at its own {own}",
                dir.display()
            ));
        }
        single_rate.push(ModelPoints { ks: vec![own], ..m });
    }

    tracing::info!(
        images = args.pca_train_images,
        "fitting PCA on training features"
    );
    let train = Dataset::load(&args.data, Split::Train)?;
    let net = model.network();
    let basis = PcaBasis::fit(net, &train, args.pca_train_images, 500)?;
    let groups = pca_groups(basis.channels());
    let sigma = basis
        .variances
        .first()
        .copied()
        .unwrap_or(1.0)
        .max(0.0)
        .sqrt();
    let mut pca = Vec::new();
    for step_sigmas in PCA_STEPS {
        let codec = PcaCodec::fit(
            net,
            basis.clone(),
            groups.clone(),
            step_sigmas * sigma,
            &train,
            args.pca_train_images,
            500,
        )?;
        tracing::info!(step_sigmas, "PCA baseline on the test set");
        let rate = codec.evaluate(net, &test, 500)?;
        let container = (1..=groups.len())
            .map(|k| main.rate.container_bytes(k))
            .collect();
        pca.push(PcaPoints {
            step_sigmas,
            rate,
            container,
        });
    }

    tracing::info!("JPEG baseline");
    let jpeg = JPEG_QUALITIES
        .iter()
        .map(|&q| jpeg_point(&model, &test, q))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let measured = Measured {
        main,
        one_decoder,
        single_rate,
        pca,
        pca_variances: basis.variances.clone(),
        jpeg,
        skipped,
    };
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let svg = args.out.with_extension("svg");
    plot(&svg, &measured)?;
    let md = markdown(&model, args, &measured, &svg);
    std::fs::write(&args.out, md).with_context(|| format!("writing {}", args.out.display()))?;
    println!("wrote {} and {}", args.out.display(), svg.display());
    Ok(())
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

/// (bytes, accuracy %) of a model's reported layer counts.
fn model_curve(m: &ModelPoints) -> Vec<(f64, f64)> {
    m.ks.iter()
        .map(|&k| (m.rate.mean_frame_bytes(k), 100.0 * m.rate.accuracy[k - 1]))
        .collect()
}

/// (bytes incl. the same container overhead, accuracy %) of a PCA curve.
fn pca_curve(p: &PcaPoints) -> Vec<(f64, f64)> {
    p.rate
        .payload_bytes
        .iter()
        .zip(&p.container)
        .zip(&p.rate.accuracy)
        .map(|((b, c), a)| (b + *c as f64, 100.0 * a))
        .collect()
}

/// Accuracy (%) of a rate–accuracy curve at `bytes`, by linear interpolation; None outside it.
fn accuracy_at(curve: &[(f64, f64)], bytes: f64) -> Option<f64> {
    let mut pts = curve.to_vec();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts.windows(2).find_map(|w| {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        (x0..=x1)
            .contains(&bytes)
            .then(|| y0 + (y1 - y0) * (bytes - x0) / (x1 - x0).max(f64::MIN_POSITIVE))
    })
}

/// One plotted curve: legend label, (bytes, accuracy %) points, colour.
type Series = (String, Vec<(f64, f64)>, RGBColor);

fn plot(path: &Path, m: &Measured) -> anyhow::Result<()> {
    // Text layout needs a font even for SVG: the harness registers the system's DejaVu Sans.
    if !offload_sim::harness::plot::register_font() {
        anyhow::bail!("no font for the plot's labels (install fonts-dejavu-core)");
    }
    let mut series: Vec<Series> = Vec::new();
    series.push((
        "scalable, two decoders (k = 1..N)".into(),
        model_curve(&m.main),
        RGBColor(31, 119, 180),
    ));
    if let Some(one) = &m.one_decoder {
        series.push((
            "scalable, one decoder".into(),
            model_curve(one),
            RGBColor(44, 160, 44),
        ));
    }
    if !m.single_rate.is_empty() {
        series.push((
            "single-rate models".into(),
            m.single_rate.iter().flat_map(model_curve).collect(),
            RGBColor(148, 103, 189),
        ));
    }
    let pca_colors = [RGBColor(255, 127, 14), RGBColor(140, 86, 75)];
    for (p, color) in m.pca.iter().zip(pca_colors) {
        series.push((
            format!(
                "PCA layers, step {} σ₁ (1..{} comp.)",
                p.step_sigmas,
                p.rate.components.last().copied().unwrap_or(0)
            ),
            pca_curve(p),
            color,
        ));
    }
    series.push((
        "JPEG + local model".into(),
        m.jpeg
            .iter()
            .map(|p| (p.mean_bytes, 100.0 * p.accuracy))
            .collect(),
        RGBColor(214, 39, 40),
    ));
    let all = series.iter().flat_map(|s| s.1.iter().copied());
    let x_max = all.clone().map(|p| p.0).fold(1.0, f64::max) * 1.05;
    let local = 100.0 * m.main.rate.local_accuracy;
    let y_min = all.map(|p| p.1).fold(local, f64::min) - 2.0;
    let root = SVGBackend::new(path, (800, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((0.0..x_max).log_scale(), y_min.max(0.0)..100.0)?;
    chart
        .configure_mesh()
        .x_desc("mean bytes per frame (headers included, log scale)")
        .y_desc("top-1 accuracy (%)")
        .draw()?;
    for (label, points, color) in &series {
        let mut pts = points.clone();
        let single = label.starts_with("single-rate");
        if !single {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
                .label(label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], *color));
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        } else {
            chart
                .draw_series(
                    pts.iter()
                        .map(|&p| TriangleMarker::new(p, 6, color.filled())),
                )?
                .label(label.as_str())
                .legend(move |(x, y)| TriangleMarker::new((x + 8, y), 5, color.filled()));
        }
    }
    chart
        .draw_series(LineSeries::new(
            vec![(1.0, local), (x_max, local)],
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

fn rate_table(s: &mut String, model: &SplitModel, r: &RateAccuracy) {
    let _ = writeln!(
        s,
        "| k | decoder | accuracy | mean bytes | container bytes | payload bits | model estimate (bits, z part) | codec cross-entropy (bits) | payload / estimate | payload / cross-entropy | termination (bits per record) | payload less termination / estimate |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for k in 1..=r.accuracy.len() {
        let i = k - 1;
        let _ = writeln!(
            s,
            "| {k} | {} | {:.2} % | {:.1} | {} | {:.1} | {:.1} ({:.1}) | {:.1} | {:+.2} % | {:+.2} % | {:.2} | {:+.2} % |",
            model.network().decoder_kind_for(k).name(),
            100.0 * r.accuracy[i],
            r.mean_frame_bytes(k),
            r.container_bytes(k),
            r.payload_bits[i],
            r.model_bits[i],
            r.model_z_bits[i],
            r.codec_bits[i],
            100.0 * (r.payload_bits[i] / r.model_bits[i] - 1.0),
            100.0 * (r.payload_bits[i] / r.codec_bits[i] - 1.0),
            // The codec cross-entropy is the ideal length under the tables, so what the payload
            // adds to it is the byte-aligned termination of the k records (docs/bitstream.md).
            (r.payload_bits[i] - r.codec_bits[i]) / k as f64,
            100.0 * (r.codec_bits[i] / r.model_bits[i] - 1.0),
        );
    }
}

fn markdown(model: &SplitModel, args: &Args, m: &Measured, svg: &Path) -> String {
    let r = &m.main.rate;
    let man = model.manifest();
    let mut s = String::new();
    let _ = writeln!(s, "# Fashion-MNIST: scalable feature codec and baselines\n");
    let _ = writeln!(
        s,
        "Generated by `offload report codec --model {}` on the {} real Fashion-MNIST test images. \
         Model `{}` (id `{}`), {} layers; architecture and training recipe in `{}/model.json`. \
         Every frame is coded with the real layered codec (`offload-codec`, bitstream version {}); \
         sizes include the frame header ({} B) and one record header ({} B) per layer sent.\n",
        args.model.display(),
        r.images,
        man.name,
        model.model_id(),
        model.num_layers(),
        args.model.display(),
        offload_codec::container::VERSION,
        r.frame_header_bytes,
        r.record_header_bytes,
    );
    let _ = writeln!(
        s,
        "Uncompressed split model (encoder + local decoder): **{:.2} %** top-1.\n",
        100.0 * r.local_accuracy
    );
    let _ = writeln!(s, "## Coded size against the model's own estimate\n");
    let _ = writeln!(
        s,
        "*model estimate*: −log₂ of the model's likelihoods of the coded symbols (what training \
         minimises); *codec cross-entropy*: the same symbols under the codec's 16-bit tables, \
         with y's scale rounded up to the next of the {} table scales; *payload*: the bytes of \
         the range-coded streams, one per layer, without the container headers (counted in \
         *container bytes* and *mean bytes*); *termination*: payload less codec cross-entropy \
         per record, the cost of ending each record on a whole byte (~2.56 bits on average, \
         the least any byte-aligned record can cost: docs/bitstream.md), reported apart like \
         the headers; *payload less termination / estimate*: the codec cross-entropy against \
         the model estimate, the cost of the 16-bit tables and rounded scales.\n",
        offload_codec::DEFAULT_NUM_SCALES
    );
    rate_table(&mut s, model, r);
    let _ = writeln!(s);

    let _ = writeln!(s, "## Rate–accuracy against the baselines\n");
    let _ = writeln!(
        s,
        "Bytes are mean bytes per frame, headers included. Baselines, as the seed compares them:\n\n\
         * **JPEG**: grey 28×28 JPEG (`image` crate), decoded and classified by the local path \
         (encoder + the decoder trained on uncompressed features).\n\
         * **PCA layering**: PCA of F's {}-channel vectors fitted on {} training images, groups \
         of {:?} principal components as layers, each coefficient quantised with a uniform step \
         (in units of σ₁ = {:.3}, the standard deviation along the first component) and coded \
         with the codec's factorised prior (one table per component, the histogram of its \
         quantised training coefficients), one stream per layer; F reconstructed from the \
         received components and classified by the model's local decoder. Sizes add the same \
         container overhead as the scalable codec.\n\
         * **single-rate**: separately trained non-scalable models whose layers are the first k \
         of the scalable model's, each evaluated at its own N = k.\n\
         * **one decoder**: the scalable model trained with a single task decoder for every k.\n\n\
         The two-decoder scalable model is the one under test (`{}`); `{}/README.md` under \
         `fmnist-baselines/` says what each baseline was trained from and on.\n",
        m.pca_variances.len(),
        args.pca_train_images,
        pca_groups(m.pca_variances.len()),
        m.pca_variances
            .first()
            .copied()
            .unwrap_or(0.0)
            .max(0.0)
            .sqrt(),
        args.model.display(),
        args.baselines
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .display(),
    );
    let _ = writeln!(s, "| method | operating point | mean bytes | accuracy |");
    let _ = writeln!(s, "|---|---|---|---|");
    let models = std::iter::once(&m.main)
        .chain(&m.one_decoder)
        .chain(&m.single_rate);
    for p in models {
        for &k in &p.ks {
            let _ = writeln!(
                s,
                "| {} | k = {k} | {:.1} | {:.2} % |",
                p.label,
                p.rate.mean_frame_bytes(k),
                100.0 * p.rate.accuracy[k - 1]
            );
        }
    }
    for p in &m.pca {
        for (i, (bytes, acc)) in pca_curve(p).into_iter().enumerate() {
            let _ = writeln!(
                s,
                "| PCA, step {} σ₁ | {} layer(s), {} components | {bytes:.1} | {acc:.2} % |",
                p.step_sigmas,
                i + 1,
                p.rate.components[i]
            );
        }
    }
    for p in &m.jpeg {
        let _ = writeln!(
            s,
            "| JPEG | quality {} | {:.1} | {:.2} % |",
            p.quality,
            p.mean_bytes,
            100.0 * p.accuracy
        );
    }
    let _ = writeln!(s);
    for p in m.one_decoder.iter().chain(&m.single_rate) {
        let _ = writeln!(
            s,
            "{}: `{}` (id `{}`).\n",
            p.label,
            p.dir.display(),
            p.model_id
        );
    }
    if !m.skipped.is_empty() {
        let _ = writeln!(s, "Skipped:\n");
        for reason in &m.skipped {
            let _ = writeln!(s, "* {reason}");
        }
        let _ = writeln!(s);
    }

    let _ = writeln!(s, "## Checks\n");
    let ours = model_curve(&m.main);
    for p in &m.single_rate {
        let k = p.ks[0];
        let single = 100.0 * p.rate.accuracy[k - 1];
        let scalable = &m.main;
        if let Some(&acc) = scalable.rate.accuracy.get(k - 1) {
            let gap = 100.0 * acc - single;
            let _ = writeln!(
                s,
                "* {} vs single-rate at k = {k}: {:.2} % at {:.1} B vs {single:.2} % at {:.1} B \
                 ({gap:+.2} points; the target is within 1 point): **{}**",
                scalable.label,
                100.0 * acc,
                scalable.rate.mean_frame_bytes(k),
                p.rate.mean_frame_bytes(k),
                if gap >= -1.0 { "met" } else { "missed" }
            );
        }
    }
    for p in &m.jpeg {
        match accuracy_at(&ours, p.mean_bytes) {
            Some(acc) => {
                let _ = writeln!(
                    s,
                    "* at JPEG quality {}'s {:.1} bytes the feature codec reaches {acc:.2} % vs JPEG's \
                     {:.2} %: **{}**",
                    p.quality,
                    p.mean_bytes,
                    100.0 * p.accuracy,
                    if acc > 100.0 * p.accuracy {
                        "above JPEG"
                    } else {
                        "not above JPEG"
                    }
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "* JPEG quality {} ({:.1} bytes, {:.2} %) lies outside the feature codec's byte \
                     range ({:.1}–{:.1}); no comparison at equal bytes",
                    p.quality,
                    p.mean_bytes,
                    100.0 * p.accuracy,
                    ours.first().map_or(0.0, |p| p.0),
                    ours.last().map_or(0.0, |p| p.0)
                );
            }
        }
    }
    let name = svg
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let _ = writeln!(s, "\n![rate–accuracy]({name})\n");
    s
}
