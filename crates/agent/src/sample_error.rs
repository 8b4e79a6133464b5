//! The agent's link samples against the truth: in a loopback run the emulator logs when its
//! bottleneck served every uplink packet, so each offloaded frame's real service interval is
//! known, and the error of what the agent measured ([`FrameReply::link_sample`]) can be split
//! into the error of the interval's start and of its end.

use offload_sim::record::percentile;
use offload_transport::FrameReply;
use offload_transport::emulator::{PacketRecord, Verdict};
use serde::Serialize;

/// UDP payloads up to this size are taken for control packets (ACK-only, RESET_STREAM,
/// MAX_STREAMS, PING): a QUIC short header with an 8-byte connection id, a small frame and the
/// 16-byte AEAD tag. The smallest frame packet (frame header, codec header, one layer record)
/// is over 150 bytes.
pub const CONTROL_PACKET_MAX: u64 = 80;

/// One offloaded frame: what the agent measured and what the emulator did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FrameService {
    /// The frame.
    pub frame: u64,
    /// When the agent started sending it (agent's clock, seconds since the client's epoch).
    pub send_start: f64,
    /// The agent's link sample: start, end (agent's clock, shifted by its one-way delay) and
    /// bytes.
    pub sample: (f64, f64, u64),
    /// The emulator's service of the frame's data packets: when the first entered the relay,
    /// when the bottleneck started on it, when it finished the last (agent's clock, shifted by
    /// the configured one-way delay), and their bytes.
    pub offered: f64,
    /// See `offered`.
    pub start: f64,
    /// See `offered`.
    pub end: f64,
    /// See `offered`.
    pub bytes: u64,
    /// Data packets of the frame.
    pub packets: u32,
    /// Whether the bottleneck served a control packet between the frame's offer and its start
    /// (the frame waited behind it).
    pub behind_control: bool,
    /// How long the server held the frame, from reading its last layer to writing the reply
    /// (its handler's run time included), seconds.
    pub held: f64,
    /// The propagation RTT the agent timed the sample with, seconds.
    pub rtt: f64,
    /// When the agent had read the reply (agent's clock).
    pub reply_received: f64,
    /// When the server read the frame's last received byte, on the server's clock.
    pub server_last: f64,
    /// When the server wrote the reply, on the server's clock.
    pub server_reply: f64,
    /// The shift from the server's clock to the agent's the sample was timed with.
    pub server_clock_shift: f64,
    /// When the server's socket received the datagram that completed the frame, on the
    /// server's clock (NaN: not reported).
    pub server_arrived: f64,
    /// When the agent's socket sent the frame's first data packet (agent's clock).
    pub wire_send_start: f64,
    /// Measurements of the uplink's one-way delay on ACK packets the sample was timed with
    /// (0: timed with the minimum RTT).
    pub uplink_delay_probes: u64,
}

impl FrameService {
    /// The agent's sample's rate over the true rate, minus 1.
    pub fn rate_error(&self) -> f64 {
        let (s, e, b) = self.sample;
        let measured = b as f64 / (e - s).max(1e-9);
        let truth = self.bytes as f64 / (self.end - self.start).max(1e-9);
        measured / truth - 1.0
    }
}

