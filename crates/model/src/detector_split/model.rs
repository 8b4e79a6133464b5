//! The inference API of the split detector for the agent and the edge server: the device's
//! encoder and layered coding, the server's decoding of any prefix of layers into detections,
//! and the local path (the whole detector on the device).

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use offload_codec::{FrameHeader, GaussianConditional, LayerRecord, ModelId, ModelSpec};

use super::codec::SplitCodec;
use super::manifest::SplitManifest;
use crate::detector::{Detection, Detector, SPLIT_SHAPE};
use crate::error::ModelError;
use crate::layered::LayeredCoder;
use crate::manifest::{model_files, read_bounded, sha256_hex};
use crate::split::{EncodedFrame, LayerSymbols};

/// SSD-MobileNetV2 split at its stride-16 tensor with the layered codec in between.
#[derive(Debug, Clone)]
pub struct DetectorSplit {
    detector: Arc<Detector>,
    codec: SplitCodec,
    manifest: SplitManifest,
    model_id: ModelId,
    spec: ModelSpec,
    gaussian: GaussianConditional,
    device: Device,
}

fn weights_error(path: &Path) -> impl Fn(candle_core::Error) -> ModelError + '_ {
    move |e| ModelError::Weights {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

impl DetectorSplit {
    /// Loads the codec from `codec_dir` (`model.json` + its weights) and the detector from
    /// `detector_dir` (the converted safetensors), checking both files' hashes against the
    /// manifest.
    pub fn load(codec_dir: &Path, detector_dir: &Path) -> Result<Self, ModelError> {
        let (manifest_path, _) = model_files(codec_dir);
        let manifest_bytes = read_bounded(&manifest_path)?;
        let manifest: SplitManifest =
            serde_json::from_slice(&manifest_bytes).map_err(|e| ModelError::Manifest {
                path: manifest_path.clone(),
                message: e.to_string(),
            })?;
        manifest.validate(&manifest_path)?;
        let weights_path = codec_dir.join(&manifest.weights_file);
        let weights = read_bounded(&weights_path)?;
        check_hash(&weights_path, &weights, &manifest.weights_sha256)?;
        let detector_path = detector_dir.join(&manifest.detector.weights_file);
        let detector_bytes = std::fs::read(&detector_path).map_err(|source| ModelError::Io {
            path: detector_path.clone(),
            source,
        })?;
        check_hash(
            &detector_path,
            &detector_bytes,
            &manifest.detector.weights_sha256,
        )?;
        drop(detector_bytes);
        let detector = Detector::load(detector_dir)?;
        let device = Device::Cpu;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(weights_error(&weights_path))?;
        let codec =
            SplitCodec::new(&manifest.architecture, vb).map_err(weights_error(&weights_path))?;
        Ok(Self::from_parts(
            Arc::new(detector),
            codec,
            manifest,
            &manifest_bytes,
        ))
    }

    /// Wraps a detector and a codec already in memory (e.g. just trained) with the manifest
    /// whose bytes are `manifest_bytes`.
    pub fn from_parts(
        detector: Arc<Detector>,
        codec: SplitCodec,
        manifest: SplitManifest,
        manifest_bytes: &[u8],
    ) -> Self {
        let model_id = ModelId::from_manifest(manifest_bytes);
        Self {
            spec: manifest.spec(model_id),
            detector,
            codec,
            manifest,
            model_id,
            gaussian: GaussianConditional::default_table(),
            device: Device::Cpu,
        }
    }

    /// The model id frames carry.
    pub fn model_id(&self) -> ModelId {
        self.model_id
    }

    /// Number of layers N.
    pub fn num_layers(&self) -> usize {
        self.spec.layers.len()
    }

    /// The codec's view of the model (validate received frames against it).
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The manifest.
    pub fn manifest(&self) -> &SplitManifest {
        &self.manifest
    }

    /// The frozen detector.
    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// The codec's layers.
    pub fn codec(&self) -> &SplitCodec {
        &self.codec
    }

    fn coder(&self) -> LayeredCoder<'_> {
        LayeredCoder {
            layers: self.codec.layers(),
            priors: &self.manifest.z_priors,
            gaussian: &self.gaussian,
            spec: &self.spec,
            device: &self.device,
        }
    }

    /// Device stage 1: an interleaved RGB frame → the split tensor (1, 96, 19, 19).
    pub fn encode_features(
        &self,
        rgb: &[u8],
        width: usize,
        height: usize,
    ) -> Result<Tensor, ModelError> {
        let x = self.detector.preprocess(rgb, width, height)?;
        Ok(self.detector.encode_to_split(&x)?)
    }

    fn check_features(features: &Tensor) -> Result<(), ModelError> {
        if features.dims() != SPLIT_SHAPE || features.dtype() != DType::F32 {
            return Err(ModelError::Frame(format!(
                "split features of shape {:?} ({:?}), expected {SPLIT_SHAPE:?} f32",
                features.dims(),
                features.dtype()
            )));
        }
        Ok(())
    }

    /// Device stage 2: quantises layer `index` of a split tensor into symbols. A residual layer
    /// needs the layers below it quantised first, so this quantises 0..=index; quantise a
    /// prefix with [`Self::quantise_layers`] to do that once.
    pub fn quantise_layer(
        &self,
        features: &Tensor,
        index: usize,
    ) -> Result<LayerSymbols, ModelError> {
        if index >= self.num_layers() {
            return Err(ModelError::Frame(format!(
                "layer {index} of a {}-layer model",
                self.num_layers()
            )));
        }
        if !self.codec.config().is_residual(index) {
            Self::check_features(features)?;
            return self
                .coder()
                .quantise_layer(&features.transpose(0, 1)?.contiguous()?, index);
        }
        let mut symbols = self.quantise_layers(features, index + 1)?;
        symbols
            .pop()
            .ok_or_else(|| ModelError::Frame("no layer quantised".into()))
    }

    /// Device stage 2: quantises layers 0..`count` of a split tensor (1, 96, 19, 19), base
    /// first. A residual layer reduces F minus the expansions of the layers below, computed
    /// from their symbols exactly as the server will ([`Self::server_features`]).
    pub fn quantise_layers(
        &self,
        features: &Tensor,
        count: usize,
    ) -> Result<Vec<LayerSymbols>, ModelError> {
        Self::check_features(features)?;
        if count > self.num_layers() {
            return Err(ModelError::Frame(format!(
                "{count} layers of a {}-layer model",
                self.num_layers()
            )));
        }
        let config = self.codec.config();
        let last_needed = (0..count).rev().find(|&i| config.is_residual(i));
        // The codec's layers work channel-first, (C, B, H, W).
        let f = features.transpose(0, 1)?.contiguous()?;
        let coder = self.coder();
        let mut below: Option<Tensor> = None;
        let mut out = Vec::with_capacity(count);
        for index in 0..count {
            let input = self.codec.layer_input(index, &f, below.as_ref())?;
            let symbols = coder.quantise_layer(&input, index)?;
            if last_needed.is_some_and(|last| index < last) {
                let e = self.codec.layers()[index].expand(&self.y_hat(&symbols, index)?, false)?;
                below = Some(match below {
                    Some(b) => (b + e)?,
                    None => e,
                });
            }
            out.push(symbols);
        }
        Ok(out)
    }

    /// ŷ = q + μ(ẑ) of layer `index` from its symbols: the server's arithmetic
    /// ([`LayeredCoder::decode`]), so the device's residual is taken against exactly the
    /// reconstruction the server will have.
    fn y_hat(&self, symbols: &LayerSymbols, index: usize) -> Result<Tensor, ModelError> {
        let [zc, zh, zw] = self.codec.config().z_shape(index);
        let z_hat = Tensor::from_vec(
            symbols.z.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            (zc, 1, zh, zw),
            &self.device,
        )?;
        let (mean, _) = self.codec.layers()[index].synthesise(&z_hat)?;
        let q = Tensor::from_vec(
            symbols.y.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            mean.dims(),
            &self.device,
        )?;
        Ok((q + mean)?)
    }

    /// Device stage 3, one layer: entropy-codes layer `index`'s symbols into its record.
    pub fn code_layer(
        &self,
        symbols: &LayerSymbols,
        index: usize,
    ) -> Result<LayerRecord, ModelError> {
        self.coder().code_layer(symbols, index)
    }

    /// Device stage 3: entropy-codes quantised layers (base first) into frame `frame_id`.
    pub fn code_layers(
        &self,
        symbols: &[LayerSymbols],
        frame_id: u64,
    ) -> Result<EncodedFrame, ModelError> {
        self.coder().code_layers(symbols, frame_id)
    }

    /// Device stage 2 and 3: codes all N layers of a split tensor (1, 96, 19, 19) into frame
    /// `frame_id`.
    pub fn code_features(
        &self,
        features: &Tensor,
        frame_id: u64,
    ) -> Result<EncodedFrame, ModelError> {
        let symbols = self.quantise_layers(features, self.num_layers())?;
        self.code_layers(&symbols, frame_id)
    }

    /// The whole device side: frame → layered records.
    pub fn device_encode(
        &self,
        rgb: &[u8],
        width: usize,
        height: usize,
        frame_id: u64,
    ) -> Result<EncodedFrame, ModelError> {
        let f = self.encode_features(rgb, width, height)?;
        self.code_features(&f, frame_id)
    }

    /// The local path: the detector's own server half on uncompressed features, run on the
    /// device; detections in pixels of the `width`×`height` frame.
    pub fn local_from_features(
        &self,
        features: &Tensor,
        width: usize,
        height: usize,
    ) -> Result<Vec<Detection>, ModelError> {
        Self::check_features(features)?;
        Ok(self.detector.finish_from_split(features, width, height)?)
    }

    /// Server: decodes a received prefix of records to symbols and latents (checks the model
    /// id, the layer count and each record's index and streams).
    pub fn decode_symbols(
        &self,
        header: &FrameHeader,
        records: &[LayerRecord],
    ) -> Result<(Vec<LayerSymbols>, Vec<Tensor>), ModelError> {
        self.coder().decode(header, records)
    }

    /// Server: the split tensor (1, 96, 19, 19) reconstructed from a prefix of k records.
    pub fn server_features(
        &self,
        header: &FrameHeader,
        records: &[LayerRecord],
    ) -> Result<Tensor, ModelError> {
        let (_, y_hats) = self.decode_symbols(header, records)?;
        Ok(self
            .codec
            .reconstruct(&y_hats, false)?
            .transpose(0, 1)?
            .contiguous()?)
    }

    /// Server: detections from a prefix of k records, in pixels of the `width`×`height` frame.
    pub fn server_decode(
        &self,
        header: &FrameHeader,
        records: &[LayerRecord],
        width: usize,
        height: usize,
    ) -> Result<Vec<Detection>, ModelError> {
        let f = self.server_features(header, records)?;
        Ok(self.detector.finish_from_split(&f, width, height)?)
    }
}

fn check_hash(path: &Path, bytes: &[u8], expected: &str) -> Result<(), ModelError> {
    let digest = sha256_hex(bytes);
    if digest != expected {
        return Err(ModelError::Weights {
            path: path.to_owned(),
            message: format!("SHA-256 {digest} does not match the manifest's {expected}"),
        });
    }
    Ok(())
}
