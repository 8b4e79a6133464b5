//! Delivery-rate sampling inside QUIC's congestion controller.
//!
//! quinn reports no delivery rate, but its [`Controller`] is told about every send and every
//! acknowledged packet. [`SamplingController`] delegates all congestion decisions to Cubic,
//! BBR or NewReno and, on the side, takes the delivery-rate samples BBR defines (Cheng et al.,
//! "Delivery Rate Estimation", IETF draft): for each acknowledged packet, the bytes delivered
//! since that packet was sent, over the longer of its send and ack intervals. Samples taken
//! while the sender was application-limited, or over less than the minimum RTT, are skipped.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quinn::congestion::{
    BbrConfig, Controller, ControllerFactory, ControllerMetrics, CubicConfig, NewRenoConfig,
};
use quinn_proto::RttEstimator;

use crate::observe::DeliverySample;

/// Which congestion controller carries the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CongestionAlgorithm {
    /// CUBIC (quinn's default).
    #[default]
    Cubic,
    /// BBR (quinn's experimental implementation).
    Bbr,
    /// NewReno.
    NewReno,
}

impl std::str::FromStr for CongestionAlgorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cubic" => Ok(Self::Cubic),
            "bbr" => Ok(Self::Bbr),
            "newreno" | "new-reno" => Ok(Self::NewReno),
            other => Err(format!(
                "unknown congestion controller {other:?} (cubic, bbr, newreno)"
            )),
        }
    }
}

/// Bounded buffer of rate samples shared between the controller and the agent.
#[derive(Debug)]
pub struct RateSampleLog {
    epoch: Instant,
    capacity: usize,
    samples: Mutex<VecDeque<DeliverySample>>,
}

impl RateSampleLog {
    /// A log holding at most `capacity` samples (oldest dropped first); times count from `epoch`.
    pub fn new(epoch: Instant, capacity: usize) -> Self {
        Self {
            epoch,
            capacity,
            samples: Mutex::new(VecDeque::new()),
        }
    }

    /// Removes and returns all samples, oldest first.
    pub fn take(&self) -> Vec<DeliverySample> {
        self.samples
            .lock()
            .map(|mut s| s.drain(..).collect())
            .unwrap_or_default()
    }

    fn push(&self, start: Instant, end: Instant, bytes: u64) {
        let at = |t: Instant| t.saturating_duration_since(self.epoch).as_secs_f64();
        if let Ok(mut s) = self.samples.lock() {
            if s.len() >= self.capacity {
                s.pop_front();
            }
            s.push_back(DeliverySample {
                start: at(start),
                end: at(end),
                bytes,
            });
        }
    }
}

/// Builds a [`SamplingController`] around the chosen algorithm (or the bare algorithm when no
/// log is given).
#[derive(Debug)]
pub struct SamplingFactory {
    algorithm: CongestionAlgorithm,
    log: Option<Arc<RateSampleLog>>,
}

impl SamplingFactory {
    /// A factory for `algorithm`, sampling into `log` when given.
    pub fn new(algorithm: CongestionAlgorithm, log: Option<Arc<RateSampleLog>>) -> Self {
        Self { algorithm, log }
    }
}

impl ControllerFactory for SamplingFactory {
    fn build(self: Arc<Self>, now: Instant, current_mtu: u16) -> Box<dyn Controller> {
        let inner = match self.algorithm {
            CongestionAlgorithm::Cubic => Arc::new(CubicConfig::default()).build(now, current_mtu),
            CongestionAlgorithm::Bbr => Arc::new(BbrConfig::default()).build(now, current_mtu),
            CongestionAlgorithm::NewReno => {
                Arc::new(NewRenoConfig::default()).build(now, current_mtu)
            }
        };
        match &self.log {
            None => inner,
            Some(log) => Box::new(SamplingController::new(inner, log.clone(), now)),
        }
    }
}

/// Most send records kept; older ones belong to packets long lost.
const MAX_SEND_RECORDS: usize = 8192;

/// The connection's delivery state at the time a batch of packets was sent.
#[derive(Debug, Clone, Copy)]
struct SendRecord {
    sent: Instant,
    outstanding: u64,
    delivered: u64,
    delivered_time: Instant,
    first_sent_time: Instant,
}

