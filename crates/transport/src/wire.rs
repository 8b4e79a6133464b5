//! The byte layout of every message on the wire, and its bounded decoding.
//!
//! Sans-IO: these functions turn fixed-size byte arrays into validated values and back. The
//! async code in `server` and `client` reads exactly the sizes these functions allow, so a size
//! read from the wire is always checked against [`Limits`] before any byte is read or stored.
//! All integers are big-endian. `docs/protocol.md` describes the same layout for humans.

use std::time::Duration;

/// Application protocol name negotiated with TLS ALPN.
pub const ALPN: &[u8] = b"offload/1";
/// First four bytes of the authentication message.
pub const AUTH_MAGIC: [u8; 4] = *b"OFLD";
/// Protocol version carried in the authentication message.
pub const PROTOCOL_VERSION: u16 = 4;
/// Largest accepted access token, in bytes.
pub const MAX_TOKEN_BYTES: usize = 1024;
/// Size of the fixed part of the authentication message: magic, version, token length.
pub const AUTH_FIXED_LEN: usize = 8;
/// Byte the server sends back when the token is accepted.
pub const AUTH_ACCEPTED: u8 = 0;
/// Size of the fixed part of a frame request.
pub const FRAME_FIXED_LEN: usize = 22;
/// Size of the length prefix in front of every layer record.
pub const LAYER_PREFIX_LEN: usize = 4;
/// Size of the fixed part of a reply (status, frame id, layer count, header, handler and reply
/// times, the server's minimum RTT, the frame's origin and its arrival on the server's clock,
/// the server's clock's identity, and the arrival of the ACK of an earlier reply).
pub const REPLY_FIXED_LEN: usize = 67;
/// Size of one per-layer receipt in a reply.
pub const RECEIPT_LEN: usize = 20;
/// Size of the payload length field that follows the receipts.
pub const PAYLOAD_PREFIX_LEN: usize = 4;

/// QUIC application error codes used to close connections and reset or stop streams.
pub mod codes {
    use quinn::VarInt;
    /// Normal close (client or server shutting down).
    pub const CLOSED: VarInt = VarInt::from_u32(0);
    /// The agent did not present a valid token in time.
    pub const UNAUTHENTICATED: VarInt = VarInt::from_u32(0x10);
    /// The agent spoke a protocol version or magic the server does not know.
    pub const BAD_HELLO: VarInt = VarInt::from_u32(0x11);
    /// The server is shutting down.
    pub const SHUTDOWN: VarInt = VarInt::from_u32(0x12);
    /// A frame's remaining layers were cancelled at its deadline (stream reset by the agent).
    pub const CANCELLED: VarInt = VarInt::from_u32(0x20);
    /// The server stopped reading a frame (bad frame, or past its deadline).
    pub const STOP_READING: VarInt = VarInt::from_u32(0x21);
}

/// Bounds on every size and count that the server accepts from the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest opaque codec header, in bytes.
    pub max_header_bytes: u32,
    /// Largest single layer record, in bytes.
    pub max_layer_bytes: u32,
    /// Most layers a frame may announce.
    pub max_layers: u16,
    /// Largest frame (codec header plus all layer records), in bytes.
    pub max_frame_bytes: u64,
    /// Largest deadline a frame may announce; longer ones are clamped to this.
    pub max_deadline: Duration,
    /// Largest result payload in a reply, in bytes (the client enforces it too).
    pub max_payload_bytes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 64 * 1024,
            max_layer_bytes: 4 * 1024 * 1024,
            max_layers: 64,
            max_frame_bytes: 16 * 1024 * 1024,
            max_deadline: Duration::from_secs(10),
            max_payload_bytes: 1024 * 1024,
        }
    }
}

