//! Partial results in the simulator: when a frame's layers do not all cross the link in time,
//! the sender stops at the last moment a result can still come back, and the server decodes the
//! prefix that arrived. On a step down to a link too slow for all eight layers of the measured
//! detector profile, always sending all layers then delivers a prefix in time, frame after
//! frame; with partial results off the same frames miss.

use std::path::Path;

use offload_controller::Profile;
use offload_sim::oracle::Replay;
use offload_sim::trace::generate::step;
use offload_sim::{FrameRecord, SimConfig, simulate};

fn profile() -> Profile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/ssd-mobilenet-v2.toml");
    Profile::load(&path).expect("the measured detector profile loads")
}

/// Frames captured after `from` (s) of a fixed-k8 run on 20 Mbit/s stepping down to 1 Mbit/s.
fn run(partial_results: bool, from: f64) -> Vec<FrameRecord> {
    // Traces repeat: the run stops a second before this one would wrap to 20 Mbit/s again.
    let trace = step("step-20-to-1-mbps", 20e6, 1e6, 10.0, 21.0).unwrap();
    let config = SimConfig {
        partial_results,
        duration_s: Some(20.0),
        ..SimConfig::default()
    };
    let policy = offload_policies::preset("fixed-k8").unwrap().build();
    let mut rows = Vec::new();
    simulate(&trace, &profile(), policy, &config, |r| {
        if r.captured_at >= from {
            rows.push(r.clone())
        }
    });
    rows
}

#[test]
fn a_frame_cut_short_delivers_the_prefix_that_arrived_in_time() {
    let profile = profile();
    let full = profile.layers.last().unwrap().accuracy;
    let prefixes: Vec<f64> = profile.layers.iter().map(|l| l.accuracy).collect();
    let deadline = SimConfig::default().deadline_s;

    // Before the step every frame's eight layers cross in a few milliseconds.
    let before: Vec<_> = run(true, 0.0)
        .into_iter()
        .filter(|r| r.captured_at > 1.0 && r.captured_at < 9.0 && r.decided_layers() == 8)
        .collect();
    assert!(
        before.len() > 100,
        "{} frames offloaded before the step",
        before.len()
    );
    assert!(
        before
            .iter()
            .all(|r| r.met_deadline && r.accuracy == full && r.bytes_sent == r.bytes),
        "before the step every frame delivers all eight layers"
    );

    let after = run(true, 12.0);
    let offloaded: Vec<_> = after.iter().filter(|r| r.decided_layers() == 8).collect();
    let met: Vec<_> = offloaded.iter().filter(|r| r.met_deadline).collect();
    assert!(
        met.len() * 10 >= offloaded.len() * 9,
        "{} of {} frames after the step met their deadline",
        met.len(),
        offloaded.len()
    );
    for r in &met {
        // The record counts the prefix the server decoded, as the agent's does: fewer layers,
        // whose bytes all crossed (and part of the next layer's, cut off).
        assert!(r.layers < 8, "frame {}: all eight layers crossed", r.frame);
        assert!(r.bytes_sent >= r.bytes, "frame {}", r.frame);
        assert_eq!(
            r.accuracy,
            prefixes[r.layers as usize - 1],
            "frame {}",
            r.frame
        );
        assert!(
            r.accuracy < full && prefixes.contains(&r.accuracy),
            "frame {}: accuracy {} is not a shorter prefix's",
            r.frame,
            r.accuracy
        );
        assert!(r.latency.unwrap() <= deadline + 1e-9, "frame {}", r.frame);
    }
    let mean = after.iter().map(|r| r.accuracy).sum::<f64>() / after.len() as f64;
    assert!(mean >= 0.3, "mean accuracy after the step {mean}");

    // Without partial results the same frames run into the deadline and deliver nothing.
    let old = run(false, 12.0);
    let old_met = old.iter().filter(|r| r.met_deadline).count();
    assert!(
        old_met * 10 <= old.len(),
        "{old_met} of {} frames met without partial results",
        old.len()
    );
    let old_mean = old.iter().map(|r| r.accuracy).sum::<f64>() / old.len() as f64;
    assert!(mean > old_mean + 0.2, "{mean} vs {old_mean}");
}

/// The oracle is seeded with an online run's decisions, so replaying them must give that run
/// back bit for bit: with frames cut short, the decisions (`offload:8`) differ from the layers
/// the server decoded, and only the decisions reproduce the run.
#[test]
fn replaying_the_decisions_of_a_run_with_cut_frames_reproduces_it() {
    let trace = step("step-20-to-1-mbps", 20e6, 1e6, 10.0, 21.0).unwrap();
    let profile = profile();
    let config = SimConfig {
        duration_s: Some(20.0),
        ..SimConfig::default()
    };
    let policy = offload_policies::preset("fixed-k8").unwrap().build();
    let mut rows = Vec::new();
    let online = simulate(&trace, &profile, policy, &config, |r| rows.push(r.clone()));
    assert!(
        rows.iter()
            .any(|r| r.met_deadline && r.layers < r.decided_layers()),
        "the run has frames answered from a shorter prefix"
    );
    let replay = |schedule: Vec<u8>| {
        simulate(
            &trace,
            &profile,
            Box::new(Replay::new(schedule)),
            &config,
            |_| {},
        )
    };
    let decisions = replay(rows.iter().map(|r| r.decided_layers() as u8).collect());
    assert_eq!(decisions.utility, online.utility);
    let decoded = replay(rows.iter().map(|r| r.layers as u8).collect());
    assert_ne!(decoded.utility, online.utility);
}

/// The measured detector profile's server decodes 6 layers 0.5 ms slower than 7. A 7-layer
/// frame cut short is answered from its 6-layer prefix, so the sender's cutoff must leave the
/// prefix's server time: cut at the 7-layer frame's own time, such answers came 0.5 ms late.
#[test]
fn a_prefix_decoded_after_a_cut_is_answered_in_time_even_when_it_decodes_slower() {
    let profile = profile();
    assert!(
        profile.layers[5].server_time_s > profile.layers[6].server_time_s,
        "the profile no longer has the slower prefix this test is about"
    );
    // 6 layers (~2.5 kB) fit a frame interval at 1.2 Mbit/s, 7 (~5.5 kB) do not.
    let trace = step("flat-1.2-mbps", 1.2e6, 1.2e6, 10.0, 21.0).unwrap();
    let config = SimConfig {
        duration_s: Some(20.0),
        ..SimConfig::default()
    };
    let mut cut = 0;
    let mut late = Vec::new();
    simulate(
        &trace,
        &profile,
        Box::new(Replay::new(vec![7; 600])),
        &config,
        |r| {
            if r.decided_layers() == 7 && r.layers == 6 && r.bytes_sent > r.bytes {
                cut += 1;
                if !r.met_deadline {
                    late.push((r.frame, r.latency));
                }
            }
        },
    );
    assert!(cut > 50, "{cut} frames were cut back to 6 layers");
    assert!(
        late.is_empty(),
        "{} of {cut} late, e.g. {:?}",
        late.len(),
        &late[..late.len().min(5)]
    );
}
