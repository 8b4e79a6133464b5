//! Partial results end to end: the split SSD detector's frames (eight layers, up to ~16 KB, so a
//! frame spans several QUIC packets) through the trace-driven link emulator to an edge server,
//! on a trace whose capacity drops hard. With partial results the agent announces an upload
//! budget that ends when a result could no longer come back in time, the server cuts the frame
//! there and decodes the complete layers it has, and the agent counts the frame with those
//! layers. Checked: frames cut short after the drop are answered by their deadline from a
//! shorter prefix than planned, and every frame gets a result.
//!
//! The detector weights and the video frames are installed outside git by
//! `scripts/install-detector.sh`; without them (and outside CI) the test says so and skips.

use std::sync::Arc;
use std::time::Duration;

use offload_agent::loopback::{LoopbackLink, run_loopback};
use offload_agent::{AgentConfig, AgentEvents, SimulatedBattery, TaskResult};
use offload_cli::detector_glue::load_frames;
use offload_cli::{DetectorDevice, DetectorHandler, TraceSchedule, model_id32};
use offload_controller::{ControllerConfig, Profile};
use offload_e2e::{detector_installed, repo};
use offload_model::detector_split::DetectorSplit;
use offload_sim::battery::BatteryConfig;
use offload_transport::{ClientConfig, FrameReply, ModelRegistry};

/// Slow enough that the local fallback (~0.2 s on this CPU) never holds up the next capture, and
/// that after the drop the link (115 kbit/s, above the 108 kbit/s a frame a second offers) has
/// carried the rest of one frame before the next.
const FPS: f64 = 1.0;
const FRAMES: usize = 16;
/// The uplink: all eight layers (~13.5 KB) take ~110 ms before the drop; after it ~0.94 s, so
/// with the encoder before it and the way to the server the frame cannot reach the server
/// whole by the deadline, on any CPU: the server cuts every frame and decodes the prefix it
/// has. (At 130 kbit/s, ~0.83 s, a fast host's frames arrived whole just in time — 975–994 ms
/// against the 1 s deadline on a 2026-11-27 VM — and the cut the test is about never came.)
const BEFORE_BPS: f64 = 1e6;
const AFTER_BPS: f64 = 115e3;
const DROP_AT_S: f64 = 3.0;
const DEADLINE: Duration = Duration::from_millis(1000);

#[derive(Default)]
struct Log {
    answers: Vec<(u64, u16)>,
    replies: Vec<(u64, usize, usize)>,
}

impl AgentEvents for Log {
    fn answered(&mut self, frame: u64, layers: u16, _result: &TaskResult) {
        self.answers.push((frame, layers));
    }

    fn replied(&mut self, frame: u64, reply: &FrameReply) {
        self.replies
            .push((frame, reply.layers_written, reply.layers_received));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_cut_short_by_a_capacity_drop_deliver_a_prefix_in_time() {
    let Some((detector_dir, frame_dir)) = detector_installed("partial_results") else {
        return;
    };
    let split = Arc::new(
        DetectorSplit::load(&repo().join("models/ssd-split"), &detector_dir)
            .expect("the committed split detector on the installed weights"),
    );
    let profile =
        Profile::load(&repo().join("profiles/ssd-mobilenet-v2.toml")).expect("committed profile");
    let layers = split.num_layers();
    assert!(profile.layers.len() >= layers);
    let frames = load_frames(&frame_dir, FRAMES).unwrap();
    assert_eq!(frames.len(), FRAMES);
    let mut registry = ModelRegistry::new();
    registry
        .insert(
            model_id32(&split.model_id()),
            "ssd-split",
            Arc::new(DetectorHandler::new(split.clone())),
        )
        .unwrap();
    let duration = FRAMES as f64 / FPS + 5.0;
    let link = LoopbackLink {
        uplink: Arc::new(TraceSchedule(
            offload_sim::trace::generate::step("drop", BEFORE_BPS, AFTER_BPS, DROP_AT_S, duration)
                .unwrap(),
        )),
        downlink_bps: 50e6,
        one_way_s: 0.02,
        queue_bytes: 32 * 1024,
        lead_s: 1.0,
        true_link_samples: false,
    };
    let config = AgentConfig {
        fps: FPS,
        deadline: DEADLINE,
        controller: ControllerConfig {
            frame_interval: 1.0 / FPS,
            ..ControllerConfig::default()
        },
        profile: profile.clone(),
        sensor_interval: Duration::from_secs(1),
        partial_results: true,
        // What this test is about is the server decoding the prefix that arrived; after the
        // drop the first packet of a frame takes longer than the silence check allows, and the
        // local fallback (tests/agent_fallback.rs) would answer those frames instead.
        local_fallback: false,
    };
    let mut log = Log::default();
    let inputs: Vec<_> = frames.iter().map(|f| (f.clone(), None)).collect();
    let out = run_loopback(
        Arc::new(DetectorDevice::new(split.clone())),
        Arc::new(registry),
        link,
        offload_policies::load_preset("fixed-k8").unwrap().build(),
        inputs,
        config,
        ClientConfig::default(),
        Box::new(SimulatedBattery::new(BatteryConfig::default())),
        &mut log,
    )
    .await
    .unwrap();
    for r in &out.records {
        eprintln!(
            "frame {:>2} at {:>4.1} s: {:<9} layers {} bytes {:>5} latency {:>6.0} ms met {}",
            r.frame,
            r.captured_at,
            r.decision,
            r.layers,
            r.bytes,
            r.latency.unwrap_or(f64::NAN) * 1e3,
            r.met_deadline
        );
    }
    eprintln!(
        "replies (frame, layers written, layers received): {:?}",
        log.replies
    );

    // No frame is left without a result.
    assert_eq!(out.records.len(), FRAMES);
    for r in &out.records {
        assert!(
            r.decision == "skipped" || r.result_at.is_some(),
            "frame {} has no result: {r:?}",
            r.frame
        );
    }
    let skipped = out
        .records
        .iter()
        .filter(|r| r.decision == "skipped")
        .count();
    assert_eq!(log.answers.len() + skipped, FRAMES, "{:?}", log.answers);
    assert!(skipped <= 1, "{skipped} frames skipped");

    let planned = format!("offload:{layers}");
    let before: Vec<_> = out
        .records
        .iter()
        .filter(|r| r.captured_at + DEADLINE.as_secs_f64() < DROP_AT_S)
        .collect();
    assert!(!before.is_empty());
    assert!(
        before
            .iter()
            .all(|r| r.decision == planned && r.layers as usize == layers && r.met_deadline),
        "before the drop every frame arrives whole and in time: {before:?}"
    );
    // After the drop: frames answered by their deadline from fewer layers than planned.
    let cut: Vec<_> = out
        .records
        .iter()
        .filter(|r| r.captured_at >= DROP_AT_S && r.decision == planned)
        .filter(|r| r.met_deadline && r.layers >= 1 && (r.layers as usize) < layers)
        .collect();
    let after = out
        .records
        .iter()
        .filter(|r| r.captured_at >= DROP_AT_S)
        .count();
    assert!(
        cut.len() * 2 >= after,
        "at least half of the {after} frames after the drop delivered a prefix in time; {} did",
        cut.len()
    );
    // The records say what the server decoded: the layers match its replies.
    for r in &cut {
        let reply = log.replies.iter().find(|(f, ..)| *f == r.frame);
        assert_eq!(
            reply.map(|(_, _, received)| *received),
            Some(r.layers as usize),
            "frame {}",
            r.frame
        );
    }
}
