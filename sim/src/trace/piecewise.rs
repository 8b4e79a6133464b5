//! [`Trace`]: link capacity over time, piecewise constant, with exact integrals and inverses.

use std::path::{Path, PathBuf};

use super::error::TraceError;
use super::grid::GridIndex;
use super::options::{Direction, SeriesSelect, TraceFormat};

/// 2^52: from here on every `f64` is an integer; below it `as i64` truncates exactly (one
/// instruction each way on x86-64, where `u64` conversions take several).
const TWO_POW_52: f64 = 4_503_599_627_370_496.0;

/// One constant-rate piece of a [`Trace`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    /// Start time within the period (s).
    pub start: f64,
    /// Length (s), always > 0.
    pub duration: f64,
    /// Capacity (bit/s), always ≥ 0.
    pub bps: f64,
}

/// Link capacity over time: piecewise constant, in bit/s, repeating with period
/// [`Trace::duration`].
///
/// The trace **wraps around**: time `t` reads the trace at `t mod duration()`, the way mahimahi
/// loops a trace when it reaches the last line, so a simulation may run longer than the file.
/// Negative times wrap the same way.
///
/// Stored as segment start times, rates and prefix sums of bits, so that
/// [`bits_between`](Trace::bits_between) and [`transfer_end`](Trace::transfer_end) are exact and
/// take O(log n) whatever the span (whole periods are counted, not walked); a uniform grid over
/// times and over bits makes the searches expected O(1).
#[derive(Debug, Clone)]
pub struct Trace {
    name: String,
    format: Option<TraceFormat>,
    source: Option<PathBuf>,
    direction: Direction,
    series: SeriesSelect,
    series_in_file: usize,
    /// `n + 1` boundaries: `starts[0] = 0`, `starts[n] = period`.
    starts: Vec<f64>,
    /// `n` rates (bit/s); adjacent rates differ.
    rates: Vec<f64>,
    /// `n + 1` prefix sums of bits: `cum[i]` = bits in `[0, starts[i])`.
    cum: Vec<f64>,
    /// Finds the segment holding a time offset (over `starts[..n]`).
    time_grid: GridIndex,
    /// Finds the first segment whose end reaches a bit count (over `cum[1..]`).
    bits_grid: GridIndex,
}

/// Accumulates pieces into the arrays of a [`Trace`], dropping empty pieces and merging equal
/// neighbours (mahimahi outages and step traces shrink a lot this way).
#[derive(Debug, Default)]
pub(crate) struct TimelineBuilder {
    starts: Vec<f64>,
    rates: Vec<f64>,
    end: f64,
}

impl TimelineBuilder {
    /// Appends `duration` seconds at `bps`. Callers pass finite, non-negative values.
    pub(crate) fn push(&mut self, duration: f64, bps: f64) {
        debug_assert!(duration.is_finite() && bps.is_finite() && bps >= 0.0);
        if duration <= 0.0 {
            return;
        }
        if self.rates.last() != Some(&bps) {
            self.starts.push(self.end);
            self.rates.push(bps);
        }
        self.end += duration;
    }

    /// Total time pushed so far (s).
    pub(crate) fn len_s(&self) -> f64 {
        self.end
    }

    /// Builds the trace; `None` when no time was pushed.
    pub(crate) fn finish(mut self, name: String) -> Option<Trace> {
        if self.rates.is_empty() || self.end <= 0.0 || !self.end.is_finite() {
            return None;
        }
        self.starts.push(self.end);
        let mut cum = Vec::with_capacity(self.starts.len());
        let mut acc = 0.0;
        cum.push(acc);
        for (i, &r) in self.rates.iter().enumerate() {
            acc += r * (self.starts[i + 1] - self.starts[i]);
            cum.push(acc);
        }
        let n = self.rates.len();
        let time_grid = GridIndex::new(&self.starts[..n], self.end, n, true);
        let bits_grid = GridIndex::new(&cum[1..], acc, n, false);
        Some(Trace {
            name,
            format: None,
            source: None,
            direction: Direction::Unknown,
            series: SeriesSelect::All,
            series_in_file: 1,
            starts: self.starts,
            rates: self.rates,
            cum,
            time_grid,
            bits_grid,
        })
    }
}

