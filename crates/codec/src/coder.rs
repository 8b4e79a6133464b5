//! The entropy coder: constriction's range coder (`DefaultRangeEncoder`: 32-bit words, 64-bit
//! state), driven with [`CategoricalTable`]s and the escape scheme, the byte-granular
//! termination of a stream, and the conversion of its words to and from bytes.
//!
//! A range coder is a queue: values are coded and decoded in the same order, so one stream
//! can carry the hyper-latent `z` followed by the latent `y` of a layer, and the decoder can
//! stop after `z` to compute the scale indices of `y` before it goes on.
//!
//! **Why a range coder and byte-granular termination.** A stream's cost above the ideal code
//! length is all at its ends. An ANS coder starting from an empty state codes its first
//! symbols inefficiently (its small states carry the cumulative frequency, not the
//! information), which cost ~13 bits per stream on this project's layers, and its flushed
//! state is rounded to bytes on top. A range coder has no start-up cost; at the end the
//! encoder picks, within its final interval, the point with the fewest significant bytes and
//! writes only those (see [`RangeStreamEncoder::finish`]), so a stream costs its ideal
//! length plus at most ~1 bit of interval slack and the rounding to whole bytes.
//!
//! **Byte form of a stream.** The words (the bulk, then the held-back words, then the two
//! words of the final point) are written big-endian, then trailing zero bytes are dropped.
//! The decoder pads the bytes with zeros to whole words, and reads zero words past the end,
//! which restores exactly the dropped bytes. A stream is canonical: it does not end in a zero
//! byte, every word is consumed by the expected symbols, and its final point is the one the
//! encoder's rule picks; the decoder checks all three.

use constriction::backends::{BoundedReadWords, Cursor};
use constriction::stream::queue::{DefaultRangeDecoder, DefaultRangeEncoder, EncoderSituation};
use constriction::stream::{Decode, Encode};
use constriction::{Queue, UnwrapInfallible};

use crate::CodecError;
use crate::escape::{CHUNK_BITS, LENGTH_BITS, Payload, RawBits};
use crate::table::{CategoricalTable, PRECISION};

/// Most bits a single value can cost: the escape symbol (at most `PRECISION` bits, since every
/// frequency is >= 1) plus the longest payload (1 + 5 + 31 bits).
pub const MAX_BITS_PER_SYMBOL: u64 = PRECISION as u64 + 1 + LENGTH_BITS as u64 + 31;

/// Largest byte length a stream of `symbols` values can have; decoders reject longer ones
/// before touching them.
///
/// Each value costs at most [`MAX_BITS_PER_SYMBOL`] bits plus the coder's rounding of its
/// range (under 2⁻¹⁵ bits); the termination adds at most the two words of the final point.
pub fn max_stream_bytes(symbols: u64) -> u64 {
    let bits = symbols
        .saturating_mul(MAX_BITS_PER_SYMBOL + 1)
        .saturating_add(64);
    // One extra word of slack for rounding at each end.
    bits.div_ceil(32).saturating_add(1).saturating_mul(4)
}

/// Codes values in order into one range-coded stream.
pub(crate) struct RangeStreamEncoder {
    coder: DefaultRangeEncoder,
    symbols: usize,
}

impl RangeStreamEncoder {
    /// An empty encoder with room for about `symbols` values at a few bits each.
    pub(crate) fn with_capacity(symbols: usize) -> RangeStreamEncoder {
        RangeStreamEncoder {
            coder: DefaultRangeEncoder::with_write_backend(Vec::with_capacity(symbols / 8 + 4)),
            symbols: 0,
        }
    }

    /// Codes `value` with `table` (escaping it if it lies outside the table's range).
    #[inline]
    pub(crate) fn push(&mut self, value: i32, table: &CategoricalTable) -> Result<(), CodecError> {
        self.symbols += 1;
        match table.index_of(value) {
            Some(index) => self.symbol(index, table),
            None => {
                // Decoding order: escape symbol, side, length, mantissa (high chunk first).
                let payload = Payload::of(table, value);
                self.symbol(table.escape_index(), table)?;
                self.raw(u32::from(payload.above), 1)?;
                self.raw(payload.bit_len - 1, LENGTH_BITS)?;
                let mantissa_bits = payload.bit_len - 1;
                if mantissa_bits > CHUNK_BITS {
                    self.raw(payload.mantissa >> CHUNK_BITS, mantissa_bits - CHUNK_BITS)?;
                    self.raw(payload.mantissa & 0xffff, CHUNK_BITS)
                } else if mantissa_bits > 0 {
                    self.raw(payload.mantissa, mantissa_bits)
                } else {
                    Ok(())
                }
            }
        }
    }

