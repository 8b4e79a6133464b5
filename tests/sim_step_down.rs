//! The simulator on a trace whose capacity steps down: an adaptive policy sends fewer layers
//! after the step, asserted from the per-frame CSV the simulator writes.

use std::path::Path;

use offload_controller::Profile;
use offload_sim::output::FramesCsv;
use offload_sim::trace::generate::step;
use offload_sim::{FrameRecord, SimConfig, simulate};

fn profile() -> Profile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/illustrative-detector.toml");
    Profile::load(&path).expect("the illustrative profile loads")
}

fn mean_layers(rows: &[FrameRecord], from: f64, to: f64) -> f64 {
    let sel: Vec<_> = rows
        .iter()
        .filter(|r| r.captured_at >= from && r.captured_at < to)
        .collect();
    sel.iter().map(|r| r.layers as f64).sum::<f64>() / sel.len() as f64
}

#[test]
fn throughput_rule_sends_fewer_layers_after_a_step_down() {
    let trace = step("step-4-to-0.3-mbps", 4e6, 0.3e6, 60.0, 120.0).unwrap();
    let profile = profile();
    let policy = offload_policies::preset("throughput-rule").unwrap().build();
    let config = SimConfig::default();
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("frames.csv");
    let mut csv = FramesCsv::create(&csv_path).unwrap();
    simulate(&trace, &profile, policy, &config, |r| csv.write(r).unwrap());
    csv.finish().unwrap();

    let rows: Vec<FrameRecord> = csv::Reader::from_path(&csv_path)
        .unwrap()
        .deserialize()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 3600);
    let before = mean_layers(&rows, 10.0, 60.0);
    let after = mean_layers(&rows, 70.0, 120.0);
    assert!(before >= 4.0, "before the step: {before} layers on average");
    assert!(
        after < 0.5 * before,
        "after the step: {after} vs {before} layers"
    );
    // After adapting, most frames still meet their deadline.
    let late: Vec<_> = rows
        .iter()
        .filter(|r| r.captured_at >= 70.0 && !r.met_deadline)
        .collect();
    assert!(
        late.len() < 150,
        "{} of 1500 frames missed after the step",
        late.len()
    );
}

#[test]
fn same_seed_gives_byte_identical_output() {
    let trace = step("step", 3e6, 1e6, 20.0, 40.0).unwrap();
    let profile = profile();
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    for run in 0..2 {
        let path = dir.path().join(format!("run{run}.csv"));
        let mut csv = FramesCsv::create(&path).unwrap();
        let policy = offload_policies::preset("throughput-rule").unwrap().build();
        let summary = simulate(&trace, &profile, policy, &SimConfig::default(), |r| {
            csv.write(r).unwrap()
        });
        csv.finish().unwrap();
        outputs.push((
            std::fs::read(&path).unwrap(),
            serde_json::to_string(&summary).unwrap(),
        ));
    }
    assert_eq!(outputs[0], outputs[1]);
}
