//! The evaluation harness writes identical files for identical inputs and seed, on real traces.

use std::path::Path;

use offload_controller::Profile;
use offload_sim::SimConfig;
use offload_sim::harness::report::{self, ResultsJson};
use offload_sim::harness::{EvalInputs, PolicyEntry, Setting, discover, evaluate};
use offload_sim::oracle::OracleConfig;
use offload_sim::trace::LoadOptions;

fn run_once(dir: &Path) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/traces");
    let specs = vec![
        root.join("mahimahi-cellular/*.up").display().to_string(),
        root.join("fcc-broadband/trace_10322_http---edition.cnn.com")
            .display()
            .to_string(),
    ];
    let traces = discover(&specs).unwrap();
    assert!(traces.len() >= 3, "{traces:?}");
    let profile = Profile::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/illustrative-detector.toml"),
    )
    .unwrap();
    let policies: Vec<PolicyEntry> = ["fixed-k2", "deadline-aware", "mpc", "queue-bola"]
        .into_iter()
        .map(|n| {
            let c = offload_policies::preset(n).unwrap();
            PolicyEntry {
                name: n.to_owned(),
                build: Box::new(move || c.build()),
            }
        })
        .collect();
    let settings = vec![Setting::new(SimConfig {
        duration_s: Some(60.0),
        seed: 7,
        ..SimConfig::default()
    })];
    let inputs = EvalInputs {
        traces: &traces,
        policies: &policies,
        settings: &settings,
        profile: &profile,
        oracle: Some(OracleConfig::default()),
        bound: true,
        load: LoadOptions::default(),
        series_trace: Some(0),
        progress: false,
    };
    let out = evaluate(&inputs).unwrap();
    assert!(out.failures.is_empty(), "{:?}", out.failures);
    let names: Vec<String> = policies
        .iter()
        .map(|p| p.name.clone())
        .chain(["oracle".to_owned()])
        .collect();
    // The oracle row of every trace is at least every policy's.
    for r in &out.rows {
        assert!(r.oracle_utility >= r.utility, "{r:?}");
        assert!(r.upper_bound >= r.oracle_utility - 1e-9, "{r:?}");
    }
    report::write_csv(&dir.join("results.csv"), &out.rows).unwrap();
    report::write_results_json(
        &dir.join("results.json"),
        &ResultsJson {
            profile: &profile.name,
            settings: &settings,
            policies: &names,
            rows: &out.rows,
            failures: &out.failures,
        },
    )
    .unwrap();
    let md = report::markdown(&out, &settings, &names, &profile.name);
    report::write_markdown(&dir.join("report.md"), &md).unwrap();
    ["results.csv", "results.json", "report.md"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect()
}

#[test]
fn identical_inputs_give_identical_results_files() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let first = run_once(a.path());
    let second = run_once(b.path());
    assert_eq!(first, second);
    let csv = String::from_utf8(first[0].clone()).unwrap();
    assert!(csv.lines().count() > 10, "{csv}");
}
