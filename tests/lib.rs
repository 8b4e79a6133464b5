//! End-to-end tests across the offload crates live in this package's test targets.
