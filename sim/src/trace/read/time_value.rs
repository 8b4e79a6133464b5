//! Two-column time/value text: `time_s-mbps` (FCC, HSDPA, Puffer) and
//! `time_s-bytes_per_s-csv` (WiFi/cellular walking).
//!
//! In both, a value is the throughput over the interval *ending* at its time (the HSDPA
//! README says so, and it is the reading that reproduces `MANIFEST.csv` for every file).
//! `time_s-mbps` therefore drops the first value (the interval before time 0 has no known
//! length); the CSV's rows are one second apart from time 1, so its first row covers the step
//! before it (the next row's spacing), i.e. `[0, 1]`.

use std::path::Path;

use super::{Backwards, IntervalEnding, Parsed, data_lines, number, parse_error, rate};
use crate::trace::error::TraceError;
use crate::trace::options::Direction;

/// Reads `time_s<whitespace>Mbit/s` lines.
pub(crate) fn read_mbps(path: &Path, text: &str) -> Result<Parsed, TraceError> {
    let mut acc = IntervalEnding::new(Backwards::Error);
    for (line, l) in data_lines(text) {
        let mut toks = l.split_whitespace();
        let (Some(t), Some(v), None) = (toks.next(), toks.next(), toks.next()) else {
            return Err(parse_error(path, line, "two numbers: time_s and Mbit/s", l));
        };
        let t = number(path, line, "a time in seconds", t)?;
        let v = rate(path, line, "a rate ≥ 0 in Mbit/s", v)?;
        acc.sample(path, line, t, v * 1e6, l)?;
    }
    if !acc.spans_time() {
        return Err(TraceError::Empty {
            path: path.to_path_buf(),
            what: "fewer than two samples at distinct times",
        });
    }
    Ok(Parsed {
        series: vec![acc.pieces],
        direction: Direction::Unknown,
    })
}

/// Reads `time_s,bytes_per_second` CSV rows (no header).
pub(crate) fn read_bytes_csv(path: &Path, text: &str) -> Result<Parsed, TraceError> {
    let mut rows: Vec<(usize, f64, f64)> = Vec::new();
    for (line, l) in data_lines(text) {
        let mut toks = l.split(',');
        let (Some(t), Some(v), None) = (toks.next(), toks.next(), toks.next()) else {
            return Err(parse_error(
                path,
                line,
                "two fields: time_s,bytes_per_second",
                l,
            ));
        };
        let t = number(path, line, "a time in seconds", t)?;
        let v = rate(path, line, "a rate ≥ 0 in bytes/s", v)?;
        if rows.last().is_some_and(|&(_, prev, _)| t < prev) {
            return Err(parse_error(
                path,
                line,
                "a time not before the previous row's",
                l,
            ));
        }
        rows.push((line, t, v * 8.0));
    }
    let Some(&(_, t0, _)) = rows.first() else {
        return Err(TraceError::Empty {
            path: path.to_path_buf(),
            what: "no rows",
        });
    };
    // Lead-in of the first row: the sampling step, or from time 0 for a single row.
    let lead = match rows.get(1) {
        Some(&(_, t1, _)) => t1 - t0,
        None => t0,
    };
    let mut pieces = Vec::with_capacity(rows.len());
    pieces.push((lead.max(0.0), rows[0].2));
    for w in rows.windows(2) {
        pieces.push((w[1].1 - w[0].1, w[1].2));
    }
    if !pieces.iter().any(|&(d, _)| d > 0.0) {
        return Err(TraceError::Empty {
            path: path.to_path_buf(),
            what: "rows span no time",
        });
    }
    Ok(Parsed {
        series: vec![pieces],
        direction: Direction::Unknown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbps_value_covers_interval_ending_at_its_time() {
        let p = read_mbps(Path::new("f"), "0.0\t9\n1.0\t2\n3.0\t4\n").unwrap();
        assert_eq!(p.series[0], vec![(1.0, 2e6), (2.0, 4e6)]);
    }

    #[test]
    fn mbps_malformed() {
        let p = Path::new("f");
        assert!(matches!(
            read_mbps(p, "0 1\n1 x\n"),
            Err(TraceError::Parse { line: 2, .. })
        ));
        assert!(matches!(
            read_mbps(p, "0 1\n1 2 3\n"),
            Err(TraceError::Parse { line: 2, .. })
        ));
        assert!(matches!(
            read_mbps(p, "0 1\n1 -2\n"),
            Err(TraceError::Parse { line: 2, .. })
        ));
        assert!(matches!(
            read_mbps(p, "5 1\n1 2\n"),
            Err(TraceError::Parse { line: 2, .. })
        ));
        assert!(matches!(
            read_mbps(p, "0 1\n1 NaN\n"),
            Err(TraceError::Parse { line: 2, .. })
        ));
        assert!(matches!(
            read_mbps(p, "0 1\n"),
            Err(TraceError::Empty { .. })
        ));
    }

    #[test]
    fn bytes_csv_first_row_covers_first_second() {
        let p = read_bytes_csv(Path::new("c"), "1,100\r\n2,200\r\n3,0\r\n").unwrap();
        assert_eq!(p.series[0], vec![(1.0, 800.0), (1.0, 1600.0), (1.0, 0.0)]);
        assert!(matches!(
            read_bytes_csv(Path::new("c"), "time,bytes\n"),
            Err(TraceError::Parse { line: 1, .. })
        ));
    }
}
