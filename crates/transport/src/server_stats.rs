//! Counters and latency percentiles the edge server keeps and logs.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Latencies kept per reporting window; beyond this a window only counts frames.
const MAX_WINDOW_SAMPLES: usize = 100_000;

/// Totals since the server started, and the latest window's rates and percentiles.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StatsSnapshot {
    /// Frames answered with an `Ok` reply.
    pub frames_ok: u64,
    /// Frames answered with an error reply.
    pub frames_failed: u64,
    /// Layer bytes received.
    pub bytes_received: u64,
    /// Connections refused (bad token, too many connections).
    pub connections_refused: u64,
    /// Frames per second in the latest window.
    pub window_frames_per_s: f64,
    /// Received throughput in the latest window, bit/s.
    pub window_bps: f64,
    /// Median frame latency (stream's first byte to reply ready) in the latest window, seconds.
    pub window_p50: f64,
    /// 99th percentile frame latency in the latest window, seconds.
    pub window_p99: f64,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    frames: u64,
    bytes: u64,
    latencies: Vec<f64>,
}

/// Shared, lock-light statistics of one server.
#[derive(Debug)]
pub(crate) struct ServerStats {
    frames_ok: AtomicU64,
    frames_failed: AtomicU64,
    bytes_received: AtomicU64,
    connections_refused: AtomicU64,
    window: Mutex<Window>,
    last: Mutex<StatsSnapshot>,
}

impl ServerStats {
    pub(crate) fn new() -> Self {
        Self {
            frames_ok: AtomicU64::new(0),
            frames_failed: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            window: Mutex::new(Window {
                started: Instant::now(),
                frames: 0,
                bytes: 0,
                latencies: Vec::new(),
            }),
            last: Mutex::new(StatsSnapshot::default()),
        }
    }

    pub(crate) fn record_frame(&self, ok: bool, bytes: u64, latency: Duration) {
        let counter = if ok {
            &self.frames_ok
        } else {
            &self.frames_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.bytes_received.fetch_add(bytes, Ordering::Relaxed);
        if let Ok(mut w) = self.window.lock() {
            w.frames += 1;
            w.bytes += bytes;
            if w.latencies.len() < MAX_WINDOW_SAMPLES {
                w.latencies.push(latency.as_secs_f64());
            }
        }
    }

    pub(crate) fn record_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Closes the current window, logs it, and starts the next.
    pub(crate) fn roll_window(&self) {
        let (elapsed, frames, bytes, mut latencies) = {
            let Ok(mut w) = self.window.lock() else {
                return;
            };
            let now = Instant::now();
            let elapsed = now.duration_since(w.started).as_secs_f64();
            let latencies = std::mem::take(&mut w.latencies);
            let out = (elapsed, w.frames, w.bytes, latencies);
            w.started = now;
            w.frames = 0;
            w.bytes = 0;
            out
        };
        latencies.sort_by(f64::total_cmp);
        let p50 = percentile(&latencies, 0.50);
        let p99 = percentile(&latencies, 0.99);
        let fps = if elapsed > 0.0 {
            frames as f64 / elapsed
        } else {
            0.0
        };
        let bps = if elapsed > 0.0 {
            bytes as f64 * 8.0 / elapsed
        } else {
            0.0
        };
        if frames > 0 {
            tracing::info!(
                frames,
                frames_per_s = format_args!("{fps:.1}"),
                mbit_per_s = format_args!("{:.3}", bps / 1e6),
                p50_ms = format_args!("{:.2}", p50 * 1e3),
                p99_ms = format_args!("{:.2}", p99 * 1e3),
                "edge server window"
            );
        }
        let mut snap = self.totals();
        snap.window_frames_per_s = fps;
        snap.window_bps = bps;
        snap.window_p50 = p50;
        snap.window_p99 = p99;
        if let Ok(mut last) = self.last.lock() {
            *last = snap;
        }
    }

    fn totals(&self) -> StatsSnapshot {
        StatsSnapshot {
            frames_ok: self.frames_ok.load(Ordering::Relaxed),
            frames_failed: self.frames_failed.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            connections_refused: self.connections_refused.load(Ordering::Relaxed),
            ..StatsSnapshot::default()
        }
    }

    /// Current totals with the latest closed window's rates.
    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        let window = self.last.lock().map(|g| *g).unwrap_or_default();
        StatsSnapshot {
            window_frames_per_s: window.window_frames_per_s,
            window_bps: window.window_bps,
            window_p50: window.window_p50,
            window_p99: window.window_p99,
            ..self.totals()
        }
    }
}

/// Nearest-rank percentile of sorted values (0 when empty).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn window_rolls_into_snapshot() {
        let s = ServerStats::new();
        s.record_frame(true, 1000, Duration::from_millis(10));
        s.record_frame(false, 0, Duration::from_millis(30));
        s.roll_window();
        let snap = s.snapshot();
        assert_eq!(
            (snap.frames_ok, snap.frames_failed, snap.bytes_received),
            (1, 1, 1000)
        );
        assert_eq!(snap.window_p99, 0.030);
        assert!(snap.window_frames_per_s > 0.0);
    }
}
