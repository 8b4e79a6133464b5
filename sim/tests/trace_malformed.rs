//! Broken and foreign inputs give typed errors that name the file and line, never a panic.
//! The corrupted inputs start from real files of `../shared/traces`.

use std::io::Write;
use std::path::{Path, PathBuf};

use offload_sim::trace::{LoadOptions, SeriesSelect, Trace, TraceError, TraceFormat};

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

/// One real file per format.
const SAMPLES: [(&str, TraceFormat); 6] = [
    (
        "mahimahi-cellular/TMobile-LTE-short.up",
        TraceFormat::Mahimahi,
    ),
    (
        "hsdpa-norway/metro.kalbakken-jernbanetorget-report.2010-09-13_1046CEST.log",
        TraceFormat::TimeMbps,
    ),
    (
        "5g-ucc-ireland/Download/Driving/B_2019.12.14_10.16.30.csv",
        TraceFormat::Gnettrack,
    ),
    (
        "5g-mmwave-uplink-nuwins/throughput/walking/5g/lateral.list",
        TraceFormat::NuwinsList,
    ),
    ("oboe/trace_100.txt", TraceFormat::OboeChunks),
    (
        "wifi-cellular-walking/7_1_wifi.csv",
        TraceFormat::TimeBytesCsv,
    ),
];

fn write_temp(bytes: &[u8], suffix: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .suffix(suffix)
        .tempfile()
        .expect("temp file");
    f.write_all(bytes).expect("write temp file");
    f
}

/// Index (0-based) of the line to corrupt: a data line in the middle that carries a rate.
fn middle_line(lines: &[&str], format: TraceFormat) -> usize {
    let mid = lines.len() / 2;
    match format {
        // A value line of a paired run: the line after a times line starting with a digit.
        TraceFormat::NuwinsList => (mid..lines.len())
            .find(|&i| {
                i > 0
                    && lines[i].contains(',')
                    && lines[i - 1].contains(',')
                    && !lines[i + 1..].first().is_some_and(|l| l.is_empty())
            })
            .expect("a value line"),
        _ => mid,
    }
}

/// Replaces the rate field of `line` with garbage.
fn corrupt(line: &str, format: TraceFormat) -> String {
    match format {
        TraceFormat::Gnettrack => {
            let mut fields: Vec<&str> = line.split(',').collect();
            fields[12] = "12k"; // DL_bitrate
            fields.join(",")
        }
        TraceFormat::NuwinsList => line.replacen(',', ",4.2.1", 1),
        _ => format!("{line}x"),
    }
}

#[test]
fn fuzzed_rate_fields_name_the_line() {
    let Some(dir) = shared_traces() else { return };
    for (file, format) in SAMPLES {
        let text = std::fs::read_to_string(dir.join(file)).expect(file);
        let mut lines: Vec<&str> = text.lines().collect();
        let k = middle_line(&lines, format);
        let bad = corrupt(lines[k], format);
        lines[k] = &bad;
        let tmp = write_temp(lines.join("\n").as_bytes(), ".trace");
        match Trace::load(tmp.path(), &LoadOptions::default()) {
            Err(TraceError::Parse {
                path,
                line,
                expected,
                found,
            }) => {
                assert_eq!(line, k + 1, "{file}: {expected} / {found}");
                assert_eq!(path, tmp.path());
                assert!(found.chars().count() <= 61, "excerpt bounded: {found}");
            }
            other => panic!(
                "{file}: expected a parse error at line {}, got {other:?}",
                k + 1
            ),
        }
    }
}

