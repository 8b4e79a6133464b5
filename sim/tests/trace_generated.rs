//! The generated traces in `traces/generated/` are exactly what the generators produce (so
//! the commands in `traces/README.md` reproduce them), they load with the readers, and the
//! built-in LTE-walk model is what fitting the real NUWiNS files gives.

use std::path::{Path, PathBuf};

use offload_sim::trace::generate::{self, FitConfig, MarkovModel};
use offload_sim::trace::{LoadOptions, SeriesSelect, Trace, TraceFormat};

fn generated_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../traces/generated")
}

/// Every committed file and the library call behind its `offload trace gen` command.
fn expected() -> Vec<(&'static str, Trace)> {
    let lte = MarkovModel::lte_walk();
    let name = "generated";
    vec![
        ("lte-walk-seed1.tsv", lte.generate(name, 1, 300.0).unwrap()),
        ("lte-walk-seed2.tsv", lte.generate(name, 2, 300.0).unwrap()),
        ("lte-walk-seed3.tsv", lte.generate(name, 3, 300.0).unwrap()),
        (
            "lte-walk-x0.1-seed4.tsv",
            lte.clone().scaled(0.1).generate(name, 4, 300.0).unwrap(),
        ),
        (
            "step-down-20-2-at30.tsv",
            generate::step(name, 20e6, 2e6, 30.0, 60.0).unwrap(),
        ),
        (
            "step-up-2-20-at30.tsv",
            generate::step(name, 2e6, 20e6, 30.0, 60.0).unwrap(),
        ),
        (
            "outage-10-at20-for5.tsv",
            generate::outage(name, 10e6, 20.0, 5.0, 60.0).unwrap(),
        ),
    ]
}

#[test]
fn committed_files_are_reproducible() {
    for (file, trace) in expected() {
        let path = generated_dir().join(file);
        let on_disk = std::fs::read_to_string(&path).expect(file);
        assert!(
            on_disk == trace.to_time_s_mbps(),
            "{file} differs from its generator's output; regenerate it with the command in traces/README.md"
        );
        let loaded = Trace::load(&path, &LoadOptions::default()).expect(file);
        assert_eq!(loaded.format(), Some(TraceFormat::TimeMbps));
        assert!(
            (loaded.duration() - trace.duration()).abs() < 1e-9,
            "{file}"
        );
        assert!(
            (loaded.mean_bps() / trace.mean_bps() - 1.0).abs() < 1e-9,
            "{file}"
        );
    }
}

#[test]
fn step_and_outage_files_hold_their_events() {
    let load = |f: &str| Trace::load(&generated_dir().join(f), &LoadOptions::default()).unwrap();
    let down = load("step-down-20-2-at30.tsv");
    assert_eq!(down.capacity_at(29.9), 20e6);
    assert_eq!(down.capacity_at(30.0), 2e6);
    let outage = load("outage-10-at20-for5.tsv");
    assert_eq!(outage.capacity_at(22.0), 0.0);
    // 1 Mbit sent at 19.95 s: 0.5 Mbit before the outage, the rest after it ends at 25 s.
    let end = outage.transfer_end(19.95, 1e6).unwrap();
    assert!((end - 25.05).abs() < 1e-9, "{end}");
}

#[test]
fn lte_walk_is_the_fit_of_the_nuwins_walking_lte_runs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/traces/5g-mmwave-uplink-nuwins/throughput/walking/lte");
    if !dir.is_dir() {
        eprintln!(
            "SKIPPED: {} is absent; cannot re-fit the LTE-walk model",
            dir.display()
        );
        return;
    }
    let mut runs = Vec::new();
    for file in ["away.list", "lateral.list"] {
        let path = dir.join(file);
        let all = Trace::load(&path, &LoadOptions::default()).unwrap();
        for i in 0..all.series_in_file() {
            let opts = LoadOptions {
                series: SeriesSelect::Index(i),
                ..LoadOptions::default()
            };
            runs.push(Trace::load(&path, &opts).unwrap());
        }
    }
    assert_eq!(runs.len(), 17);
    let fitted = MarkovModel::fit(&runs, &FitConfig::default()).unwrap();
    let builtin = MarkovModel::lte_walk();
    assert_eq!(fitted.states.len(), builtin.states.len());
    for (f, b) in fitted.states.iter().zip(&builtin.states) {
        assert!((f.mean_bps - b.mean_bps).abs() < 1.0, "{f:?} vs {b:?}");
        assert!((f.log_sd - b.log_sd).abs() < 1e-4, "{f:?} vs {b:?}");
        assert!((f.zero_fraction - b.zero_fraction).abs() < 1e-4);
        assert!((f.occupancy - b.occupancy).abs() < 1e-4);
    }
    for (fr, br) in fitted.transition.iter().zip(&builtin.transition) {
        for (f, b) in fr.iter().zip(br) {
            assert!((f - b).abs() < 1e-4, "{fr:?} vs {br:?}");
        }
    }
    // The generated process keeps the family's level: long-run mean within 5 % of the data's.
    let data_mean = runs.iter().map(Trace::total_bits).sum::<f64>()
        / runs.iter().map(Trace::duration).sum::<f64>();
    let sim = builtin.generate("check", 99, 20_000.0).unwrap();
    let rel = sim.mean_bps() / data_mean - 1.0;
    assert!(rel.abs() < 0.05, "generated mean off by {rel}");
}
