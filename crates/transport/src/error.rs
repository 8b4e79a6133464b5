//! Errors the agent sees, typed so it can fall back to local execution on the right ones.

use std::net::SocketAddr;
use std::time::Duration;

use crate::tls::{Fingerprint, TlsError};
use crate::wire::{ReplyStatus, WireError};

/// Why a connection or a frame failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The QUIC handshake (or the token exchange) did not finish in time: the server is down,
    /// unreachable, or the path is dead.
    #[error("connecting to {addr} timed out after {after:?}")]
    ConnectTimeout {
        /// The server.
        addr: SocketAddr,
        /// How long the agent waited.
        after: Duration,
    },
    /// The server refused or reset the connection (full, shutting down, or not a server).
    #[error("connection to {addr} refused: {reason}")]
    Refused {
        /// The server.
        addr: SocketAddr,
        /// What the connection error said.
        reason: String,
    },
    /// The server rejected the access token.
    #[error("server {addr} rejected the access token: {reason}")]
    Unauthenticated {
        /// The server.
        addr: SocketAddr,
        /// The server's close reason.
        reason: String,
    },
    /// The server presented a certificate other than the pinned one.
    #[error("server certificate fingerprint {actual} does not match the pinned {expected}")]
    CertificateMismatch {
        /// The pinned fingerprint.
        expected: Fingerprint,
        /// The fingerprint presented.
        actual: Fingerprint,
    },
    /// Earlier connection attempts failed; the next is allowed after `retry_in`.
    #[error("server {addr} unavailable: {failures} failed attempts, next try in {retry_in:?}")]
    Backoff {
        /// The server.
        addr: SocketAddr,
        /// Consecutive failed attempts.
        failures: u32,
        /// Time until the next attempt is allowed.
        retry_in: Duration,
    },
    /// An established connection was lost (idle timeout, peer closed, reset).
    #[error("connection to {addr} lost: {source}")]
    ConnectionLost {
        /// The server.
        addr: SocketAddr,
        /// quinn's reason.
        source: quinn::ConnectionError,
    },
    /// No reply arrived in time, on a connection that is still open: the link is stalled or
    /// backed up (the server's stream credit held by earlier frames), which is this frame's
    /// problem, not a reason to give up the connection (see
    /// [`TransportError::server_unavailable`]).
    #[error("frame {frame_id}: no reply within {waited:?}")]
    ReplyTimeout {
        /// The frame.
        frame_id: u64,
        /// How long the agent waited after starting to send.
        waited: Duration,
    },
    /// The server answered with an error status.
    #[error("frame {frame_id}: server replied {status}: {message}")]
    Rejected {
        /// The frame.
        frame_id: u64,
        /// The status.
        status: ReplyStatus,
        /// The server's explanation.
        message: String,
    },
    /// The server received no complete layer before the deadline.
    #[error("frame {frame_id}: no layer reached the server within its {deadline:?} deadline")]
    NothingDelivered {
        /// The frame.
        frame_id: u64,
        /// The deadline given.
        deadline: Duration,
    },
    /// The reply broke the protocol.
    #[error("frame {frame_id}: malformed reply: {source}")]
    BadReply {
        /// The frame.
        frame_id: u64,
        /// What was wrong.
        source: WireError,
    },
    /// The frame cannot be sent as given (no layers, too many, too large).
    #[error("frame {frame_id} cannot be sent: {reason}")]
    InvalidFrame {
        /// The frame.
        frame_id: u64,
        /// Why.
        reason: String,
    },
    /// A stream failed mid-frame.
    #[error("frame {frame_id}: stream error: {reason}")]
    Stream {
        /// The frame.
        frame_id: u64,
        /// What failed.
        reason: String,
    },
    /// TLS material or configuration problem.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Local socket setup failed.
    #[error("binding local UDP socket: {0}")]
    Bind(std::io::Error),
}

impl TransportError {
    /// Whether the server is unreachable or unusable right now, so the agent should run the
    /// frame locally (as opposed to a problem with this frame alone).
    ///
    /// A late reply on an open connection is not: on a cellular link a stall of several
    /// seconds leaves every frame late, and giving the connection up then (until pass H)
    /// dropped the frames queued in it, whose late reports are the controller's evidence of
    /// the stall, kept the controller's probes off until a new handshake had crossed, and put
    /// that handshake's padded packets into the stalled queue ahead of everything after it: on
    /// mahimahi's `ATT-LTE-driving` × 0.2 the agent ran locally for 0.5–0.8 s after each of
    /// two stalls had ended (docs/results/emulation.md, pass H). A server that is gone closes
    /// the connection (`ConnectionLost` at once), or, silent, lets it time out
    /// (`ClientConfig::idle_timeout`, with keep-alives while idle).
    pub fn server_unavailable(&self) -> bool {
        matches!(
            self,
            Self::ConnectTimeout { .. }
                | Self::Refused { .. }
                | Self::Backoff { .. }
                | Self::ConnectionLost { .. }
                | Self::Unauthenticated { .. }
                | Self::CertificateMismatch { .. }
                | Self::Rejected {
                    status: ReplyStatus::Overloaded,
                    ..
                }
        )
    }
}
