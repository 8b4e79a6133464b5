//! Measurements behind `offload profile`: real coded sizes and accuracy for every layer count
//! on a labelled set, and per-stage compute times on single frames.

use std::time::Instant;

use candle_core::{Device, Tensor};
use offload_codec::container::{HEADER_BYTES, RECORD_HEADER_BYTES};
use offload_codec::{FrameHeader, LayerRecord};
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, IMAGE_SIDE};
use crate::error::ModelError;
use crate::eval::Z_RANGE;
use crate::model::{DecoderKind, images_to_tensor};
use crate::split::{LayerSymbols, SplitModel};
use crate::train::accuracy_count;

/// Sizes and accuracies over a data set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RateAccuracy {
    /// Images measured.
    pub images: usize,
    /// Accuracy of the local path.
    pub local_accuracy: f64,
    /// Accuracy with the first k layers, k = 1..N.
    pub accuracy: Vec<f64>,
    /// `frame_bytes[i][k-1]`: wire bytes of the first k layers of image i (frame header included).
    pub frame_bytes: Vec<Vec<u64>>,
    /// Mean bits per image of the first k layers' streams (z and y payloads, no headers).
    pub payload_bits: Vec<f64>,
    /// Mean bits per image the model's own likelihoods predict for the same symbols.
    pub model_bits: Vec<f64>,
    /// The part of `model_bits` spent on the hyper-latents z.
    pub model_z_bits: Vec<f64>,
    /// Mean bits per image the codec's quantised tables predict (its cross-entropy).
    pub codec_bits: Vec<f64>,
    /// The part of `codec_bits` spent on the hyper-latents z.
    pub codec_z_bits: Vec<f64>,
    /// Bytes of the frame header (once per frame, whatever k).
    pub frame_header_bytes: u64,
    /// Bytes of each layer record's header (once per layer sent).
    pub record_header_bytes: u64,
}

impl RateAccuracy {
    /// Mean wire bytes of the first `k` layers (1-based) over all frames, headers included.
    pub fn mean_frame_bytes(&self, k: usize) -> f64 {
        let n = self.frame_bytes.len().max(1) as f64;
        self.frame_bytes
            .iter()
            .map(|f| f.get(k.wrapping_sub(1)).copied().unwrap_or(0) as f64)
            .sum::<f64>()
            / n
    }

    /// Container bytes of a frame of `k` layers: the frame header and `k` record headers.
    pub fn container_bytes(&self, k: usize) -> u64 {
        self.frame_header_bytes + k as u64 * self.record_header_bytes
    }
}

/// Median per-frame times of each stage, in seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageTimes {
    /// Frames timed.
    pub frames: usize,
    /// Task encoder.
    pub encoder_s: f64,
    /// Reduction, hyperprior and entropy coding of the first k layers (after the encoder).
    pub device_layers_s: Vec<f64>,
    /// Server: entropy decoding, hyper-synthesis, expansion and task decoder for k layers.
    pub server_s: Vec<f64>,
    /// Local decoder on uncompressed features (after the encoder).
    pub local_s: f64,
}

/// Codes every image of `data` (batched quantisation, one real frame per image) and measures
/// sizes, rate estimates and accuracy for every layer count.
pub fn rate_accuracy(
    model: &SplitModel,
    data: &Dataset,
    batch: usize,
) -> Result<RateAccuracy, ModelError> {
    let net = model.network();
    let n_layers = model.num_layers();
    let header_bytes = HEADER_BYTES as u64;
    let gaussian = offload_codec::GaussianConditional::default_table();
    let mut correct = vec![0usize; n_layers];
    let mut local = 0usize;
    let mut frame_bytes = Vec::with_capacity(data.len());
    let zeros = || vec![0f64; n_layers];
    let (mut payload, mut model_bits, mut codec_bits) = (zeros(), zeros(), zeros());
    let (mut model_z, mut codec_z) = (zeros(), zeros());
    let px = IMAGE_SIDE * IMAGE_SIDE;
    for start in (0..data.len()).step_by(batch.max(1)) {
        let end = (start + batch.max(1)).min(data.len());
        let b = end - start;
        let x = images_to_tensor(&data.pixels[start * px..end * px], &Device::Cpu)?;
        let labels = &data.labels[start..end];
        let f = net.encoder().forward(&x, false)?;
        local += accuracy_count(&net.decoder(DecoderKind::Local).forward(&f, false)?, labels)?;
        let mut y_hats = Vec::new();
        let mut sizes = vec![vec![header_bytes; n_layers]; b];
        for (i, layer) in net.layers().iter().enumerate() {
            let q = layer.quantise(&f, Z_RANGE)?;
            let (yb, zb) = layer.estimated_bits(&q)?;
            let zb = f64::from(zb.sum_all()?.to_scalar::<f32>()?);
            model_bits[i] += f64::from(yb.sum_all()?.to_scalar::<f32>()?) + zb;
            model_z[i] += zb;
            let z = per_item(&q.z_hat)?;
            let y = per_item(&q.y_symbols)?;
            let scales = per_item_f32(&q.scales)?;
            let spec = &model.spec().layers[i];
            let prior = &model.manifest().z_priors[i];
            for item in 0..b {
                let indices = gaussian.scale_indices(&scales[item]);
                let record = LayerRecord::encode(
                    i as u16, spec, prior, &gaussian, &z[item], &y[item], &indices,
                )?;
                payload[i] += 8.0 * record.stream.len() as f64;
                let zc = prior.cross_entropy_bits(&z[item], spec.z.spatial())?;
                codec_bits[i] += zc + gaussian.cross_entropy_bits(&y[item], &indices)?;
                codec_z[i] += zc;
                for size in &mut sizes[item][i..] {
                    *size += record.wire_len() as u64;
                }
            }
            y_hats.push(q.y_hat);
            let logits = net.decode_latents(&y_hats, net.decoder_kind_for(i + 1), false)?;
            correct[i] += accuracy_count(&logits, labels)?;
        }
        frame_bytes.extend(sizes);
    }
    let n = data.len().max(1) as f64;
    let cumulative = |v: &[f64]| -> Vec<f64> {
        v.iter()
            .scan(0.0, |acc, x| {
                *acc += x / n;
                Some(*acc)
            })
            .collect()
    };
    Ok(RateAccuracy {
        images: data.len(),
        local_accuracy: local as f64 / n,
        accuracy: correct.iter().map(|&c| c as f64 / n).collect(),
        frame_bytes,
        payload_bits: cumulative(&payload),
        model_bits: cumulative(&model_bits),
        model_z_bits: cumulative(&model_z),
        codec_bits: cumulative(&codec_bits),
        codec_z_bits: cumulative(&codec_z),
        frame_header_bytes: header_bytes,
        record_header_bytes: RECORD_HEADER_BYTES as u64,
    })
}

