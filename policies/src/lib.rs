//! Offloading policies implementing the controller's Policy trait, with presets.
#![warn(missing_docs)]
