//! Writing the evaluation: `results.csv`, `results.json` and `report.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::run::{EvalOutput, Row, Setting};
use crate::output::{OutputError, write_json};

/// Writes `results.csv`.
pub fn write_csv(path: &Path, rows: &[Row]) -> Result<(), OutputError> {
    let csv_err = |source| OutputError::Csv {
        path: path.to_owned(),
        source,
    };
    let mut w = csv::Writer::from_path(path).map_err(csv_err)?;
    for r in rows {
        w.serialize(r).map_err(csv_err)?;
    }
    w.flush().map_err(|source| OutputError::Io {
        path: path.to_owned(),
        source,
    })
}

/// The content of `results.json`.
#[derive(Debug, Serialize)]
pub struct ResultsJson<'a> {
    /// Profile name.
    pub profile: &'a str,
    /// Settings swept.
    pub settings: &'a [Setting],
    /// Policies, oracle last when present.
    pub policies: &'a [String],
    /// Rows.
    pub rows: &'a [Row],
    /// Traces that could not be read.
    pub failures: &'a [(String, String)],
}

/// Writes `results.json`.
pub fn write_results_json(path: &Path, value: &ResultsJson<'_>) -> Result<(), OutputError> {
    write_json(path, value)
}

/// Whether a policy is a fixed baseline rather than adaptive.
pub fn is_fixed(policy: &str) -> bool {
    policy == "local-only" || policy.starts_with("fixed-k")
}

/// Mean of the rows' values per policy, in policy order.
#[derive(Debug, Clone, Default)]
pub struct Aggregate {
    /// Traces aggregated.
    pub traces: usize,
    /// Mean utility.
    pub utility: f64,
    /// Mean accuracy.
    pub accuracy: f64,
    /// Mean miss rate.
    pub miss: f64,
    /// Mean p50 (ms).
    pub p50: f64,
    /// Mean p95 (ms).
    pub p95: f64,
    /// Mean energy per frame (J).
    pub energy: f64,
    /// Mean bytes per frame.
    pub bytes: f64,
    /// Mean upper bound.
    pub bound: f64,
}

fn aggregate<'a>(rows: impl Iterator<Item = &'a Row>) -> Aggregate {
    let mut a = Aggregate::default();
    for r in rows {
        a.traces += 1;
        a.utility += r.utility;
        a.accuracy += r.accuracy;
        a.miss += r.deadline_miss_rate;
        a.p50 += r.latency_p50_ms;
        a.p95 += r.latency_p95_ms;
        a.energy += r.energy_per_frame_j;
        a.bytes += r.bytes_per_frame;
        a.bound += r.upper_bound;
    }
    let n = a.traces.max(1) as f64;
    for v in [
        &mut a.utility,
        &mut a.accuracy,
        &mut a.miss,
        &mut a.p50,
        &mut a.p95,
        &mut a.energy,
        &mut a.bytes,
        &mut a.bound,
    ] {
        *v /= n;
    }
    a
}

/// Per setting, per family, per policy aggregates (policy order preserved).
pub type Table = BTreeMap<(usize, String), Vec<(String, Aggregate)>>;

/// Aggregates rows by setting, family and policy.
pub fn tables(out: &EvalOutput, settings: &[Setting], policies: &[String]) -> Table {
    let mut t = Table::new();
    for (si, s) in settings.iter().enumerate() {
        let families: std::collections::BTreeSet<&str> =
            out.rows.iter().map(|r| r.family.as_str()).collect();
        for fam in families {
            let of = |p: &str| -> Vec<&Row> {
                out.rows
                    .iter()
                    .filter(|r| {
                        r.family == fam
                            && r.policy == p
                            && r.fps == s.fps
                            && r.deadline_ms == s.deadline_ms
                            && r.rtt_ms == s.rtt_ms
                            && r.battery_start == s.battery_start
                    })
                    .collect()
            };
            let entries = policies
                .iter()
                .map(|p| (p.clone(), aggregate(of(p).into_iter())))
                .filter(|(_, a)| a.traces > 0)
                .collect();
            t.insert((si, fam.to_owned()), entries);
        }
    }
    t
}

fn family_note(rows: &[Row], family: &str) -> String {
    let mut dirs: Vec<&str> = rows
        .iter()
        .filter(|r| r.family == family)
        .map(|r| r.direction.as_str())
        .collect();
    dirs.sort_unstable();
    dirs.dedup();
    let measured = match dirs.as_slice() {
        ["up"] => "uplink measurements".to_owned(),
        d if d.contains(&"up") => format!(
            "mixed: {} (uplink files are uplink measurements)",
            d.join(", ")
        ),
        ["down"] => "downlink measurements, used as capacity series (not uplink)".to_owned(),
        d => format!(
            "direction {}: not an uplink measurement, used as a capacity series",
            d.join(", ")
        ),
    };
    let extra = match family {
        "puffer" => "; unit uncertain (file values read as Mbit/s; probably MB/s, i.e. 8× higher)",
        "oboe" | "5g-ucc-ireland" => "; application-limited video/download throughput",
        _ => "",
    };
    format!("{measured}{extra}")
}