/// Why bytes from the wire were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The authentication message did not start with [`AUTH_MAGIC`].
    #[error("auth message: bad magic {found:02x?} (expected \"OFLD\")")]
    BadMagic {
        /// The four bytes found.
        found: [u8; 4],
    },
    /// The agent speaks another protocol version.
    #[error(
        "auth message: unsupported protocol version {found} (server speaks {PROTOCOL_VERSION})"
    )]
    BadVersion {
        /// The version found.
        found: u16,
    },
    /// A length or count field exceeds its limit.
    #[error("{field} = {value} exceeds the limit of {limit}")]
    TooLarge {
        /// Which field (e.g. `layer[3].len`).
        field: String,
        /// The value read.
        value: u64,
        /// The limit it broke.
        limit: u64,
    },
    /// A field that must not be zero was zero.
    #[error("{field} must not be zero")]
    Zero {
        /// Which field.
        field: &'static str,
    },
    /// The bytes ended before the message did.
    #[error("truncated {what}: got {got} of {need} bytes")]
    Truncated {
        /// Which part of the message.
        what: String,
        /// Bytes available.
        got: u64,
        /// Bytes needed.
        need: u64,
    },
    /// A reply carried an unknown status byte.
    #[error("reply: unknown status byte {0}")]
    UnknownStatus(u8),
    /// A reply's receipts are not in time order or contradict each other.
    #[error("reply: {0}")]
    Inconsistent(String),
}

/// The fixed part of the authentication message (the token follows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthHello {
    /// Length of the token that follows, already checked against [`MAX_TOKEN_BYTES`].
    pub token_len: u16,
}

impl AuthHello {
    /// Encodes the full authentication message (fixed part and token).
    ///
    /// Fails when the token is empty or longer than [`MAX_TOKEN_BYTES`].
    pub fn encode(token: &[u8]) -> Result<Vec<u8>, WireError> {
        check_token_len(token.len() as u64)?;
        let mut out = Vec::with_capacity(AUTH_FIXED_LEN + token.len());
        out.extend_from_slice(&AUTH_MAGIC);
        out.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
        out.extend_from_slice(&(token.len() as u16).to_be_bytes());
        out.extend_from_slice(token);
        Ok(out)
    }

    /// Decodes and validates the fixed part.
    pub fn decode(bytes: &[u8; AUTH_FIXED_LEN]) -> Result<Self, WireError> {
        let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
        if magic != AUTH_MAGIC {
            return Err(WireError::BadMagic { found: magic });
        }
        let version = u16::from_be_bytes([bytes[4], bytes[5]]);
        if version != PROTOCOL_VERSION {
            return Err(WireError::BadVersion { found: version });
        }
        let token_len = u16::from_be_bytes([bytes[6], bytes[7]]);
        check_token_len(u64::from(token_len))?;
        Ok(Self { token_len })
    }
}

fn check_token_len(len: u64) -> Result<(), WireError> {
    if len == 0 {
        return Err(WireError::Zero { field: "token_len" });
    }
    if len > MAX_TOKEN_BYTES as u64 {
        return Err(WireError::TooLarge {
            field: "token_len".into(),
            value: len,
            limit: MAX_TOKEN_BYTES as u64,
        });
    }
    Ok(())
}

/// The fixed part of a frame request; the codec header and the layer records follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameFixed {
    /// Agent-chosen frame identifier, echoed in the reply.
    pub frame_id: u64,
    /// Which split model (and codec) produced the layers.
    pub model_id: u32,
    /// Time budget for the upload, relative to when the agent started sending, in microseconds.
    pub deadline_us: u32,
    /// Number of layers the agent intends to send (it may send fewer).
    pub layer_count: u16,
    /// Length of the opaque codec header that follows.
    pub header_len: u32,
}

impl FrameFixed {
    /// Encodes the fixed part.
    pub fn encode(&self) -> [u8; FRAME_FIXED_LEN] {
        let mut out = [0u8; FRAME_FIXED_LEN];
        out[0..8].copy_from_slice(&self.frame_id.to_be_bytes());
        out[8..12].copy_from_slice(&self.model_id.to_be_bytes());
        out[12..16].copy_from_slice(&self.deadline_us.to_be_bytes());
        out[16..18].copy_from_slice(&self.layer_count.to_be_bytes());
        out[18..22].copy_from_slice(&self.header_len.to_be_bytes());
        out
    }

