//! Format auto-detection from the first lines of a file.
//!
//! Rules, first match wins (each checked against every file of `../shared/traces`):
//! - a header naming `Timestamp` and `DL_bitrate` → G-NetTrack CSV;
//! - a first line of only `#` or `Run <k>` → NUWiNS list;
//! - lines of one whole number → mahimahi;
//! - lines `number,number` → time/bytes-per-second CSV;
//! - lines of two whitespace-separated numbers → Oboe when the lines come in pairs carrying
//!   the same value (a chunk's start and end line; at least two pairs, all pairs seen), else
//!   `time_s-mbps`.

use std::path::Path;

use super::error::{TraceError, excerpt};
use super::options::TraceFormat;
use super::read::data_lines;

/// How many non-blank lines are looked at.
const SNIFF_LINES: usize = 16;

/// Guesses the format of `text`.
pub fn sniff(path: &Path, text: &str) -> Result<TraceFormat, TraceError> {
    let lines: Vec<&str> = data_lines(text).take(SNIFF_LINES).map(|(_, l)| l).collect();
    let Some(&first) = lines.first() else {
        return Err(TraceError::Empty {
            path: path.to_path_buf(),
            what: "no non-blank line",
        });
    };
    let unknown = || TraceError::UnknownFormat {
        path: path.to_path_buf(),
        first_line: excerpt(first),
    };
    if first.contains(['\0', '\u{fffd}']) {
        return Err(unknown());
    }
    if first.starts_with("Timestamp") && first.contains("DL_bitrate") {
        return Ok(TraceFormat::Gnettrack);
    }
    if is_rule(first) || is_run_header(first) {
        return Ok(TraceFormat::NuwinsList);
    }
    let is_num = |s: &str| s.trim().parse::<f64>().is_ok_and(f64::is_finite);
    if lines.iter().all(|l| l.parse::<u64>().is_ok()) {
        return Ok(TraceFormat::Mahimahi);
    }
    if lines.iter().all(|l| {
        let f: Vec<&str> = l.split(',').collect();
        f.len() == 2 && f.iter().all(|x| is_num(x))
    }) {
        return Ok(TraceFormat::TimeBytesCsv);
    }
    let pairs: Option<Vec<(&str, &str)>> = lines
        .iter()
        .map(|l| {
            let mut t = l.split_whitespace();
            match (t.next(), t.next(), t.next()) {
                (Some(a), Some(b), None) if is_num(a) && is_num(b) => Some((a, b)),
                _ => None,
            }
        })
        .collect();
    let Some(pairs) = pairs else {
        return Err(unknown());
    };
    let chunked = pairs.len() >= 4
        && pairs
            .chunks_exact(2)
            .all(|c| c[0].1 == c[1].1 && c[0].0 != c[1].0);
    Ok(if chunked {
        TraceFormat::OboeChunks
    } else {
        TraceFormat::TimeMbps
    })
}

/// A NUWiNS separator: a line of `#` only (a Markdown heading is not one).
fn is_rule(l: &str) -> bool {
    l.len() >= 3 && l.bytes().all(|b| b == b'#')
}

fn is_run_header(l: &str) -> bool {
    l.strip_prefix("Run")
        .is_some_and(|r| r.trim().parse::<u64>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Result<TraceFormat, TraceError> {
        sniff(Path::new("x"), text)
    }

    #[test]
    fn recognises_each_format() {
        assert_eq!(s("0\n71\n73\n").unwrap(), TraceFormat::Mahimahi);
        assert_eq!(s("0.0\t2.1\n5.0\t1.1\n").unwrap(), TraceFormat::TimeMbps);
        assert_eq!(
            s("15.0 3168.6\n474.0 3168.6\n514.0 3183.2\n700.0 3183.2\n").unwrap(),
            TraceFormat::OboeChunks
        );
        assert_eq!(
            s("1,5471526\r\n2,6403158\r\n").unwrap(),
            TraceFormat::TimeBytesCsv
        );
        assert_eq!(s("#####\nRun 1\n1,2\n").unwrap(), TraceFormat::NuwinsList);
        assert_eq!(s("Run 1\n1,2\n").unwrap(), TraceFormat::NuwinsList);
        assert_eq!(
            s("Timestamp,Longitude,DL_bitrate\n2019.12.14_10.16.30,1,2\n").unwrap(),
            TraceFormat::Gnettrack
        );
    }

    #[test]
    fn rejects_other_files() {
        assert!(matches!(
            s("{\"a\": 1}\n"),
            Err(TraceError::UnknownFormat { .. })
        ));
        assert!(matches!(
            s("\u{fffd}PNG\r\n\u{1a}\n\0\0"),
            Err(TraceError::UnknownFormat { .. })
        ));
        assert!(matches!(
            s("a b c\n"),
            Err(TraceError::UnknownFormat { .. })
        ));
        assert!(matches!(s("\n \n"), Err(TraceError::Empty { .. })));
    }
}
