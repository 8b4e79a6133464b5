//! The inference API the agent and the edge server call: load a saved model, encode a frame on
//! the device into layered records, decode any prefix of them on the server, or run the whole
//! model locally.

use std::path::Path;
use std::sync::Arc;

use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarBuilder;
use offload_codec::{FrameHeader, GaussianConditional, LayerRecord, ModelId, ModelSpec};

use crate::data::IMAGE_SIDE;
use crate::error::ModelError;
use crate::layered::LayeredCoder;
use crate::manifest::{Manifest, model_files, read_bounded, sha256_hex};
use crate::model::{DecoderKind, Network, images_to_tensor};

/// A frame encoded on the device: the container header and one record per layer.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    /// The frame header (model id, frame id; the layer shapes come from the model).
    pub header: FrameHeader,
    /// Records of layers `0..N`, in order; send any prefix.
    pub records: Vec<LayerRecord>,
}

impl EncodedFrame {
    /// Wire bytes of each layer's record (record header and both streams).
    pub fn layer_bytes(&self) -> Vec<usize> {
        self.records.iter().map(LayerRecord::wire_len).collect()
    }

    /// Cumulative wire bytes of the first k layers, k = 1..N, including the frame header.
    pub fn prefix_bytes(&self) -> Vec<usize> {
        let header = offload_codec::container::HEADER_BYTES;
        self.layer_bytes()
            .iter()
            .scan(header, |acc, b| {
                *acc += b;
                Some(*acc)
            })
            .collect()
    }
}

/// The quantised symbols of one layer of one frame (what the codec codes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSymbols {
    /// round(z), CHW.
    pub z: Vec<i32>,
    /// round(y − μ), CHW.
    pub y: Vec<i32>,
    /// Scale index of each y symbol.
    pub indices: Vec<u16>,
}

/// A loaded split model with its entropy-coding tables.
#[derive(Debug, Clone)]
pub struct SplitModel {
    network: Network,
    manifest: Manifest,
    model_id: ModelId,
    spec: ModelSpec,
    gaussian: GaussianConditional,
    device: Device,
    /// The files as loaded, for [`SplitModel::save`] (absent for a model built in memory).
    files: Option<Arc<SavedFiles>>,
}

/// The exact bytes a model was loaded from.
#[derive(Debug)]
struct SavedFiles {
    manifest: Vec<u8>,
    weights: Vec<u8>,
}

