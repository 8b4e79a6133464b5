//! The escape (overflow) scheme: how a value outside a table's range is coded.
//!
//! A table covers `min_symbol ..= max_symbol`. Any other `i32` is coded as the table's escape
//! symbol followed by a *payload* of raw (uniformly coded, "bypass") bits in the same
//! stream, in this decoding order:
//!
//! 1. `side`: 1 bit, 0 = below `min_symbol`, 1 = above `max_symbol`;
//! 2. `excess = min_symbol - 1 - value` (below) or `value - max_symbol - 1` (above), so
//!    `excess >= 0`; let `m = excess + 1` (1 ..= 2^32 - 1) and `L` its bit length (1 ..= 32);
//!    `L - 1` is coded in 5 bits;
//! 3. the `L - 1` bits of `m` below its leading one, high chunk first: if `L - 1 > 16`, the top
//!    `L - 17` bits, then the low 16 bits; otherwise all `L - 1` bits at once.
//!
//! This is Elias-gamma with the length in fixed width (an Exp-Golomb variant): the payload
//! costs `1 + 5 + (L - 1)` bits, so escaping `i32::MIN` costs at most 37 bits plus the
//! escape symbol. CompressAI's overflow coding is the same idea with the length sent in
//! unary 4-bit groups. A decoder rejects a payload that names a value outside `i32` or a side
//! the table cannot escape to (e.g. "above" when `max_symbol == i32::MAX`).

use std::num::NonZeroU32;

use constriction::stream::model::{DecoderModel, EncoderModel, EntropyModel};

use crate::table::{CategoricalTable, PRECISION};

/// Bits used to code the bit length of `excess + 1`.
pub(crate) const LENGTH_BITS: u32 = 5;

/// Largest raw chunk coded in one coder step (must be `<= PRECISION`).
pub(crate) const CHUNK_BITS: u32 = 16;

/// The fields of an escape payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Payload {
    /// `true` if the value lies above the table's range.
    pub above: bool,
    /// Bit length of `excess + 1`, in `1 ..= 32`.
    pub bit_len: u32,
    /// `excess + 1` without its leading one bit (`bit_len - 1` bits).
    pub mantissa: u32,
}

impl Payload {
    /// Splits an out-of-range `value` into its payload fields.
    #[inline]
    pub(crate) fn of(table: &CategoricalTable, value: i32) -> Payload {
        let v = i64::from(value);
        let (above, excess) = if v > i64::from(table.max_symbol()) {
            (true, v - i64::from(table.max_symbol()) - 1)
        } else {
            (false, i64::from(table.min_symbol()) - 1 - v)
        };
        // excess <= 2^32 - 2 because both ends are i32, so m fits in u32.
        let m = (excess + 1) as u32;
        let bit_len = 32 - m.leading_zeros();
        Payload {
            above,
            bit_len,
            mantissa: m ^ (1u32 << (bit_len - 1)),
        }
    }

    /// Rebuilds the value from decoded fields, or `None` if they name no valid `i32` escape.
    #[inline]
    pub(crate) fn value(self, table: &CategoricalTable) -> Option<i32> {
        if !(1..=32).contains(&self.bit_len) {
            return None;
        }
        let m = (1u64 << (self.bit_len - 1)) | u64::from(self.mantissa);
        let excess = m as i64 - 1;
        let v = if self.above {
            i64::from(table.max_symbol()) + 1 + excess
        } else {
            i64::from(table.min_symbol()) - 1 - excess
        };
        i32::try_from(v).ok()
    }

    /// Number of payload bits.
    #[inline]
    pub(crate) fn bits(self) -> u32 {
        1 + LENGTH_BITS + (self.bit_len - 1)
    }
}

/// Payload bits needed to escape `value` from `table` (the escape symbol itself not included).
pub(crate) fn payload_bits(table: &CategoricalTable, value: i32) -> u32 {
    Payload::of(table, value).bits()
}

/// A uniform model over `0 .. 2^bits` for `1 <= bits <= CHUNK_BITS`: raw bits inside the
/// stream, costing exactly `bits` bits each.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawBits {
    bits: u32,
}

impl RawBits {
    /// A model for `bits` raw bits; callers keep `1 <= bits <= CHUNK_BITS`.
    #[inline]
    pub(crate) fn new(bits: u32) -> RawBits {
        debug_assert!((1..=CHUNK_BITS).contains(&bits));
        RawBits { bits }
    }

    #[inline]
    fn shift(self) -> u32 {
        PRECISION as u32 - self.bits
    }
}

impl EntropyModel<PRECISION> for RawBits {
    type Symbol = u32;
    type Probability = u32;
}

impl EncoderModel<PRECISION> for RawBits {
    #[inline]
    fn left_cumulative_and_probability(
        &self,
        symbol: impl std::borrow::Borrow<u32>,
    ) -> Option<(u32, NonZeroU32)> {
        let s = *symbol.borrow();
        if s >> self.bits != 0 {
            return None;
        }
        NonZeroU32::new(1 << self.shift()).map(|p| (s << self.shift(), p))
    }
}

impl DecoderModel<PRECISION> for RawBits {
    #[inline]
    fn quantile_function(&self, quantile: u32) -> (u32, u32, NonZeroU32) {
        let s = quantile >> self.shift();
        let p = NonZeroU32::new(1 << self.shift()).unwrap_or(NonZeroU32::MIN);
        (s, s << self.shift(), p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> CategoricalTable {
        CategoricalTable::from_weights(-3, &[1.0; 8]).unwrap()
    }

    #[test]
    fn payload_round_trips_extremes() {
        let t = table();
        for v in [
            i32::MIN,
            i32::MIN + 1,
            -5,
            -4,
            5,
            6,
            1000,
            i32::MAX - 1,
            i32::MAX,
        ] {
            let p = Payload::of(&t, v);
            assert!((1..=32).contains(&p.bit_len));
            assert_eq!(p.value(&t), Some(v), "{v}");
        }
        // Just outside the range: excess 0, one length field and no mantissa bits.
        assert_eq!(t.max_symbol(), 3);
        assert_eq!(Payload::of(&t, 4).bits(), 6);
        assert_eq!(Payload::of(&t, 5).bits(), 7);
        assert_eq!(Payload::of(&t, -4).bits(), 6);
    }

    #[test]
    fn payload_outside_i32_is_rejected() {
        let t = CategoricalTable::from_weights(i32::MAX - 1, &[1.0, 1.0, 1.0]).unwrap();
        let bogus = Payload {
            above: true,
            bit_len: 1,
            mantissa: 0,
        };
        assert_eq!(bogus.value(&t), None);
    }
}
