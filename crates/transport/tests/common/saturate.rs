//! A saturating UDP sender through the emulator into a sink, measuring delivered bytes per
//! one-second window against the schedule's capacity.

use std::sync::Arc;
use std::time::{Duration, Instant};

use offload_transport::emulator::{
    CapacitySchedule, ConstantRate, Emulator, EmulatorConfig, LinkConfig,
};
use tokio::net::UdpSocket;

const PACKET: usize = 1200;
const DELAY: f64 = 0.020;

/// Sends `burst` packets of 1200 B every 5 ms for `windows` seconds through an emulator whose
/// uplink follows `schedule`; returns, per one-second window (shifted by the propagation
/// delay), the bytes delivered and the bytes the schedule allowed (from the first send on).
pub async fn saturate(
    schedule: Arc<dyn CapacitySchedule>,
    windows: usize,
    burst: usize,
) -> Vec<(f64, f64)> {
    let sink = UdpSocket::bind("127.0.0.1:0").await.expect("sink");
    let mut config = EmulatorConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        sink.local_addr().expect("addr"),
    );
    config.uplink = LinkConfig {
        delay: DELAY,
        queue_bytes: 40_000,
        loss: 0.0,
        seed: 1,
    };
    let emulator = Emulator::start(
        config,
        schedule.clone(),
        Arc::new(ConstantRate { bps: 1e8 }),
    )
    .await
    .expect("emulator");
    let start = emulator.started_at();
    let relay = emulator.local_addr();

    // Receive everything until the sender is done and the queue has drained.
    let receiver = tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        let mut arrivals = Vec::new();
        let stop = start + Duration::from_secs_f64(windows as f64 + DELAY + 0.5);
        while let Ok(Ok(n)) = tokio::time::timeout_at(stop.into(), sink.recv(&mut buf)).await {
            arrivals.push((start.elapsed().as_secs_f64(), n));
        }
        arrivals
    });

    let sender = UdpSocket::bind("127.0.0.1:0").await.expect("sender");
    let payload = vec![0xabu8; PACKET];
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    let send_until = start + Duration::from_secs_f64(windows as f64 + 0.05);
    let mut sent = 0u64;
    // On a loaded machine the sender starts some milliseconds after the relay: the link's
    // capacity before the first packet is not the relay's to deliver.
    let mut first_send = None;
    while Instant::now() < send_until && sent < 1_000_000 {
        tick.tick().await;
        first_send.get_or_insert_with(|| start.elapsed().as_secs_f64());
        for _ in 0..burst {
            sender.send_to(&payload, relay).await.expect("send");
            sent += 1;
        }
    }
    let arrivals = receiver.await.expect("receiver");
    let stats = emulator.stats();
    assert!(
        stats.uplink.queue_drops > 0,
        "the sender must saturate the link: {stats:?}"
    );
    (0..windows)
        .map(|w| {
            let (t0, t1) = (w as f64 + DELAY, w as f64 + 1.0 + DELAY);
            let delivered: usize = arrivals
                .iter()
                .filter(|(t, _)| *t >= t0 && *t < t1)
                .map(|(_, n)| n)
                .sum();
            let from = (w as f64).max(first_send.unwrap_or(0.0));
            let capacity = schedule.bits_between(from, w as f64 + 1.0) / 8.0;
            (delivered as f64, capacity)
        })
        .collect()
}
