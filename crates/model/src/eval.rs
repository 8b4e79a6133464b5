//! Accuracy and the model's own rate estimate on a labelled set, at inference (rounding).

use candle_core::{Device, Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, IMAGE_SIDE};
use crate::model::{DecoderKind, Network, images_to_tensor};
use crate::train::accuracy_count;

/// Range the hyper-latent symbols are clamped to (the z tables cover it).
pub const Z_RANGE: (i32, i32) = (-32, 32);

/// Accuracy of the local path and, for each layer count k, of the server path, with the model's
/// estimate of the bits of the first k layers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Evaluation {
    /// Images evaluated.
    pub images: usize,
    /// Top-1 accuracy of encoder + local decoder on uncompressed features.
    pub local_accuracy: f64,
    /// Top-1 accuracy with the first k layers, k = 1..N.
    pub accuracy: Vec<f64>,
    /// Mean estimated bits per image of the first k layers (y and z).
    pub estimated_bits: Vec<f64>,
}

/// Evaluates `net` on `data` in batches of `batch`.
pub fn evaluate(net: &Network, data: &Dataset, batch: usize) -> Result<Evaluation> {
    let n_layers = net.layers().len();
    let mut correct = vec![0usize; n_layers];
    let mut bits = vec![0f64; n_layers];
    let mut local = 0usize;
    let pixels_per = IMAGE_SIDE * IMAGE_SIDE;
    let batch = batch.max(1);
    for start in (0..data.len()).step_by(batch) {
        let end = (start + batch).min(data.len());
        let x = images_to_tensor(
            &data.pixels[start * pixels_per..end * pixels_per],
            &Device::Cpu,
        )?;
        let labels = &data.labels[start..end];
        let f = net.encoder().forward(&x, false)?;
        local += accuracy_count(&net.decoder(DecoderKind::Local).forward(&f, false)?, labels)?;
        let mut y_hats: Vec<Tensor> = Vec::with_capacity(n_layers);
        let mut cumulative = 0f64;
        for (k, layer) in net.layers().iter().enumerate() {
            let q = layer.quantise(&f, Z_RANGE)?;
            let (yb, zb) = layer.estimated_bits(&q)?;
            cumulative += f64::from((yb + zb)?.sum_all()?.to_scalar::<f32>()?);
            bits[k] += cumulative;
            y_hats.push(q.y_hat);
            let logits = net.decode_latents(&y_hats, net.decoder_kind_for(k + 1), false)?;
            correct[k] += accuracy_count(&logits, labels)?;
        }
    }
    let n = data.len().max(1) as f64;
    Ok(Evaluation {
        images: data.len(),
        local_accuracy: local as f64 / n,
        accuracy: correct.iter().map(|&c| c as f64 / n).collect(),
        estimated_bits: bits.iter().map(|&b| b / n).collect(),
    })
}
