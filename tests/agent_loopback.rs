//! The real system on loopback: the trained Fashion-MNIST split model on real test images, the
//! agent's controller deciding per frame, a real QUIC connection through the trace-driven link
//! emulator to the edge server.

use std::sync::Arc;
use std::time::Duration;

use offload_agent::{AgentConfig, SimulatedBattery};
use offload_cli::{SplitDevice, SplitHandler, TraceSchedule};
use offload_controller::{ControllerConfig, Profile};
use offload_e2e::fmnist;
use offload_sim::FrameRecord;
use offload_sim::battery::BatteryConfig;
use offload_transport::emulator::{
    CapacitySchedule, ConstantRate, Emulator, EmulatorConfig, LinkConfig,
};
use offload_transport::{
    AgentClient, AuthToken, ClientConfig, EdgeServer, ServerIdentity, ServerLimits, ServerTrust,
};

const FPS: f64 = 30.0;

fn agent_config(profile: &Profile) -> AgentConfig {
    AgentConfig {
        fps: FPS,
        deadline: Duration::from_millis(200),
        controller: ControllerConfig {
            frame_interval: 1.0 / FPS,
            ..ControllerConfig::default()
        },
        profile: profile.clone(),
        sensor_interval: Duration::from_secs(1),
        partial_results: true,
        local_fallback: true,
    }
}

fn client_config() -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_millis(500),
        reply_timeout: Duration::from_millis(500),
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        ..ClientConfig::default()
    }
}

fn mean_layers(records: &[FrameRecord], from: f64, to: f64) -> f64 {
    let sel: Vec<_> = records
        .iter()
        .filter(|r| r.captured_at >= from && r.captured_at < to)
        .collect();
    sel.iter().map(|r| f64::from(r.layers)).sum::<f64>() / sel.len().max(1) as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_frame_is_answered_and_a_step_down_sends_fewer_layers() {
    let seconds = 8.0;
    let f = fmnist((seconds * FPS) as usize);
    let all = f.profile.layers.last().unwrap().bytes_median * 8.0 * FPS;
    let one = f.profile.layers[0].bytes_median * 8.0 * FPS;
    // Room for every layer (and QUIC's headers) first, then for little more than the base layer.
    let trace = offload_sim::trace::generate::step(
        "step",
        4.0 * all + 300e3,
        1.2 * one + 40e3,
        seconds / 2.0,
        seconds,
    )
    .unwrap();

    let identity = ServerIdentity::generate(&["localhost"]).unwrap();
    let token = AuthToken::new(b"loopback-test".to_vec()).unwrap();
    let handler = Arc::new(SplitHandler::new(f.model.clone()));
    let server = EdgeServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        &identity,
        token.clone(),
        handler,
        ServerLimits::default(),
    )
    .unwrap();
    let mut emu = EmulatorConfig::new("127.0.0.1:0".parse().unwrap(), server.local_addr());
    emu.uplink = LinkConfig {
        delay: 0.02,
        queue_bytes: 32 * 1024,
        ..LinkConfig::default()
    };
    emu.downlink = LinkConfig {
        delay: 0.02,
        ..LinkConfig::default()
    };
    let up: Arc<dyn CapacitySchedule> = Arc::new(TraceSchedule(trace));
    let down: Arc<dyn CapacitySchedule> = Arc::new(ConstantRate { bps: 20e6 });
    let emulator = Emulator::start(emu, up, down).await.unwrap();
    let client = AgentClient::connect(
        emulator.local_addr(),
        "localhost",
        ServerTrust::Pinned(identity.fingerprint()),
        token,
        client_config(),
    )
    .await
    .unwrap();
    let policy = offload_policies::load_preset("deadline-aware")
        .unwrap()
        .build();
    let battery = Box::new(SimulatedBattery::new(BatteryConfig::default()));
    let n = f.inputs.len();
    let (records, summary) = offload_agent::run_agent(
        Arc::new(SplitDevice::new(f.model.clone())),
        Some(Arc::new(client)),
        policy,
        f.inputs,
        agent_config(&f.profile),
        battery,
        &mut (),
    )
    .await
    .unwrap();
    server.shutdown(Duration::from_millis(200)).await;
    emulator.stop();

    assert_eq!(records.len(), n);
    let unanswered: Vec<_> = records
        .iter()
        .filter(|r| r.decision != "skipped" && r.result_at.is_none())
        .collect();
    assert!(
        unanswered.is_empty(),
        "{} frames without a result",
        unanswered.len()
    );
    let before = mean_layers(&records, 1.0, seconds / 2.0);
    let after = mean_layers(&records, seconds / 2.0 + 1.0, seconds);
    assert!(
        before > after + 1.0,
        "layers before the step {before:.2}, after {after:.2}"
    );
    assert!(summary.accuracy > 0.5, "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_means_local_results_and_offloading_resumes_when_it_returns() {
    let seconds = 9.0;
    let f = fmnist((seconds * FPS) as usize);
    let identity = ServerIdentity::generate(&["localhost"]).unwrap();
    let token = AuthToken::new(b"loopback-test".to_vec()).unwrap();
    let handler = Arc::new(SplitHandler::new(f.model.clone()));
    let server = EdgeServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        &identity,
        token.clone(),
        handler.clone(),
        ServerLimits::default(),
    )
    .unwrap();
    let addr = server.local_addr();
    let client = AgentClient::connect(
        addr,
        "localhost",
        ServerTrust::Pinned(identity.fingerprint()),
        token.clone(),
        client_config(),
    )
    .await
    .unwrap();
    let policy = offload_policies::load_preset("deadline-aware")
        .unwrap()
        .build();
    let battery = Box::new(SimulatedBattery::new(BatteryConfig::default()));
    let n = f.inputs.len();
    let model = f.model.clone();
    let profile = f.profile.clone();
    let agent = tokio::spawn(async move {
        offload_agent::run_agent(
            Arc::new(SplitDevice::new(model)),
            Some(Arc::new(client)),
            policy,
            f.inputs,
            agent_config(&profile),
            battery,
            &mut (),
        )
        .await
    });
    // Server up for 3 s, down for 3 s, up again on the same address for the rest.
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.shutdown(Duration::from_millis(100)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let server =
        EdgeServer::bind(addr, &identity, token, handler, ServerLimits::default()).unwrap();
    let (records, _) = agent.await.unwrap().unwrap();
    server.shutdown(Duration::from_millis(100)).await;

    assert_eq!(records.len(), n);
    let unanswered = records
        .iter()
        .filter(|r| r.decision != "skipped" && r.result_at.is_none())
        .count();
    assert_eq!(unanswered, 0, "every frame has a result");
    let down: Vec<_> = records
        .iter()
        .filter(|r| r.captured_at >= 3.5 && r.captured_at < 5.5)
        .collect();
    let local_while_down = down
        .iter()
        .filter(|r| r.layers == 0 || r.bytes_sent == 0)
        .count();
    assert!(
        local_while_down as f64 >= 0.9 * down.len() as f64,
        "{local_while_down} of {} frames ran locally while the server was down",
        down.len()
    );
    let offloaded_early = records
        .iter()
        .filter(|r| r.captured_at < 2.5 && r.bytes_sent > 0)
        .count();
    let offloaded_late = records
        .iter()
        .filter(|r| r.captured_at >= 7.0 && r.bytes_sent > 0)
        .count();
    assert!(
        offloaded_early > 30,
        "offloaded before the outage: {offloaded_early}"
    );
    assert!(
        offloaded_late > 30,
        "offloading resumed after the server came back: {offloaded_late}"
    );
}