/// Matches each replied frame (`replies`: frame and reply) to its data packets in the uplink's
/// packet log (`packets`, seconds since the emulator's start, which is `emulator_epoch_s` on
/// the agent's clock): a frame's data packets are those offered between its send start and
/// the next replied frame's. Frames without a link sample or without packets are left out.
pub fn match_frames(
    replies: &[(u64, FrameReply)],
    packets: &[PacketRecord],
    emulator_epoch_s: f64,
    one_way_s: f64,
) -> Vec<FrameService> {
    let mut replies: Vec<&(u64, FrameReply)> = replies.iter().collect();
    replies.sort_by(|a, b| a.1.send_start.total_cmp(&b.1.send_start));
    let on_agent = |t: f64| t + emulator_epoch_s;
    let mut out = Vec::with_capacity(replies.len());
    let mut p = 0;
    for (i, (frame, reply)) in replies.iter().enumerate() {
        let from = reply.send_start;
        let to = replies
            .get(i + 1)
            .map_or(f64::INFINITY, |(_, r)| r.send_start);
        while p < packets.len() && on_agent(packets[p].offered) < from {
            p += 1;
        }
        let mut mine = Vec::new();
        let mut q = p;
        while q < packets.len() && on_agent(packets[q].offered) < to {
            let pk = &packets[q];
            if pk.bytes > CONTROL_PACKET_MAX && matches!(pk.verdict, Verdict::Deliver { .. }) {
                mine.push(q);
            }
            q += 1;
        }
        let (Some(sample), Some(&first), Some(&last)) =
            (reply.link_sample, mine.first(), mine.last())
        else {
            continue;
        };
        let first_pk = &packets[first];
        // Served between the frame's offer and its start: the packets before it in the log
        // whose service ended after the frame was offered.
        let behind_control = packets[..first].iter().rev().take(8).any(|pk| {
            pk.bytes <= CONTROL_PACKET_MAX
                && pk.end > first_pk.offered
                && matches!(pk.verdict, Verdict::Deliver { .. })
        });
        out.push(FrameService {
            frame: *frame,
            send_start: reply.send_start,
            sample: (sample.start, sample.end, sample.bytes),
            offered: on_agent(first_pk.offered) + one_way_s,
            start: on_agent(first_pk.start) + one_way_s,
            end: on_agent(packets[last].end) + one_way_s,
            bytes: mine.iter().map(|&k| packets[k].bytes).sum(),
            packets: mine.len() as u32,
            behind_control,
            held: reply.reply_written
                - reply
                    .receipts
                    .last()
                    .map_or(reply.header_done, |r| r.last_byte),
            rtt: reply.propagation_rtt,
            reply_received: reply.reply_received,
            server_last: reply.server_origin
                + reply
                    .receipts
                    .last()
                    .map_or(reply.header_done, |r| r.last_byte),
            server_reply: reply.server_origin + reply.reply_written,
            server_clock_shift: reply.server_clock_shift,
            server_arrived: reply.server_arrived.unwrap_or(f64::NAN),
            wire_send_start: reply.wire_send_start,
            uplink_delay_probes: reply.uplink_delay_probes as u64,
        });
    }
    out
}

/// Quantiles of one error, milliseconds or a fraction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// 10th percentile.
    pub p10: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// Mean.
    pub mean: f64,
}

impl Spread {
    /// The spread of `values`.
    pub fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        let n = values.len().max(1) as f64;
        Spread {
            p10: percentile(&values, 0.1),
            p50: percentile(&values, 0.5),
            p90: percentile(&values, 0.9),
            mean: values.iter().sum::<f64>() / n,
        }
    }
}

/// How far the agent's link samples were from the emulator's service of the same frames.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SampleError {
    /// Frames matched.
    pub frames: u64,
    /// Sample start minus the true service start, ms (positive: the agent started late).
    pub start_ms: Spread,
    /// Sample end minus the true service end, ms (positive: the agent placed it late).
    pub end_ms: Spread,
    /// The sample's rate over the true rate, minus 1.
    pub rate: Spread,
    /// The sample's bytes over the data packets' bytes, minus 1 (the overhead model's error).
    pub bytes: Spread,
    /// The frame's first packet's wait in the relay before the bottleneck started on it, ms.
    pub queued_ms: Spread,
    /// Frames that waited behind a control packet.
    pub behind_control: u64,
    /// The server's hold of a frame (read to reply written), ms.
    pub held_ms: Spread,
    /// Uplink control packets (at most [`CONTROL_PACKET_MAX`] bytes) per matched frame, over
    /// the run, and their mean size.
    pub control_per_frame: f64,
    /// Mean bytes of a control packet.
    pub control_bytes: f64,
    /// Largest uplink data packet, bytes.
    pub max_data_packet: u64,
}

impl SampleError {
    /// The errors of `frames`; `packets` is the whole uplink log of the run.
    pub fn of(frames: &[FrameService], packets: &[PacketRecord]) -> Self {
        let control: Vec<&PacketRecord> = packets
            .iter()
            .filter(|p| p.bytes <= CONTROL_PACKET_MAX)
            .collect();
        let ms = |f: &dyn Fn(&FrameService) -> f64| {
            Spread::of(frames.iter().map(|s| 1e3 * f(s)).collect())
        };
        SampleError {
            frames: frames.len() as u64,
            start_ms: ms(&|s| s.sample.0 - s.start),
            end_ms: ms(&|s| s.sample.1 - s.end),
            rate: Spread::of(frames.iter().map(FrameService::rate_error).collect()),
            bytes: Spread::of(
                frames
                    .iter()
                    .map(|s| s.sample.2 as f64 / s.bytes.max(1) as f64 - 1.0)
                    .collect(),
            ),
            queued_ms: ms(&|s| s.start - s.offered),
            behind_control: frames.iter().filter(|s| s.behind_control).count() as u64,
            held_ms: ms(&|s| s.held),
            control_per_frame: control.len() as f64 / frames.len().max(1) as f64,
            control_bytes: control.iter().map(|p| p.bytes as f64).sum::<f64>()
                / control.len().max(1) as f64,
            max_data_packet: packets
                .iter()
                .filter(|p| p.bytes > CONTROL_PACKET_MAX)
                .map(|p| p.bytes)
                .max()
                .unwrap_or(0),
        }
    }
}
