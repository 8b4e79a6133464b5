//! A probe beside the local path (`local+probe:k`): the frame's result is the local one, in
//! time as often as with the local path alone, while the probe's bytes cross the link and give
//! the controller throughput samples; on a dead link the probe delivers nothing and the frames
//! are still answered locally.

use offload_controller::{Context, Decision, FrameOptions, Policy};
use offload_sim::oracle::{OracleConfig, Replay, decision_action, plan};
use offload_sim::trace::Trace;
use offload_sim::{FrameRecord, SimConfig, simulate};

mod support;
use support::{Always, profile};

fn run(trace: &Trace, decision: Decision) -> Vec<FrameRecord> {
    let config = SimConfig {
        duration_s: Some(8.0),
        ..SimConfig::default()
    };
    let mut rows = Vec::new();
    simulate(
        trace,
        &profile(),
        Box::new(Always(decision)),
        &config,
        |r| rows.push(r.clone()),
    );
    rows
}

fn total(rows: &[FrameRecord]) -> f64 {
    rows.iter().map(|r| r.utility).sum()
}

#[test]
fn the_probe_measures_the_link_and_the_frame_keeps_its_local_result() {
    let trace = Trace::from_segments("flat-2-mbps", &[(10.0, 2e6)]).unwrap();
    let local = run(&trace, Decision::Local);
    let probed = run(&trace, Decision::LocalWithProbe { layers: 1 });
    assert_eq!(local.len(), probed.len());
    // The probe's coding delays the local path a little, so the frames skipped behind it may
    // differ from the local path alone's.
    let base = profile().layers[0].accuracy;
    let local_accuracy = profile().local.accuracy;
    let (mut crossed, mut sampled) = (0, 0);
    for p in &probed {
        if p.decision == "skipped" {
            continue;
        }
        assert_eq!(p.decision, "local+probe:1", "frame {}", p.frame);
        // The result is the local path's, never the base layer's.
        assert_eq!(p.layers, 0, "frame {}", p.frame);
        assert!(
            p.accuracy == 0.0 || p.accuracy == local_accuracy,
            "frame {}",
            p.frame
        );
        assert_ne!(p.accuracy, base, "frame {}", p.frame);
        crossed += usize::from(p.bytes_sent > 0);
        sampled += usize::from(p.estimate_bps > 0.0);
    }
    // Every probe crossed but the first few, held up by the radio's promotion.
    let probes = probed.iter().filter(|r| r.decision != "skipped").count();
    assert!(
        crossed + 10 >= probes,
        "{crossed} of {probes} probes crossed"
    );
    // The coding of the probe delays the local result by well under a frame: the frames skipped
    // behind the local path and the deadlines met are within a few of the local path alone's.
    let met = |rows: &[FrameRecord]| rows.iter().filter(|r| r.met_deadline).count();
    assert!(
        met(&probed) + 5 >= met(&local),
        "{} vs {} frames met",
        met(&probed),
        met(&local)
    );
    // The controller learnt the link from the probes: its estimate is within 20 % of 2 Mbit/s.
    assert!(
        sampled * 10 >= probed.len() * 4,
        "{sampled} frames with an estimate"
    );
    let last = probed.last().unwrap().estimate_bps;
    assert!((last - 2e6).abs() < 0.2 * 2e6, "estimate {last}");
    // What the probes cost is the radio's energy (and the coding's), not frames.
    let energy = |rows: &[FrameRecord]| rows.iter().map(|r| r.energy_j).sum::<f64>();
    assert!(energy(&probed) > energy(&local));
    assert!(total(&probed) < total(&local));
    assert!(total(&probed) > total(&local) - 0.05 * local.len() as f64);
}

#[test]
fn on_a_dead_link_the_probe_is_lost_and_the_frame_is_still_answered() {
    let trace = Trace::from_segments("dead", &[(10.0, 0.0)]).unwrap();
    let local = run(&trace, Decision::Local);
    let probed = run(&trace, Decision::LocalWithProbe { layers: 1 });
    // Without the local fallback (sim/tests/local_fallback.rs), which would answer some.
    let replacing = {
        let config = SimConfig {
            duration_s: Some(8.0),
            local_fallback: false,
            ..SimConfig::default()
        };
        let mut rows = Vec::new();
        simulate(
            &trace,
            &profile(),
            Box::new(Always(Decision::Offload { layers: 1 })),
            &config,
            |r| rows.push(r.clone()),
        );
        rows
    };
    let met = |rows: &[FrameRecord]| rows.iter().filter(|r| r.met_deadline).count();
    assert!(
        probed
            .iter()
            .all(|r| r.bytes_sent == 0 && r.estimate_bps == 0.0)
    );
    assert!(met(&probed) + 5 >= met(&local) && met(&local) > 100);
    // A probe in place of the frame loses the frame.
    assert_eq!(met(&replacing), 0);
}

#[test]
fn the_oracle_replays_a_run_with_probes_exactly() {
    let trace = Trace::from_segments("on-off", &[(0.5, 4e6), (0.5, 0.0), (1.0, 1e6)]).unwrap();
    let config = SimConfig {
        duration_s: Some(6.0),
        ..SimConfig::default()
    };
    let profile = profile();
    // Probe every third frame, offload the base layer every third, local otherwise.
    #[derive(Debug)]
    struct Cycle;
    impl Policy for Cycle {
        fn name(&self) -> &str {
            "cycle"
        }
        fn decide(&mut self, frame: &FrameOptions, _ctx: &Context<'_>) -> Decision {
            match frame.frame % 3 {
                0 => Decision::LocalWithProbe { layers: 2 },
                1 => Decision::Offload { layers: 1 },
                _ => Decision::Local,
            }
        }
    }
    let mut rows = Vec::new();
    let online = simulate(&trace, &profile, Box::new(Cycle), &config, |r| {
        rows.push(r.clone())
    });
    let schedule: Vec<u8> = rows
        .iter()
        .map(|r| r.decision.parse().map_or(0, decision_action))
        .collect();
    assert!(rows.iter().any(|r| r.decision == "local+probe:2"));
    let mut replayed = Vec::new();
    simulate(
        &trace,
        &profile,
        Box::new(Replay::new(schedule.clone())),
        &config,
        |r| replayed.push(r.clone()),
    );
    assert_eq!(replayed, rows);
    // Seeded with it, the oracle is at least as good.
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
    assert!(oracle.total_utility >= total(&rows));
    assert!((online.utility * rows.len() as f64 - total(&rows)).abs() < 1e-6 * rows.len() as f64);
}