    /// Decodes the fixed part and checks its sizes against `limits`.
    pub fn decode(bytes: &[u8; FRAME_FIXED_LEN], limits: &Limits) -> Result<Self, WireError> {
        let fixed = Self {
            frame_id: u64::from_be_bytes(array(&bytes[0..8])),
            model_id: u32::from_be_bytes(array(&bytes[8..12])),
            deadline_us: u32::from_be_bytes(array(&bytes[12..16])),
            layer_count: u16::from_be_bytes(array(&bytes[16..18])),
            header_len: u32::from_be_bytes(array(&bytes[18..22])),
        };
        check_max(
            "header_len",
            fixed.header_len.into(),
            limits.max_header_bytes.into(),
        )?;
        check_max(
            "layer_count",
            fixed.layer_count.into(),
            limits.max_layers.into(),
        )?;
        if fixed.layer_count == 0 {
            return Err(WireError::Zero {
                field: "layer_count",
            });
        }
        Ok(fixed)
    }

    /// The announced deadline, clamped to `limits.max_deadline`.
    pub fn deadline(&self, limits: &Limits) -> Duration {
        Duration::from_micros(self.deadline_us.into()).min(limits.max_deadline)
    }
}

/// Decodes a layer record's length prefix and checks it against the per-layer limit and the
/// bytes the frame still has left (`frame_bytes_so_far` counts everything read before it).
pub fn decode_layer_len(
    index: usize,
    prefix: &[u8; LAYER_PREFIX_LEN],
    frame_bytes_so_far: u64,
    limits: &Limits,
) -> Result<u32, WireError> {
    let len = u32::from_be_bytes(*prefix);
    check_max(
        &format!("layer[{index}].len"),
        len.into(),
        limits.max_layer_bytes.into(),
    )?;
    let total = frame_bytes_so_far + u64::from(len);
    check_max(
        &format!("frame bytes through layer[{index}]"),
        total,
        limits.max_frame_bytes,
    )?;
    Ok(len)
}

/// Encodes a layer record's length prefix.
///
/// Fails when the layer does not fit the 32-bit length field.
pub fn encode_layer_len(len: usize) -> Result<[u8; LAYER_PREFIX_LEN], WireError> {
    let len32 = u32::try_from(len).map_err(|_| WireError::TooLarge {
        field: "layer len".into(),
        value: len as u64,
        limit: u32::MAX.into(),
    })?;
    Ok(len32.to_be_bytes())
}

/// Outcome of a frame, as the first byte of the reply says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyStatus {
    /// The handler ran on the received layers; the payload is its result.
    Ok = 0,
    /// The frame broke the protocol or a limit; the payload is a UTF-8 explanation.
    BadFrame = 1,
    /// The handler failed; the payload is a UTF-8 explanation.
    HandlerFailed = 2,
    /// The server had no capacity for the frame; the payload is a UTF-8 explanation.
    Overloaded = 3,
    /// Not even the first layer arrived before the deadline; the payload is empty.
    NoLayers = 4,
}

impl ReplyStatus {
    fn from_byte(b: u8) -> Result<Self, WireError> {
        Ok(match b {
            0 => Self::Ok,
            1 => Self::BadFrame,
            2 => Self::HandlerFailed,
            3 => Self::Overloaded,
            4 => Self::NoLayers,
            other => return Err(WireError::UnknownStatus(other)),
        })
    }
}

impl std::fmt::Display for ReplyStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ok => "ok",
            Self::BadFrame => "bad frame",
            Self::HandlerFailed => "handler failed",
            Self::Overloaded => "overloaded",
            Self::NoLayers => "no layers arrived",
        })
    }
}

/// When and how much of one layer the server received, in server-relative microseconds
/// (zero = the first byte of the frame's stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireReceipt {
    /// Bytes of the layer record, length prefix included.
    pub bytes: u32,
    /// When the record's first byte was read.
    pub first_us: u64,
    /// When the record's last byte was read.
    pub last_us: u64,
}

