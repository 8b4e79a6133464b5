//! Times the detector's device-side encoder (preprocessed 1×3×300×300 image → block-12 output
//! 1×96×19×19) on a real frame, for `scripts/bench-onnxruntime.py`, which runs onnxruntime on the
//! same layers back to back with it. Writes the input blob and the encoder's output as `.npy`
//! (f32, C order) and prints one JSON line with the seconds of each timed run. The thread count
//! is RAYON_NUM_THREADS, which candle's matrix products and the detector's kernels both follow.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::Tensor;
use clap::{Parser, ValueEnum};
use offload_model::detector::{Detector, default_model_dir};

/// Which implementation of the encoder to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EncoderPath {
    /// The inference kernels behind `Detector::encode_to_split`.
    Fast,
    /// The same layers built from candle's own conv2d ops (the differentiable path).
    CandleConv2d,
}

#[derive(Debug, Parser)]
struct Args {
    /// Folder holding ssd_mobilenet_v2_coco.safetensors (default: the installed model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Image to encode.
    #[arg(long)]
    frame: PathBuf,
    /// Implementation to time.
    #[arg(long, value_enum, default_value = "fast")]
    path: EncoderPath,
    /// Timed runs.
    #[arg(long, default_value_t = 20)]
    iters: usize,
    /// Untimed runs first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Where to write input.npy and split_<path>.npy.
    #[arg(long)]
    npy_dir: PathBuf,
}

fn write_npy(path: &Path, t: &Tensor) -> Result<()> {
    let shape = t
        .dims()
        .iter()
        .map(|d| format!("{d}, "))
        .collect::<String>();
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({shape}), }}");
    // Magic (6) + version (2) + length (2) + header + '\n' must be a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&u16::try_from(header.len())?.to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in t.flatten_all()?.to_vec1::<f32>()? {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.iters == 0 {
        bail!("--iters must be at least 1");
    }
    let model = args.model.unwrap_or_else(default_model_dir);
    let detector =
        Detector::load(&model).with_context(|| format!("loading {}", model.display()))?;
    let frame = image::open(&args.frame)
        .with_context(|| format!("reading {}", args.frame.display()))?
        .to_rgb8();
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let input = detector.preprocess(frame.as_raw(), w, h)?;
    let encode = |x: &Tensor| -> Result<Tensor> {
        Ok(match args.path {
            EncoderPath::Fast => detector.encode_to_split(x)?,
            EncoderPath::CandleConv2d => detector.encode_to_split_autograd(x)?,
        })
    };
    for _ in 0..args.warmup {
        encode(&input)?;
    }
    let mut seconds = Vec::with_capacity(args.iters);
    let mut out = None;
    for _ in 0..args.iters {
        let t = Instant::now();
        let y = encode(&input)?;
        seconds.push(t.elapsed().as_secs_f64());
        out = Some(y);
    }
    let out = out.context("no timed run")?;
    std::fs::create_dir_all(&args.npy_dir)?;
    write_npy(&args.npy_dir.join("input.npy"), &input)?;
    let name = match args.path {
        EncoderPath::Fast => "split_fast.npy",
        EncoderPath::CandleConv2d => "split_candle_conv2d.npy",
    };
    write_npy(&args.npy_dir.join(name), &out)?;
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_default();
    println!(
        "{{\"path\": \"{:?}\", \"rayon_num_threads\": \"{threads}\", \"seconds\": {:?}}}",
        args.path, seconds
    );
    Ok(())
}
