//! Layered learnt feature codec: entropy models, ANS coding and the versioned container.
#![warn(missing_docs)]
