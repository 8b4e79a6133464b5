//! At equal trace, battery and (default) objective, the energy-aware policy spends less energy per frame
//! than the deadline-aware one (real uplink traces from ../shared/traces). The energy-aware
//! preset values a joule at 1.0 at a full battery (20x the objective's default), and counts the
//! radio tail a local stretch keeps burning.

use std::path::Path;

use offload_controller::Profile;
use offload_sim::trace::{LoadOptions, Trace};
use offload_sim::{SimConfig, Summary, simulate};

fn profile() -> Profile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/illustrative-detector.toml");
    Profile::load(&path).expect("the illustrative profile loads")
}

fn run(trace: &Trace, policy: &str, battery: f64) -> Summary {
    let mut config = SimConfig::default();
    config.battery.start_level = battery;
    let policy = offload_policies::preset(policy).unwrap().build();
    simulate(trace, &profile(), policy, &config, |_| {})
}

#[test]
fn energy_aware_uses_less_energy_than_deadline_aware() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/traces");
    for file in [
        "mahimahi-cellular/ATT-LTE-driving.up",
        "mahimahi-cellular/TMobile-LTE-short.up",
        "5g-mmwave-uplink-nuwins/throughput/walking/lte/away.list",
    ] {
        let trace = Trace::load(&root.join(file), &LoadOptions::default()).expect(file);
        for battery in [1.0, 0.2] {
            let e = run(&trace, "energy-aware", battery);
            let d = run(&trace, "deadline-aware", battery);
            assert!(
                e.energy_per_frame_j < d.energy_per_frame_j,
                "{file} at battery {battery}: energy-aware {:.4} J/frame vs deadline-aware {:.4}",
                e.energy_per_frame_j,
                d.energy_per_frame_j
            );
        }
    }
}
