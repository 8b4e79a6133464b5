//! Trace-driven link emulator in user space: a UDP relay between agent and server whose uplink
//! follows a capacity schedule (a bandwidth trace), with a drop-tail byte queue, propagation
//! delay and seeded random loss; the downlink has a fixed rate or a second schedule.
//!
//! [`LinkModel`] is the sans-IO core (time in, exit time out); [`Emulator`] drives it with
//! tokio sockets and timers.

mod link;
mod relay;
mod schedule;

pub use link::{LinkConfig, LinkModel, LinkStats, PacketRecord, Verdict};
pub use relay::{Emulator, EmulatorConfig, EmulatorError, EmulatorStats};
pub use schedule::{CapacitySchedule, ConstantRate, Delayed, PiecewiseConstant, ScheduleError};
