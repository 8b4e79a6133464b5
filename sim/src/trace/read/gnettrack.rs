//! G-NetTrack Pro CSV (UCC 5G set): a header row, then nominally one row per second.
//!
//! Rows are indexed by `Timestamp` (`YYYY.MM.DD_hh.mm.ss`, local time), not by position: a
//! row whose timestamp is not after the last kept one (≈ 4 % repeat the previous second) is
//! dropped, so the first row of a second wins. The rate column
//! ([`RateColumn`]) is kbit/s; a sentinel (`-` or empty) there makes the row a missing second.
//! Missing seconds are handled by [`GapFill`].

use std::path::Path;

use time::PrimitiveDateTime;
use time::macros::format_description;

use super::{Parsed, Pieces, parse_error, rate};
use crate::trace::error::TraceError;
use crate::trace::options::{Direction, GapFill, RateColumn};

/// Nominal sampling interval of the logger (s).
const ROW_S: f64 = 1.0;

pub(crate) fn read(
    path: &Path,
    text: &str,
    column: RateColumn,
    gaps: GapFill,
) -> Result<Parsed, TraceError> {
    let column_name = match column {
        RateColumn::Downlink => "DL_bitrate",
        RateColumn::Uplink => "UL_bitrate",
    };
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = rdr
        .headers()
        .map_err(|e| csv_error(path, &e, "a CSV header row"))?
        .clone();
    let find = |name: &str| header.iter().position(|h| h.trim() == name);
    let first_line = text.lines().next().unwrap_or("");
    let (Some(ts_col), Some(rate_col)) = (find("Timestamp"), find(column_name)) else {
        return Err(parse_error(
            path,
            1,
            "a header with `Timestamp` and the rate column (`DL_bitrate`/`UL_bitrate`)",
            first_line,
        ));
    };
    let format = format_description!("[year].[month].[day]_[hour].[minute].[second]");

    // (seconds since the epoch as if UTC, bit/s) of kept rows.
    let mut rows: Vec<(i64, f64)> = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_error(path, &e, "a CSV row")),
        }
        let line = record.position().map_or(0, |p| p.line() as usize);
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let (Some(ts), Some(value)) = (record.get(ts_col), record.get(rate_col)) else {
            return Err(parse_error(
                path,
                line,
                "a row with as many fields as the header",
                record.as_slice(),
            ));
        };
        let t = PrimitiveDateTime::parse(ts.trim(), &format)
            .map_err(|_| parse_error(path, line, "a timestamp YYYY.MM.DD_hh.mm.ss", ts))?
            .assume_utc()
            .unix_timestamp();
        let value = value.trim();
        if value.is_empty() || value == "-" {
            continue;
        }
        let kbps = rate(path, line, "a bit rate ≥ 0 in kbit/s (or `-`)", value)?;
        if rows.last().is_some_and(|&(prev, _)| t <= prev) {
            continue;
        }
        rows.push((t, kbps * 1000.0));
    }
    if rows.is_empty() {
        return Err(TraceError::Empty {
            path: path.to_path_buf(),
            what: "no rows with a rate",
        });
    }
    let mut pieces: Pieces = Vec::with_capacity(rows.len() * 2);
    for (i, &(t, bps)) in rows.iter().enumerate() {
        let next = rows.get(i + 1).map(|&(n, _)| (n - t) as f64);
        match gaps {
            GapFill::Skip => pieces.push((ROW_S, bps)),
            GapFill::Hold => pieces.push((next.unwrap_or(ROW_S), bps)),
            GapFill::Zero => {
                pieces.push((ROW_S, bps));
                if let Some(dt) = next {
                    pieces.push((dt - ROW_S, 0.0));
                }
            }
        }
    }
    let direction = match column {
        RateColumn::Downlink => Direction::Down,
        RateColumn::Uplink => Direction::Up,
    };
    Ok(Parsed {
        series: vec![pieces],
        direction,
    })
}

fn csv_error(path: &Path, e: &csv::Error, expected: &'static str) -> TraceError {
    let line = e.position().map_or(0, |p| p.line() as usize);
    parse_error(path, line, expected, &e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "Timestamp,Longitude,NetworkMode,DL_bitrate,UL_bitrate,State\n";

    fn csv(rows: &str) -> String {
        format!("{HEAD}{rows}")
    }

    #[test]
    fn first_row_per_timestamp_and_gaps() {
        let text = csv(concat!(
            "2019.12.14_10.16.30,-8.3,5G,1000,10,D\n",
            "2019.12.14_10.16.30,-8.3,5G,9999,10,D\n",
            "2019.12.14_10.16.31,-8.3,5G,2000,20,D\n",
            "2019.12.14_10.16.34,-8.3,LTE,3000,-,D\n",
        ));
        let p = Path::new("u.csv");
        let skip = read(p, &text, RateColumn::Downlink, GapFill::Skip).unwrap();
        assert_eq!(skip.direction, Direction::Down);
        assert_eq!(skip.series[0], vec![(1.0, 1e6), (1.0, 2e6), (1.0, 3e6)]);
        let hold = read(p, &text, RateColumn::Downlink, GapFill::Hold).unwrap();
        assert_eq!(hold.series[0], vec![(1.0, 1e6), (3.0, 2e6), (1.0, 3e6)]);
        let zero = read(p, &text, RateColumn::Downlink, GapFill::Zero).unwrap();
        assert_eq!(
            zero.series[0],
            vec![(1.0, 1e6), (0.0, 0.0), (1.0, 2e6), (2.0, 0.0), (1.0, 3e6)]
        );
        // The UL sentinel on the last row makes it a missing second.
        let up = read(p, &text, RateColumn::Uplink, GapFill::Skip).unwrap();
        assert_eq!(up.direction, Direction::Up);
        assert_eq!(up.series[0], vec![(1.0, 1e4), (1.0, 2e4)]);
    }

    #[test]
    fn malformed() {
        let p = Path::new("u.csv");
        let bad_ts = csv("2019-12-14 10:16:30,-8.3,5G,1000,10,D\n");
        assert!(matches!(
            read(p, &bad_ts, RateColumn::Downlink, GapFill::Skip),
            Err(TraceError::Parse { line: 2, .. })
        ));
        let bad_rate = csv("2019.12.14_10.16.30,-8.3,5G,fast,10,D\n");
        assert!(matches!(
            read(p, &bad_rate, RateColumn::Downlink, GapFill::Skip),
            Err(TraceError::Parse { line: 2, .. })
        ));
        let short = csv("2019.12.14_10.16.30,-8.3\n");
        assert!(matches!(
            read(p, &short, RateColumn::Downlink, GapFill::Skip),
            Err(TraceError::Parse { line: 2, .. })
        ));
        assert!(matches!(
            read(p, "a,b\n1,2\n", RateColumn::Downlink, GapFill::Skip),
            Err(TraceError::Parse { line: 1, .. })
        ));
        assert!(matches!(
            read(p, HEAD, RateColumn::Downlink, GapFill::Skip),
            Err(TraceError::Empty { .. })
        ));
    }
}
