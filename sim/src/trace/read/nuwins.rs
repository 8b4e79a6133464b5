//! NUWiNS `.list`: blocks `#####…` / `Run <k>` followed by data lines of comma-separated
//! numbers (uplink Mbit/s).
//!
//! A run with one data line is one series at an implicit 100 ms spacing: value `i` covers
//! `[0.1·i, 0.1·(i+1))` s. A run with an even number of data lines holds pairs (a line of times
//! in seconds, then a line of as many values), one series per pair; a value covers the interval
//! ending at its time, like `time_s-mbps`. The second series of the paired files restarts its
//! clock ~1–2 s back now and then (185 times in the shared set); such samples are dropped until
//! the clock passes the latest time seen, so no interval is counted twice. (`MANIFEST.csv`
//! instead let those intervals telescope; the means differ by < 1 %.) Runs are taken in file
//! order (the files do not always number them in order). Blank and `#` lines are ignored.

use std::path::Path;

use super::{Backwards, IntervalEnding, Parsed, Pieces, data_lines, number, parse_error, rate};
use crate::trace::error::TraceError;
use crate::trace::options::Direction;

/// Spacing of a run given as one line of values (s).
pub(crate) const IMPLICIT_STEP_S: f64 = 0.1;

/// One run: its data lines with line numbers.
struct Run<'a> {
    header_line: usize,
    lines: Vec<(usize, &'a str)>,
}

pub(crate) fn read(path: &Path, text: &str) -> Result<Parsed, TraceError> {
    let mut runs: Vec<Run<'_>> = Vec::new();
    for (line, l) in data_lines(text) {
        if l.starts_with('#') {
            continue;
        }
        if let Some(rest) = l.strip_prefix("Run") {
            if rest.trim().parse::<u64>().is_err() {
                return Err(parse_error(path, line, "`Run <number>`", l));
            }
            runs.push(Run {
                header_line: line,
                lines: Vec::new(),
            });
            continue;
        }
        match runs.last_mut() {
            Some(run) => run.lines.push((line, l)),
            None => return Err(parse_error(path, line, "a `Run <number>` line first", l)),
        }
    }
    let mut series: Vec<Pieces> = Vec::new();
    for run in &runs {
        match run.lines.as_slice() {
            [] => {
                return Err(parse_error(
                    path,
                    run.header_line,
                    "a run with 1 line of values or pairs of time/value lines",
                    "an empty run",
                ));
            }
            [(line, values)] => {
                let mut pieces = Pieces::new();
                for tok in values.split(',') {
                    let v = rate(path, *line, "comma-separated rates ≥ 0 (Mbit/s)", tok)?;
                    pieces.push((IMPLICIT_STEP_S, v * 1e6));
                }
                series.push(pieces);
            }
            pairs if pairs.len() % 2 == 0 => {
                for pair in pairs.chunks_exact(2) {
                    series.push(read_pair(path, pair[0], pair[1])?);
                }
            }
            odd => {
                let (line, l) = odd[odd.len() - 1];
                return Err(parse_error(
                    path,
                    line,
                    "1 line of values or an even number of time/value lines per run",
                    l,
                ));
            }
        }
    }
    series.retain(|s| s.iter().any(|&(d, _)| d > 0.0));
    if series.is_empty() {
        return Err(TraceError::Empty {
            path: path.to_path_buf(),
            what: "no run spans any time",
        });
    }
    Ok(Parsed {
        series,
        direction: Direction::Up,
    })
}

fn read_pair(
    path: &Path,
    (tline, times): (usize, &str),
    (vline, values): (usize, &str),
) -> Result<Pieces, TraceError> {
    let mut acc = IntervalEnding::new(Backwards::Drop);
    let mut ts = times.split(',');
    let mut vs = values.split(',');
    loop {
        match (ts.next(), vs.next()) {
            (Some(t), Some(v)) => {
                let t = number(path, tline, "comma-separated times (s)", t)?;
                let v = rate(path, vline, "comma-separated rates ≥ 0 (Mbit/s)", v)?;
                acc.sample(path, vline, t, v * 1e6, values)?;
            }
            (None, None) => return Ok(acc.pieces),
            _ => {
                return Err(parse_error(
                    path,
                    vline,
                    "as many values as the time line above has times",
                    values,
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implicit_and_paired_runs() {
        let text =
            "####\nRun 1\n1,2,3\n\n####\nRun 2\n0.1,0.2,0.3\n5,6,7\n0.0,0.5,0.4,0.6\n1,2,3,4\n";
        let p = read(Path::new("n"), text).unwrap();
        assert_eq!(p.direction, Direction::Up);
        assert_eq!(p.series.len(), 3);
        assert_eq!(p.series[0], vec![(0.1, 1e6), (0.1, 2e6), (0.1, 3e6)]);
        assert_eq!(p.series[1].len(), 2);
        assert!((p.series[1][0].0 - 0.1).abs() < 1e-12);
        assert_eq!(p.series[1][0].1, 6e6);
        // 0.4 steps back and is dropped; 0.6 covers (0.5, 0.6].
        assert_eq!(p.series[2].len(), 2);
        assert!((p.series[2][1].0 - 0.1).abs() < 1e-12);
        assert_eq!(p.series[2][1].1, 4e6);
    }

    #[test]
    fn malformed() {
        let p = Path::new("n");
        assert!(matches!(
            read(p, "1,2\n"),
            Err(TraceError::Parse { line: 1, .. })
        ));
        assert!(matches!(
            read(p, "Run x\n1\n"),
            Err(TraceError::Parse { line: 1, .. })
        ));
        assert!(matches!(
            read(p, "Run 1\n1,a\n"),
            Err(TraceError::Parse { line: 2, .. })
        ));
        assert!(matches!(
            read(p, "Run 1\n"),
            Err(TraceError::Parse { line: 1, .. })
        ));
        assert!(matches!(
            read(p, "Run 1\n0.1,0.2\n1\n"),
            Err(TraceError::Parse { line: 3, .. })
        ));
        assert!(matches!(
            read(p, "Run 1\n1\n2\n3\n"),
            Err(TraceError::Parse { line: 4, .. })
        ));
        assert!(matches!(read(p, "####\n"), Err(TraceError::Empty { .. })));
    }
}
