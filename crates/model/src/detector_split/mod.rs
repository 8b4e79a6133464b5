//! SSD-MobileNetV2 split at its stride-16 tensor (96×19×19) with the layered codec: the
//! architecture, its manifest, the real frames it is trained and measured on, the teacher cache,
//! distillation from the uncompressed detector, detection fidelity, and the inference API.
//!
//! Layer 0 is a 5×5 stride-2 reduction to 10×10, layers 1.. are 1×1 channel reductions at 19×19,
//! each with its own mean-scale hyperprior ([`crate::layer::CodecLayer`]); the server sums the
//! received layers' expansions back into a 96×19×19 tensor and runs the frozen rest of the
//! detector on it (one decoder for every layer count).

pub mod codec;
pub mod config;
pub mod data;
pub mod fidelity;
pub mod manifest;
pub mod model;
pub mod save;
pub mod teacher;
pub mod train;

pub use codec::SplitCodec;
pub use config::SplitCodecConfig;
pub use model::DetectorSplit;
pub use train::DistillConfig;
