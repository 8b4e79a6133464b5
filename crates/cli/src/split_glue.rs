//! The Fashion-MNIST split model on both ends of the wire.

use std::sync::Arc;

use bytes::Bytes;
use candle_core::Tensor;
use offload_agent::{DeviceFrame, DeviceModel, ModelFailure, Prediction, TaskResult};
use offload_codec::container::{read_header, read_layer, write_header, write_layer};
use offload_codec::{FrameHeader, LayerRecord, ModelId, ModelSpec};
use offload_model::{EncodedFrame, SplitModel};
use offload_transport::{FrameHandler, HandlerError, ReceivedFrame};

/// The transport's 32-bit model id: the first four bytes of the model's 16-byte id. The codec
/// header carries the full id, which the server checks too.
pub fn model_id32(id: &ModelId) -> u32 {
    u32::from_le_bytes([id.0[0], id.0[1], id.0[2], id.0[3]])
}

fn best(probabilities: &[f32]) -> Result<Prediction, ModelFailure> {
    probabilities
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, &p)| Prediction {
            class: i as u32,
            // A softmax sums to 1 up to rounding; the wire accepts [0, 1] only.
            confidence: p.clamp(0.0, 1.0),
        })
        .ok_or_else(|| ModelFailure("the model returned no class probabilities".into()))
}

/// The codec header and layer records of `encoded` as the bytes the transport sends.
pub(crate) fn wire_messages(encoded: &EncodedFrame) -> Result<(Bytes, Vec<Bytes>), ModelFailure> {
    let fail = |e: &dyn std::fmt::Display| ModelFailure(e.to_string());
    let mut header = Vec::new();
    write_header(&encoded.header, &mut header).map_err(|e| fail(&e))?;
    let mut layers = Vec::with_capacity(encoded.records.len());
    for record in &encoded.records {
        let mut out = Vec::with_capacity(record.wire_len());
        write_layer(&encoded.header, record, &mut out).map_err(|e| fail(&e))?;
        layers.push(Bytes::from(out));
    }
    Ok((Bytes::from(header), layers))
}

/// Checks that `frame` is for the model of `spec` and parses its codec header and layer
/// records, refusing trailing bytes in either.
fn read_codec_frame(
    frame: &ReceivedFrame,
    spec: &ModelSpec,
) -> Result<(FrameHeader, Vec<LayerRecord>), HandlerError> {
    let expected = model_id32(&spec.model_id);
    if frame.model_id != expected {
        return Err(HandlerError::new(format!(
            "frame {} is for model {:08x}, this handler runs {:08x}",
            frame.frame_id, frame.model_id, expected
        )));
    }
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        HandlerError::new(format!("frame {}: {what}: {e}", frame.frame_id))
    };
    let (header, used) = read_header(&frame.header, spec).map_err(|e| bad("codec header", &e))?;
    if used != frame.header.len() {
        return Err(HandlerError::new(format!(
            "frame {}: codec header has {} trailing bytes",
            frame.frame_id,
            frame.header.len() - used
        )));
    }
    let mut records = Vec::with_capacity(frame.layers.len().min(header.num_layers()));
    for (i, layer) in frame.layers.iter().enumerate() {
        let (record, used) =
            read_layer(layer, &header).map_err(|e| bad(&format!("layer {i}"), &e))?;
        if used != layer.len() {
            return Err(HandlerError::new(format!(
                "frame {}: layer {i} has trailing bytes",
                frame.frame_id
            )));
        }
        records.push(record);
    }
    Ok((header, records))
}

/// The device's half: encoder + layered codec, and the local path.
#[derive(Debug, Clone)]
pub struct SplitDevice {
    model: Arc<SplitModel>,
}

impl SplitDevice {
    /// Wraps a loaded model.
    pub fn new(model: Arc<SplitModel>) -> Self {
        SplitDevice { model }
    }
}

impl DeviceModel for SplitDevice {
    type Input = Vec<u8>;
    type Features = Tensor;

    fn model_id(&self) -> u32 {
        model_id32(&self.model.model_id())
    }

    fn encode(&self, image: &Vec<u8>) -> Result<DeviceFrame<Tensor>, ModelFailure> {
        let fail = |e: &dyn std::fmt::Display| ModelFailure(e.to_string());
        let features = self.model.encode_features(image).map_err(|e| fail(&e))?;
        let symbols = self
            .model
            .quantise_layers(&features, self.model.num_layers())
            .map_err(|e| fail(&e))?;
        // The frame id inside the codec header is not used by the transport (which carries its own).
        let encoded = self.model.code_layers(&symbols, 0).map_err(|e| fail(&e))?;
        let (header, layers) = wire_messages(&encoded)?;
        Ok(DeviceFrame {
            features,
            header,
            layers,
        })
    }

    fn finish_locally(&self, features: Tensor) -> Result<TaskResult, ModelFailure> {
        let p = self
            .model
            .local_from_features(&features)
            .map_err(|e| ModelFailure(e.to_string()))?;
        best(&p).map(TaskResult::Class)
    }
}

/// The server's half: validates and decodes the received prefix of layers, picks the task
/// decoder by layer count, and replies with a [`TaskResult::Class`].
#[derive(Debug, Clone)]
pub struct SplitHandler {
    model: Arc<SplitModel>,
}

impl SplitHandler {
    /// Wraps a loaded model.
    pub fn new(model: Arc<SplitModel>) -> Self {
        SplitHandler { model }
    }
}

impl FrameHandler for SplitHandler {
    fn handle(&self, frame: &ReceivedFrame) -> Result<Vec<u8>, HandlerError> {
        handle_codec_frame(
            frame,
            self.model.spec(),
            |header, records| self.model.server_decode(header, records),
            |p| best(&p).map(TaskResult::Class),
        )
    }
}

/// A handler's whole job on one frame: parse it against `spec`, `decode` the prefix of layers
/// that arrived, turn that into a [`TaskResult`] and encode the reply. Errors name the frame.
pub(crate) fn handle_codec_frame<T, D, R>(
    frame: &ReceivedFrame,
    spec: &ModelSpec,
    decode: impl FnOnce(&FrameHeader, &[LayerRecord]) -> Result<T, D>,
    result: impl FnOnce(T) -> Result<TaskResult, R>,
) -> Result<Vec<u8>, HandlerError>
where
    D: std::fmt::Display,
    R: std::fmt::Display,
{
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        HandlerError::new(format!("frame {}: {what}: {e}", frame.frame_id))
    };
    let (header, records) = read_codec_frame(frame, spec)?;
    let decoded = decode(&header, &records).map_err(|e| bad("decoding", &e))?;
    result(decoded)
        .map_err(|e| bad("result", &e))?
        .encode()
        .map_err(|e| bad("result", &e))
}
