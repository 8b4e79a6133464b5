//! The simulator and the real system on the same trace, policy, profile and frames: the
//! deadline-aware controller must make the same decision on most frames in both, and miss about
//! as many deadlines. The real system is the committed Fashion-MNIST model on real test images,
//! a QUIC connection through the trace-driven emulator, and the edge server, on loopback.
//!
//! The trace is the generated LTE walk scaled to a mean of ~140 kbit/s, where the frames'
//! layer counts are contested (6 layers at 30 fps take ~250 kbit/s on the wire, the base layer
//! ~60 kbit/s). The floors leave room for a loaded 2-core machine, where the emulated run's
//! timing is jittered by other work: they were chosen from runs on such a machine
//! (docs/results/emulation.md), not from a quiet one.

use std::sync::Arc;

use offload_agent::SimulatedBattery;
use offload_agent::compare::{Comparison, FrameRows, wire_sizes};
use offload_agent::loopback::{LoopbackLink, run_loopback};
use offload_cli::{SplitDevice, SplitHandler, TraceSchedule};
use offload_e2e::{Fmnist, fmnist, repo};
use offload_sim::link::PacketModel;
use offload_sim::trace::{LoadOptions, Trace};
use offload_sim::{SimConfig, simulate_with};
use offload_transport::ClientConfig;

fn scaled(trace: &Trace, factor: f64) -> Trace {
    let segments: Vec<(f64, f64)> = trace
        .segments()
        .map(|s| (s.duration, s.bps * factor))
        .collect();
    Trace::from_segments(format!("{}x{factor}", trace.name()), &segments).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_and_emulated_runs_agree_on_most_decisions() {
    let seconds = 20.0;
    let trace = Trace::load(
        &repo().join("traces/generated/lte-walk-x0.1-seed4.tsv"),
        &LoadOptions::default(),
    )
    .unwrap();
    let trace = scaled(&trace, 0.03);
    // The frame sizes given to the simulator are wire bytes already: no payload efficiency,
    // and packets of up to a UDP payload of them with no further overhead, handed to the
    // bottleneck at once, as the emulated link carries them (as `offload compare`).
    let defaults = SimConfig::default();
    let overhead = ClientConfig::default().overhead;
    let mut config = SimConfig {
        duration_s: Some(seconds),
        link: offload_sim::link::LinkConfig {
            payload_efficiency: 1.0,
            packets: Some(PacketModel {
                max_payload: overhead.max_udp_payload,
                overhead: 0,
                window: PacketModel::QUINN.window,
            }),
            ..defaults.link
        },
        ..defaults
    };
    // The emulator has no radio: no RRC promotion on either side (as `offload compare`).
    config.controller.radio.promotion_s = 0.0;
    let n = (seconds * config.fps) as usize;
    let Fmnist {
        model,
        profile,
        inputs,
    } = fmnist(n);
    let images: Vec<Vec<u8>> = inputs.iter().map(|(image, _)| image.clone()).collect();
    let device = SplitDevice::new(model.clone());
    let rows = wire_sizes(&device, &images, overhead).unwrap();

    let link = LoopbackLink {
        uplink: Arc::new(TraceSchedule(trace.clone())),
        downlink_bps: 50e6,
        one_way_s: config.link.rtt_s / 2.0,
        queue_bytes: 32 * 1024,
        lead_s: 2.0,
        true_link_samples: false,
    };
    let agent_config = offload_agent::AgentConfig {
        fps: config.fps,
        deadline: std::time::Duration::from_secs_f64(config.deadline_s),
        controller: config.controller.clone(),
        profile: profile.clone(),
        sensor_interval: std::time::Duration::from_secs(1),
        partial_results: config.partial_results,
        local_fallback: config.local_fallback,
    };
    let policy = offload_policies::load_preset("deadline-aware")
        .unwrap()
        .build();
    let emu = run_loopback(
        Arc::new(device),
        Arc::new(SplitHandler::new(model)),
        link,
        policy,
        inputs,
        agent_config,
        ClientConfig::default(),
        Box::new(SimulatedBattery::new(config.battery)),
        &mut (),
    )
    .await
    .unwrap();

    // As `offload compare` does, the simulator's encoder time is the emulated run's median
    // from capture to decision: the profile's is the encoder alone on an idle host, while the
    // real frame loop also wakes up and codes every layer before deciding (~5 ms here against
    // the profile's 0.26 ms), which leaves the simulated controller more slack than the real one.
    let mut decide: Vec<f64> = emu
        .records
        .iter()
        .filter(|r| r.decision != "skipped")
        .map(|r| r.decided_at - r.captured_at)
        .filter(|d| d.is_finite())
        .collect();
    decide.sort_by(f64::total_cmp);
    let mut sim_profile = profile.clone();
    if let Some(&median) = decide.get(decide.len() / 2) {
        sim_profile.device.encoder_time_s = median;
    }
    let mut sim = Vec::new();
    let policy = offload_policies::load_preset("deadline-aware")
        .unwrap()
        .build();
    simulate_with(
        &trace,
        &sim_profile,
        FrameRows::new(&rows),
        policy,
        &config,
        |r| sim.push(r.clone()),
    );

    assert_eq!(sim.len(), n);
    assert_eq!(emu.records.len(), n);
    let c = Comparison::of(&sim, &emu.records);
    eprintln!(
        "capture to decision {:.2} ms; agreement {:.3} (within one layer {:.3}), misses sim {:.3} emulated {:.3}, mean layers {:.2} / {:.2}",
        sim_profile.device.encoder_time_s * 1e3,
        c.agreement,
        c.agreement_within_one_layer,
        c.sim.miss_rate,
        c.emu.miss_rate,
        c.sim.mean_layers,
        c.emu.mean_layers
    );
    // Both runs must really be contested: neither all base layers nor all six.
    assert!(
        c.sim.mean_layers > 1.5 && c.sim.mean_layers < 5.5,
        "{:?}",
        c.sim
    );
    assert!(
        c.agreement_within_one_layer >= 0.85,
        "within one layer {:.3}: {:?}",
        c.agreement_within_one_layer,
        c.disagreements
    );
    // Exact agreement rests on the agent's link samples, whose end is late by a host-dependent
    // 0.4 ms median (docs/results/emulation.md, passes D and E): with model 03bca1a3 this test
    // measured 0.47 (a clean CI checkout), 0.62, 0.62, 0.74, 0.84 and 0.85 on an otherwise idle
    // machine, all 0.98-1.00 within one layer. "Most decisions" is the within-one-layer floor
    // above; this one catches a simulator that has stopped tracking the real run at all.
    assert!(
        c.agreement >= 0.4,
        "agreement {:.3}: {:?}",
        c.agreement,
        c.disagreements
    );
    // The goal for miss rates: within 2 points (measured 0.0-1.2 points apart on
    // lte-walk x 0.03 at loads of 2-10).
    assert!(
        (c.sim.miss_rate - c.emu.miss_rate).abs() <= 0.02,
        "misses sim {:.3} vs emulated {:.3}",
        c.sim.miss_rate,
        c.emu.miss_rate
    );
}
