//! When the agent's UDP socket sent and received its datagrams.
//!
//! The server stamps the agent's datagrams with its kernel's receive time
//! ([`crate::receive_clock`]); the agent's link samples are only as good as the send times
//! they are compared with. The frame's task starts writing a frame some wake-ups before quinn's
//! connection driver hands the datagram to the socket, and it never sees the driver send the
//! ACK-only packet that acknowledges a reply at all. The agent's socket is therefore wrapped
//! like the server's, and every datagram it sends is logged with the time of the send call
//! and its size, and every receive call with its time: the layer where the server's stamps
//! are taken, on the other end of the same link.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

pub(crate) use crate::receive_clock::SMALL_DATAGRAM_BYTES;

/// A datagram the agent sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SentDatagram {
    /// When the send call was made.
    pub(crate) at: Instant,
    /// UDP payload bytes.
    pub(crate) len: usize,
}

/// The agent socket's recent sends and receive calls, bounded.
#[derive(Debug, Default)]
pub(crate) struct SocketLog {
    inner: Mutex<Events>,
}

#[derive(Debug, Default)]
struct Events {
    sent: VecDeque<SentDatagram>,
    received: VecDeque<Instant>,
}

impl SocketLog {
    /// Events of each kind kept: a few seconds of a 30 fps agent's traffic.
    const KEEP: usize = 512;
    /// Longest gap between a reply's datagram and the ACK-only packet that acknowledges it:
    /// quinn acknowledges the second ack-eliciting packet at once, in the same turn of the
    /// connection's driver.
    const ACK_WITHIN: Duration = Duration::from_millis(5);
    /// How far back [`SocketLog::queued_at`] looks: what was sent earlier has crossed any
    /// link the agent's samples are worth timing on.
    pub(crate) const BACKLOG_WINDOW: Duration = Duration::from_millis(500);

    fn events(&self) -> std::sync::MutexGuard<'_, Events> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a datagram of `len` bytes sent at `at`.
    pub(crate) fn record_sent(&self, at: Instant, len: usize) {
        let mut e = self.events();
        if e.sent.len() == Self::KEEP {
            e.sent.pop_front();
        }
        e.sent.push_back(SentDatagram { at, len });
    }

    /// Records a receive call that returned datagrams at `at`.
    pub(crate) fn record_received(&self, at: Instant) {
        let mut e = self.events();
        if e.received.len() == Self::KEEP {
            e.received.pop_front();
        }
        e.received.push_back(at);
    }

    /// The first datagram larger than [`SMALL_DATAGRAM_BYTES`] sent at or after `from` and
    /// before `until`: the first packet of the frame the agent started writing at `from`.
    pub(crate) fn first_data_after(&self, from: Instant, until: Instant) -> Option<SentDatagram> {
        self.events()
            .sent
            .iter()
            .find(|d| d.at >= from && d.len > SMALL_DATAGRAM_BYTES)
            .filter(|d| d.at < until)
            .copied()
    }

    /// Whether a packet sent at `at` found the bottleneck still busy with what the agent sent
    /// in the [`SocketLog::BACKLOG_WINDOW`] before, had it served those datagrams one after
    /// the other at `rate` (bit/s): the handshake's and path-MTU discovery's large packets,
    /// frames, other ACKs.
    pub(crate) fn queued_at(&self, at: Instant, rate: f64) -> bool {
        if !(rate.is_finite() && rate > 0.0) {
            return true;
        }
        let from = at.checked_sub(Self::BACKLOG_WINDOW).unwrap_or(at);
        let mut busy_until = from;
        for d in self
            .events()
            .sent
            .iter()
            .filter(|d| d.at >= from && d.at < at)
        {
            let service = Duration::from_secs_f64(d.len as f64 * 8.0 / rate);
            busy_until = busy_until.max(d.at) + service;
        }
        busy_until > at
    }

    /// The datagrams sent in `[from, until)`, oldest first.
    pub(crate) fn sent_between(&self, from: Instant, until: Instant) -> Vec<SentDatagram> {
        self.events()
            .sent
            .iter()
            .filter(|d| d.at >= from && d.at < until)
            .copied()
            .collect()
    }

