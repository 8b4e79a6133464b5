//! Trace readers, link/energy/battery models, the trace-driven simulator and the evaluation harness.
#![warn(missing_docs)]
