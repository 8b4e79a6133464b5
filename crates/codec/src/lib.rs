//! Layered learnt feature codec: entropy models, range coding and the versioned container.
//!
//! The features of a frame are coded as `N` ordered layers. Layer `i` has a hyper-latent `z_i`
//! and a latent `y_i` (CompressAI's mean-scale hyperprior). This crate sees only integers:
//!
//! * [`FactorizedPrior`] codes `z` (CHW order) with one learnt categorical per channel. The
//!   model evaluates its learnt densities into [`ChannelPmf`]s once; the quantised tables are
//!   serde-serialisable and belong in the model manifest.
//! * [`GaussianConditional`] codes the symbols `q = round(y - mean)` of `y`, each under a
//!   zero-mean Gaussian picked from a fixed scale table by an integer scale index
//!   ([`GaussianConditional::scale_index`] maps the model's predicted scale to it).
//! * Both use [`CategoricalTable`]s (16-bit fixed-point frequencies over a symbol range plus an
//!   escape symbol, see [`escape`]) and constriction's range coder, so *every* `i32`
//!   round-trips. A layer's `z` and `y` share one stream whose end is cut to the fewest bytes
//!   that still decode, so a record costs its ideal code length plus about one byte.
//! * [`container`] lays a frame out as a header and one CRC-checked record per layer; decoders
//!   validate every field against the model they expect ([`ModelSpec`]) before allocating.
//!
//! # Encoding a frame (sender)
//!
//! ```
//! use offload_codec::*;
//!
//! let spec = ModelSpec {
//!     model_id: ModelId::from_manifest(b"the model manifest"),
//!     layers: vec![LayerSpec { y: Shape::new(2, 4, 4), z: Shape::new(2, 1, 1) }; 2],
//! };
//! let gaussian = GaussianConditional::default_table();
//! let pmf = ChannelPmf { min_symbol: -2, pmf: vec![0.1, 0.2, 0.4, 0.2, 0.09] };
//! let prior = FactorizedPrior::from_pmfs(vec![pmf; 2])?;
//!
//! let header = FrameHeader::new(&spec, 7);
//! let mut records = Vec::new();
//! for (index, layer) in spec.layers.iter().enumerate() {
//!     let z = vec![0, 1];                          // round(z) from the hyper-analysis
//!     let y = vec![0i32; layer.y.numel()];         // round(y - mean)
//!     let scales = vec![0.7f32; layer.y.numel()];  // from the hyper-synthesis of decoded z
//!     let indices = gaussian.scale_indices(&scales);
//!     records.push(LayerRecord::encode(index as u16, layer, &prior, &gaussian, &z, &y, &indices)?);
//! }
//! // Either one buffer, or `write_header` + one `write_layer` message per layer.
//! let bytes = encode_frame(&header, &records)?;
//!
//! // Receiver: any prefix of layers decodes.
//! let frame = decode_frame(&bytes, &spec)?;
//! for record in &frame.layers {
//!     let layer = &spec.layers[usize::from(record.index)];
//!     let (z, pending) = record.decode_z(layer, &prior)?;
//!     // ... the model runs the hyper-synthesis on z and gets the same scales ...
//!     let indices = gaussian.scale_indices(&vec![0.7f32; layer.y.numel()]);
//!     let y = pending.decode_y(&gaussian, &indices)?;
//!     assert_eq!(z, vec![0, 1]);
//!     assert_eq!(y.len(), layer.y.numel());
//! }
//! # Ok::<(), CodecError>(())
//! ```
//!
//! # Determinism
//!
//! Encoder and decoder must use identical tables and identical scale indices. Tables are built
//! with integer arithmetic from IEEE-exact `f64` operations and the pure-Rust `libm`, and can
//! be shipped serialised; scale indices are the model's responsibility (it must compute
//! bit-identical scales on both ends, e.g. the same CPU code path).
#![warn(missing_docs)]

mod coder;
pub mod container;
mod error;
pub mod escape;
mod factorized;
mod gaussian;
mod table;

pub use coder::{MAX_BITS_PER_SYMBOL, max_stream_bytes};
pub use container::{
    Frame, FrameHeader, FrameReader, LayerRecord, LayerSpec, ModelId, ModelSpec, PendingY, Shape,
    decode_frame, encode_frame, read_header, read_layer, write_header, write_layer,
};
pub use error::{CodecError, StreamKind};
pub use factorized::{ChannelPmf, FactorizedPrior};
pub use gaussian::{
    DEFAULT_NUM_SCALES, DEFAULT_SCALE_MAX, DEFAULT_SCALE_MIN, GaussianConditional, MAX_RADIUS,
    TAIL_SIGMAS, default_scales,
};
pub use table::{CategoricalTable, MAX_ALPHABET, PRECISION, TOTAL_FREQUENCY};
