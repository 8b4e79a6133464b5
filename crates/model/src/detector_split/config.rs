//! The split codec's architecture on the detector's 96×19×19 stride-16 tensor, and the shapes it
//! implies.

use serde::{Deserialize, Serialize};

use crate::detector::SPLIT_SIZE;
use crate::detector::mobilenet_v2::SPLIT_CHANNELS;
use crate::layer::LayerGeometry;

/// Channels of each codec layer and of the hyperpriors.
///
/// Layer 0: 5×5 stride-2 conv → `layer_channels[0]`×10×10; layers 1.. : 1×1 convs →
/// `layer_channels[i]`×19×19. Each z has `z_channels` channels two stride-2 steps below its y
/// (3×3 for layer 0, 5×5 for the others).
///
/// The top `residual_layers` layers code the residual F − Σ (expansions of the layers below,
/// from their quantised latents) instead of F: the device runs those expansions too, and such a
/// layer can refine the reconstruction towards lossless instead of coding F anew.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitCodecConfig {
    /// Channels of each layer's latent y, base layer first.
    pub layer_channels: Vec<usize>,
    /// Hidden channels of each hyperprior's transforms.
    pub hyper_channels: usize,
    /// Channels of each hyper-latent z.
    pub z_channels: usize,
    /// How many of the top layers code the residual of the layers below (0: every layer codes
    /// F; absent in manifests written before residual layers existed).
    #[serde(default)]
    pub residual_layers: usize,
}

impl SplitCodecConfig {
    /// The model `offload train-detector` builds: 8 layers from ~100 B to ~15 KB per frame.
    /// Layers 0–5 each code F (the low rates); layer 6 (32 channels) and layer 7 (96 channels,
    /// as many as F has) code the residual of the layers below, so the top layer count can come
    /// close to the uncompressed tensor.
    pub fn ssd_split() -> Self {
        Self {
            layer_channels: vec![8, 4, 4, 8, 8, 16, 32, 96],
            hyper_channels: 32,
            z_channels: 4,
            residual_layers: 2,
        }
    }

    /// Whether layer `index` codes the residual of the layers below it.
    pub fn is_residual(&self, index: usize) -> bool {
        index > 0 && index + self.residual_layers >= self.num_layers()
    }

    /// Number of layers N.
    pub fn num_layers(&self) -> usize {
        self.layer_channels.len()
    }

    /// Shapes of layer `index`.
    pub fn geometry(&self, index: usize) -> LayerGeometry {
        LayerGeometry {
            feature_channels: SPLIT_CHANNELS,
            feature_side: SPLIT_SIZE,
            latent_channels: self.layer_channels[index],
            latent_side: self.latent_side(index),
            hyper_channels: self.hyper_channels,
            z_channels: self.z_channels,
        }
    }

    /// Side of layer `index`'s latent y.
    pub fn latent_side(&self, index: usize) -> usize {
        if index == 0 {
            SPLIT_SIZE.div_ceil(2)
        } else {
            SPLIT_SIZE
        }
    }

    /// Shape (C, H, W) of layer `index`'s latent y.
    pub fn latent_shape(&self, index: usize) -> [usize; 3] {
        let s = self.latent_side(index);
        [self.layer_channels[index], s, s]
    }

    /// Shape (C, H, W) of layer `index`'s hyper-latent z.
    pub fn z_shape(&self, index: usize) -> [usize; 3] {
        let s = self.latent_side(index).div_ceil(2).div_ceil(2);
        [self.z_channels, s, s]
    }

    /// Checks for values the codec cannot be built with.
    pub fn validate(&self) -> Result<(), String> {
        if self.layer_channels.is_empty() || self.layer_channels.len() > 64 {
            return Err(format!(
                "{} layers, expected 1..=64",
                self.layer_channels.len()
            ));
        }
        if self.residual_layers >= self.layer_channels.len() {
            return Err(format!(
                "{} residual layers of {}: the base layer codes F itself",
                self.residual_layers,
                self.layer_channels.len()
            ));
        }
        for &c in self
            .layer_channels
            .iter()
            .chain([&self.hyper_channels, &self.z_channels])
        {
            if c == 0 || c > 1024 {
                return Err(format!("channel count {c} is outside 1..=1024"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_of_the_19_by_19_split() {
        let c = SplitCodecConfig::ssd_split();
        assert!(c.validate().is_ok());
        assert_eq!(c.latent_shape(0), [8, 10, 10]);
        assert_eq!(c.z_shape(0), [4, 3, 3]);
        assert_eq!(c.latent_shape(1), [4, 19, 19]);
        assert_eq!(c.z_shape(1), [4, 5, 5]);
        let mut bad = c.clone();
        bad.layer_channels.clear();
        assert!(bad.validate().is_err());
        assert!(!c.is_residual(5) && c.is_residual(6) && c.is_residual(7));
        let mut residual = c.clone();
        residual.residual_layers = 0;
        assert!(residual.validate().is_ok());
        assert!((0..8).all(|i| !residual.is_residual(i)));
        residual.residual_layers = 8;
        assert!(residual.validate().is_err());
    }
}