#[test]
fn truncated_lines_are_parse_errors_where_the_format_can_tell() {
    let Some(dir) = shared_traces() else { return };
    for (file, format) in SAMPLES {
        let text = std::fs::read_to_string(dir.join(file)).expect(file);
        let lines: Vec<&str> = text.lines().collect();
        let k = middle_line(&lines, format);
        // Cut line k after its first field, as a write cut short would.
        let sep = match format {
            TraceFormat::TimeMbps | TraceFormat::OboeChunks => lines[k].find(char::is_whitespace),
            _ => lines[k].find(','),
        };
        let line_start: usize = text.split_inclusive('\n').take(k).map(str::len).sum();
        let cut = &text[..line_start + sep.unwrap_or(1)];
        let result = Trace::parse(cut, file, &LoadOptions::default());
        // Every format notices: a cut field is missing (two-column formats, G-NetTrack), a cut
        // value line is shorter than its times line (NUWiNS), or a cut mahimahi time steps
        // back before the previous line's.
        match result {
            Err(TraceError::Parse { line, .. }) => assert_eq!(line, k + 1, "{file}"),
            other => panic!("{file}: expected a parse error at {}, got {other:?}", k + 1),
        }
    }
}

#[test]
fn empty_and_blank_files() {
    for text in ["", "\n\n  \n", "\r\n"] {
        let tmp = write_temp(text.as_bytes(), ".txt");
        assert!(
            matches!(
                Trace::load(tmp.path(), &LoadOptions::default()),
                Err(TraceError::Empty { .. })
            ),
            "{text:?}"
        );
        // With the format named, every reader reports the same.
        for format in TraceFormat::ALL {
            let opts = LoadOptions {
                format: Some(format),
                ..LoadOptions::default()
            };
            match Trace::load(tmp.path(), &opts) {
                Err(TraceError::Empty { .. }) => {}
                // G-NetTrack needs its header first.
                Err(TraceError::Parse { line: 1, .. }) if format == TraceFormat::Gnettrack => {}
                other => panic!("{format}: {text:?} gave {other:?}"),
            }
        }
    }
}

#[test]
fn binary_files_are_not_text() {
    // A PNG: signature and IHDR chunk of a 1×1 image.
    let png: &[u8] = &[
        0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, b'I', b'H', b'D', b'R', 0, 0,
        0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89,
    ];
    let tmp = write_temp(png, ".png");
    assert!(matches!(
        Trace::load(tmp.path(), &LoadOptions::default()),
        Err(TraceError::NotText { offset: 0, .. })
    ));
    // This test's own executable (ELF): binary, and large; read whole, rejected as not text.
    let exe = std::env::current_exe().expect("test binary path");
    assert!(matches!(
        Trace::load(&exe, &LoadOptions::default()),
        Err(TraceError::NotText { .. })
    ));
}

