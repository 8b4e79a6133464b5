//! The wearable agent, as a library the device app embeds (the `offload agent` command is a thin
//! wrapper around it).
//!
//! Per frame the agent runs the task encoder and the layered codec ([`DeviceModel`]), hands the
//! frame's exact options to the sans-IO [`offload_controller::Controller`], and then either
//! finishes the model locally or sends the chosen prefix of layers to the edge server with
//! `offload-transport`. Everything it learns — its own sends, the server's delivery reports, QUIC
//! RTT and losses, battery ([`battery`]) and CPU load ([`cpu`]) readings — goes back to the
//! controller as timestamped observations on the real clock. When the server is unreachable or
//! late, the frame is finished locally: no frame is ever left without a result.
#![warn(missing_docs)]

pub mod battery;
pub mod compare;
pub mod cpu;
pub mod loopback;
pub mod model;
pub mod result;
pub mod run;
pub mod sample_error;

pub use battery::{BatteryReading, BatterySource, SimulatedBattery, SysfsBattery};
pub use cpu::CpuMonitor;
pub use model::{DeviceFrame, DeviceModel, ModelFailure};
pub use result::{DetectedObject, Prediction, ResultError, TaskResult};
pub use run::{AgentConfig, AgentError, AgentEvents, CutPlan, ServerHold, run_agent, send_window};
