//! The local fallback: an offloaded frame sent into a silent uplink (or none of whose layers
//! arrived by the cutoff) is answered by the local path when the device learns so early
//! enough, before any newer frame; the records stay one per frame, in frame order, and the
//! oracle replays a run with fallbacks exactly.

use offload_controller::{Decision, Policy, SILENCE_SLACK_S};
use offload_sim::oracle::{OracleConfig, Replay, decision_action, plan};
use offload_sim::trace::Trace;
use offload_sim::{FrameRecord, SimConfig, simulate};

mod support;
use support::{Always, profile};

fn config(fallback: bool) -> SimConfig {
    SimConfig {
        duration_s: Some(8.0),
        local_fallback: fallback,
        ..SimConfig::default()
    }
}

fn run(trace: &Trace, policy: Box<dyn Policy>, config: &SimConfig) -> Vec<FrameRecord> {
    let mut rows = Vec::new();
    simulate(trace, &profile(), policy, config, |r| rows.push(r.clone()));
    rows
}

fn met(rows: &[FrameRecord]) -> usize {
    rows.iter().filter(|r| r.met_deadline).count()
}

fn total(rows: &[FrameRecord]) -> f64 {
    rows.iter().map(|r| r.utility).sum()
}

#[test]
fn on_a_dead_link_offloaded_frames_are_answered_locally_in_time() {
    let trace = Trace::from_segments("dead", &[(10.0, 0.0)]).unwrap();
    let offload = Decision::Offload { layers: 2 };
    let without = run(&trace, Box::new(Always(offload)), &config(false));
    let with = run(&trace, Box::new(Always(offload)), &config(true));
    let local = run(&trace, Box::new(Always(Decision::Local)), &config(true));
    assert_eq!(met(&without), 0, "nothing crosses a dead link");
    // One record per frame, in frame order, however long a record was held back.
    assert_eq!(with.len(), without.len());
    assert!(with.iter().enumerate().all(|(i, r)| r.frame == i as u64));
    let p = profile();
    let deadline = SimConfig::default().deadline_s;
    let rescued: Vec<&FrameRecord> = with.iter().filter(|r| r.met_deadline).collect();
    for r in &rescued {
        assert_eq!(r.decision, "offload:2", "frame {}", r.frame);
        assert_eq!(
            (r.layers, r.bytes, r.bytes_sent),
            (0, 0, 0),
            "frame {}",
            r.frame
        );
        assert_eq!(r.accuracy, p.local.accuracy, "frame {}", r.frame);
        let latency = r.latency.expect("a met frame has a latency");
        // The local path ran after the silence check, a round trip and a slack after sending.
        let rtt = SimConfig::default().link.rtt_s;
        assert!(latency > p.local.time_s + rtt + SILENCE_SLACK_S && latency <= deadline + 1e-9);
        assert!(
            r.energy_j >= p.device.compute_power_w * (p.local.time_s + p.device.encoder_time_s)
        );
    }
    // Each frame holds the CPU for its encoder (20 ms) and coding, then for its fallback
    // (41 ms): one frame in two gets through (120 of 240 when measured), against the local
    // path alone's 132.
    assert!(
        rescued.len() >= 100 && met(&local) > 100,
        "{} rescued, {} met by the local path alone",
        rescued.len(),
        met(&local)
    );
    assert!(total(&with) > total(&without));
}

#[test]
fn fallbacks_rescue_the_frames_sent_into_an_outage() {
    // 1 s on at 4 Mbit/s, 1 s off, repeated: each outage catches the frames in flight.
    let segments: Vec<(f64, f64)> = (0..8)
        .map(|s| (1.0, if s % 2 == 0 { 4e6 } else { 0.0 }))
        .collect();
    let trace = Trace::from_segments("on-off", &segments).unwrap();
    let offload = Decision::Offload { layers: 2 };
    let without = run(&trace, Box::new(Always(offload)), &config(false));
    let with = run(&trace, Box::new(Always(offload)), &config(true));
    // While the link is up the two runs are the same frame for frame.
    for (a, b) in without.iter().zip(&with).take(20) {
        assert_eq!(a, b);
    }
    let rescued = with
        .iter()
        .filter(|r| r.met_deadline && r.layers == 0)
        .count();
    // About one frame in two of those sent into an outage (60 when measured; see above).
    assert!(
        rescued >= 4 * 10,
        "{rescued} frames rescued in four outages"
    );
    // A frame taken for silent whose link came back in time would have met its deadline anyway.
    assert!(met(&with) >= met(&without) + rescued / 2);
    assert!(total(&with) > total(&without));
}

#[test]
fn the_oracle_replays_a_run_with_fallbacks_exactly() {
    let trace = Trace::from_segments("on-off", &[(0.5, 4e6), (0.5, 0.0), (1.0, 1e6)]).unwrap();
    let config = SimConfig {
        duration_s: Some(6.0),
        ..SimConfig::default()
    };
    let profile = profile();
    let rows = run(
        &trace,
        Box::new(Always(Decision::Offload { layers: 2 })),
        &config,
    );
    assert!(rows.iter().any(|r| r.met_deadline && r.layers == 0));
    let schedule: Vec<u8> = rows
        .iter()
        .map(|r| r.decision.parse().map_or(0, decision_action))
        .collect();
    let replayed = run(&trace, Box::new(Replay::new(schedule.clone())), &config);
    assert_eq!(replayed, rows);
    // Seeded with it, the oracle is at least as good, and its own plan scores what it says.
    let oracle = plan(
        &trace,
        &profile,
        &config,
        &OracleConfig {
            width: 4,
            ..OracleConfig::default()
        },
        &[&schedule],
    );
    assert!(oracle.total_utility >= total(&rows) - 1e-9);
    let planned = run(
        &trace,
        Box::new(Replay::new(oracle.schedule.clone())),
        &config,
    );
    assert!((total(&planned) - oracle.total_utility).abs() < 1e-6);
}
