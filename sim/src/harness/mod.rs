//! The evaluation harness: every trace × every policy × every setting, in parallel, with the
//! offline oracle and the relaxation bound, into tables, a report and plots.
//!
//! [`discover`] finds the trace files, [`evaluate`] replays them (rayon, one job per trace and
//! setting, an indicatif progress bar), [`report`] writes `results.csv`, `results.json` and
//! `report.md`, [`plot`] the figures. The same inputs give the same files, byte for byte: jobs
//! are collected in input order, nothing depends on thread timing, and no timing is written.

pub mod discover;
pub mod plot;
pub mod report;
pub mod run;

pub use discover::{TraceFile, discover};
pub use run::{
    EvalError, EvalInputs, EvalOutput, LatencyHistogram, PolicyEntry, Row, Setting, evaluate,
};
