//! The loopback run's warm-up gives the agent its round trip measured on its own idle packets
//! before the first frame: every run starts with its link samples timed with ACK/frame pairs
//! (`offload_transport::UplinkDelay`), not with the fallback (`PropagationRtt`), whose first
//! samples read up to 40 % low on a contested link (docs/results/emulation.md, pass G item 2).

use std::sync::Arc;
use std::time::Duration;

use offload_agent::loopback::{LoopbackLink, run_loopback};
use offload_agent::{AgentConfig, AgentEvents, SimulatedBattery};
use offload_cli::{SplitDevice, SplitHandler};
use offload_controller::{Context, ControllerConfig, Decision, FrameOptions, Policy};
use offload_e2e::fmnist;
use offload_sim::battery::BatteryConfig;
use offload_transport::emulator::ConstantRate;
use offload_transport::{ClientConfig, FrameReply, UplinkDelay};

const FPS: f64 = 30.0;

/// Offloads the base layer of every frame.
#[derive(Debug)]
struct BaseLayer;

impl Policy for BaseLayer {
    fn name(&self) -> &str {
        "base-layer"
    }

    fn decide(&mut self, _frame: &FrameOptions, _ctx: &Context<'_>) -> Decision {
        Decision::Offload { layers: 1 }
    }
}

/// The pairs each reply's link sample was timed with, in the order the replies came.
#[derive(Default)]
struct Pairs(Vec<(u64, usize)>);

impl AgentEvents for Pairs {
    fn replied(&mut self, frame: u64, reply: &FrameReply) {
        self.0.push((frame, reply.uplink_delay_probes));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_frame_is_timed_with_pairs_from_the_warm_up() {
    let seconds = 1.0;
    let f = fmnist((seconds * FPS) as usize);
    // A contested link like the comparison's (~140 kbit/s, 25 ms each way, 2 s lead).
    let link = LoopbackLink {
        uplink: Arc::new(ConstantRate { bps: 150e3 }),
        downlink_bps: 50e6,
        one_way_s: 0.025,
        queue_bytes: 32 * 1024,
        lead_s: 2.0,
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
    let mut pairs = Pairs::default();
    let run = run_loopback(
        Arc::new(SplitDevice::new(f.model.clone())),
        Arc::new(SplitHandler::new(f.model.clone())),
        link,
        Box::new(BaseLayer),
        f.inputs,
        config,
        ClientConfig::default(),
        Box::new(SimulatedBattery::new(BatteryConfig::default())),
        &mut pairs,
    )
    .await
    .expect("the loopback run completes");
    assert!(
        run.records.iter().any(|r| r.bytes_sent > 0),
        "nothing offloaded"
    );
    let (frame, first) = *pairs.0.first().expect("a reply");
    assert!(
        first >= UplinkDelay::MIN_PROBES,
        "frame {frame}, the first reply, was timed with {first} pairs (all: {:?})",
        pairs.0
    );
    assert!(
        pairs.0.iter().all(|&(_, p)| p >= UplinkDelay::MIN_PROBES),
        "{:?}",
        pairs.0
    );
}
