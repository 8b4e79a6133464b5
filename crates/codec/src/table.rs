//! One quantised categorical entropy model over a contiguous symbol range plus an escape symbol.
//!
//! This is the unit both entropy models are made of: the [`GaussianConditional`] holds one table
//! per scale, the [`FactorizedPrior`] one per channel. A table assigns an integer frequency
//! (out of `2^PRECISION`) to each symbol in `min_symbol ..= max_symbol` and to one extra
//! *escape* symbol that stands for every value outside that range (see [`crate::escape`]).
//! Every frequency is at least 1, so every `i32` is codable.
//!
//! The table implements constriction's [`EncoderModel`] / [`DecoderModel`] over the *index*
//! alphabet `0 ..= escape_index()`; decoding uses a small guide table (a coarse inverse CDF)
//! so that finding a symbol is one lookup plus, rarely, a short binary search.
//!
//! [`GaussianConditional`]: crate::GaussianConditional
//! [`FactorizedPrior`]: crate::FactorizedPrior

use std::num::NonZeroU32;

use constriction::stream::model::{DecoderModel, EncoderModel, EntropyModel};
use serde::{Deserialize, Serialize};

use crate::CodecError;

/// Fixed-point precision of every table: frequencies sum to `2^PRECISION`.
///
/// 16 bits, as in CompressAI: precise enough that quantisation costs well under 0.1 % on
/// realistic scales, small enough that tables stay in cache.
pub const PRECISION: usize = 16;

/// `2^PRECISION`, the sum of every table's frequencies.
pub const TOTAL_FREQUENCY: u32 = 1 << PRECISION;

/// Most in-range symbols a table may have (the escape symbol comes on top).
///
/// Keeps each symbol's guaranteed minimum frequency of 1 from eating more than a quarter of
/// the probability mass.
pub const MAX_ALPHABET: usize = 1 << 14;

/// log2 of the number of buckets of the decoding guide table.
const GUIDE_BITS: usize = 8;

/// A quantised categorical distribution over `min_symbol ..= max_symbol` plus an escape symbol.
///
/// Serialises as `{ min_symbol, frequencies }` where the last frequency is the escape's;
/// deserialisation re-validates every invariant, so a table read from a manifest is as safe
/// as one built here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TableRepr", into = "TableRepr")]
pub struct CategoricalTable {
    min_symbol: i32,
    /// `cdf[k]` = sum of the frequencies of indices `< k`; `cdf.len() == escape_index + 2`,
    /// `cdf[0] == 0`, last entry `== TOTAL_FREQUENCY`, strictly increasing.
    cdf: Vec<u32>,
    /// `guide[j]` = index of the symbol whose interval contains quantile `j << (PRECISION -
    /// GUIDE_BITS)`; `2^GUIDE_BITS + 1` entries, the last one is the escape index.
    guide: Vec<u16>,
    /// Cached `cdf.len() - 2`, read once per decoded symbol.
    escape: u32,
}

/// Wire form of a [`CategoricalTable`].
#[derive(Serialize, Deserialize)]
struct TableRepr {
    min_symbol: i32,
    frequencies: Vec<u32>,
}

impl TryFrom<TableRepr> for CategoricalTable {
    type Error = CodecError;

    fn try_from(repr: TableRepr) -> Result<Self, Self::Error> {
        CategoricalTable::from_frequencies(repr.min_symbol, &repr.frequencies)
    }
}

impl From<CategoricalTable> for TableRepr {
    fn from(table: CategoricalTable) -> Self {
        TableRepr {
            min_symbol: table.min_symbol,
            frequencies: table.frequencies(),
        }
    }
}

impl CategoricalTable {
    /// Builds a table from integer frequencies: one per symbol of `min_symbol ..`, then the
    /// escape's. Each must be ≥ 1 and together they must sum to [`TOTAL_FREQUENCY`].
    pub fn from_frequencies(min_symbol: i32, frequencies: &[u32]) -> Result<Self, CodecError> {
        let invalid = |reason: String| CodecError::InvalidTable { reason };
        if frequencies.len() < 2 {
            return Err(invalid(format!(
                "{} frequencies; need at least one symbol and the escape",
                frequencies.len()
            )));
        }
        let alphabet = frequencies.len() - 1;
        if alphabet > MAX_ALPHABET {
            return Err(invalid(format!(
                "{alphabet} symbols, more than the maximum of {MAX_ALPHABET}"
            )));
        }
        // The range must not run past i32::MAX.
        if i64::from(min_symbol) + alphabet as i64 - 1 > i64::from(i32::MAX) {
            return Err(invalid(format!(
                "symbol range {min_symbol} + {alphabet} overflows i32"
            )));
        }
        let mut cdf = Vec::with_capacity(frequencies.len() + 1);
        let mut sum: u64 = 0;
        cdf.push(0);
        for (k, &f) in frequencies.iter().enumerate() {
            if f == 0 {
                return Err(invalid(format!("frequency {k} is zero")));
            }
            sum += u64::from(f);
            if sum > u64::from(TOTAL_FREQUENCY) {
                return Err(invalid(format!(
                    "frequencies exceed the total of {TOTAL_FREQUENCY}"
                )));
            }
            cdf.push(sum as u32);
        }
        if sum != u64::from(TOTAL_FREQUENCY) {
            return Err(invalid(format!(
                "frequencies sum to {sum}, expected {TOTAL_FREQUENCY}"
            )));
        }
        let guide = build_guide(&cdf);
        Ok(CategoricalTable {
            min_symbol,
            escape: alphabet as u32,
            cdf,
            guide,
        })
    }

