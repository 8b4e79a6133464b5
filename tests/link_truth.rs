//! `offload compare --true-link-samples`: a loopback run whose agent is given the emulator's own
//! record of each frame's service (`LinkTruth`) feeds its controller exactly that service as
//! the link sample — the same interval the emulator's packet log holds for the frame, in the
//! agent's wire bytes — and still answers every frame.
//!
//! And the agent's own link samples (docs/protocol.md, "link sample") against that record:
//! the server's socket stamp of each frame lies between the emulator's sending of its last
//! packet and the server's task reading it, and the samples' median end and rate errors are
//! small.

use std::sync::Arc;

use offload_agent::loopback::{LoopbackLink, LoopbackRun, run_loopback};
use offload_agent::sample_error::{FrameService, Spread, match_frames};
use offload_agent::{AgentConfig, AgentEvents, SimulatedBattery};
use offload_cli::{SplitDevice, SplitHandler};
use offload_sim::SimConfig;
use offload_transport::emulator::ConstantRate;
use offload_transport::{ClientConfig, FrameReply};

#[derive(Default)]
struct Replies(Vec<(u64, FrameReply)>);

impl AgentEvents for Replies {
    fn replied(&mut self, frame: u64, reply: &FrameReply) {
        self.0.push((frame, reply.clone()));
    }
}

const ONE_WAY: f64 = 0.025;

/// `frames` Fashion-MNIST frames with `deadline-aware` through the emulator at 150 kbit/s (a
/// frame's one packet takes 10-50 ms, long next to any timing error), 25 ms each way; every
/// frame answered; the offloaded ones matched to the emulator's record of their packets.
async fn run_at_150_kbits(
    frames: usize,
    true_link_samples: bool,
) -> (LoopbackRun, Vec<FrameService>) {
    let offload_e2e::Fmnist {
        model,
        profile,
        inputs,
    } = offload_e2e::fmnist(frames);
    let sim = SimConfig::default();
    let link = LoopbackLink {
        uplink: Arc::new(ConstantRate { bps: 150e3 }),
        downlink_bps: 50e6,
        one_way_s: ONE_WAY,
        queue_bytes: 32 * 1024,
        lead_s: 2.0,
        true_link_samples,
    };
    let config = AgentConfig {
        fps: sim.fps,
        deadline: std::time::Duration::from_secs_f64(sim.deadline_s),
        controller: sim.controller.clone(),
        profile: profile.clone(),
        sensor_interval: std::time::Duration::from_secs(1),
        partial_results: true,
        local_fallback: true,
    };
    let mut replies = Replies::default();
    let policy = offload_policies::load_preset("deadline-aware")
        .unwrap()
        .build();
    let run = run_loopback(
        Arc::new(SplitDevice::new(model.clone())),
        Arc::new(SplitHandler::new(model)),
        link,
        policy,
        inputs,
        config,
        ClientConfig::default(),
        Box::new(SimulatedBattery::new(sim.battery)),
        &mut replies,
    )
    .await
    .expect("the loopback run completes");
    assert_eq!(run.records.len(), frames);
    // Every frame has a result, but for camera frames skipped because a newer one was
    // already waiting (the agent's loop late on a loaded host, as in the simulator).
    let unanswered: Vec<u64> = run
        .records
        .iter()
        .filter(|r| r.decision != "skipped" && r.result_at.is_none())
        .map(|r| r.frame)
        .collect();
    assert!(
        unanswered.is_empty(),
        "frames without a result: {unanswered:?}"
    );

    let services = match_frames(
        &replies.0,
        &run.uplink_packets,
        run.emulator_epoch_s,
        ONE_WAY,
    );
    assert!(
        services.len() >= frames * 9 / 10,
        "{} of {frames} frames offloaded and matched",
        services.len()
    );
    (run, services)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn true_link_samples_are_the_emulators_service_of_each_frame() {
    let (_, services) = run_at_150_kbits(90, true).await;
    for s in &services {
        let (start, end, bytes) = s.sample;
        // The sample is the emulator's service interval, shifted by the agent's one-way
        // delay (its propagation RTT / 2) where the record is shifted by the configured one.
        let shift = start - s.start;
        assert!(
            (end - s.end - shift).abs() < 1e-6,
            "frame {}: sample {start:.6}-{end:.6}, service {:.6}-{:.6}",
            s.frame,
            s.start,
            s.end
        );
        assert!(shift.abs() < 0.005, "frame {}: shifted by {shift}", s.frame);
        // In the agent's wire bytes, which the overhead model keeps within a few per cent of
        // the packets' own.
        let ratio = bytes as f64 / s.bytes as f64;
        assert!(
            (0.95..1.05).contains(&ratio),
            "frame {}: {bytes} B sampled, {} B served",
            s.frame,
            s.bytes
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_own_samples_follow_the_emulators_record() {
    let (run, services) = run_at_150_kbits(120, false).await;
    // Frames in flight together can be matched to each other's packets (the matching goes by
    // send times); those whose matched bytes are not their own are left out.
    let own: Vec<&FrameService> = services
        .iter()
        .filter(|s| (s.sample.2 as f64 / s.bytes as f64 - 1.0).abs() < 0.05)
        .collect();
    assert!(
        own.len() * 10 >= services.len() * 9,
        "{} of {} matched",
        own.len(),
        services.len()
    );
    for s in &own {
        // Where the emulator sent the frame's last packet to the server (its exit time; the
        // relay's thread sends at or after it), on the agent's clock: the record's end is
        // shifted by the configured one-way delay already.
        let exit = s.end;
        let stamped = s.server_arrived + run.server_epoch_s;
        let read = s.server_last + run.server_epoch_s;
        // 1 ms of slack: one CI run at 20:00 UTC 2026-11-26 saw a stamp 0.64 ms before the
        // recorded exit (frame 14 of 120; cause not found, see docs/results/emulation.md);
        // a packet's serialisation at this rate is ~64 ms, so the check still places the
        // stamp on the right packet.
        assert!(
            stamped >= exit - 1e-3,
            "frame {}: socket stamp {stamped:.6} before the emulator sent it at {exit:.6}",
            s.frame
        );
        assert!(
            s.server_arrived <= s.server_last + 2e-6,
            "frame {}: socket stamp {stamped:.6} after the task read it at {read:.6}",
            s.frame
        );
    }
    // Medians, which a loaded host's late wake-ups do not move: on 60 s `offload compare` runs
    // at a load of 3-7 the end error's median was -0.03 to +0.24 ms and the rate error's -2.0
    // to +1.2 % (docs/results/emulation.md, pass F); here +0.005 ms and +1.1 / +1.2 % in two
    // runs at a load of 5. The propagation RTT the agent times samples with differs by up to
    // ~0.4 ms between runs, which moves both ends by half of that: hence the margins.
    let end_ms = Spread::of(own.iter().map(|s| 1e3 * (s.sample.1 - s.end)).collect());
    let rate = Spread::of(own.iter().map(|s| s.rate_error()).collect());
    eprintln!(
        "{} frames: end error {end_ms:?} ms, rate error {rate:?}",
        own.len()
    );
    assert!(end_ms.p50.abs() < 0.5, "end error {end_ms:?} ms");
    assert!(rate.p50.abs() < 0.04, "rate error {rate:?}");
}