impl Trace {
    /// Builds a trace from `(duration s, bit/s)` pieces in order. Durations must be finite and
    /// ≥ 0 (zero-length pieces are dropped), rates finite and ≥ 0, and the total positive.
    pub fn from_segments(
        name: impl Into<String>,
        segments: &[(f64, f64)],
    ) -> Result<Trace, TraceError> {
        let name = name.into();
        let mut b = TimelineBuilder::default();
        for (index, &(duration, bps)) in segments.iter().enumerate() {
            let bad = |expected| TraceError::BadSegment {
                name: name.clone(),
                index,
                expected,
            };
            if !(duration.is_finite() && duration >= 0.0) {
                return Err(bad("a finite duration ≥ 0 s"));
            }
            if !(bps.is_finite() && bps >= 0.0) {
                return Err(bad("a finite rate ≥ 0 bit/s"));
            }
            b.push(duration, bps);
        }
        if !b.len_s().is_finite() {
            return Err(TraceError::BadSegment {
                name,
                index: segments.len(),
                expected: "a finite total duration",
            });
        }
        let index = segments.len();
        let trace = b.finish(name.clone()).ok_or(TraceError::BadSegment {
            name: name.clone(),
            index,
            expected: "a positive total duration",
        })?;
        if !trace.total_bits().is_finite() {
            return Err(TraceError::BadSegment {
                name,
                index,
                expected: "a finite number of bits per period",
            });
        }
        Ok(trace)
    }

    pub(crate) fn set_origin(
        &mut self,
        format: TraceFormat,
        source: Option<&Path>,
        series: SeriesSelect,
        series_in_file: usize,
    ) {
        self.format = Some(format);
        self.source = source.map(Path::to_path_buf);
        self.series = series;
        self.series_in_file = series_in_file;
    }

    pub(crate) fn clear_source(&mut self) {
        self.source = None;
    }

    /// Sets the link direction this trace describes.
    pub fn with_direction(mut self, direction: Direction) -> Trace {
        self.direction = direction;
        self
    }

    /// Renames the trace.
    pub fn with_name(mut self, name: impl Into<String>) -> Trace {
        self.name = name.into();
        self
    }

    /// Short name (the file name for loaded traces).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Format it was read from; `None` for traces built in memory.
    pub fn format(&self) -> Option<TraceFormat> {
        self.format
    }

    /// File it was read from, if any.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// Link direction.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Which series of its file this trace is.
    pub fn series(&self) -> SeriesSelect {
        self.series
    }

    /// How many series its file has (1 for traces built in memory).
    pub fn series_in_file(&self) -> usize {
        self.series_in_file
    }

    /// Number of constant-rate segments (after merging equal neighbours).
    pub fn len(&self) -> usize {
        self.rates.len()
    }

