//! What the simulator reports to a policy: frame completions exactly when the policy asks for
//! them, and the constant path RTT once rather than with every report.

use std::path::Path;
use std::sync::{Arc, Mutex};

use offload_controller::{Context, Decision, FrameOptions, Observation, Policy, Profile};
use offload_sim::trace::generate::step;
use offload_sim::{SimConfig, simulate};

fn profile() -> Profile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/ssd-mobilenet-v2.toml");
    Profile::load(&path).expect("the measured detector profile loads")
}

/// Counts of what a policy saw.
#[derive(Debug, Default)]
struct Seen {
    frame_done: u64,
    met: u64,
    rtt: u64,
    delivered: u64,
}

/// Offloads two layers every frame and counts the observations it receives.
#[derive(Debug)]
struct Counting {
    wants_frame_done: bool,
    seen: Arc<Mutex<Seen>>,
}

impl Policy for Counting {
    fn name(&self) -> &str {
        "counting"
    }

    fn observes_frame_done(&self) -> bool {
        self.wants_frame_done
    }

    fn decide(&mut self, _frame: &FrameOptions, _ctx: &Context<'_>) -> Decision {
        Decision::Offload { layers: 2 }
    }

    fn observe(&mut self, _now: f64, observation: &Observation) {
        let mut seen = self.seen.lock().unwrap();
        match observation {
            Observation::FrameDone { latency, .. } => {
                seen.frame_done += 1;
                seen.met += u64::from(latency.is_some());
            }
            Observation::Rtt { .. } => seen.rtt += 1,
            Observation::Delivered { .. } => seen.delivered += 1,
            _ => {}
        }
    }
}

/// Runs 10 s on a 20 → 1 Mbit/s step; returns what the policy saw and the frames met.
fn run(wants_frame_done: bool) -> (Seen, u64, u64) {
    let trace = step("step-20-to-1-mbps", 20e6, 1e6, 5.0, 11.0).unwrap();
    let config = SimConfig {
        duration_s: Some(10.0),
        ..SimConfig::default()
    };
    let seen = Arc::new(Mutex::new(Seen::default()));
    let policy = Box::new(Counting {
        wants_frame_done,
        seen: Arc::clone(&seen),
    });
    let (mut frames, mut met) = (0, 0);
    simulate(&trace, &profile(), policy, &config, |r| {
        frames += 1;
        met += u64::from(r.met_deadline);
    });
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    (seen, frames, met)
}

#[test]
fn frame_completions_reach_a_policy_that_asks_for_them_and_only_that_one() {
    let (seen, frames, met) = run(true);
    assert_eq!(frames, 300);
    // Every frame but those whose completion falls after the last decision is reported.
    assert!(
        seen.frame_done >= frames - 10 && seen.frame_done <= frames,
        "{} completions for {frames} frames",
        seen.frame_done
    );
    assert!(seen.met > 0 && seen.met <= met, "{} met of {met}", seen.met);

    let (quiet, frames_again, met_again) = run(false);
    assert_eq!(quiet.frame_done, 0);
    // Leaving them out changes nothing else.
    assert_eq!((frames_again, met_again), (frames, met));
    assert_eq!(quiet.delivered, seen.delivered);
}

#[test]
fn the_constant_path_rtt_is_reported_once() {
    let (seen, _, _) = run(false);
    assert!(seen.delivered > 100, "{} delivery reports", seen.delivered);
    assert_eq!(seen.rtt, 1);
}
