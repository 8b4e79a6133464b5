//! One module per subcommand; each has an `Args` (clap) and a `run`.

pub mod agent;
pub mod common;
pub mod compare;
pub mod convert_detector;
pub mod demo;
pub mod detect;
pub mod emulate;
pub mod eval;
pub mod profile;
pub mod report;
pub mod report_detector;
pub mod serve;
pub mod sim;
pub mod trace;
pub mod train;
pub mod train_detector;
