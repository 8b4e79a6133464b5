//! The wearable agent: per frame, encode, ask the controller, run locally or offload.
#![warn(missing_docs)]