    #[inline]
    fn symbol(&mut self, index: u32, table: &CategoricalTable) -> Result<(), CodecError> {
        self.coder
            .encode_symbol(index, table)
            .map_err(|_| CodecError::InvalidTable {
                reason: "table rejected one of its own indices".to_string(),
            })
    }

    #[inline]
    fn raw(&mut self, bits_value: u32, bits: u32) -> Result<(), CodecError> {
        self.coder
            .encode_symbol(bits_value, RawBits::new(bits))
            .map_err(|_| CodecError::InvalidTable {
                reason: "raw chunk does not fit its width".to_string(),
            })
    }

    /// The finished stream in its byte form: the bulk, the held-back words resolved by the
    /// carry of the chosen point, the point's two words, big-endian, trailing zeros dropped.
    pub(crate) fn finish(self) -> Vec<u8> {
        if self.symbols == 0 {
            return Vec::new();
        }
        let (bulk, state, situation) = self.coder.into_raw_parts();
        let (lower, range) = (state.lower(), state.range().get());
        let may_carry = matches!(situation, EncoderSituation::Inverted(..));
        let (point, carry) = final_point(lower, range, may_carry);
        let mut words = bulk;
        if let EncoderSituation::Inverted(count, first) = situation {
            // Held-back words: `first` then `count - 1` words of all ones, which a carry out
            // of the point's window turns into `first + 1` and zeros.
            let (first, rest) = if carry {
                (first.wrapping_add(1), 0)
            } else {
                (first, u32::MAX)
            };
            words.push(first);
            words.extend(std::iter::repeat_n(rest, count.get() - 1));
        }
        words.push((point >> 32) as u32);
        words.push(point as u32);
        let mut bytes = Vec::with_capacity(words.len() * 4);
        for w in &words {
            bytes.extend_from_slice(&w.to_be_bytes());
        }
        while bytes.last() == Some(&0) {
            bytes.pop();
        }
        bytes
    }
}

/// The point of `[lower, lower + range)` (a 64-bit window; above 2⁶⁴ only if `may_carry`)
/// with the most trailing zero bits, and whether it carries out of the window.
///
/// Fewer significant bits means fewer bytes once trailing zeros are dropped; the rule is
/// deterministic, so the decoder can check that a stream ends where the encoder ends it.
fn final_point(lower: u64, range: u64, may_carry: bool) -> (u64, bool) {
    let lower = u128::from(lower);
    let mut end = lower + u128::from(range);
    if !may_carry {
        end = end.min(1 << 64);
    }
    for zeros in (0..=64u32).rev() {
        let mask = (1u128 << zeros) - 1;
        let candidate = (lower + mask) & !mask;
        if candidate < end {
            return (candidate as u64, candidate >> 64 != 0);
        }
    }
    // `zeros = 0` always succeeds: the candidate is `lower` itself and `range >= 1`.
    (lower as u64, false)
}

/// Reads values in order from a range-coded stream built from untrusted bytes.
pub(crate) struct RangeStreamDecoder {
    coder: DefaultRangeDecoder,
}

impl RangeStreamDecoder {
    /// Prepares to decode `bytes`. `symbols` is the number of values the caller will pop; a
    /// stream longer than any such stream can be is rejected before anything is allocated.
    pub(crate) fn new(bytes: &[u8], symbols: usize) -> Result<RangeStreamDecoder, CodecError> {
        if bytes.len() as u64 > max_stream_bytes(symbols as u64) {
            return Err(CodecError::CorruptStream {
                position: 0,
                reason: "stream longer than the symbol count allows",
            });
        }
        if bytes.last() == Some(&0) {
            return Err(CodecError::CorruptStream {
                position: 0,
                reason: "stream ends in a zero byte (not canonical)",
            });
        }
        if symbols == 0 && !bytes.is_empty() {
            return Err(CodecError::CorruptStream {
                position: 0,
                reason: "bytes in a stream of no symbols",
            });
        }
        let words: Vec<u32> = bytes
            .chunks(4)
            .map(|c| {
                let mut w = [0u8; 4];
                w[..c.len()].copy_from_slice(c);
                u32::from_be_bytes(w)
            })
            .collect();
        let coder = DefaultRangeDecoder::from_compressed(words).unwrap_infallible();
        Ok(RangeStreamDecoder { coder })
    }

