//! Trace readers, link/energy/battery models, the trace-driven simulator and the evaluation harness.
#![warn(missing_docs)]

pub mod battery;
pub mod bound;
pub mod fallback;
pub mod frames;
pub mod harness;
pub mod link;
pub mod oracle;
pub mod output;
pub mod record;
pub mod simulator;
pub mod trace;

pub use record::{FrameRecord, Summary};
pub use simulator::{SimConfig, simulate, simulate_records, simulate_with};
