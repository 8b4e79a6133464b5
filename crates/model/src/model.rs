//! The whole split model: task encoder, codec layers, the server's two task decoders and the
//! device's local decoder.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;

use crate::config::ModelConfig;
use crate::data::IMAGE_SIDE;
use crate::decoder::TaskDecoder;
use crate::encoder::TaskEncoder;
use crate::layer::CodecLayer;

/// Which task decoder finishes the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecoderKind {
    /// Server, for few layers.
    LowRate,
    /// Server, for many layers.
    HighRate,
    /// Device, on uncompressed features.
    Local,
}

impl DecoderKind {
    /// The variable-path segment of this decoder (`decoders.<name>`).
    pub fn name(self) -> &'static str {
        match self {
            DecoderKind::LowRate => "low",
            DecoderKind::HighRate => "high",
            DecoderKind::Local => "local",
        }
    }
}

/// The network: weights named `encoder.*`, `layers.<i>.*`, `decoders.{low,high,local}.*`.
#[derive(Debug, Clone)]
pub struct Network {
    config: ModelConfig,
    encoder: TaskEncoder,
    layers: Vec<CodecLayer>,
    low: TaskDecoder,
    high: TaskDecoder,
    local: TaskDecoder,
}

impl Network {
    /// Builds the network from `vb` (a fresh `VarMap` or loaded safetensors).
    pub fn new(config: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        let layers = (0..config.num_layers())
            .map(|i| CodecLayer::new(config, i, vb.pp("layers").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let d = vb.pp("decoders");
        Ok(Self {
            config: config.clone(),
            encoder: TaskEncoder::new(config, vb.pp("encoder"))?,
            layers,
            low: TaskDecoder::new(config, d.pp("low"))?,
            high: TaskDecoder::new(config, d.pp("high"))?,
            local: TaskDecoder::new(config, d.pp("local"))?,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The task encoder.
    pub fn encoder(&self) -> &TaskEncoder {
        &self.encoder
    }

    /// The codec layers, base first.
    pub fn layers(&self) -> &[CodecLayer] {
        &self.layers
    }

    /// A task decoder.
    pub fn decoder(&self, kind: DecoderKind) -> &TaskDecoder {
        match kind {
            DecoderKind::LowRate => &self.low,
            DecoderKind::HighRate => &self.high,
            DecoderKind::Local => &self.local,
        }
    }

    /// The server decoder for `k` received layers.
    pub fn decoder_kind_for(&self, k: usize) -> DecoderKind {
        if k <= self.config.low_rate_layers {
            DecoderKind::LowRate
        } else {
            DecoderKind::HighRate
        }
    }

    /// Server side: Σ expansions of the received ŷ, then ReLU, then the decoder for k layers.
    pub fn decode_latents(
        &self,
        y_hats: &[Tensor],
        kind: DecoderKind,
        train: bool,
    ) -> Result<Tensor> {
        let mut sum: Option<Tensor> = None;
        for (layer, y_hat) in self.layers.iter().zip(y_hats) {
            let e = layer.expand(y_hat, train)?;
            sum = Some(match sum {
                Some(s) => (s + e)?,
                None => e,
            });
        }
        let features = match sum {
            Some(s) => s.relu()?,
            None => candle_core::bail!("decode_latents needs at least one layer"),
        };
        self.decoder(kind).forward(&features, train)
    }
}

/// Pixels (B × 784 bytes) → (1, B, 28, 28) f32 in [0, 1], the encoder's input layout.
pub fn images_to_tensor(pixels: &[u8], device: &Device) -> Result<Tensor> {
    let n = IMAGE_SIDE * IMAGE_SIDE;
    if pixels.is_empty() || !pixels.len().is_multiple_of(n) {
        candle_core::bail!(
            "{} pixel bytes is not a whole number of 28×28 images",
            pixels.len()
        );
    }
    let b = pixels.len() / n;
    let data: Vec<f32> = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
    Tensor::from_vec(data, (1, b, IMAGE_SIDE, IMAGE_SIDE), device)?.to_dtype(DType::F32)
}