fn pct(a: f64, oracle: f64) -> String {
    if oracle.is_finite() && oracle.abs() > 1e-12 {
        format!("{:.1} %", 100.0 * a / oracle)
    } else {
        "–".into()
    }
}

/// The markdown report: per setting and family, a table of policies (best non-oracle in bold),
/// then a summary of the adaptive policies against the oracle and the fixed baselines.
pub fn markdown(
    out: &EvalOutput,
    settings: &[Setting],
    policies: &[String],
    profile: &str,
) -> String {
    let t = tables(out, settings, policies);
    let mut md = String::new();
    let _ = writeln!(md, "# Policy evaluation\n");
    let _ = writeln!(
        md,
        "Profile `{profile}`; {} trace files; policies: {}. Utility is the mean per-frame utility \
         (`Utility::frame`); \"% of oracle\" is the family's mean utility over the oracle's mean \
         utility; latency percentiles are means over traces of each trace's percentile; the \
         relaxation bound is an upper bound on any schedule's utility.\n",
        out.rows
            .iter()
            .map(|r| &r.trace)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        policies.join(", ")
    );
    if !out.failures.is_empty() {
        let _ = writeln!(
            md,
            "Traces that could not be read ({}):\n",
            out.failures.len()
        );
        for (name, why) in &out.failures {
            let _ = writeln!(md, "- `{name}`: {why}");
        }
        md.push('\n');
    }
    for (si, s) in settings.iter().enumerate() {
        let _ = writeln!(
            md,
            "## {} fps, deadline {} ms, RTT {} ms, battery {}\n",
            s.fps, s.deadline_ms, s.rtt_ms, s.battery_start
        );
        // Summary across families.
        let _ = writeln!(
            md,
            "| family | traces | best adaptive | % of oracle | best fixed | % of oracle | adaptive beats fixed | oracle / bound |\n|---|---|---|---|---|---|---|---|"
        );
        for ((tsi, fam), entries) in t.range((si, String::new())..(si + 1, String::new())) {
            debug_assert_eq!(*tsi, si);
            let oracle = entries
                .iter()
                .find(|(p, _)| p == "oracle")
                .map(|(_, a)| a.utility);
            let best = |fixed: bool| {
                entries
                    .iter()
                    .filter(|(p, _)| p != "oracle" && is_fixed(p) == fixed)
                    .max_by(|a, b| a.1.utility.total_cmp(&b.1.utility))
            };
            let (Some(ad), Some(fx)) = (best(false), best(true)) else {
                continue;
            };
            let o = oracle.unwrap_or(f64::NAN);
            let bound = entries.first().map_or(f64::NAN, |(_, a)| a.bound);
            let _ = writeln!(
                md,
                "| {fam} | {} | {} ({:.4}) | {} | {} ({:.4}) | {} | {} | {} |",
                ad.1.traces,
                ad.0,
                ad.1.utility,
                pct(ad.1.utility, o),
                fx.0,
                fx.1.utility,
                pct(fx.1.utility, o),
                if ad.1.utility > fx.1.utility {
                    "yes"
                } else {
                    "**no**"
                },
                if bound.is_finite() {
                    format!("{o:.4} / {bound:.4}")
                } else {
                    format!("{o:.4} / –")
                },
            );
        }
        md.push('\n');
        for ((_, fam), entries) in t.range((si, String::new())..(si + 1, String::new())) {
            let oracle = entries
                .iter()
                .find(|(p, _)| p == "oracle")
                .map_or(f64::NAN, |(_, a)| a.utility);
            let best = entries
                .iter()
                .filter(|(p, _)| p != "oracle")
                .max_by(|a, b| a.1.utility.total_cmp(&b.1.utility))
                .map(|(p, _)| p.clone());
            let n = entries.first().map_or(0, |(_, a)| a.traces);
            let _ = writeln!(
                md,
                "### {fam} ({n} traces)\n\n{}.\n",
                family_note(&out.rows, fam)
            );
            let _ = writeln!(
                md,
                "| policy | utility | % of oracle | accuracy | miss rate | latency p50 (ms) | latency p95 (ms) | energy/frame (J) | bytes/frame |\n|---|---|---|---|---|---|---|---|---|"
            );
            for (p, a) in entries {
                let name = if Some(p) == best.as_ref() {
                    format!("**{p}**")
                } else {
                    p.clone()
                };
                let _ = writeln!(
                    md,
                    "| {name} | {:.4} | {} | {:.4} | {:.2} % | {:.0} | {:.0} | {:.3} | {:.0} |",
                    a.utility,
                    pct(a.utility, oracle),
                    a.accuracy,
                    100.0 * a.miss,
                    a.p50,
                    a.p95,
                    a.energy,
                    a.bytes
                );
            }
            if let Some((_, a)) = entries.first().filter(|(_, a)| a.bound.is_finite()) {
                let _ = writeln!(
                    md,
                    "| *relaxation bound* | {:.4} | {} | | | | | | |",
                    a.bound,
                    pct(a.bound, oracle)
                );
            }
            md.push('\n');
        }
    }
    md
}

/// Writes `report.md`.
pub fn write_markdown(path: &Path, text: &str) -> Result<(), OutputError> {
    std::fs::write(path, text).map_err(|source| OutputError::Io {
        path: PathBuf::from(path),
        source,
    })
}
