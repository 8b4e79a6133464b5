//! QUIC transport between wearable agent and edge server, and the trace-driven link emulator.
#![warn(missing_docs)]
