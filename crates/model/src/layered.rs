//! Entropy coding of a set of [`CodecLayer`]s over one feature tensor: quantise each layer,
//! code it into its record, and decode any received prefix back to latents. Shared by every
//! split model whose layers are [`CodecLayer`]s; the caller owns the layers, tables and spec.

use candle_core::{Device, Tensor};
use offload_codec::{FactorizedPrior, FrameHeader, GaussianConditional, LayerRecord, ModelSpec};

use crate::error::ModelError;
use crate::eval::Z_RANGE;
use crate::layer::CodecLayer;
use crate::split::{EncodedFrame, LayerSymbols};

/// A borrowed view of everything coding needs: layers, their z tables, the Gaussian table and
/// the codec's spec (model id and layer shapes). `layers`, `priors` and `spec.layers` have the
/// same length (the caller's manifest validation guarantees it).
#[derive(Debug, Clone, Copy)]
pub struct LayeredCoder<'a> {
    /// The layers, base first.
    pub layers: &'a [CodecLayer],
    /// Quantised z table of each layer.
    pub priors: &'a [FactorizedPrior],
    /// The y table.
    pub gaussian: &'a GaussianConditional,
    /// Model id and layer shapes.
    pub spec: &'a ModelSpec,
    /// Where the tensors live.
    pub device: &'a Device,
}

fn to_i32(t: &Tensor) -> Result<Vec<i32>, ModelError> {
    // The values are already integers (rounded) of small magnitude; `as` saturates otherwise.
    Ok(t.flatten_all()?
        .to_vec1::<f32>()?
        .into_iter()
        .map(|v| v as i32)
        .collect())
}

impl LayeredCoder<'_> {
    fn layer_error(&self, index: usize) -> ModelError {
        ModelError::Frame(format!(
            "layer {index} of a {}-layer model",
            self.layers.len()
        ))
    }

    /// Quantises layer `index` of `features` (C, 1, H, W) into symbols.
    pub fn quantise_layer(
        &self,
        features: &Tensor,
        index: usize,
    ) -> Result<LayerSymbols, ModelError> {
        let layer = self
            .layers
            .get(index)
            .ok_or_else(|| self.layer_error(index))?;
        let q = layer.quantise(features, Z_RANGE)?;
        let scales = q.scales.flatten_all()?.to_vec1::<f32>()?;
        Ok(LayerSymbols {
            z: to_i32(&q.z_hat)?,
            y: to_i32(&q.y_symbols)?,
            indices: self.gaussian.scale_indices(&scales),
        })
    }

    /// Entropy-codes layer `index`'s symbols into its record.
    pub fn code_layer(
        &self,
        symbols: &LayerSymbols,
        index: usize,
    ) -> Result<LayerRecord, ModelError> {
        let (spec, prior) = self
            .spec
            .layers
            .get(index)
            .zip(self.priors.get(index))
            .ok_or_else(|| self.layer_error(index))?;
        Ok(LayerRecord::encode(
            index as u16,
            spec,
            prior,
            self.gaussian,
            &symbols.z,
            &symbols.y,
            &symbols.indices,
        )?)
    }

    /// Entropy-codes quantised layers (base first) into frame `frame_id`.
    pub fn code_layers(
        &self,
        symbols: &[LayerSymbols],
        frame_id: u64,
    ) -> Result<EncodedFrame, ModelError> {
        let records = symbols
            .iter()
            .enumerate()
            .map(|(i, s)| self.code_layer(s, i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EncodedFrame {
            header: FrameHeader::new(self.spec, frame_id),
            records,
        })
    }

    /// Quantises and codes every layer of `features` (C, 1, H, W) into frame `frame_id`.
    pub fn encode(&self, features: &Tensor, frame_id: u64) -> Result<EncodedFrame, ModelError> {
        let records = (0..self.layers.len())
            .map(|i| self.code_layer(&self.quantise_layer(features, i)?, i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EncodedFrame {
            header: FrameHeader::new(self.spec, frame_id),
            records,
        })
    }

    /// Decodes a received prefix of records to symbols and latents ŷ (C, 1, h, w), checking the
    /// model id, the layer count and each record's index before touching a stream.
    pub fn decode(
        &self,
        header: &FrameHeader,
        records: &[LayerRecord],
    ) -> Result<(Vec<LayerSymbols>, Vec<Tensor>), ModelError> {
        if header.model_id != self.spec.model_id {
            return Err(ModelError::Frame(format!(
                "model id {} is not this model's {}",
                header.model_id, self.spec.model_id
            )));
        }
        let n = self
            .layers
            .len()
            .min(self.spec.layers.len())
            .min(self.priors.len());
        if records.is_empty() || records.len() > n {
            return Err(ModelError::Frame(format!(
                "{} layers received, this model decodes 1..={n}",
                records.len()
            )));
        }
        let mut symbols = Vec::with_capacity(records.len());
        let mut y_hats = Vec::with_capacity(records.len());
        for (i, record) in records.iter().enumerate() {
            if usize::from(record.index) != i {
                return Err(ModelError::Frame(format!(
                    "record {i} carries layer index {}",
                    record.index
                )));
            }
            let spec = &self.spec.layers[i];
            let (z, pending_y) = record.decode_z(spec, &self.priors[i])?;
            let z_hat = Tensor::from_vec(
                z.iter().map(|&v| v as f32).collect::<Vec<_>>(),
                (spec.z.channels, 1, spec.z.height, spec.z.width),
                self.device,
            )?;
            let (mean, scales) = self.layers[i].synthesise(&z_hat)?;
            let indices = self
                .gaussian
                .scale_indices(&scales.flatten_all()?.to_vec1::<f32>()?);
            let y = pending_y.decode_y(self.gaussian, &indices)?;
            let q = Tensor::from_vec(
                y.iter().map(|&v| v as f32).collect::<Vec<_>>(),
                mean.dims(),
                self.device,
            )?;
            y_hats.push((q + mean)?);
            symbols.push(LayerSymbols { z, y, indices });
        }
        Ok((symbols, y_hats))
    }
}
