//! mahimahi: one integer per line, a millisecond at which one 1500-byte packet may cross.
//!
//! The period is the last timestamp (mahimahi loops there), every line of the file falls in one
//! period, and the capacity of a window is `lines × 1500 × 8 bit / window`. Windows of
//! [`LoadOptions::mahimahi_window_s`](crate::trace::LoadOptions::mahimahi_window_s) start at 0;
//! the last one ends at the period and may be shorter. So the mean is exact: all lines × 12 000
//! bit over the period. Empty stretches (outages) become one zero piece, so the number of
//! pieces is bounded by the number of lines, whatever the timestamps say.

use std::path::Path;

use super::{Parsed, Pieces, data_lines, parse_error};
use crate::trace::error::TraceError;
use crate::trace::options::Direction;

/// Bits one delivery opportunity carries (one 1500-byte packet).
pub(crate) const BITS_PER_OPPORTUNITY: f64 = 1500.0 * 8.0;

pub(crate) fn read(path: &Path, text: &str, window_s: f64) -> Result<Parsed, TraceError> {
    let mut times_ms: Vec<u64> = Vec::new();
    for (line, l) in data_lines(text) {
        let t: u64 = l
            .parse()
            .map_err(|_| parse_error(path, line, "a whole number of milliseconds", l))?;
        if times_ms.last().is_some_and(|&prev| t < prev) {
            return Err(parse_error(
                path,
                line,
                "a time (ms) not before the previous line's",
                l,
            ));
        }
        times_ms.push(t);
    }
    let Some(&last) = times_ms.last() else {
        return Err(TraceError::Empty {
            path: path.to_path_buf(),
            what: "no delivery opportunities",
        });
    };
    if last == 0 {
        return Err(TraceError::Empty {
            path: path.to_path_buf(),
            what: "the last timestamp (the period) is 0 ms",
        });
    }
    let period_ms = last as f64;
    let window_ms = window_s * 1000.0;
    let bins = (period_ms / window_ms).ceil().max(1.0);
    let width_s =
        |bin: f64| ((bin + 1.0) * window_ms).min(period_ms) / 1000.0 - bin * window_ms / 1000.0;

    let mut pieces: Pieces = Vec::new();
    let mut cur = 0.0_f64;
    let mut count = 0_u64;
    for &t in &times_ms {
        let bin = (t as f64 / window_ms).floor().min(bins - 1.0);
        if bin != cur {
            pieces.push((
                width_s(cur),
                count as f64 * BITS_PER_OPPORTUNITY / width_s(cur),
            ));
            if bin > cur + 1.0 {
                let gap_s = (bin * window_ms - (cur + 1.0) * window_ms) / 1000.0;
                pieces.push((gap_s, 0.0));
            }
            cur = bin;
            count = 0;
        }
        count += 1;
    }
    pieces.push((
        width_s(cur),
        count as f64 * BITS_PER_OPPORTUNITY / width_s(cur),
    ));
    if cur < bins - 1.0 {
        pieces.push(((period_ms - (cur + 1.0) * window_ms) / 1000.0, 0.0));
    }

    let direction = match path.extension().and_then(|e| e.to_str()) {
        Some("up") => Direction::Up,
        Some("down") => Direction::Down,
        _ => Direction::Unknown,
    };
    Ok(Parsed {
        series: vec![pieces],
        direction,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(p: &Pieces) -> (f64, f64) {
        p.iter()
            .fold((0.0, 0.0), |(d, b), &(pd, r)| (d + pd, b + pd * r))
    }

    #[test]
    fn bins_and_exact_total() {
        // 3 opportunities in [0, 100) ms, none in [100, 300), 1 at the period 350 ms.
        let p = read(Path::new("x.up"), "0\n0\n71\n350\n", 0.1).unwrap();
        assert_eq!(p.direction, Direction::Up);
        let s = &p.series[0];
        assert_eq!(s.len(), 3);
        assert!((s[0].1 - 3.0 * 12_000.0 / 0.1).abs() < 1e-6);
        assert_eq!(s[1].1, 0.0);
        assert!((s[1].0 - 0.2).abs() < 1e-12);
        assert!((s[2].0 - 0.05).abs() < 1e-12);
        let (d, bits) = total(s);
        assert!((d - 0.35).abs() < 1e-12);
        assert!((bits - 4.0 * 12_000.0).abs() < 1e-6);
    }

    #[test]
    fn malformed() {
        let p = Path::new("m");
        assert!(matches!(
            read(p, "0\n1.5\n", 0.1),
            Err(TraceError::Parse { line: 2, .. })
        ));
        assert!(matches!(
            read(p, "5\n3\n", 0.1),
            Err(TraceError::Parse { line: 2, .. })
        ));
        assert!(matches!(
            read(p, "-1\n", 0.1),
            Err(TraceError::Parse { line: 1, .. })
        ));
        assert!(matches!(
            read(p, "0\n0\n", 0.1),
            Err(TraceError::Empty { .. })
        ));
        assert!(matches!(
            read(p, "\n\n", 0.1),
            Err(TraceError::Empty { .. })
        ));
    }

    #[test]
    fn huge_gap_makes_one_piece() {
        let p = read(Path::new("m"), "0\n1000000000000\n", 0.001).unwrap();
        assert_eq!(p.series[0].len(), 3);
    }
}
