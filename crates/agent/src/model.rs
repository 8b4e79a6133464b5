//! What the agent needs from the split model on the device.

use bytes::Bytes;

use crate::result::TaskResult;

/// A model's failure on one frame.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ModelFailure(pub String);

/// One frame after the device's part of the model: the encoder features (kept for the local
/// path) and the coded layers.
#[derive(Debug, Clone)]
pub struct DeviceFrame<F> {
    /// Task-encoder output, consumed by the local path.
    pub features: F,
    /// The codec's frame header.
    pub header: Bytes,
    /// Coded layers in order (each independently decodable given the ones before).
    pub layers: Vec<Bytes>,
}

impl<F> DeviceFrame<F> {
    /// `sizes[k-1]` = bytes of the header and the first `k` layers.
    pub fn cumulative_sizes(&self) -> Vec<u64> {
        let mut total = self.header.len() as u64;
        self.layers
            .iter()
            .map(|l| {
                total += l.len() as u64;
                total
            })
            .collect()
    }
}

/// The split model on the device.
pub trait DeviceModel: Send + Sync + 'static {
    /// An input frame (an image).
    type Input: Send + Sync;
    /// The encoder's output kept for the local path.
    type Features: Send;

    /// Identifier of the model, carried in every frame so the server checks it decodes with
    /// the same model.
    fn model_id(&self) -> u32;
    /// Runs the task encoder, the layered reduction and the entropy coder.
    fn encode(&self, input: &Self::Input) -> Result<DeviceFrame<Self::Features>, ModelFailure>;
    /// Finishes the model on the device (the local path). Detection boxes are in units of the
    /// frame's size, as the server sends them ([`crate::result::DetectedObject`]).
    fn finish_locally(&self, features: Self::Features) -> Result<TaskResult, ModelFailure>;
}