/// A congestion controller that delegates to another and samples the delivery rate.
pub struct SamplingController {
    inner: Box<dyn Controller>,
    log: Arc<RateSampleLog>,
    delivered: u64,
    delivered_time: Instant,
    first_sent_time: Instant,
    records: VecDeque<SendRecord>,
    /// Best sample of the current ack batch: (interval start, end, bytes).
    pending: Option<(Instant, Instant, u64)>,
}

impl SamplingController {
    fn new(inner: Box<dyn Controller>, log: Arc<RateSampleLog>, now: Instant) -> Self {
        Self {
            inner,
            log,
            delivered: 0,
            delivered_time: now,
            first_sent_time: now,
            records: VecDeque::new(),
            pending: None,
        }
    }

    fn sample_ack(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        app_limited: bool,
        min_rtt: Duration,
    ) {
        self.delivered += bytes;
        self.delivered_time = now;
        // Records older than the acknowledged packet are either acknowledged or lost.
        while self.records.front().is_some_and(|r| r.sent < sent) {
            self.records.pop_front();
        }
        let Some(record) = self.records.front_mut().filter(|r| r.sent == sent) else {
            return;
        };
        let rec = *record;
        record.outstanding = record.outstanding.saturating_sub(bytes);
        if record.outstanding == 0 {
            self.records.pop_front();
        }
        self.first_sent_time = rec.sent;
        let send_elapsed = rec.sent.saturating_duration_since(rec.first_sent_time);
        let ack_elapsed = now.saturating_duration_since(rec.delivered_time);
        let interval = send_elapsed.max(ack_elapsed);
        if app_limited || interval.is_zero() || interval < min_rtt {
            return;
        }
        self.pending = Some((now - interval, now, self.delivered - rec.delivered));
    }
}

impl Controller for SamplingController {
    fn on_sent(&mut self, now: Instant, bytes: u64, last_packet_number: u64) {
        if self.records.is_empty() {
            // Nothing in flight: an idle gap must not count as delivery time.
            self.first_sent_time = now;
            self.delivered_time = now;
        }
        match self.records.back_mut() {
            Some(last) if last.sent == now => last.outstanding += bytes,
            _ => {
                if self.records.len() >= MAX_SEND_RECORDS {
                    self.records.pop_front();
                }
                self.records.push_back(SendRecord {
                    sent: now,
                    outstanding: bytes,
                    delivered: self.delivered,
                    delivered_time: self.delivered_time,
                    first_sent_time: self.first_sent_time,
                });
            }
        }
        self.inner.on_sent(now, bytes, last_packet_number);
    }

    fn on_ack(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        app_limited: bool,
        rtt: &RttEstimator,
    ) {
        self.sample_ack(now, sent, bytes, app_limited, rtt.min());
        self.inner.on_ack(now, sent, bytes, app_limited, rtt);
    }

    fn on_end_acks(
        &mut self,
        now: Instant,
        in_flight: u64,
        app_limited: bool,
        largest: Option<u64>,
    ) {
        if let Some((start, end, bytes)) = self.pending.take() {
            self.log.push(start, end, bytes);
        }
        if in_flight == 0 {
            self.records.clear();
        }
        self.inner.on_end_acks(now, in_flight, app_limited, largest);
    }

    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent: Instant,
        persistent: bool,
        lost_bytes: u64,
    ) {
        self.inner
            .on_congestion_event(now, sent, persistent, lost_bytes);
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.inner.on_mtu_update(new_mtu);
    }

    fn window(&self) -> u64 {
        self.inner.window()
    }

    fn metrics(&self) -> ControllerMetrics {
        self.inner.metrics()
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(Self {
            inner: self.inner.clone_box(),
            log: self.log.clone(),
            delivered: self.delivered,
            delivered_time: self.delivered_time,
            first_sent_time: self.first_sent_time,
            records: self.records.clone(),
            pending: self.pending,
        })
    }

    fn initial_window(&self) -> u64 {
        self.inner.initial_window()
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}
