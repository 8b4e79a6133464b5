//! [`GridIndex`]: expected O(1) lookups in a sorted array of times or bits.
//!
//! The simulator calls [`Trace::transfer_end`](super::Trace::transfer_end) millions of times
//! per second; two plain binary searches over tens of thousands of segments cost ~30 dependent,
//! badly predicted branches. A uniform grid over the key range stores, per cell, where the
//! search answer starts, so a query only searches the few keys inside its cell. Skewed keys
//! (many keys in one cell) fall back to a binary search inside the cell: never worse than
//! O(log n).

/// A uniform grid over `[0, span)` of a non-decreasing key array.
#[derive(Debug, Clone)]
pub(crate) struct GridIndex {
    /// Cells per unit of key.
    inv_width: f64,
    /// Index of the last cell, as a float (compared with scaled queries).
    last_cell: f64,
    /// `first[c]` = number of keys below cell `c`'s lower edge (per the search predicate);
    /// `cells + 1` entries, the last one the key count.
    first: Vec<u32>,
    /// Whether keys equal to the query count as below it (`k <= q`) or not (`k < q`).
    inclusive: bool,
}

impl GridIndex {
    /// Indexes `keys` (non-decreasing, within `[0, span]`) with `cells` cells.
    pub(crate) fn new(keys: &[f64], span: f64, cells: usize, inclusive: bool) -> GridIndex {
        let cells = cells.max(1);
        let width = span / cells as f64;
        let mut first = Vec::with_capacity(cells + 1);
        let mut k = 0usize;
        for c in 0..cells {
            let edge = c as f64 * width;
            while k < keys.len() && below(keys[k], edge, inclusive) {
                k += 1;
            }
            first.push(k as u32);
        }
        first.push(keys.len() as u32);
        GridIndex {
            inv_width: if width > 0.0 { 1.0 / width } else { 0.0 },
            last_cell: (cells - 1) as f64,
            first,
            inclusive,
        }
    }

    /// Number of keys below `q` (`k <= q` or `k < q`), i.e. `keys.partition_point(..)`.
    #[inline]
    pub(crate) fn count_below(&self, keys: &[f64], q: f64) -> usize {
        let cells = self.first.len() - 1;
        // Negative and NaN go to cell 0, huge values to the last cell (what a saturating
        // `as usize` gives, without its multi-instruction `f64 → u64` conversion).
        let x = q * self.inv_width;
        let c = if x > 0.0 {
            if x < self.last_cell {
                x as i64 as usize
            } else {
                cells - 1
            }
        } else {
            0
        };
        let lo = self.first[c] as usize;
        let hi = self.first[c + 1] as usize;
        let inclusive = self.inclusive;
        // Rounding at cell edges can put `q` one cell off: check the bracket, else search all.
        let lo_ok = lo == 0 || below(keys[lo - 1], q, inclusive);
        let hi_ok = hi == keys.len() || !below(keys[hi], q, inclusive);
        if lo_ok && hi_ok {
            lo + keys[lo..hi].partition_point(|&k| below(k, q, inclusive))
        } else {
            keys.partition_point(|&k| below(k, q, inclusive))
        }
    }
}

#[inline]
fn below(k: f64, q: f64, inclusive: bool) -> bool {
    if inclusive { k <= q } else { k < q }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_partition_point() {
        let keys = [0.0, 0.0, 0.5, 1.0, 1.0, 1.0, 7.25, 9.0, 10.0];
        for inclusive in [false, true] {
            for cells in [1, 3, 9, 50] {
                let g = GridIndex::new(&keys, 10.0, cells, inclusive);
                for q in [
                    -1.0,
                    0.0,
                    0.25,
                    0.5,
                    1.0,
                    3.0,
                    7.25,
                    8.0,
                    9.0,
                    9.99,
                    10.0,
                    11.0,
                    f64::NAN,
                ] {
                    let want = keys.partition_point(|&k| below(k, q, inclusive));
                    assert_eq!(
                        g.count_below(&keys, q),
                        want,
                        "q={q} cells={cells} inclusive={inclusive}"
                    );
                }
            }
        }
    }
}
