//! `offload compare --true-link-samples`: a loopback run whose agent is given the emulator's own
//! record of each frame's service (`LinkTruth`) feeds its controller exactly that service as
//! the link sample — the same interval the emulator's packet log holds for the frame, in the
//! agent's wire bytes — and still answers every frame.

use std::sync::Arc;

use offload_agent::loopback::{LoopbackLink, run_loopback};
use offload_agent::sample_error::match_frames;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn true_link_samples_are_the_emulators_service_of_each_frame() {
    let frames = 90;
    let offload_e2e::Fmnist {
        model,
        profile,
        inputs,
    } = offload_e2e::fmnist(frames);
    let sim = SimConfig::default();
    let one_way = 0.025;
    // 150 kbit/s: a frame's one packet takes 10-50 ms, long next to any timing error.
    let link = LoopbackLink {
        uplink: Arc::new(ConstantRate { bps: 150e3 }),
        downlink_bps: 50e6,
        one_way_s: one_way,
        queue_bytes: 32 * 1024,
        lead_s: 2.0,
        true_link_samples: true,
    };
    let config = AgentConfig {
        fps: sim.fps,
        deadline: std::time::Duration::from_secs_f64(sim.deadline_s),
        controller: sim.controller.clone(),
        profile: profile.clone(),
        sensor_interval: std::time::Duration::from_secs(1),
        partial_results: true,
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
    assert!(run.records.iter().all(|r| r.result_at.is_some()));

    let services = match_frames(
        &replies.0,
        &run.uplink_packets,
        run.emulator_epoch_s,
        one_way,
    );
    assert!(
        services.len() >= frames * 9 / 10,
        "{} of {frames} frames offloaded and matched",
        services.len()
    );
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