    /// Always false: a trace has at least one segment. Present for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.rates.is_empty()
    }

    /// The period (s) after which the trace repeats.
    #[inline]
    pub fn duration(&self) -> f64 {
        self.starts[self.rates.len()]
    }

    /// Bits that cross in one period.
    #[inline]
    pub fn total_bits(&self) -> f64 {
        self.cum[self.rates.len()]
    }

    /// Splits `t` into a whole number of periods and an offset in `[0, period)`.
    #[inline]
    fn wrap(&self, t: f64) -> (f64, f64) {
        let period = self.duration();
        let q = t / period;
        // In the first period `floor(q)` is 0 and the offset is `t` itself.
        if q > 0.0 && q < 1.0 {
            return (0.0, t);
        }
        // `floor` is a library call on baseline x86-64; for a positive `q` below 2^52 the
        // truncating conversion gives the same value.
        let k = if q > 0.0 && q < TWO_POW_52 {
            (q as i64) as f64
        } else {
            q.floor()
        };
        let off = t - k * period;
        // Rounding can land exactly on the period or a hair below zero.
        if off >= period {
            (k + 1.0, 0.0)
        } else if off < 0.0 {
            (k, 0.0)
        } else {
            (k, off)
        }
    }

    /// Index of the segment holding offset `off` in `[0, period)`.
    #[inline]
    fn segment_at(&self, off: f64) -> usize {
        let n = self.rates.len();
        // starts[0] = 0 <= off, so the count is ≥ 1.
        self.time_grid.count_below(&self.starts[..n], off).max(1) - 1
    }

    /// [`Self::segment_at`], first trying segment `hint` and the one after it: successive
    /// lookups of a run move forward in time, so they usually land there (same result: the
    /// segment holding `off` is unique).
    #[inline]
    fn segment_near(&self, off: f64, hint: usize) -> usize {
        let n = self.rates.len();
        if hint < n && self.starts[hint] <= off {
            if off < self.starts[hint + 1] {
                return hint;
            }
            if hint + 1 < n && off < self.starts[hint + 2] {
                return hint + 1;
            }
        }
        self.segment_at(off)
    }

    /// Bits in `[0, off)` for an offset within one period.
    #[inline]
    fn cum_at(&self, off: f64) -> f64 {
        let i = self.segment_at(off);
        self.cum[i] + self.rates[i] * (off - self.starts[i])
    }

    /// Capacity (bit/s) at time `t` (wraps; a segment holds on `[start, start + duration)`).
    #[inline]
    pub fn capacity_at(&self, t: f64) -> f64 {
        let (_, off) = self.wrap(t);
        self.rates[self.segment_at(off)]
    }

    /// [`Self::capacity_at`] for a caller whose successive times mostly increase: `hint` is the
    /// segment of its previous lookup and is updated (any value is correct, a close one fast).
    #[inline]
    pub fn capacity_near(&self, t: f64, hint: &mut usize) -> f64 {
        let (_, off) = self.wrap(t);
        let i = self.segment_near(off, *hint);
        *hint = i;
        self.rates[i]
    }

    /// Bits that can cross in `[t0, t1]` (the integral of capacity; wraps and counts whole
    /// periods). 0 when `t1 <= t0` or either time is not finite.
    #[inline]
    pub fn bits_between(&self, t0: f64, t1: f64) -> f64 {
        if !t0.is_finite() || !t1.is_finite() || t1 <= t0 {
            return 0.0;
        }
        let (k0, o0) = self.wrap(t0);
        let (k1, o1) = self.wrap(t1);
        ((k1 - k0) * self.total_bits() + self.cum_at(o1) - self.cum_at(o0)).max(0.0)
    }

    /// Earliest time at which `bits` have crossed the link when sending starts at `start`,
    /// i.e. the smallest `t ≥ start` with `bits_between(start, t) ≥ bits`.
    ///
    /// Exact for the piecewise-constant capacity and O(log n) (expected O(1)): whole periods are
    /// skipped arithmetically, then a grid-guided search on the prefix sums finds the segment. Returns
    /// `Some(start)` for `bits ≤ 0`, and `None` when the bits can never cross: the trace's
    /// total capacity is zero, or `start`/`bits` is not finite.
    #[inline]
    pub fn transfer_end(&self, start: f64, bits: f64) -> Option<f64> {
        self.transfer_end_near(start, bits, &mut 0)
    }

    /// [`Self::transfer_end`] for a caller whose successive transfers move forward in time (a
    /// FIFO link): `hint` is the segment where its previous transfer ended and is updated (any
    /// value gives the same result, a close one avoids the search).
    #[inline]
    pub fn transfer_end_near(&self, start: f64, bits: f64, hint: &mut usize) -> Option<f64> {
        if !start.is_finite() || bits.is_nan() {
            return None;
        }
        if bits <= 0.0 {
            return Some(start);
        }
        let total = self.total_bits();
        // Totals are validated finite and ≥ 0 at construction.
        if total <= 0.0 || !bits.is_finite() {
            return None;
        }
        let period = self.duration();
        let (k, off) = self.wrap(start);
        let i0 = self.segment_near(off, *hint);
        *hint = i0;
        let r0 = self.rates[i0];
        // Fast path (most frames): the transfer ends inside the segment it starts in.
        if r0 > 0.0 && off + bits / r0 <= self.starts[i0 + 1] {
            return Some(start + bits / r0);
        }
        // Bits from the start of period k to the end of the transfer.
        let target = self.cum[i0] + r0 * (off - self.starts[i0]) + bits;
        // Period (after k) in which the target is reached: j·T < target ≤ (j+1)·T.
        let q = target / total;
        // `ceil` without the library call where the truncation gives it exactly.
        let j = if q > 0.0 && q <= 1.0 {
            0.0
        } else if q > 0.0 && q < TWO_POW_52 {
            let t = (q as i64) as f64;
            (if t < q { t + 1.0 } else { t } - 1.0).max(0.0)
        } else {
            (q.ceil() - 1.0).max(0.0)
        };
        let rem = (target - j * total).clamp(f64::MIN_POSITIVE, total);
        let n = self.rates.len();
        // First segment whose end reaches `rem`; its start is below `rem`, so its rate is > 0.
        let i = self.bits_grid.count_below(&self.cum[1..=n], rem).min(n - 1);
        *hint = i;
        let rate = self.rates[i];
        let tau = if rate > 0.0 {
            (self.starts[i] + (rem - self.cum[i]) / rate).min(self.starts[i + 1])
        } else {
            self.starts[i + 1]
        };
        let end = (k + j) * period + tau;
        if end > start {
            Some(end)
        } else {
            // Only rounding gets here (bits > 0 need time): bits below the resolution of the
            // prefix sums were absorbed. They cross as soon as the link carries anything.
            Some(self.next_capacity(k, i0).max(start))
        }
    }

    /// Earliest time ≥ the start of segment `i0` of period `k` at which capacity is positive.
    fn next_capacity(&self, k: f64, i0: usize) -> f64 {
        let n = self.rates.len();
        let period = self.duration();
        if self.rates[i0] > 0.0 {
            return k * period + self.starts[i0];
        }
        // The first later segment that carries bits ends above this segment's prefix sum.
        let i = self.cum[1..=n].partition_point(|&c| c <= self.cum[i0 + 1]);
        if i < n {
            return k * period + self.starts[i];
        }
        let first = self.cum[1..=n].partition_point(|&c| c <= 0.0).min(n - 1);
        (k + 1.0) * period + self.starts[first]
    }

    /// Time-weighted mean capacity (bit/s) over one period.
    pub fn mean_bps(&self) -> f64 {
        self.total_bits() / self.duration()
    }

    /// Time-weighted percentile (bit/s): the smallest rate `r` such that the capacity is ≤ `r`
    /// for at least `p` % of the period. `p` is clamped to `[0, 100]`; NaN gives NaN.
    pub fn percentile_bps(&self, p: f64) -> f64 {
        if p.is_nan() {
            return f64::NAN;
        }
        let mut by_rate: Vec<(f64, f64)> = self.segments().map(|s| (s.bps, s.duration)).collect();
        by_rate.sort_by(|a, b| a.0.total_cmp(&b.0));
        let want = p.clamp(0.0, 100.0) / 100.0 * self.duration();
        let mut acc = 0.0;
        for &(bps, dur) in &by_rate {
            acc += dur;
            if acc >= want {
                return bps;
            }
        }
        by_rate.last().map_or(0.0, |&(bps, _)| bps)
    }

    /// Fraction of the period with zero capacity.
    pub fn zero_fraction(&self) -> f64 {
        let zero = self
            .segments()
            .filter(|s| s.bps == 0.0)
            .fold(0.0, |acc, s| acc + s.duration);
        zero / self.duration()
    }

    /// The constant-rate segments of one period, in time order.
    pub fn segments(&self) -> impl ExactSizeIterator<Item = Segment> + '_ {
        (0..self.rates.len()).map(move |i| Segment {
            start: self.starts[i],
            duration: self.starts[i + 1] - self.starts[i],
            bps: self.rates[i],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step() -> Trace {
        // 2 s at 1 Mbit/s, 1 s at 0, 1 s at 3 Mbit/s: period 4 s, 5 Mbit per period.
        Trace::from_segments("t", &[(2.0, 1e6), (1.0, 0.0), (1.0, 3e6)]).unwrap()
    }

    #[test]
    fn basic_stats() {
        let t = step();
        assert_eq!(t.duration(), 4.0);
        assert_eq!(t.total_bits(), 5e6);
        assert_eq!(t.mean_bps(), 1.25e6);
        assert_eq!(t.percentile_bps(50.0), 1e6);
        assert_eq!(t.percentile_bps(0.0), 0.0);
        assert_eq!(t.percentile_bps(100.0), 3e6);
        assert_eq!(t.zero_fraction(), 0.25);
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn capacity_wraps() {
        let t = step();
        assert_eq!(t.capacity_at(0.0), 1e6);
        assert_eq!(t.capacity_at(2.0), 0.0);
        assert_eq!(t.capacity_at(3.5), 3e6);
        assert_eq!(t.capacity_at(4.0), 1e6);
        assert_eq!(t.capacity_at(-0.5), 3e6);
        assert_eq!(t.capacity_at(402.5), 0.0);
    }

    #[test]
    fn integral_counts_whole_periods() {
        let t = step();
        assert_eq!(t.bits_between(0.0, 4.0), 5e6);
        assert_eq!(t.bits_between(1.0, 9.0), 10e6);
        assert_eq!(t.bits_between(2.0, 3.0), 0.0);
        assert_eq!(t.bits_between(3.0, 2.0), 0.0);
        assert!((t.bits_between(0.5, 4000.5) - 5e9).abs() < 1e-3);
    }

    #[test]
    fn transfer_end_skips_outage_and_periods() {
        let t = step();
        assert_eq!(t.transfer_end(0.0, 0.0), Some(0.0));
        assert_eq!(t.transfer_end(0.0, 1e6), Some(1.0));
        // 2 Mbit from 0 ends exactly at 2 s, before the outage.
        assert_eq!(t.transfer_end(0.0, 2e6), Some(2.0));
        // Starting inside the outage waits for it to end.
        assert_eq!(t.transfer_end(2.5, 1.5e6), Some(3.5));
        // One whole period plus 1 Mbit.
        assert_eq!(t.transfer_end(0.0, 6e6), Some(5.0));
        assert_eq!(t.transfer_end(f64::NAN, 1.0), None);
        assert_eq!(t.transfer_end(0.0, f64::INFINITY), None);
    }

    /// The `floor`-based split the fast paths of `wrap` must reproduce bit for bit.
    fn wrap_by_floor(t: &Trace, x: f64) -> (f64, f64) {
        let period = t.duration();
        let k = (x / period).floor();
        let off = x - k * period;
        if off >= period {
            (k + 1.0, 0.0)
        } else if off < 0.0 {
            (k, 0.0)
        } else {
            (k, off)
        }
    }

    #[test]
    fn wrap_equals_the_floor_formula_bit_for_bit() {
        let bits = |(k, off): (f64, f64)| (k.to_bits(), off.to_bits());
        for trace in [
            step(),
            Trace::from_segments("odd", &[(0.7, 1.0), (0.0013, 2.0)]).unwrap(),
        ] {
            let p = trace.duration();
            let mut xs = vec![
                0.0, -0.0, p, -p, 1e-300, -1e-300, 1e300, -1e300, 4.5e15, 9.1e15,
            ];
            for i in -2000..2000 {
                let x = f64::from(i) * 0.013_7;
                xs.extend([x, x * p, f64::from(i) * p, f64::from(i) * p - 1e-12]);
                xs.extend([x * 1e12, f64::from(i).next_up() * p]);
            }
            for x in xs {
                assert_eq!(
                    bits(trace.wrap(x)),
                    bits(wrap_by_floor(&trace, x)),
                    "x={x:e}"
                );
            }
        }
    }

    #[test]
    fn hinted_lookups_equal_the_searches_whatever_the_hint() {
        let t = step();
        let times = [
            -3.0,
            0.0,
            0.5,
            1.999,
            2.0,
            2.5,
            3.0,
            3.9999,
            4.0,
            7.5,
            13.0,
            1e6 + 0.3,
        ];
        for hint in 0..5 {
            for &start in &times {
                let mut h = hint;
                assert_eq!(t.capacity_near(start, &mut h), t.capacity_at(start));
                assert!(h < t.len());
                for bits in [0.0, 1.0, 5e5, 1e6, 2e6, 4e6, 6e6, 2e7] {
                    let mut h = hint;
                    let want = t.segment_search_transfer_end(start, bits);
                    assert_eq!(t.transfer_end_near(start, bits, &mut h), want);
                    // Left as it was when no segment was looked up (no bits to send).
                    assert!(h < t.len() || h == hint);
                }
            }
        }
    }

    impl Trace {
        /// `transfer_end` with the segment found by the grid search alone, no hint.
        fn segment_search_transfer_end(&self, start: f64, bits: f64) -> Option<f64> {
            let mut far = usize::MAX;
            self.transfer_end_near(start, bits, &mut far)
        }
    }

    #[test]
    fn bits_below_float_resolution_wait_for_capacity() {
        let t = Trace::from_segments("o", &[(1.0, 1e6), (1.0, 0.0)]).unwrap();
        // 1e-10 bit vanishes next to the 1e6-bit prefix sum, yet must wait out the outage.
        let end = t.transfer_end(1.5, 1e-10).unwrap();
        assert!((end - 2.0).abs() < 1e-9, "{end}");
        let t = Trace::from_segments("o", &[(1.0, 0.0), (1.0, 1e6), (1.0, 0.0)]).unwrap();
        let end = t.transfer_end(2.5, 1e-10).unwrap();
        assert!((end - 4.0).abs() < 1e-9, "{end}");
    }

    #[test]
    fn zero_capacity_never_finishes() {
        let t = Trace::from_segments("z", &[(1.0, 0.0)]).unwrap();
        assert_eq!(t.transfer_end(0.0, 1.0), None);
        assert_eq!(t.transfer_end(0.0, 0.0), Some(0.0));
    }

    #[test]
    fn equal_neighbours_merge() {
        let t = Trace::from_segments("m", &[(1.0, 5.0), (0.0, 9.0), (2.0, 5.0)]).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t.duration(), 3.0);
    }

    #[test]
    fn bad_segments_are_typed_errors() {
        for segs in [
            vec![(1.0, -1.0)],
            vec![(f64::NAN, 1.0)],
            vec![(-1.0, 1.0)],
            vec![(1.0, f64::INFINITY)],
            vec![],
            vec![(0.0, 1.0)],
            vec![(f64::MAX, 1.0), (f64::MAX, 2.0)],
            vec![(10.0, f64::MAX)],
        ] {
            assert!(matches!(
                Trace::from_segments("bad", &segs),
                Err(TraceError::BadSegment { .. })
            ));
        }
    }
}
