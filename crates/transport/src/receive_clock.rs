//! When the server's UDP socket received each agent's latest datagram.
//!
//! A frame's stream is read by a task that runs several wake-ups after the datagram that
//! completed it reached the server's socket (the endpoint's driver, the connection's driver,
//! the task accepting the stream, the frame's own task): measured through the link emulator,
//! the stream task read a frame's last byte a median 0.3 ms, at p99 3.5 ms after the datagram
//! left the emulator, and quinn's endpoint driver itself read it a median 0.2 ms, at p99
//! 3.3 ms after (docs/results/emulation.md, pass F). The server therefore wraps its socket
//! and stamps every received datagram by its sender with the kernel's receive time (Linux's
//! `SIOCGSTAMPNS`: the time the kernel stamped the last datagram a receive call returned; the
//! endpoint's time of reading where that is not available); the frame's task, once it has
//! read a layer's last byte, takes its sender's latest stamp.
//!
//! Each sender's latest small datagram (an ACK-only packet, by its size) is stamped apart: the
//! server reports when the agent's acknowledgement of a reply arrived, and the agent measures
//! the uplink's round trip with it ([`crate::UplinkDelay`]).
//!
//! That stamp is never before the datagram that carried the last byte (it had been received
//! for the byte to be readable) and never after the task read it: at worst a later datagram
//! of the same agent (an ACK, the next frame) arrived in between and the stamp is as late as
//! the task's read, no later. A batch of datagrams read at once carries the last one's stamp,
//! which is no earlier than any of theirs.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

/// The latest datagram received from each sender, and the latest small one (an ACK-only
/// packet, by its size).
#[derive(Debug, Default)]
pub(crate) struct ReceiveStamps {
    latest: Mutex<HashMap<SocketAddr, SenderStamps>>,
}

/// One sender's stamps.
#[derive(Debug, Clone, Copy)]
struct SenderStamps {
    /// Its latest datagram.
    any: Instant,
    /// Its latest datagram of at most [`SMALL_DATAGRAM_BYTES`].
    small: Option<Instant>,
}

/// UDP payloads up to this size are taken for the agent's control packets: an ACK-only QUIC
/// packet is ~32 bytes (short header with an 8-byte connection id, the ACK frame, the 16-byte
/// AEAD tag), the smallest frame packet over 100. The agent uses the same bound
/// ([`crate::send_clock`]) to tell its ACK packets apart.
pub(crate) const SMALL_DATAGRAM_BYTES: usize = 64;

impl ReceiveStamps {
    /// Senders remembered at most: senders silent for [`ReceiveStamps::FORGET_AFTER`] are
    /// dropped when the table is full, and while it stays full new senders go unstamped (their
    /// frames then fall back to the task's own read time).
    const MAX_SENDERS: usize = 4096;
    /// Silence after which a sender's stamp may be dropped.
    const FORGET_AFTER: Duration = Duration::from_secs(60);

    /// Records a datagram of `len` bytes from `from` received at `at`.
    fn record(&self, from: SocketAddr, at: Instant, len: usize) {
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        if latest.len() >= Self::MAX_SENDERS && !latest.contains_key(&from) {
            latest.retain(|_, t| at.saturating_duration_since(t.any) < Self::FORGET_AFTER);
            if latest.len() >= Self::MAX_SENDERS {
                return;
            }
        }
        let small = (len <= SMALL_DATAGRAM_BYTES).then_some(at);
        latest
            .entry(from)
            .and_modify(|s| {
                s.any = at;
                s.small = small.or(s.small);
            })
            .or_insert(SenderStamps { any: at, small });
    }

    /// When the latest datagram from `from` was received, if one was.
    pub(crate) fn latest(&self, from: SocketAddr) -> Option<Instant> {
        self.get(from).map(|s| s.any)
    }

    /// When the latest datagram of at most [`SMALL_DATAGRAM_BYTES`] from `from` was received,
    /// if one was.
    pub(crate) fn latest_small(&self, from: SocketAddr) -> Option<Instant> {
        self.get(from).and_then(|s| s.small)
    }

    fn get(&self, from: SocketAddr) -> Option<SenderStamps> {
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&from)
            .copied()
    }
}

/// A UDP socket that stamps every datagram it receives in a [`ReceiveStamps`] and otherwise
/// is the runtime's own socket.
pub(crate) struct StampingSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    kernel: KernelStamp,
    stamps: Arc<ReceiveStamps>,
}

