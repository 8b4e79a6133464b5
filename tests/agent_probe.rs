//! A probe beside the local path on the real agent: every frame is answered by the local path,
//! while its base layer crosses a real QUIC connection through the link emulator and the
//! server's receive times give the controller its throughput samples.

use std::sync::Arc;
use std::time::Duration;

use offload_agent::loopback::{LoopbackLink, run_loopback};
use offload_agent::{AgentConfig, SimulatedBattery};
use offload_cli::{SplitDevice, SplitHandler};
use offload_controller::{Context, ControllerConfig, Decision, FrameOptions, Policy};
use offload_e2e::fmnist;
use offload_sim::battery::BatteryConfig;
use offload_transport::ClientConfig;
use offload_transport::emulator::ConstantRate;

const FPS: f64 = 30.0;

/// Runs locally and probes with the base layer on every frame.
#[derive(Debug)]
struct AlwaysProbe;

impl Policy for AlwaysProbe {
    fn name(&self) -> &str {
        "always-probe"
    }

    fn decide(&mut self, _frame: &FrameOptions, _ctx: &Context<'_>) -> Decision {
        Decision::LocalWithProbe { layers: 1 }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probed_frame_is_answered_locally_and_its_base_layer_measures_the_link() {
    let seconds = 4.0;
    let f = fmnist((seconds * FPS) as usize);
    let link = LoopbackLink {
        uplink: Arc::new(ConstantRate { bps: 1e6 }),
        downlink_bps: 20e6,
        one_way_s: 0.02,
        queue_bytes: 32 * 1024,
        lead_s: 1.0,
        true_link_samples: false,
    };
    let config = AgentConfig {
        fps: FPS,
        deadline: Duration::from_millis(200),
        controller: ControllerConfig {
            frame_interval: 1.0 / FPS,
            ..ControllerConfig::default()
        },
        profile: f.profile.clone(),
        sensor_interval: Duration::from_secs(1),
        partial_results: true,
        local_fallback: true,
    };
    let n = f.inputs.len();
    let run = run_loopback(
        Arc::new(SplitDevice::new(f.model.clone())),
        Arc::new(SplitHandler::new(f.model.clone())),
        link,
        Box::new(AlwaysProbe),
        f.inputs,
        config,
        ClientConfig::default(),
        Box::new(SimulatedBattery::new(BatteryConfig::default())),
        &mut (),
    )
    .await
    .expect("the loopback run completes");
    let records = run.records;

    assert_eq!(records.len(), n);
    let decided: Vec<_> = records.iter().filter(|r| r.decision != "skipped").collect();
    assert!(
        decided.len() * 2 > n,
        "{} of {n} frames decided",
        decided.len()
    );
    for r in &decided {
        assert_eq!(r.decision, "local+probe:1", "frame {}", r.frame);
        // The local path answered: no layers decoded by the server.
        assert_eq!(r.layers, 0, "frame {}", r.frame);
        assert!(r.result_at.is_some(), "frame {} has no result", r.frame);
    }
    // The base layers crossed (counted on their frames' records) ...
    let crossed = decided.iter().filter(|r| r.bytes_sent > 0).count();
    assert!(
        crossed * 10 >= decided.len() * 8,
        "{crossed} of {} probes crossed",
        decided.len()
    );
    // ... and their link samples reached the controller.
    let late = &decided[decided.len() / 2..];
    assert!(
        late.iter().all(|r| r.estimate_bps > 0.0),
        "frames without a throughput estimate after {} probes",
        decided.len() / 2
    );
}