    /// Pops the next value coded with `table`; `position` is only used in errors.
    #[inline]
    pub(crate) fn pop(
        &mut self,
        table: &CategoricalTable,
        position: usize,
    ) -> Result<i32, CodecError> {
        let index = self.symbol(table, position)?;
        if index != table.escape_index() {
            return Ok(table.value_of(index));
        }
        let above = self.raw(1, position)? == 1;
        let bit_len = self.raw(LENGTH_BITS, position)? + 1;
        let mantissa_bits = bit_len - 1;
        let mantissa = if mantissa_bits > CHUNK_BITS {
            let high = self.raw(mantissa_bits - CHUNK_BITS, position)?;
            (high << CHUNK_BITS) | self.raw(CHUNK_BITS, position)?
        } else if mantissa_bits > 0 {
            self.raw(mantissa_bits, position)?
        } else {
            0
        };
        Payload {
            above,
            bit_len,
            mantissa,
        }
        .value(table)
        .ok_or(CodecError::CorruptStream {
            position,
            reason: "escape payload names a value outside i32",
        })
    }

    #[inline]
    fn symbol(&mut self, table: &CategoricalTable, position: usize) -> Result<u32, CodecError> {
        Decode::<PRECISION>::decode_symbol(&mut self.coder, table).map_err(|_| {
            CodecError::CorruptStream {
                position,
                reason: "range decoder's point left its interval",
            }
        })
    }

    #[inline]
    fn raw(&mut self, bits: u32, position: usize) -> Result<u32, CodecError> {
        Decode::<PRECISION>::decode_symbol(&mut self.coder, RawBits::new(bits)).map_err(|_| {
            CodecError::CorruptStream {
                position,
                reason: "range decoder's point left its interval",
            }
        })
    }

    /// Checks that the stream held exactly the values popped: every word consumed and the
    /// final point the one the encoder picks for the final interval.
    pub(crate) fn finish(self, symbols: usize) -> Result<(), CodecError> {
        if symbols == 0 {
            return Ok(());
        }
        let (bulk, state, point): (Cursor<u32, Vec<u32>>, _, u64) = self.coder.into_raw_parts();
        if BoundedReadWords::<u32, Queue>::remaining(&bulk) != 0 {
            return Err(CodecError::CorruptStream {
                position: symbols,
                reason: "stream does not end where the expected symbols end",
            });
        }
        // The decoder's window has already absorbed any carry, so only the no-carry part of
        // the interval is visible here; the encoder's choice lies in it or wrapped to it.
        let (lower, range) = (state.lower(), state.range().get());
        let (expected, _) = final_point(lower, range, true);
        if point != expected {
            return Err(CodecError::CorruptStream {
                position: symbols,
                reason: "stream does not end with the encoder's final point",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_stream_round_trips() {
        let bytes = RangeStreamEncoder::with_capacity(0).finish();
        assert!(bytes.is_empty());
        RangeStreamDecoder::new(&bytes, 0)
            .unwrap()
            .finish(0)
            .unwrap();
    }

    #[test]
    fn stream_byte_form_has_no_trailing_zero() {
        let table = CategoricalTable::from_weights(0, &[0.9, 0.05, 0.05]).unwrap();
        for n in 1..200 {
            let mut enc = RangeStreamEncoder::with_capacity(n);
            for i in 0..n {
                enc.push(if i % 7 == 3 { 1 } else { 0 }, &table).unwrap();
            }
            let bytes = enc.finish();
            assert_ne!(bytes.last(), Some(&0));
            let mut dec = RangeStreamDecoder::new(&bytes, n).unwrap();
            for i in 0..n {
                assert_eq!(dec.pop(&table, i).unwrap(), if i % 7 == 3 { 1 } else { 0 });
            }
            dec.finish(n).unwrap();
        }
    }

    #[test]
    fn final_point_has_the_most_trailing_zeros() {
        assert_eq!(final_point(0, u64::MAX, false), (0, false));
        assert_eq!(final_point(5, 10, false), (8, false));
        assert_eq!(final_point(0x1234, 0x1_0000, false), (0x1_0000, false));
        assert_eq!(final_point(0x1234, 0xe000, false), (0x8000, false));
        // Wrapping interval: zero after the carry is the best point.
        assert_eq!(final_point(u64::MAX - 3, 10, true), (0, true));
        // Without a carry allowed, the point stays below 2^64.
        assert_eq!(final_point(u64::MAX - 3, 10, false), (u64::MAX - 3, false));
    }
}
