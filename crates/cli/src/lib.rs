//! Glue between the model, the codec and the transport, shared by the `offload` subcommands and
//! the end-to-end tests: the Fashion-MNIST split model and the split SSD detector as the agent's
//! [`DeviceModel`] and as the edge server's [`FrameHandler`], and a bandwidth trace as the
//! emulator's capacity schedule.
#![warn(missing_docs)]

pub mod detector_glue;
pub mod split_glue;
pub mod trace_schedule;

pub use detector_glue::{DetectorDevice, DetectorHandler, RgbFrame};
pub use split_glue::{SplitDevice, SplitHandler, model_id32};
pub use trace_schedule::TraceSchedule;
