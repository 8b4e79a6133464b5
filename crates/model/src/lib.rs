//! Split vision models in candle: task encoder, layered reduction, hyperpriors, task decoders, training.
//!
//! The model splits a Fashion-MNIST classifier after its encoder. The device computes the
//! split-point features F and reduces them into an ordered set of layers, each with its own
//! mean-scale hyperprior; any prefix of layers decodes on the server, which sums the layers'
//! expansions and runs a low-rate or high-rate task decoder. The device can instead finish the
//! model locally on uncompressed F.
#![warn(missing_docs)]

pub mod batch_norm;
pub mod blocks;
pub mod config;
pub mod conv;
pub mod data;
pub mod decoder;
pub mod density;
pub mod detector;
pub mod detector_split;
pub mod encoder;
pub mod error;
pub mod eval;
pub mod finetune;
pub mod gaussian;
pub mod hyperprior;
pub mod init;
pub mod layer;
pub mod layered;
pub mod manifest;
mod matmul;
pub mod measure;
pub mod model;
pub mod pca;
pub mod save;
pub mod split;
pub mod tf_import;
pub mod train;

pub use config::ModelConfig;
pub use data::{Dataset, Split};
pub use error::ModelError;
pub use model::{DecoderKind, Network};
pub use split::{EncodedFrame, LayerSymbols, SplitModel};