/// (C, B, H, W) integer-valued f32 → per item CHW i32.
fn per_item(t: &Tensor) -> Result<Vec<Vec<i32>>, ModelError> {
    Ok(per_item_f32(t)?
        .into_iter()
        .map(|v| v.into_iter().map(|x| x as i32).collect())
        .collect())
}

/// (C, B, H, W) → per item CHW.
fn per_item_f32(t: &Tensor) -> Result<Vec<Vec<f32>>, ModelError> {
    let (c, b, h, w) = t.dims4()?;
    let flat = t.flatten_all()?.to_vec1::<f32>()?;
    let hw = h * w;
    Ok((0..b)
        .map(|item| {
            (0..c)
                .flat_map(|ch| {
                    flat[(ch * b + item) * hw..(ch * b + item + 1) * hw]
                        .iter()
                        .copied()
                })
                .collect()
        })
        .collect())
}

/// Times each stage on the first `frames` images one at a time (as the device and server run
/// them), and checks that every prefix decodes to the symbols the device coded.
pub fn stage_times(
    model: &SplitModel,
    data: &Dataset,
    frames: usize,
) -> Result<StageTimes, ModelError> {
    let n_layers = model.num_layers();
    let frames = frames.min(data.len()).max(1);
    let mut encoder = Vec::with_capacity(frames);
    let mut device = vec![Vec::with_capacity(frames); n_layers];
    let mut server = vec![Vec::with_capacity(frames); n_layers];
    let mut local = Vec::with_capacity(frames);
    for i in 0..frames {
        let image = data.image(i);
        let t = Instant::now();
        let f = model.encode_features(image)?;
        encoder.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        model.local_from_features(&f)?;
        local.push(t.elapsed().as_secs_f64());
        let mut symbols: Vec<LayerSymbols> = Vec::new();
        let mut records: Vec<LayerRecord> = Vec::new();
        let mut elapsed = 0.0;
        for k in 1..=n_layers {
            // Layer k−1 alone: its reduction, hyperprior and coding add to the first k−1's.
            let t = Instant::now();
            let s = model.quantise_layer(&f, k - 1)?;
            let record = model.code_layer(&s, k - 1)?;
            elapsed += t.elapsed().as_secs_f64();
            device[k - 1].push(elapsed);
            symbols.push(s);
            records.push(record);
        }
        let header = FrameHeader::new(model.spec(), i as u64);
        for k in 1..=n_layers {
            let t = Instant::now();
            model.server_decode(&header, &records[..k])?;
            server[k - 1].push(t.elapsed().as_secs_f64());
            let (decoded, _) = model.decode_symbols(&header, &records[..k])?;
            if decoded[..] != symbols[..k] {
                return Err(ModelError::Frame(format!(
                    "frame {i}: the first {k} layers did not decode to the coded symbols"
                )));
            }
        }
    }
    Ok(StageTimes {
        frames,
        encoder_s: median(&mut encoder),
        device_layers_s: device.iter_mut().map(|v| median(v)).collect(),
        server_s: server.iter_mut().map(|v| median(v)).collect(),
        local_s: median(&mut local),
    })
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
