//! Where the coded payload exceeds the model's own rate estimate, per layer count: the rounding
//! of y's scales up to the codec's scale table, the 16-bit quantisation of the tables (z and y),
//! and the byte-aligned end of each record's range-coded stream.
//!
//! `cargo run --release -p offload-model --example coding_overhead -- models/fmnist [images]`
//! (the first `images` Fashion-MNIST test images, default 10 000).

use std::path::Path;

use candle_core::{Device, Tensor};
use offload_codec::{GaussianConditional, LayerRecord};
use offload_model::data::{DEFAULT_FASHION_MNIST_DIR, IMAGE_SIDE};
use offload_model::eval::Z_RANGE;
use offload_model::gaussian::gaussian_likelihood;
use offload_model::model::images_to_tensor;
use offload_model::{Dataset, Split, SplitModel};

type Error = Box<dyn std::error::Error>;

fn sum(t: &Tensor) -> Result<f64, Error> {
    Ok(f64::from(t.sum_all()?.to_scalar::<f32>()?))
}

/// (C, B, H, W) → item `item`'s values in CHW order.
fn item_chw(flat: &[f32], dims: (usize, usize, usize, usize), item: usize) -> Vec<f32> {
    let (c, b, h, w) = dims;
    (0..c)
        .flat_map(|ch| {
            flat[(ch * b + item) * h * w..(ch * b + item + 1) * h * w]
                .iter()
                .copied()
        })
        .collect()
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args
        .first()
        .ok_or("usage: coding_overhead <model dir> [images]")?;
    let model = SplitModel::load(Path::new(dir))?;
    let data = Dataset::load(Path::new(DEFAULT_FASHION_MNIST_DIR), Split::Test)?;
    let images = match args.get(1) {
        Some(n) => n.parse::<usize>()?.min(data.len()),
        None => data.len(),
    };
    let net = model.network();
    let n = net.layers().len();
    let g = GaussianConditional::default_table();
    let table_scales = g.scales().to_vec();
    // Per layer: model estimate, estimate at the table's (rounded-up) scales, codec
    // cross-entropy (quantised tables), payload bits.
    let mut bits = vec![[0f64; 4]; n];
    let px = IMAGE_SIDE * IMAGE_SIDE;
    for start in (0..images).step_by(500) {
        let end = (start + 500).min(images);
        let x = images_to_tensor(&data.pixels[start * px..end * px], &Device::Cpu)?;
        let f = net.encoder().forward(&x, false)?;
        for (i, layer) in net.layers().iter().enumerate() {
            let q = layer.quantise(&f, Z_RANGE)?;
            let (yb, zb) = layer.estimated_bits(&q)?;
            let z_bits = sum(&zb)?;
            bits[i][0] += sum(&yb)? + z_bits;
            let scales = q.scales.flatten_all()?.to_vec1::<f32>()?;
            let rounded: Vec<f32> = scales
                .iter()
                .map(|&s| table_scales[usize::from(g.scale_index(s))])
                .collect();
            let rounded = Tensor::from_vec(rounded, q.scales.shape(), &Device::Cpu)?;
            let lik = gaussian_likelihood(&q.y_symbols, &rounded)?;
            bits[i][1] += -sum(&lik.log()?)? / std::f64::consts::LN_2 + z_bits;
            let y_dims = q.y_symbols.dims4()?;
            let z_dims = q.z_hat.dims4()?;
            let ys = q.y_symbols.flatten_all()?.to_vec1::<f32>()?;
            let zs = q.z_hat.flatten_all()?.to_vec1::<f32>()?;
            let spec = &model.spec().layers[i];
            let prior = &model.manifest().z_priors[i];
            for item in 0..y_dims.1 {
                let y: Vec<i32> = item_chw(&ys, y_dims, item)
                    .iter()
                    .map(|&v| v as i32)
                    .collect();
                let z: Vec<i32> = item_chw(&zs, z_dims, item)
                    .iter()
                    .map(|&v| v as i32)
                    .collect();
                let indices = g.scale_indices(&item_chw(&scales, y_dims, item));
                let record = LayerRecord::encode(i as u16, spec, prior, &g, &z, &y, &indices)?;
                bits[i][2] += prior.cross_entropy_bits(&z, spec.z.spatial())?
                    + g.cross_entropy_bits(&y, &indices)?;
                bits[i][3] += 8.0 * record.stream.len() as f64;
            }
        }
    }
    let m = images as f64;
    let mut total = [0f64; 4];
    println!(
        "| k | model estimate (bits) | scale rounding | table quantisation | stream ends | \
         payload / estimate |"
    );
    println!("|---|---|---|---|---|---|");
    for (i, layer) in bits.iter().enumerate() {
        for (t, b) in total.iter_mut().zip(layer) {
            *t += b / m;
        }
        println!(
            "| {} | {:.2} | {:+.3} | {:+.3} | {:+.3} ({:.3} per record) | {:+.3} % |",
            i + 1,
            total[0],
            total[1] - total[0],
            total[2] - total[1],
            total[3] - total[2],
            (total[3] - total[2]) / (i + 1) as f64,
            100.0 * (total[3] / total[0] - 1.0)
        );
    }
    Ok(())
}
