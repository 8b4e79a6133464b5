//! Every trace of `../shared/traces/MANIFEST.csv` loads with the auto-detected format and
//! reproduces the manifest's time-weighted mean (within 1 %) and series count.

use std::path::{Path, PathBuf};

use offload_sim::trace::{LoadOptions, Trace, TraceFormat};

fn shared_traces() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/traces");
    if dir.join("MANIFEST.csv").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: {} is absent; the real-trace tests need ../shared/traces",
            dir.display()
        );
        None
    }
}

/// One row of MANIFEST.csv.
struct Entry {
    path: String,
    format: TraceFormat,
    series: usize,
    duration_s: f64,
    mean_mbps: f64,
    median_mbps: f64,
}

fn manifest(dir: &Path) -> Vec<Entry> {
    let mut rdr = csv::Reader::from_path(dir.join("MANIFEST.csv")).expect("MANIFEST.csv opens");
    let headers = rdr.headers().expect("header").clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("MANIFEST.csv has no column {name}"))
    };
    let (p, f, s, d, m, md) = (
        col("path"),
        col("format"),
        col("series"),
        col("duration_s"),
        col("mean_mbps"),
        col("median_mbps"),
    );
    rdr.records()
        .map(|r| {
            let r = r.expect("manifest row");
            Entry {
                path: r[p].to_owned(),
                format: r[f].parse().expect("known format id"),
                series: r[s].parse().expect("series count"),
                duration_s: r[d].parse().expect("duration"),
                mean_mbps: r[m].parse().expect("mean"),
                median_mbps: r[md].parse().expect("median"),
            }
        })
        .collect()
}

/// Options under which a format's statistics are computed the way the manifest computed them.
fn manifest_options(format: TraceFormat) -> LoadOptions {
    LoadOptions {
        // The manifest bins mahimahi opportunities per second.
        mahimahi_window_s: if format == TraceFormat::Mahimahi {
            1.0
        } else {
            0.1
        },
        // The manifest gives an Oboe gap between chunks one piece at the ramp's mean (the
        // default cuts ramps into 0.1 s pieces; means are the same, medians shift).
        interpolation_step_s: 1e9,
        ..LoadOptions::default()
    }
}

