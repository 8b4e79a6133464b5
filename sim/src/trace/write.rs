//! Writes a [`Trace`] as `time_s-mbps` text, the format the readers load back.

use std::fmt::Write as _;

use super::piecewise::Trace;

/// Formats `v` with at most `decimals` decimals and no trailing zeros.
fn fixed(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

impl Trace {
    /// The trace as `time_s<TAB>Mbit/s` lines: a line at time 0, then one line at the end of
    /// each segment carrying that segment's rate (a value covers the interval ending at its
    /// time). Times are rounded to 1 µs and rates to 1 bit/s, so a trace whose boundaries and
    /// rates lie on that grid reads back exactly.
    pub fn to_time_s_mbps(&self) -> String {
        let mut out = String::with_capacity(24 * (self.len() + 1));
        let first = self.segments().next().map_or(0.0, |s| s.bps);
        // The line at time 0 only fixes the origin; it repeats the first rate.
        let _ = writeln!(out, "0\t{}", fixed(first / 1e6, 6));
        for s in self.segments() {
            let _ = writeln!(
                out,
                "{}\t{}",
                fixed(s.start + s.duration, 6),
                fixed(s.bps / 1e6, 6)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::trace::{LoadOptions, Trace, TraceFormat};

    #[test]
    fn round_trips_through_the_reader() {
        let t = Trace::from_segments("s", &[(1.5, 2e6), (0.25, 0.0), (3.0, 123_457.0)]).unwrap();
        let text = t.to_time_s_mbps();
        assert_eq!(text, "0\t2\n1.5\t2\n1.75\t0\n4.75\t0.123457\n");
        let back = Trace::parse(&text, "s.tsv", &LoadOptions::default()).unwrap();
        assert_eq!(back.format(), Some(TraceFormat::TimeMbps));
        let a: Vec<_> = t.segments().collect();
        let b: Vec<_> = back.segments().collect();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert!((x.duration - y.duration).abs() < 1e-9);
            assert!((x.bps - y.bps).abs() < 1e-6);
        }
    }
}
