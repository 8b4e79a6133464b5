//! One reader per on-disk format. Each turns text into series of `(duration s, bit/s)` pieces;
//! [`load`](super::load) picks the series and builds the [`Trace`](super::Trace).

pub(crate) mod gnettrack;
pub(crate) mod mahimahi;
pub(crate) mod nuwins;
pub(crate) mod oboe;
pub(crate) mod time_value;

use std::path::Path;

use super::error::{TraceError, excerpt};
use super::options::Direction;

/// `(duration s, bit/s)` pieces of one series, in time order.
pub(crate) type Pieces = Vec<(f64, f64)>;

/// What a reader found in a file.
#[derive(Debug)]
pub(crate) struct Parsed {
    /// Every series in file order (at least one, each spanning positive time).
    pub series: Vec<Pieces>,
    /// Direction the file itself implies.
    pub direction: Direction,
}

/// Non-blank lines with their 1-based numbers, trimmed (so CRLF files read like LF files).
pub(crate) fn data_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty())
}

/// A [`TraceError::Parse`] for `found` on `line`.
pub(crate) fn parse_error(
    path: &Path,
    line: usize,
    expected: &'static str,
    found: &str,
) -> TraceError {
    TraceError::Parse {
        path: path.to_path_buf(),
        line,
        expected,
        found: excerpt(found),
    }
}

/// Parses a finite number; NaN and infinities are errors.
pub(crate) fn number(
    path: &Path,
    line: usize,
    expected: &'static str,
    tok: &str,
) -> Result<f64, TraceError> {
    match tok.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(parse_error(path, line, expected, tok)),
    }
}

/// Parses a finite number ≥ 0.
pub(crate) fn rate(
    path: &Path,
    line: usize,
    expected: &'static str,
    tok: &str,
) -> Result<f64, TraceError> {
    let v = number(path, line, expected, tok)?;
    if v < 0.0 {
        return Err(parse_error(path, line, expected, tok));
    }
    Ok(v)
}

/// What to do with a sample whose time is not after the latest one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backwards {
    /// Malformed file: a typed error.
    Error,
    /// Known quirk of the source: drop the sample (its interval is already covered).
    Drop,
}

/// Builds pieces from samples whose value covers the interval *ending* at their time (the
/// convention of the Pensieve-style `time_s-mbps` files, NUWiNS paired rows and the
/// bytes-per-second CSV). The first sample only fixes the start time unless a lead-in is given.
#[derive(Debug)]
pub(crate) struct IntervalEnding {
    latest: Option<f64>,
    backwards: Backwards,
    pub(crate) pieces: Pieces,
}

impl IntervalEnding {
    pub(crate) fn new(backwards: Backwards) -> Self {
        IntervalEnding {
            latest: None,
            backwards,
            pieces: Vec::new(),
        }
    }

    /// Adds a sample at time `t` (s) with rate `bps`. Equal times give an empty interval,
    /// which is dropped.
    pub(crate) fn sample(
        &mut self,
        path: &Path,
        line: usize,
        t: f64,
        bps: f64,
        found: &str,
    ) -> Result<(), TraceError> {
        match self.latest {
            None => self.latest = Some(t),
            Some(prev) if t >= prev => {
                self.pieces.push((t - prev, bps));
                self.latest = Some(t);
            }
            Some(_) => {
                if self.backwards == Backwards::Error {
                    return Err(parse_error(
                        path,
                        line,
                        "a time not before the previous line's",
                        found,
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether the samples so far cover any positive time.
    pub(crate) fn spans_time(&self) -> bool {
        self.pieces.iter().any(|&(d, _)| d > 0.0)
    }
}