#[test]
fn other_text_files_are_unknown_formats() {
    let json = write_temp(br#"{"trace": [[0, 1.5], [1, 2.5]]}"#, ".json");
    match Trace::load(json.path(), &LoadOptions::default()) {
        Err(TraceError::UnknownFormat { path, first_line }) => {
            assert_eq!(path, json.path());
            assert!(first_line.starts_with("{\"trace\""));
        }
        other => panic!("JSON gave {other:?}"),
    }
    // Named as a format it is not: a parse error on line 1.
    let opts = LoadOptions {
        format: Some(TraceFormat::TimeMbps),
        ..LoadOptions::default()
    };
    assert!(matches!(
        Trace::load(json.path(), &opts),
        Err(TraceError::Parse { line: 1, .. })
    ));
    let Some(dir) = shared_traces() else { return };
    for other in [
        "README.md",
        "MANIFEST.csv",
        "mahimahi-cellular/LICENSE-mahimahi",
        "fcc-broadband/LICENSE-pensieve",
    ] {
        assert!(
            matches!(
                Trace::load(&dir.join(other), &LoadOptions::default()),
                Err(TraceError::UnknownFormat { .. })
            ),
            "{other}"
        );
    }
}

#[test]
fn io_size_series_and_option_errors() {
    let missing = Path::new("/nonexistent/trace.log");
    let err = Trace::load(missing, &LoadOptions::default()).expect_err("missing file");
    assert!(matches!(err, TraceError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/trace.log"));

    let tmp = write_temp(b"0.0\t1.0\n1.0\t2.0\n", ".log");
    let small = LoadOptions {
        max_bytes: 8,
        ..LoadOptions::default()
    };
    assert!(matches!(
        Trace::load(tmp.path(), &small),
        Err(TraceError::TooLarge {
            size: 16,
            limit: 8,
            ..
        })
    ));
    let series = LoadOptions {
        series: SeriesSelect::Index(1),
        ..LoadOptions::default()
    };
    assert!(matches!(
        Trace::load(tmp.path(), &series),
        Err(TraceError::NoSuchSeries {
            index: 1,
            count: 1,
            ..
        })
    ));
    for opts in [
        LoadOptions {
            scale: 0.0,
            ..LoadOptions::default()
        },
        LoadOptions {
            mahimahi_window_s: f64::NAN,
            ..LoadOptions::default()
        },
        LoadOptions {
            interpolation_step_s: -1.0,
            ..LoadOptions::default()
        },
    ] {
        assert!(matches!(
            Trace::load(tmp.path(), &opts),
            Err(TraceError::BadOption { .. })
        ));
    }
    // Rates so large that a period's bits overflow, or that overflow in unit conversion.
    for huge in ["0 1\n1e300 1e300\n", "0 1\n1 1e305\n", "1,1e308\n2,1\n"] {
        assert!(
            matches!(
                Trace::parse(huge, "huge", &LoadOptions::default()),
                Err(TraceError::OutOfRange { .. })
            ),
            "{huge:?}"
        );
    }
}

#[test]
fn nuwins_series_are_selectable() {
    let Some(dir) = shared_traces() else { return };
    let path = dir.join("5g-mmwave-uplink-nuwins/throughput/walking/5g/lateral.list");
    let all = Trace::load(&path, &LoadOptions::default()).expect("loads");
    assert_eq!(all.series_in_file(), 18);
    let mut sum = 0.0;
    for i in 0..18 {
        let opts = LoadOptions {
            series: SeriesSelect::Index(i),
            ..LoadOptions::default()
        };
        let one = Trace::load(&path, &opts).expect("series loads");
        assert_eq!(one.series(), SeriesSelect::Index(i));
        sum += one.total_bits();
    }
    // The concatenation holds exactly the bits of its parts.
    assert!((sum / all.total_bits() - 1.0).abs() < 1e-9);
}

mod fuzz {
    use offload_sim::trace::{LoadOptions, Trace, TraceFormat};
    use proptest::prelude::*;

    /// Text made of the characters trace files use, plus a few that break them.
    fn tracey_text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                8 => prop::sample::select(vec![
                    "0", "1", "5", "9", ".", ",", "\t", " ", "\n", "\n", "-", "e", "Run 1\n",
                    "####\n", "Timestamp,DL_bitrate\n", "2019.12.14_10.16.30,", "NaN", "inf",
                    "\r\n", "99999999999999999999", "1e308", "\u{0}", "é",
                ])
                .prop_map(str::to_owned),
                1 => any::<char>().prop_map(String::from),
            ],
            0..200,
        )
        .prop_map(|parts| parts.concat())
    }

    /// Checks what a parse that succeeded must satisfy.
    fn check(t: &Trace) -> Result<(), TestCaseError> {
        prop_assert!(t.duration() > 0.0 && t.duration().is_finite());
        prop_assert!(t.total_bits() >= 0.0 && t.total_bits().is_finite());
        prop_assert!(t.segments().all(|s| s.duration > 0.0 && s.bps >= 0.0));
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_text_never_panics(text in tracey_text(), pick in 0usize..7) {
            let format = TraceFormat::ALL.get(pick).copied();
            let opts = LoadOptions { format, ..LoadOptions::default() };
            if let Ok(t) = Trace::parse(&text, "fuzz", &opts) {
                check(&t)?;
            }
        }

        #[test]
        fn edited_real_prefixes_never_panic(
            which in 0usize..6,
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            let Some(dir) = super::shared_traces() else { return Ok(()) };
            let (file, _) = super::SAMPLES[which];
            let bytes = std::fs::read(dir.join(file)).expect(file);
            let mut prefix = bytes[..bytes.len().min(4096)].to_vec();
            for (at, byte) in edits {
                let i = at.index(prefix.len());
                prefix[i] = byte;
            }
            let text = String::from_utf8_lossy(&prefix);
            if let Ok(t) = Trace::parse(&text, file, &LoadOptions::default()) {
                check(&t)?;
            }
        }
    }
}
