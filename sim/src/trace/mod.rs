//! Bandwidth traces: readers for every format of `../shared/traces`, one piecewise-constant
//! [`Trace`] type the simulator integrates exactly, a writer, and seeded generators.
//!
//! ```no_run
//! use offload_sim::trace::{LoadOptions, Trace};
//! # fn main() -> Result<(), offload_sim::trace::TraceError> {
//! let t = Trace::load("../shared/traces/mahimahi-cellular/ATT-LTE-driving.up".as_ref(), &LoadOptions::default())?;
//! // When do 40 kB sent at t = 12.5 s finish crossing the uplink?
//! let done = t.transfer_end(12.5, 40_000.0 * 8.0);
//! # let _ = done; Ok(()) }
//! ```
//!
//! Units: seconds and bit/s everywhere; each reader converts its file's units (see
//! [`TraceFormat`]). A trace wraps around at its end, like mahimahi.

mod error;
pub mod generate;
mod grid;
mod load;
mod options;
mod piecewise;
mod read;
mod sniff;
mod write;

pub use error::TraceError;
pub use options::{
    BadSeries, Direction, GapFill, LoadOptions, RateColumn, SeriesSelect, TraceFormat,
    UnknownFormatId,
};
pub use piecewise::{Segment, Trace};
pub use sniff::sniff;