impl StampingSocket {
    /// Wraps `inner`, the runtime's wrapper of `socket`; `socket` (a handle on the same
    /// socket) is only asked for the kernel's receive times.
    pub(crate) fn new(
        inner: Arc<dyn AsyncUdpSocket>,
        socket: std::net::UdpSocket,
        stamps: Arc<ReceiveStamps>,
    ) -> Self {
        Self {
            inner,
            kernel: KernelStamp(socket),
            stamps,
        }
    }
}

/// The kernel's receive time of the last datagram read from a socket.
struct KernelStamp(std::net::UdpSocket);

impl KernelStamp {
    /// Longest age a kernel stamp may have: an older one, or one from the future, means the
    /// wall clock it is kept on stepped, and the read time is used instead.
    const MAX_AGE: Duration = Duration::from_secs(1);

    /// When the last datagram read from the socket was received, as an `Instant`; `now` where
    /// the kernel has no stamp.
    fn last_received(&self, now: Instant) -> Instant {
        let Some(stamp) = self.kernel_time() else {
            return now;
        };
        match std::time::SystemTime::now().duration_since(stamp) {
            Ok(age) if age <= Self::MAX_AGE => now.checked_sub(age).unwrap_or(now),
            _ => now,
        }
    }

    /// `SIOCGSTAMPNS`: the wall-clock time the kernel received the last datagram returned by a
    /// receive call on this socket. The first call turns the kernel's receive stamps on (and
    /// finds none yet).
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    fn kernel_time(&self) -> Option<std::time::SystemTime> {
        use std::os::fd::AsRawFd;
        // asm-generic/sockios.h, SIOCGSTAMPNS_OLD, which 64-bit targets use with their
        // 64-bit `struct timespec`.
        const SIOCGSTAMPNS: libc::c_ulong = 0x8907;
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: the descriptor is open for as long as `self.0` lives, and SIOCGSTAMPNS
        // writes exactly one `struct timespec` through the pointer, which points to one.
        let rc = unsafe { libc::ioctl(self.0.as_raw_fd(), SIOCGSTAMPNS as _, &mut ts) };
        if rc != 0 || ts.tv_sec <= 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
            return None;
        }
        let since_epoch =
            Duration::from_secs(ts.tv_sec as u64) + Duration::from_nanos(ts.tv_nsec as u64);
        std::time::UNIX_EPOCH.checked_add(since_epoch)
    }

    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    fn kernel_time(&self) -> Option<std::time::SystemTime> {
        None
    }
}

impl fmt::Debug for StampingSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StampingSocket")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl AsyncUdpSocket for StampingSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.inner.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let polled = self.inner.poll_recv(cx, bufs, meta);
        if let Poll::Ready(Ok(n)) = &polled {
            let at = self.kernel.last_received(Instant::now());
            for m in meta.iter().take(*n) {
                // A coalesced batch (GRO) is several datagrams of `stride` bytes.
                self.stamps.record(m.addr, at, m.stride.min(m.len));
            }
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
    fn keeps_each_senders_latest_and_stays_bounded() {
        let stamps = ReceiveStamps::default();
        let a: SocketAddr = "127.0.0.1:1000".parse().expect("addr");
        let t0 = Instant::now();
        stamps.record(a, t0, 32);
        stamps.record(a, t0 + Duration::from_millis(5), 300);
        assert_eq!(stamps.latest(a), Some(t0 + Duration::from_millis(5)));
        // The small one (an ACK packet) is kept apart from the frame's datagram after it.
        assert_eq!(stamps.latest_small(a), Some(t0));
        assert_eq!(stamps.latest("127.0.0.1:1001".parse().expect("addr")), None);
        // A full table of recent senders takes no new one; once they are silent long
        // enough, it does.
        for port in 0..ReceiveStamps::MAX_SENDERS as u16 {
            stamps.record(SocketAddr::from(([10, 0, 0, 1], port)), t0, 300);
        }
        let late: SocketAddr = "10.0.0.2:1".parse().expect("addr");
        stamps.record(late, t0 + Duration::from_secs(1), 300);
        assert_eq!(stamps.latest(late), None);
        stamps.record(
            late,
            t0 + ReceiveStamps::FORGET_AFTER + Duration::from_secs(1),
            300,
        );
        assert!(stamps.latest(late).is_some());
        assert_eq!(stamps.latest_small(late), None);
        assert!(stamps.latest.lock().expect("lock").len() <= ReceiveStamps::MAX_SENDERS);
    }
}
