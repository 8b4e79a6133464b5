//! What the agent needs from the split model on the device.

use bytes::Bytes;

/// A model's failure on one frame.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ModelFailure(pub String);

/// A prediction: the class and the model's confidence in it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Predicted class index.
    pub class: u32,
    /// Probability the model gives that class.
    pub confidence: f32,
}

impl Prediction {
    /// The result payload the edge server sends back: class (u32 LE) then confidence (f32 LE).
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&self.class.to_le_bytes());
        b[4..].copy_from_slice(&self.confidence.to_le_bytes());
        b
    }

    /// Parses a result payload; anything but exactly 8 bytes is an error.
    pub fn from_bytes(payload: &[u8]) -> Result<Prediction, ModelFailure> {
        let b: [u8; 8] = payload.try_into().map_err(|_| {
            ModelFailure(format!(
                "result payload of {} bytes, expected 8",
                payload.len()
            ))
        })?;
        let class = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let confidence = f32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        Ok(Prediction { class, confidence })
    }
}

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
    /// Finishes the model on the device (the local path).
    fn finish_locally(&self, features: Self::Features) -> Result<Prediction, ModelFailure>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prediction_round_trips_and_rejects_bad_lengths() {
        let p = Prediction {
            class: 7,
            confidence: 0.25,
        };
        assert_eq!(Prediction::from_bytes(&p.to_bytes()).unwrap(), p);
        assert!(Prediction::from_bytes(&[1, 2, 3]).is_err());
    }
}