impl SplitModel {
    /// Loads `dir/model.json` and `dir/weights.safetensors`; errors name the offending file.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let (manifest_path, weights_path) = model_files(dir);
        let manifest_bytes = read_bounded(&manifest_path)?;
        let manifest: Manifest =
            serde_json::from_slice(&manifest_bytes).map_err(|e| ModelError::Manifest {
                path: manifest_path.clone(),
                message: e.to_string(),
            })?;
        manifest.validate(&manifest_path)?;
        let weights_path = weights_path.with_file_name(&manifest.weights_file);
        let weights = read_bounded(&weights_path)?;
        let digest = sha256_hex(&weights);
        if digest != manifest.weights_sha256 {
            return Err(ModelError::Weights {
                path: weights_path,
                message: format!(
                    "SHA-256 {digest} does not match the manifest's {}",
                    manifest.weights_sha256
                ),
            });
        }
        let device = Device::Cpu;
        let weights_error = |e: candle_core::Error| ModelError::Weights {
            path: weights_path.clone(),
            message: e.to_string(),
        };
        let vb = VarBuilder::from_buffered_safetensors(weights.clone(), DType::F32, &device)
            .map_err(weights_error)?;
        let network = Network::new(&manifest.architecture, vb).map_err(weights_error)?;
        let model_id = ModelId::from_manifest(&manifest_bytes);
        Ok(Self {
            spec: manifest.spec(model_id),
            network,
            manifest,
            model_id,
            gaussian: GaussianConditional::default_table(),
            device,
            files: Some(Arc::new(SavedFiles {
                manifest: manifest_bytes,
                weights,
            })),
        })
    }

    /// Writes the files this model was loaded from into `dir` (created if needed), byte for
    /// byte, so the copy has the same model id; [`SplitModel::load`] re-validates them.
    pub fn save(&self, dir: &Path) -> Result<(), ModelError> {
        let files = self.files.as_ref().ok_or_else(|| {
            ModelError::Frame("a model built in memory has no files to save".into())
        })?;
        std::fs::create_dir_all(dir).map_err(|source| ModelError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let (manifest_path, _) = model_files(dir);
        let weights_path = manifest_path.with_file_name(&self.manifest.weights_file);
        for (path, bytes) in [
            (&manifest_path, &files.manifest),
            (&weights_path, &files.weights),
        ] {
            std::fs::write(path, bytes).map_err(|source| ModelError::Io {
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Wraps a network that is already in memory (e.g. just trained) with its manifest.
    pub fn from_parts(network: Network, manifest: Manifest, manifest_bytes: &[u8]) -> Self {
        let model_id = ModelId::from_manifest(manifest_bytes);
        Self {
            spec: manifest.spec(model_id),
            network,
            manifest,
            model_id,
            gaussian: GaussianConditional::default_table(),
            device: Device::Cpu,
            files: None,
        }
    }

    /// The model id frames carry.
    pub fn model_id(&self) -> ModelId {
        self.model_id
    }

    /// The codec's view of the model (validate received frames against it).
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The network.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Number of layers N.
    pub fn num_layers(&self) -> usize {
        self.spec.layers.len()
    }

    fn coder(&self) -> LayeredCoder<'_> {
        LayeredCoder {
            layers: self.network.layers(),
            priors: &self.manifest.z_priors,
            gaussian: &self.gaussian,
            spec: &self.spec,
            device: &self.device,
        }
    }

    fn image_tensor(&self, image: &[u8]) -> Result<Tensor, ModelError> {
        let expected = IMAGE_SIDE * IMAGE_SIDE;
        if image.len() != expected {
            return Err(ModelError::ImageSize {
                found: image.len(),
                expected,
            });
        }
        Ok(images_to_tensor(image, &self.device)?)
    }

    /// Device stage 1: the task encoder, image (784 grey bytes) → features F.
    pub fn encode_features(&self, image: &[u8]) -> Result<Tensor, ModelError> {
        let x = self.image_tensor(image)?;
        Ok(self.network.encoder().forward(&x, false)?)
    }

    /// Device stage 2, one layer: quantises layer `index` of F into symbols.
    pub fn quantise_layer(
        &self,
        features: &Tensor,
        index: usize,
    ) -> Result<LayerSymbols, ModelError> {
        self.coder().quantise_layer(features, index)
    }

    /// Device stage 2: quantises the first `layers` layers of F into symbols.
    pub fn quantise_layers(
        &self,
        features: &Tensor,
        layers: usize,
    ) -> Result<Vec<LayerSymbols>, ModelError> {
        (0..layers.min(self.num_layers()))
            .map(|i| self.quantise_layer(features, i))
            .collect()
    }

    /// Device stage 3, one layer: entropy-codes layer `index`'s symbols into its record.
    pub fn code_layer(
        &self,
        symbols: &LayerSymbols,
        index: usize,
    ) -> Result<LayerRecord, ModelError> {
        self.coder().code_layer(symbols, index)
    }

    /// Device stage 3: entropy-codes quantised layers (base first) into a frame.
    pub fn code_layers(
        &self,
        symbols: &[LayerSymbols],
        frame_id: u64,
    ) -> Result<EncodedFrame, ModelError> {
        self.coder().code_layers(symbols, frame_id)
    }

    /// The whole device side for all N layers: image → layered records.
    pub fn device_encode(&self, image: &[u8], frame_id: u64) -> Result<EncodedFrame, ModelError> {
        let f = self.encode_features(image)?;
        let symbols = self.quantise_layers(&f, self.num_layers())?;
        self.code_layers(&symbols, frame_id)
    }

    /// Server: decodes the received prefix of records back to symbols (checks order and id).
    pub fn decode_symbols(
        &self,
        header: &FrameHeader,
        records: &[LayerRecord],
    ) -> Result<(Vec<LayerSymbols>, Vec<Tensor>), ModelError> {
        self.coder().decode(header, records)
    }

    /// Server: class probabilities from a prefix of k records (decoder chosen by k).
    pub fn server_decode(
        &self,
        header: &FrameHeader,
        records: &[LayerRecord],
    ) -> Result<Vec<f32>, ModelError> {
        let (_, y_hats) = self.decode_symbols(header, records)?;
        let kind = self.network.decoder_kind_for(records.len());
        let logits = self.network.decode_latents(&y_hats, kind, false)?;
        probabilities(&logits)
    }

    /// Device: class probabilities from the local path (encoder + local decoder, no coding).
    pub fn local_infer(&self, image: &[u8]) -> Result<Vec<f32>, ModelError> {
        let f = self.encode_features(image)?;
        self.local_from_features(&f)
    }

    /// Device: the local decoder on features already computed by [`Self::encode_features`].
    pub fn local_from_features(&self, features: &Tensor) -> Result<Vec<f32>, ModelError> {
        let logits = self
            .network
            .decoder(DecoderKind::Local)
            .forward(features, false)?;
        probabilities(&logits)
    }
}

fn probabilities(logits: &Tensor) -> Result<Vec<f32>, ModelError> {
    Ok(candle_nn::ops::softmax(logits, D::Minus1)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}