    /// Quantises non-negative weights (one per symbol of `min_symbol ..`, then the escape's)
    /// to frequencies summing to [`TOTAL_FREQUENCY`], each at least 1.
    ///
    /// Deterministic: only IEEE-exact operations (sum in order, division, multiplication,
    /// floor) on the given `f64`s, then integer arithmetic. Each entry first gets 1, the rest
    /// of the total is shared in proportion to the weights (floored), and the few units left
    /// over go to the largest fractional remainders (ties to the lower index).
    pub fn from_weights(min_symbol: i32, weights: &[f64]) -> Result<Self, CodecError> {
        let invalid = |reason: String| CodecError::InvalidTable { reason };
        if weights.len() < 2 || weights.len() - 1 > MAX_ALPHABET {
            return Err(invalid(format!(
                "{} weights; need 2 ..= {}",
                weights.len(),
                MAX_ALPHABET + 1
            )));
        }
        if let Some(k) = weights.iter().position(|w| !w.is_finite() || *w < 0.0) {
            return Err(invalid(format!(
                "weight {k} is {} (must be finite and >= 0)",
                weights[k]
            )));
        }
        let total: f64 = weights.iter().sum();
        if !(total > 0.0 && total.is_finite()) {
            return Err(invalid(format!(
                "weights sum to {total}; need a positive finite sum"
            )));
        }
        let n = weights.len();
        let free = f64::from(TOTAL_FREQUENCY - n as u32);
        let mut frequencies = Vec::with_capacity(n);
        let mut fractions = Vec::with_capacity(n);
        let mut assigned: i64 = 0;
        for &w in weights {
            let exact = w / total * free;
            let whole = exact.floor();
            frequencies.push(1 + whole as u32);
            fractions.push(exact - whole);
            assigned += 1 + whole as i64;
        }
        let mut left = i64::from(TOTAL_FREQUENCY) - assigned;
        if left > 0 {
            let mut order: Vec<usize> = (0..n).collect();
            // Largest remainder first; stable sort keeps ties in index order.
            order.sort_by(|&a, &b| fractions[b].total_cmp(&fractions[a]));
            for &k in order.iter().cycle() {
                if left == 0 {
                    break;
                }
                frequencies[k] += 1;
                left -= 1;
            }
        }
        // Rounding in the f64 sum can overshoot by a unit or so: take it from the largest
        // entries (ties to the lower index), never below 1.
        while left < 0 {
            let k = (0..n)
                .max_by(|&a, &b| frequencies[a].cmp(&frequencies[b]).then(b.cmp(&a)))
                .unwrap_or(0);
            if frequencies[k] <= 1 {
                return Err(invalid("cannot fit weights into the total".to_string()));
            }
            frequencies[k] -= 1;
            left += 1;
        }
        CategoricalTable::from_frequencies(min_symbol, &frequencies)
    }

    /// Smallest in-range symbol.
    pub fn min_symbol(&self) -> i32 {
        self.min_symbol
    }

    /// Largest in-range symbol.
    pub fn max_symbol(&self) -> i32 {
        // Cannot overflow: checked at construction.
        (i64::from(self.min_symbol) + self.escape_index() as i64 - 1) as i32
    }

    /// Index of the escape symbol = number of in-range symbols.
    #[inline]
    pub fn escape_index(&self) -> u32 {
        self.escape
    }