/// The fixed part of a reply; the receipts and the payload follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyFixed {
    /// Outcome.
    pub status: ReplyStatus,
    /// The frame id from the request (0 when the request's header could not be read).
    pub frame_id: u64,
    /// Number of complete layers received (and receipts that follow).
    pub layers_received: u16,
    /// When the codec header was completely received, server-relative microseconds.
    pub header_done_us: u32,
    /// How long the handler ran, in microseconds.
    pub handler_us: u32,
    /// When the reply was written, server-relative microseconds: with the receipts it tells the
    /// agent how long the server held the frame, so the agent can place the frame's arrival on
    /// its own clock.
    pub reply_us: u32,
    /// The server's minimum RTT on this connection, microseconds (0 when unknown). Measured on
    /// replies acknowledged by the agent's small ACK packets, it is the path's propagation
    /// round trip with hardly any uplink serialisation in it, unlike the agent's own minimum,
    /// whose samples carry frames up a possibly slow uplink.
    pub min_rtt_us: u32,
    /// The time zero of this reply's server-relative times (the frame's `header_done_us`,
    /// receipts and `reply_us`) on the server's clock, microseconds since the server started.
    /// One clock for all of a connection's frames: the agent maps it onto its own through the
    /// replies' fastest crossings, without the per-frame scheduling delays (docs/protocol.md,
    /// "link sample").
    pub origin_us: u64,
    /// When the server's socket received the datagram that completed the last received layer,
    /// on the server's clock (microseconds since the server started; 0: unknown). Earlier than
    /// `origin_us + last_us` of the last receipt by the wake-ups between the socket and the
    /// frame's task.
    pub arrived_us: u64,
    /// Which clock `origin_us`, `arrived_us` and `ack_arrived_us` are on: the server's start on
    /// its wall clock, microseconds since the UNIX epoch. A reconnection to the same server
    /// keeps its clock; a restarted server has another.
    pub server_id: u64,
    /// The frame whose reply the agent acknowledged last (on this connection, as far as the
    /// server knew when writing this reply) with an ACK-only packet, 0 if none.
    pub acked_frame_id: u64,
    /// When the server's socket received that ACK-only packet, on the server's clock
    /// (microseconds since the server started; 0: none).
    pub ack_arrived_us: u64,
}

impl ReplyFixed {
    /// Decodes the fixed part and bounds the receipt count by `max_layers`.
    pub fn decode(bytes: &[u8; REPLY_FIXED_LEN], max_layers: u16) -> Result<Self, WireError> {
        let fixed = Self {
            status: ReplyStatus::from_byte(bytes[0])?,
            frame_id: u64::from_be_bytes(array(&bytes[1..9])),
            layers_received: u16::from_be_bytes(array(&bytes[9..11])),
            header_done_us: u32::from_be_bytes(array(&bytes[11..15])),
            handler_us: u32::from_be_bytes(array(&bytes[15..19])),
            reply_us: u32::from_be_bytes(array(&bytes[19..23])),
            min_rtt_us: u32::from_be_bytes(array(&bytes[23..27])),
            origin_us: u64::from_be_bytes(array(&bytes[27..35])),
            arrived_us: u64::from_be_bytes(array(&bytes[35..43])),
            server_id: u64::from_be_bytes(array(&bytes[43..51])),
            acked_frame_id: u64::from_be_bytes(array(&bytes[51..59])),
            ack_arrived_us: u64::from_be_bytes(array(&bytes[59..67])),
        };
        check_max(
            "reply.layers_received",
            fixed.layers_received.into(),
            max_layers.into(),
        )?;
        Ok(fixed)
    }
}

/// A whole reply, as the server builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Fixed part.
    pub fixed: ReplyFixed,
    /// One receipt per received layer, in layer order.
    pub receipts: Vec<WireReceipt>,
    /// Result payload or error text.
    pub payload: Vec<u8>,
}

