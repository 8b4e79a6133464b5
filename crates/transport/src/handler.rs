//! What the edge server does with a frame: a trait the CLI implements with the model.

use std::net::SocketAddr;

use bytes::Bytes;

/// The part of a frame that reached the server before its deadline.
#[derive(Debug, Clone)]
pub struct ReceivedFrame {
    /// The agent's address.
    pub peer: SocketAddr,
    /// Agent-chosen frame id.
    pub frame_id: u64,
    /// Which split model produced the layers.
    pub model_id: u32,
    /// How many layers the agent announced.
    pub layers_announced: u16,
    /// The opaque codec header.
    pub header: Bytes,
    /// The complete layers received, in order (a prefix of what was announced; never empty).
    pub layers: Vec<Bytes>,
}

/// A handler's failure, sent back to the agent as text.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    /// Explanation for the agent (and the server log).
    pub message: String,
}

impl HandlerError {
    /// Builds an error from any message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Turns a received frame into a result payload. Runs on a blocking thread, so it may do heavy
/// compute (model inference); the server bounds how many run at once.
pub trait FrameHandler: Send + Sync + 'static {
    /// Computes the result payload for `frame`.
    fn handle(&self, frame: &ReceivedFrame) -> Result<Vec<u8>, HandlerError>;
}

impl<F> FrameHandler for F
where
    F: Fn(&ReceivedFrame) -> Result<Vec<u8>, HandlerError> + Send + Sync + 'static,
{
    fn handle(&self, frame: &ReceivedFrame) -> Result<Vec<u8>, HandlerError> {
        self(frame)
    }
}
