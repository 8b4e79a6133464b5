//! What a frame costs on the uplink beyond its layers.
//!
//! The controller plans with bytes on the link, and on this protocol the fixed costs of a frame
//! are not small next to its layers: a Fashion-MNIST base layer is ~160 bytes, and the frame
//! header, the record length prefixes, QUIC's packet header, its AEAD tag and STREAM framing,
//! and the acknowledgement the agent sends for the reply add roughly another 100. Planning with
//! the codec's bytes alone makes a small frame look twice as cheap as it is.

use crate::wire::{FRAME_FIXED_LEN, LAYER_PREFIX_LEN};

/// A model of the uplink bytes (UDP payloads) a frame puts on the link.
///
/// `wire_bytes(s) = s + packets(s) · per_packet + per_frame`, where `s` is the frame's stream
/// bytes (fixed header, codec header, and per layer its length prefix and body) and
/// `packets(s) = ⌈s / (max_udp_payload − per_packet)⌉`. IP and UDP headers are not counted,
/// like the link emulator, which charges UDP payloads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WireOverhead {
    /// QUIC bytes per packet around the stream data: the short header (flags, the server's
    /// 8-byte connection id, the packet number), the 16-byte AEAD tag, and the STREAM frame's
    /// type, stream id and length, plus, on average, the ACK frame some packets carry along.
    pub per_packet: u64,
    /// Largest UDP payload of a packet: quinn's initial MTU, 1200, until path-MTU discovery
    /// finds more ([`WireOverhead::with_mtu`]).
    pub max_udp_payload: u64,
    /// Uplink bytes per frame outside its data packets: the ACK-only packet the agent sends for
    /// the server's reply.
    pub per_frame: u64,
}

impl Default for WireOverhead {
    /// quinn 0.11 (quinn-proto 0.11.19) with its default 8-byte connection ids and 1200-byte
    /// initial MTU. A frame's data packet carries 31 bytes besides the stream data: 1 byte of
    /// short-header flags, the 8-byte connection id (`RandomConnectionIdGenerator::default`),
    /// a 1-byte packet number while fewer than 128 packets are unacknowledged
    /// (`PacketNumber::new`), the STREAM frame's type, 2-byte stream id and 2-byte length
    /// (`StreamMeta::encode`; the length is left out only when the data fills the packet), and
    /// the 16-byte AEAD tag. About one packet in four also carries the agent's ACK frame for
    /// the server's latest packets, 7 bytes more: measured per frame in `offload compare` runs
    /// on `lte-walk` × 0.03 (3 598 one-packet frames: 74 % at 31 bytes, 25 % at 38, mean 32.8),
    /// hence 33. (This was 40 until 2026-11-26, an estimate: the agent's link samples and plans
    /// then counted 2 % more bytes than the link carried.) `per_frame`: the ACK-only packet,
    /// 32 bytes, about one per frame, measured the same way.
    fn default() -> Self {
        Self {
            per_packet: 33,
            max_udp_payload: 1200,
            per_frame: 32,
        }
    }
}

impl WireOverhead {
    /// This model with packets of `mtu` bytes of UDP payload (the connection's current path
    /// MTU), if known and larger than the per-packet overhead.
    pub fn with_mtu(self, mtu: Option<u64>) -> Self {
        match mtu {
            Some(m) if m > self.per_packet => Self {
                max_udp_payload: m,
                ..self
            },
            _ => self,
        }
    }

    /// Uplink bytes for `stream_bytes` of one frame's stream.
    pub fn wire_bytes(&self, stream_bytes: u64) -> u64 {
        stream_bytes + self.packets(stream_bytes) * self.per_packet + self.per_frame
    }

    /// QUIC packets that carry `stream_bytes` of one frame's stream.
    pub fn packets(&self, stream_bytes: u64) -> u64 {
        let room = self.max_udp_payload.saturating_sub(self.per_packet).max(1);
        stream_bytes.div_ceil(room).max(1)
    }

    /// Stream bytes of a frame with a `header_len`-byte codec header and the given layers.
    pub fn stream_bytes(header_len: u64, layer_lens: impl IntoIterator<Item = u64>) -> u64 {
        FRAME_FIXED_LEN as u64
            + header_len
            + layer_lens
                .into_iter()
                .map(|l| l + LAYER_PREFIX_LEN as u64)
                .sum::<u64>()
    }

    /// `out[k-1]` = uplink bytes of sending the codec header and the first `k` layers.
    pub fn cumulative(&self, header_len: u64, layer_lens: &[u64]) -> Vec<u64> {
        (1..=layer_lens.len())
            .map(|k| {
                self.wire_bytes(Self::stream_bytes(
                    header_len,
                    layer_lens[..k].iter().copied(),
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_frames_pay_one_packet_large_ones_one_per_mtu() {
        let o = WireOverhead::default();
        let one = o.cumulative(20, &[140]);
        assert_eq!(one, vec![22 + 20 + 4 + 140 + 33 + 32]);
        // 3 × 1000-byte layers: 3054 stream bytes over 1167-byte packet payloads = 3 packets.
        let big = o.cumulative(20, &[1000, 1000, 1000]);
        assert_eq!(big[2], 3054 + 3 * 33 + 32);
        assert!(big.windows(2).all(|w| w[0] < w[1]));
        // After path-MTU discovery (1452 B on loopback) the same frame takes 3 packets still,
        // and 4 000 stream bytes take 3 instead of 4.
        let wide = o.with_mtu(Some(1452));
        assert_eq!(wide.wire_bytes(4000), 4000 + 3 * 33 + 32);
        assert_eq!(o.wire_bytes(4000), 4000 + 4 * 33 + 32);
        assert_eq!(o.packets(4000), 4);
        assert_eq!(
            o.with_mtu(Some(20)),
            o,
            "an MTU below the overhead is ignored"
        );
    }
}