    /// The frequencies, in-range symbols first, escape last.
    pub fn frequencies(&self) -> Vec<u32> {
        self.cdf.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// Frequency of the entry at `index` (escape index included).
    #[inline]
    pub(crate) fn frequency(&self, index: u32) -> u32 {
        let k = index as usize;
        self.cdf[k + 1] - self.cdf[k]
    }

    /// Index of `value` in the table, or `None` if it must be escaped.
    #[inline]
    pub(crate) fn index_of(&self, value: i32) -> Option<u32> {
        let offset = i64::from(value) - i64::from(self.min_symbol);
        if offset >= 0 && offset < i64::from(self.escape_index()) {
            Some(offset as u32)
        } else {
            None
        }
    }

    /// Value of an in-range index.
    #[inline]
    pub(crate) fn value_of(&self, index: u32) -> i32 {
        (i64::from(self.min_symbol) + i64::from(index)) as i32
    }

    /// Ideal code length of `value` in bits under this table, escape payload included.
    pub fn bits(&self, value: i32) -> f64 {
        let log_total = PRECISION as f64;
        match self.index_of(value) {
            Some(k) => log_total - f64::from(self.frequency(k)).log2(),
            None => {
                log_total - f64::from(self.frequency(self.escape_index())).log2()
                    + f64::from(crate::escape::payload_bits(self, value))
            }
        }
    }
}

/// Builds the guide table: for each bucket start quantile, the symbol whose interval holds it.
fn build_guide(cdf: &[u32]) -> Vec<u16> {
    let buckets = 1usize << GUIDE_BITS;
    let shift = PRECISION - GUIDE_BITS;
    let mut guide = Vec::with_capacity(buckets + 1);
    let mut symbol = 0usize;
    for j in 0..buckets {
        let quantile = (j as u32) << shift;
        while cdf[symbol + 1] <= quantile {
            symbol += 1;
        }
        guide.push(symbol as u16);
    }
    guide.push((cdf.len() - 2) as u16);
    guide
}

impl EntropyModel<PRECISION> for CategoricalTable {
    type Symbol = u32;
    type Probability = u32;
}

impl EncoderModel<PRECISION> for CategoricalTable {
    #[inline]
    fn left_cumulative_and_probability(
        &self,
        symbol: impl std::borrow::Borrow<u32>,
    ) -> Option<(u32, NonZeroU32)> {
        let k = *symbol.borrow() as usize;
        let left = *self.cdf.get(k)?;
        let right = *self.cdf.get(k + 1)?;
        NonZeroU32::new(right.wrapping_sub(left)).map(|p| (left, p))
    }
}

impl DecoderModel<PRECISION> for CategoricalTable {
    #[inline]
    fn quantile_function(&self, quantile: u32) -> (u32, u32, NonZeroU32) {
        let bucket = (quantile >> (PRECISION - GUIDE_BITS)) as usize;
        let mut lo = self.guide[bucket] as usize;
        let mut hi = self.guide[bucket + 1] as usize;
        // Invariant: cdf[lo] <= quantile, and the answer is <= hi.
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if self.cdf[mid] <= quantile {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let left = self.cdf[lo];
        let probability = self.cdf[lo + 1] - left;
        // Frequencies are >= 1 by construction, so this is never the fallback.
        let probability = NonZeroU32::new(probability).unwrap_or(NonZeroU32::MIN);
        (lo as u32, left, probability)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_quantise_to_total_with_every_entry_positive() {
        let weights = [0.5, 0.25, 0.25 - 1e-12, 0.0, 1e-12];
        let table = CategoricalTable::from_weights(-2, &weights).unwrap();
        let f = table.frequencies();
        assert_eq!(f.iter().sum::<u32>(), TOTAL_FREQUENCY);
        assert!(f.iter().all(|&x| x >= 1));
        assert_eq!(table.min_symbol(), -2);
        assert_eq!(table.max_symbol(), 1);
        assert_eq!(table.escape_index(), 4);
        // The big weights keep their proportions to within one unit.
        assert!((i64::from(f[0]) - 32768).abs() <= 2, "{f:?}");
    }

    #[test]
    fn quantile_function_inverts_the_cdf_for_every_quantile() {
        let weights: Vec<f64> = (0..300).map(|k| 1.0 / (1.0 + f64::from(k))).collect();
        let table = CategoricalTable::from_weights(7, &weights).unwrap();
        for q in 0..TOTAL_FREQUENCY {
            let (s, left, p) = table.quantile_function(q);
            assert!(left <= q && q < left + p.get(), "q={q} s={s}");
            assert_eq!(table.left_cumulative_and_probability(s), Some((left, p)));
        }
    }

    #[test]
    fn bad_frequencies_are_rejected() {
        assert!(CategoricalTable::from_frequencies(0, &[TOTAL_FREQUENCY]).is_err());
        assert!(CategoricalTable::from_frequencies(0, &[TOTAL_FREQUENCY - 1, 0, 1]).is_err());
        assert!(CategoricalTable::from_frequencies(0, &[5, 6]).is_err());
        assert!(
            CategoricalTable::from_frequencies(i32::MAX, &[1, 2, TOTAL_FREQUENCY - 3]).is_err()
        );
        assert!(CategoricalTable::from_frequencies(i32::MAX, &[1, TOTAL_FREQUENCY - 1]).is_ok());
        let weights = [1.0, f64::NAN];
        assert!(CategoricalTable::from_weights(0, &weights).is_err());
    }
}
