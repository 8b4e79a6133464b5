//! Split vision models in candle: task encoder, layered reduction, hyperpriors, task decoders, training.
#![warn(missing_docs)]
