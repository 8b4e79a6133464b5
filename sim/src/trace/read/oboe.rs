//! Oboe: `time_ms kbps` lines, one at the start and one at the end of each video chunk, both
//! carrying the chunk's mean bandwidth.
//!
//! Between consecutive lines the rate is interpolated linearly (inside a chunk both ends are
//! equal, so it is constant; across the gap between chunks it ramps, as the dataset README
//! suggests). A ramp is cut into pieces of at most
//! [`LoadOptions::interpolation_step_s`](crate::trace::LoadOptions::interpolation_step_s), each
//! at the ramp's mid value, so the integral (and the mean) is exact. The first line's time is
//! the trace's origin.

use std::path::Path;

use super::{Parsed, Pieces, data_lines, number, parse_error, rate};
use crate::trace::error::TraceError;
use crate::trace::options::Direction;

/// Most pieces one ramp is cut into, however long the gap (bounds memory on odd input).
const MAX_PIECES_PER_RAMP: f64 = 256.0;

pub(crate) fn read(path: &Path, text: &str, step_s: f64) -> Result<Parsed, TraceError> {
    let mut pieces: Pieces = Vec::new();
    let mut prev: Option<(f64, f64)> = None;
    for (line, l) in data_lines(text) {
        let mut toks = l.split_whitespace();
        let (Some(t), Some(v), None) = (toks.next(), toks.next(), toks.next()) else {
            return Err(parse_error(
                path,
                line,
                "two numbers: time_ms and kbit/s",
                l,
            ));
        };
        let t = number(path, line, "a time in milliseconds", t)? / 1000.0;
        let v = rate(path, line, "a rate ≥ 0 in kbit/s", v)? * 1000.0;
        if let Some((t0, v0)) = prev {
            if t < t0 {
                return Err(parse_error(
                    path,
                    line,
                    "a time not before the previous line's",
                    l,
                ));
            }
            let dt = t - t0;
            if v == v0 {
                pieces.push((dt, v));
            } else if dt > 0.0 {
                // The tolerance keeps 0.2 / 0.1 (= 2.0000000000000004) at two pieces.
                let n = (dt / step_s * (1.0 - 1e-9))
                    .ceil()
                    .clamp(1.0, MAX_PIECES_PER_RAMP);
                let piece = dt / n;
                for k in 0..n as usize {
                    let mid = (k as f64 + 0.5) / n;
                    pieces.push((piece, v0 + (v - v0) * mid));
                }
            }
        }
        prev = Some((t, v));
    }
    if !pieces.iter().any(|&(d, _)| d > 0.0) {
        return Err(TraceError::Empty {
            path: path.to_path_buf(),
            what: "fewer than two lines at distinct times",
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
    fn chunks_constant_gaps_ramp_with_exact_integral() {
        let text = "1000 100\n2000 100\n2200 300\n3000 300\n";
        let p = read(Path::new("o"), text, 0.1).unwrap();
        let s = &p.series[0];
        assert_eq!(s.first(), Some(&(1.0, 100e3)));
        let (d, r) = *s.last().unwrap();
        assert!((d - 0.8).abs() < 1e-12 && r == 300e3);
        // Gap of 0.2 s ramps 100 → 300 kbit/s: two 0.1 s pieces at 150 and 250.
        assert_eq!(s.len(), 4);
        let bits: f64 = s.iter().map(|&(d, r)| d * r).sum();
        let exact = 1.0 * 100e3 + 0.2 * 200e3 + 0.8 * 300e3;
        assert!((bits - exact).abs() < 1e-6);
    }

    #[test]
    fn malformed() {
        let p = Path::new("o");
        assert!(matches!(
            read(p, "1 2\n0 2\n", 0.1),
            Err(TraceError::Parse { line: 2, .. })
        ));
        assert!(matches!(
            read(p, "1,2\n", 0.1),
            Err(TraceError::Parse { line: 1, .. })
        ));
        assert!(matches!(
            read(p, "1 2\n", 0.1),
            Err(TraceError::Empty { .. })
        ));
    }

    #[test]
    fn long_gap_is_bounded() {
        let p = read(Path::new("o"), "0 1\n1e15 2\n", 1e-3).unwrap();
        assert_eq!(p.series[0].len(), MAX_PIECES_PER_RAMP as usize);
    }
}
