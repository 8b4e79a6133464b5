//! The layered codec on the split tensor: N [`CodecLayer`]s whose expansions the server sums back
//! into a 96×19×19 tensor for the frozen rest of the detector.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::config::SplitCodecConfig;
use crate::layer::CodecLayer;

/// The codec's layers (weights `layers.<i>.*`).
#[derive(Debug, Clone)]
pub struct SplitCodec {
    config: SplitCodecConfig,
    layers: Vec<CodecLayer>,
}

impl SplitCodec {
    /// Builds the layers from `vb` (a fresh `VarMap` or loaded safetensors).
    pub fn new(config: &SplitCodecConfig, vb: VarBuilder) -> Result<Self> {
        if let Err(e) = config.validate() {
            candle_core::bail!("invalid split codec config: {e}");
        }
        let layers = (0..config.num_layers())
            .map(|i| CodecLayer::with_geometry(&config.geometry(i), i, vb.pp("layers").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config: config.clone(),
            layers,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &SplitCodecConfig {
        &self.config
    }

    /// The layers, base first.
    pub fn layers(&self) -> &[CodecLayer] {
        &self.layers
    }

    /// What layer `index` reduces: F itself, or for a residual layer F − `below` (the sum of
    /// the expansions of layers 0..index, `None` only for the base layer). Both in the codec's
    /// channel-first layout (96, B, 19, 19).
    pub fn layer_input(
        &self,
        index: usize,
        features: &Tensor,
        below: Option<&Tensor>,
    ) -> Result<Tensor> {
        match below {
            Some(sum) if self.config.is_residual(index) => features - sum,
            _ => Ok(features.clone()),
        }
    }

    /// Server side: Σ of the received layers' expansions, (96, B, 19, 19) in the codec's
    /// channel-first layout. No activation follows: the split tensor is the linear bottleneck
    /// of MobileNetV2's block 12 (a projection plus a skip connection), signed.
    pub fn reconstruct(&self, y_hats: &[Tensor], train: bool) -> Result<Tensor> {
        let mut sum: Option<Tensor> = None;
        for (layer, y_hat) in self.layers.iter().zip(y_hats) {
            let e = layer.expand(y_hat, train)?;
            sum = Some(match sum {
                Some(s) => (s + e)?,
                None => e,
            });
        }
        sum.ok_or_else(|| candle_core::Error::Msg("reconstruct needs at least one layer".into()))
    }
}