    /// The ACK-only packet that acknowledged the reply the agent's task had read by `read`:
    /// the first datagram sent after the last receive call before `read` (the one that brought
    /// the reply in), if it is small and follows within [`SocketLog::ACK_WITHIN`]. `None` when
    /// the acknowledgement rode on a data packet, or none was sent (yet).
    pub(crate) fn ack_after_reply(&self, read: Instant) -> Option<SentDatagram> {
        let e = self.events();
        let arrived = e.received.iter().rev().find(|&&t| t <= read).copied()?;
        e.sent
            .iter()
            .find(|d| d.at >= arrived)
            .filter(|d| d.len <= SMALL_DATAGRAM_BYTES && d.at - arrived <= Self::ACK_WITHIN)
            .copied()
    }
}

/// The runtime's UDP socket, with every send and receive call logged in a [`SocketLog`].
pub(crate) struct LoggingSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    log: Arc<SocketLog>,
}

impl LoggingSocket {
    /// Wraps `inner`.
    pub(crate) fn new(inner: Arc<dyn AsyncUdpSocket>, log: Arc<SocketLog>) -> Self {
        Self { inner, log }
    }
}

impl fmt::Debug for LoggingSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoggingSocket")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl AsyncUdpSocket for LoggingSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        let at = Instant::now();
        let sent = self.inner.try_send(transmit);
        if sent.is_ok() {
            // Several datagrams of `segment_size` bytes when the stack sends them at once
            // (GSO); the first is the one that leaves first.
            let len = transmit
                .segment_size
                .map_or(transmit.contents.len(), |s| s.min(transmit.contents.len()));
            self.log.record_sent(at, len);
        }
        sent
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let polled = self.inner.poll_recv(cx, bufs, meta);
        if let Poll::Ready(Ok(n)) = &polled
            && *n > 0
        {
            self.log.record_received(Instant::now());
        }
        polled
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_frames_first_packet_and_the_replys_ack() {
        let log = SocketLog::default();
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_micros(m * 1000);
        log.record_sent(ms(0), 32); // an earlier ACK
        log.record_sent(ms(1), 300); // the frame's packet, written at 0.5 ms
        assert_eq!(
            log.first_data_after(t0 + Duration::from_micros(500), ms(50)),
            Some(SentDatagram {
                at: ms(1),
                len: 300
            })
        );
        assert_eq!(log.first_data_after(ms(2), ms(50)), None);
        // The reply comes in at 60 ms, its ACK leaves at 60.2 ms, the task reads at 60.5 ms.
        log.record_received(ms(60));
        log.record_sent(t0 + Duration::from_micros(60_200), 33);
        let ack = log
            .ack_after_reply(t0 + Duration::from_micros(60_500))
            .expect("ack");
        assert_eq!(ack.len, 33);
        assert_eq!(ack.at, t0 + Duration::from_micros(60_200));
        // A reply acknowledged on a data packet has no ACK-only packet.
        log.record_received(ms(70));
        log.record_sent(t0 + Duration::from_micros(70_100), 400);
        log.record_sent(t0 + Duration::from_micros(70_300), 32);
        assert_eq!(log.ack_after_reply(ms(71)), None);
        // Nor has one whose small packet left long after (another packet's ACK).
        log.record_received(ms(80));
        log.record_sent(ms(90), 32);
        assert_eq!(log.ack_after_reply(ms(81)), None);
    }

    #[test]
    fn a_packet_queues_behind_what_was_sent_before_at_the_links_rate() {
        let log = SocketLog::default();
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        // 1200 bytes at 160 kbit/s take 60 ms; a 300-byte frame 15 ms after them.
        log.record_sent(ms(0), 1200);
        log.record_sent(ms(10), 300);
        assert!(log.queued_at(ms(70), 160e3));
        assert!(!log.queued_at(ms(76), 160e3));
        assert!(!log.queued_at(ms(10), 1e9));
        assert!(
            log.queued_at(ms(10), 0.0),
            "no rate, no claim of an idle link"
        );
        let between: Vec<usize> = log
            .sent_between(ms(0), ms(10))
            .iter()
            .map(|d| d.len)
            .collect();
        assert_eq!(between, [1200]);
        assert_eq!(log.sent_between(ms(0), ms(11)).len(), 2);
        assert!(log.sent_between(ms(11), ms(70)).is_empty());
    }

    #[test]
    fn stays_bounded() {
        let log = SocketLog::default();
        let t0 = Instant::now();
        for i in 0..(3 * SocketLog::KEEP) as u64 {
            log.record_sent(t0 + Duration::from_micros(i), 32);
            log.record_received(t0 + Duration::from_micros(i));
        }
        let e = log.events();
        assert_eq!(e.sent.len(), SocketLog::KEEP);
        assert_eq!(e.received.len(), SocketLog::KEEP);
    }
}