#[test]
fn every_manifest_file_matches_its_mean() {
    let Some(dir) = shared_traces() else { return };
    let entries = manifest(&dir);
    assert_eq!(entries.len(), 748, "MANIFEST.csv lists 748 trace files");
    let mut per_format = std::collections::BTreeMap::<&str, usize>::new();
    let mut failures = Vec::new();
    for e in &entries {
        let path = dir.join(&e.path);
        let t = match Trace::load(&path, &manifest_options(e.format)) {
            Ok(t) => t,
            Err(err) => {
                failures.push(format!("{}: {err}", e.path));
                continue;
            }
        };
        *per_format.entry(e.format.id()).or_default() += 1;
        if t.format() != Some(e.format) {
            failures.push(format!(
                "{}: detected {:?}, manifest says {}",
                e.path,
                t.format(),
                e.format
            ));
        }
        if t.series_in_file() != e.series {
            failures.push(format!(
                "{}: {} series, manifest {}",
                e.path,
                t.series_in_file(),
                e.series
            ));
        }
        let mean = t.mean_bps() / 1e6;
        if (mean / e.mean_mbps - 1.0).abs() > 0.01 {
            failures.push(format!(
                "{}: mean {mean:.4} Mbit/s, manifest {}",
                e.path, e.mean_mbps
            ));
        }
        // Durations agree except where the reader deliberately differs: G-NetTrack skips
        // missing seconds (as the manifest's mean does), NUWiNS drops clock resets.
        let duration_matches = (t.duration() - e.duration_s).abs() <= 0.06 + 1e-3 * e.duration_s;
        let exempt = matches!(e.format, TraceFormat::Gnettrack | TraceFormat::NuwinsList);
        if !exempt && !duration_matches {
            failures.push(format!(
                "{}: duration {:.2} s, manifest {}",
                e.path,
                t.duration(),
                e.duration_s
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // At least one file of every format was checked.
    assert_eq!(per_format.len(), TraceFormat::ALL.len(), "{per_format:?}");
}

#[test]
fn medians_match_where_the_segments_are_the_manifests() {
    let Some(dir) = shared_traces() else { return };
    let mut failures = Vec::new();
    let mut checked = 0;
    for e in manifest(&dir) {
        // The two NUWiNS files with paired time rows: the manifest's median weights samples
        // after a clock reset again (its mean does not), the reader drops them; the means
        // agree (see `every_manifest_file_matches_its_mean`).
        if e.path.ends_with("driving/5g/throughput.list")
            || e.path.ends_with("walking/5g/lateral.list")
        {
            continue;
        }
        let t = Trace::load(&dir.join(&e.path), &manifest_options(e.format)).expect("loads");
        let median = t.percentile_bps(50.0) / 1e6;
        // Manifest values have 4 decimals. mahimahi: the manifest counts the last, partial
        // 1-s bin as a full second; the reader divides by its real width, which can move the
        // median by one rank.
        let rel = if e.format == TraceFormat::Mahimahi {
            1e-2
        } else {
            1e-3
        };
        let tol = 5e-5 + rel * e.median_mbps;
        if (median - e.median_mbps).abs() > tol {
            failures.push(format!(
                "{} ({}): median {median:.4}, manifest {}",
                e.path, e.format, e.median_mbps
            ));
        }
        checked += 1;
    }
    assert!(checked >= 746, "checked {checked}");
    assert!(
        failures.is_empty(),
        "{} of {checked} medians differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn one_file_per_folder_by_hand() {
    let Some(dir) = shared_traces() else { return };
    // (file, format, direction, mean Mbit/s from MANIFEST.csv)
    let cases = [
        (
            "mahimahi-cellular/ATT-LTE-driving.up",
            TraceFormat::Mahimahi,
            "up",
            0.8332,
        ),
        (
            "fcc-broadband/trace_797172_http---www.yahoo.com",
            TraceFormat::TimeMbps,
            "unknown",
            1.7178,
        ),
        (
            "hsdpa-norway/metro.kalbakken-jernbanetorget-report.2010-09-13_1046CEST.log",
            TraceFormat::TimeMbps,
            "unknown",
            0.834,
        ),
        (
            "oboe/trace_100.txt",
            TraceFormat::OboeChunks,
            "unknown",
            0.6762,
        ),
        (
            "wifi-cellular-walking/7_1_wifi.csv",
            TraceFormat::TimeBytesCsv,
            "unknown",
            30.4532,
        ),
        (
            "5g-ucc-ireland/Download/Driving/B_2019.12.14_10.16.30.csv",
            TraceFormat::Gnettrack,
            "down",
            10.2411,
        ),
        (
            "5g-mmwave-uplink-nuwins/throughput/walking/5g/lateral.list",
            TraceFormat::NuwinsList,
            "up",
            27.6914,
        ),
        (
            "puffer/puffer_211017/cooked_traces/trace5Ims4JPfQF38+elJo8tu82FBM5pQOoObKBLLPdDT09k=_1",
            TraceFormat::TimeMbps,
            "unknown",
            2.1452,
        ),
    ];
    for (file, format, direction, mean) in cases {
        let t = Trace::load(&dir.join(file), &manifest_options(format)).expect(file);
        assert_eq!(t.format(), Some(format), "{file}");
        assert_eq!(t.direction().to_string(), direction, "{file}");
        let got = t.mean_bps() / 1e6;
        assert!((got / mean - 1.0).abs() < 0.01, "{file}: {got} vs {mean}");
        assert!(t.source().is_some());
    }
}

#[test]
fn gnettrack_wall_clock_fills_span_the_session() {
    use offload_sim::trace::GapFill;
    let Some(dir) = shared_traces() else { return };
    let mut checked = 0;
    for e in manifest(&dir)
        .into_iter()
        .filter(|e| e.format == TraceFormat::Gnettrack)
    {
        let path = dir.join(&e.path);
        let skip = Trace::load(&path, &LoadOptions::default()).expect("loads");
        for gaps in [GapFill::Hold, GapFill::Zero] {
            let opts = LoadOptions {
                gaps,
                ..LoadOptions::default()
            };
            let t = Trace::load(&path, &opts).expect("loads");
            // First to last timestamp, plus the last row's second.
            assert_eq!(t.duration(), e.duration_s + 1.0, "{} {gaps:?}", e.path);
            // Missing seconds add time but never bits when zero-filled.
            if gaps == GapFill::Zero {
                assert_eq!(t.total_bits(), skip.total_bits(), "{}", e.path);
            }
        }
        assert!(skip.duration() <= e.duration_s + 1.0);
        checked += 1;
    }
    assert_eq!(checked, 55);
}