impl Reply {
    /// Encodes the reply. The caller keeps `receipts.len()` equal to `fixed.layers_received`
    /// and the payload within its limit; both are checked here too.
    pub fn encode(&self, limits: &Limits) -> Result<Vec<u8>, WireError> {
        if self.receipts.len() != usize::from(self.fixed.layers_received) {
            return Err(WireError::Inconsistent(format!(
                "{} receipts for {} layers",
                self.receipts.len(),
                self.fixed.layers_received
            )));
        }
        check_max(
            "reply.payload_len",
            self.payload.len() as u64,
            limits.max_payload_bytes.into(),
        )?;
        let mut out = Vec::with_capacity(
            REPLY_FIXED_LEN
                + RECEIPT_LEN * self.receipts.len()
                + PAYLOAD_PREFIX_LEN
                + self.payload.len(),
        );
        out.push(self.fixed.status as u8);
        out.extend_from_slice(&self.fixed.frame_id.to_be_bytes());
        out.extend_from_slice(&self.fixed.layers_received.to_be_bytes());
        out.extend_from_slice(&self.fixed.header_done_us.to_be_bytes());
        out.extend_from_slice(&self.fixed.handler_us.to_be_bytes());
        out.extend_from_slice(&self.fixed.reply_us.to_be_bytes());
        out.extend_from_slice(&self.fixed.min_rtt_us.to_be_bytes());
        out.extend_from_slice(&self.fixed.origin_us.to_be_bytes());
        out.extend_from_slice(&self.fixed.arrived_us.to_be_bytes());
        out.extend_from_slice(&self.fixed.server_id.to_be_bytes());
        out.extend_from_slice(&self.fixed.acked_frame_id.to_be_bytes());
        out.extend_from_slice(&self.fixed.ack_arrived_us.to_be_bytes());
        for r in &self.receipts {
            out.extend_from_slice(&r.bytes.to_be_bytes());
            out.extend_from_slice(&r.first_us.to_be_bytes());
            out.extend_from_slice(&r.last_us.to_be_bytes());
        }
        out.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.payload);
        Ok(out)
    }

    /// Decodes a complete reply held in memory, checking every count and length.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Self, WireError> {
        let mut cursor = Cursor { bytes, pos: 0 };
        let fixed = ReplyFixed::decode(
            &cursor.take::<REPLY_FIXED_LEN>("reply fixed part")?,
            limits.max_layers,
        )?;
        let mut receipts = Vec::with_capacity(usize::from(fixed.layers_received));
        for i in 0..usize::from(fixed.layers_received) {
            let raw = cursor.take::<RECEIPT_LEN>(&format!("reply receipt[{i}]"))?;
            receipts.push(decode_receipt(i, &raw)?);
        }
        let len = u32::from_be_bytes(cursor.take::<PAYLOAD_PREFIX_LEN>("reply payload length")?);
        check_max(
            "reply.payload_len",
            len.into(),
            limits.max_payload_bytes.into(),
        )?;
        let rest = &bytes[cursor.pos..];
        if rest.len() != len as usize {
            return Err(WireError::Truncated {
                what: "reply payload".into(),
                got: rest.len() as u64,
                need: len.into(),
            });
        }
        Ok(Self {
            fixed,
            receipts,
            payload: rest.to_vec(),
        })
    }

    /// Largest encoded reply allowed under `limits`, used to bound the client's read.
    pub fn max_encoded_len(limits: &Limits) -> usize {
        REPLY_FIXED_LEN
            + RECEIPT_LEN * usize::from(limits.max_layers)
            + PAYLOAD_PREFIX_LEN
            + limits.max_payload_bytes as usize
    }
}

fn decode_receipt(index: usize, raw: &[u8; RECEIPT_LEN]) -> Result<WireReceipt, WireError> {
    let r = WireReceipt {
        bytes: u32::from_be_bytes(array(&raw[0..4])),
        first_us: u64::from_be_bytes(array(&raw[4..12])),
        last_us: u64::from_be_bytes(array(&raw[12..20])),
    };
    if r.last_us < r.first_us {
        return Err(WireError::Inconsistent(format!(
            "receipt[{index}] ends at {} us before it starts at {} us",
            r.last_us, r.first_us
        )));
    }
    Ok(r)
}

