//! What a decoder expects of a stream: the model's identity and the latent shapes per layer.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::coder::max_stream_bytes;

/// Shape of a latent tensor of one frame: channels × height × width (CHW order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shape {
    /// Channels.
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl Shape {
    /// A `channels × height × width` shape.
    pub const fn new(channels: usize, height: usize, width: usize) -> Self {
        Shape {
            channels,
            height,
            width,
        }
    }

    /// `height × width`, the `spatial` argument of the entropy models.
    pub fn spatial(&self) -> usize {
        self.height.saturating_mul(self.width)
    }

    /// Number of elements (saturating; the container caps each dimension at 65535).
    pub fn numel(&self) -> usize {
        self.channels.saturating_mul(self.spatial())
    }
}

/// The shapes of one layer's latents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LayerSpec {
    /// Shape of the latent `y` (coded with the Gaussian conditional).
    pub y: Shape,
    /// Shape of the hyper-latent `z` (coded with the factorised prior).
    pub z: Shape,
}

impl LayerSpec {
    /// Largest byte length of this layer's stream (`z` then `y`) a decoder accepts.
    pub fn max_stream_bytes(&self) -> u64 {
        max_stream_bytes(self.z.numel() as u64 + self.y.numel() as u64)
    }
}

/// 16-byte identity of a model: the first 16 bytes of the SHA-256 of its manifest.
///
/// Frames carry it so a decoder never decodes a stream made with other weights or tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelId(pub [u8; 16]);

impl ModelId {
    /// The id of a model whose manifest (tables included) serialises to `manifest`.
    pub fn from_manifest(manifest: &[u8]) -> Self {
        let digest = Sha256::digest(manifest);
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        ModelId(id)
    }
}

impl std::fmt::Display for ModelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Everything a decoder checks a stream against: the model id and every layer's shapes.
///
/// Comes from the decoder's own model (trusted), never from the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Id of the model (see [`ModelId::from_manifest`]).
    pub model_id: ModelId,
    /// Shapes of layers `0 .. N`, in order.
    pub layers: Vec<LayerSpec>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_id_is_a_stable_prefix_of_sha256() {
        let id = ModelId::from_manifest(b"abc");
        // SHA-256("abc") = ba7816bf 8f01cfea 414140de 5dae2223 ...
        assert_eq!(id.to_string(), "ba7816bf8f01cfea414140de5dae2223");
    }
}