fn check_max(field: &str, value: u64, limit: u64) -> Result<(), WireError> {
    if value > limit {
        return Err(WireError::TooLarge {
            field: field.to_owned(),
            value,
            limit,
        });
    }
    Ok(())
}

/// Copies a slice of known length into an array; callers slice with constant bounds.
fn array<const N: usize>(slice: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(slice);
    out
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self, what: &str) -> Result<[u8; N], WireError> {
        let end = self.pos + N;
        let Some(slice) = self.bytes.get(self.pos..end) else {
            return Err(WireError::Truncated {
                what: what.to_owned(),
                got: (self.bytes.len() - self.pos) as u64,
                need: N as u64,
            });
        };
        self.pos = end;
        Ok(array(slice))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frame_fixed_round_trips() {
        let f = FrameFixed {
            frame_id: 7,
            model_id: 3,
            deadline_us: 250_000,
            layer_count: 4,
            header_len: 100,
        };
        assert_eq!(FrameFixed::decode(&f.encode(), &Limits::default()), Ok(f));
    }

    #[test]
    fn oversized_fields_are_rejected() {
        let limits = Limits::default();
        let f = FrameFixed {
            frame_id: 1,
            model_id: 0,
            deadline_us: 1,
            layer_count: limits.max_layers + 1,
            header_len: 0,
        };
        assert!(matches!(
            FrameFixed::decode(&f.encode(), &limits),
            Err(WireError::TooLarge { .. })
        ));
        let too_long = (limits.max_layer_bytes + 1).to_be_bytes();
        assert!(decode_layer_len(0, &too_long, 0, &limits).is_err());
        let fits = limits.max_layer_bytes.to_be_bytes();
        assert!(decode_layer_len(5, &fits, limits.max_frame_bytes, &limits).is_err());
        assert!(AuthHello::encode(&vec![1u8; MAX_TOKEN_BYTES + 1]).is_err());
    }

    #[test]
    fn reply_round_trips() {
        let reply = Reply {
            fixed: ReplyFixed {
                status: ReplyStatus::Ok,
                frame_id: 9,
                layers_received: 2,
                header_done_us: 10,
                handler_us: 500,
                reply_us: 640,
                min_rtt_us: 40_000,
                origin_us: 12_345_678_901,
                arrived_us: 12_345_678_000,
                server_id: 1_795_000_000_000_000,
                acked_frame_id: 8,
                ack_arrived_us: 12_345_600_000,
            },
            receipts: vec![
                WireReceipt {
                    bytes: 104,
                    first_us: 10,
                    last_us: 20,
                },
                WireReceipt {
                    bytes: 54,
                    first_us: 20,
                    last_us: 30,
                },
            ],
            payload: b"cat 0.9".to_vec(),
        };
        let limits = Limits::default();
        let bytes = reply.encode(&limits).expect("encodes");
        assert_eq!(Reply::decode(&bytes, &limits), Ok(reply));
        assert!(Reply::decode(&bytes[..bytes.len() - 1], &limits).is_err());
    }

    proptest! {
        #[test]
        fn decoders_never_panic_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let limits = Limits::default();
            let _ = Reply::decode(&bytes, &limits);
            if bytes.len() >= FRAME_FIXED_LEN {
                let _ = FrameFixed::decode(&array(&bytes[..FRAME_FIXED_LEN]), &limits);
            }
            if bytes.len() >= AUTH_FIXED_LEN {
                let _ = AuthHello::decode(&array(&bytes[..AUTH_FIXED_LEN]));
            }
        }

        #[test]
        fn accepted_frame_headers_respect_limits(bytes in proptest::array::uniform22(any::<u8>())) {
            let limits = Limits::default();
            if let Ok(f) = FrameFixed::decode(&bytes, &limits) {
                prop_assert!(f.header_len <= limits.max_header_bytes);
                prop_assert!(f.layer_count >= 1 && f.layer_count <= limits.max_layers);
            }
        }
    }
}
