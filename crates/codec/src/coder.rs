//! The entropy coder: constriction's ANS stack coder (`DefaultAnsCoder`: 32-bit words, 64-bit
//! state), driven with [`CategoricalTable`]s and the escape scheme, and the conversion of its
//! word stream to and from bytes.
//!
//! ANS is a stack, so values are pushed last-to-first and decode first-to-last.
//!
//! **Byte form of a stream.** The compressed words are written little-endian, then trailing
//! zero bytes are dropped (at most three: the last word holds the top of the coder state and
//! is never zero). The decoder pads back to whole words. A stream that ends in a zero byte is
//! therefore not canonical and is rejected, and so is any stream that does not bring the
//! coder back exactly to its initial (empty) state after the expected number of symbols.

use constriction::UnwrapInfallible;
use constriction::stream::stack::DefaultAnsCoder;
use constriction::stream::{Decode, Encode};

use crate::CodecError;
use crate::escape::{CHUNK_BITS, LENGTH_BITS, Payload, RawBits};
use crate::table::{CategoricalTable, PRECISION};

/// Most bits a single value can cost: the escape symbol (at most `PRECISION` bits, since every
/// frequency is >= 1) plus the longest payload (1 + 5 + 31 bits).
pub const MAX_BITS_PER_SYMBOL: u64 = PRECISION as u64 + 1 + LENGTH_BITS as u64 + 31;

/// Largest byte length a stream of `symbols` values can have; decoders reject longer ones
/// before touching them.
///
/// ANS adds at most the 64-bit state on top of the symbols' code lengths, and each
/// renormalisation step writes exactly the bits it consumed, rounded up to whole words.
pub fn max_stream_bytes(symbols: u64) -> u64 {
    let bits = symbols
        .saturating_mul(MAX_BITS_PER_SYMBOL)
        .saturating_add(64);
    // One extra word of slack for rounding at each end.
    bits.div_ceil(32).saturating_add(1).saturating_mul(4)
}

/// Pushes values onto an ANS stack; call [`push`](Self::push) in *reverse* symbol order.
pub(crate) struct AnsEncoder {
    ans: DefaultAnsCoder,
}

impl AnsEncoder {
    /// An empty encoder with room for about `symbols` values at a few bits each.
    pub(crate) fn with_capacity(symbols: usize) -> AnsEncoder {
        AnsEncoder {
            ans: DefaultAnsCoder::with_write_backend(Vec::with_capacity(symbols / 8 + 4)),
        }
    }

    /// Pushes `value` coded with `table` (escaping it if it lies outside the table's range).
    #[inline]
    pub(crate) fn push(&mut self, value: i32, table: &CategoricalTable) -> Result<(), CodecError> {
        match table.index_of(value) {
            Some(index) => self.symbol(index, table),
            None => {
                let payload = Payload::of(table, value);
                // Reverse of the decoding order: mantissa (low chunk, then high chunk),
                // length, side, escape symbol.
                let mantissa_bits = payload.bit_len - 1;
                if mantissa_bits > CHUNK_BITS {
                    self.raw(payload.mantissa & 0xffff, CHUNK_BITS)?;
                    self.raw(payload.mantissa >> CHUNK_BITS, mantissa_bits - CHUNK_BITS)?;
                } else if mantissa_bits > 0 {
                    self.raw(payload.mantissa, mantissa_bits)?;
                }
                self.raw(payload.bit_len - 1, LENGTH_BITS)?;
                self.raw(u32::from(payload.above), 1)?;
                self.symbol(table.escape_index(), table)
            }
        }
    }

    #[inline]
    fn symbol(&mut self, index: u32, table: &CategoricalTable) -> Result<(), CodecError> {
        self.ans
            .encode_symbol(index, table)
            .map_err(|_| CodecError::InvalidTable {
                reason: "table rejected one of its own indices".to_string(),
            })
    }

    #[inline]
    fn raw(&mut self, bits_value: u32, bits: u32) -> Result<(), CodecError> {
        self.ans
            .encode_symbol(bits_value, RawBits::new(bits))
            .map_err(|_| CodecError::InvalidTable {
                reason: "raw chunk does not fit its width".to_string(),
            })
    }

    /// The finished stream in its byte form.
    pub(crate) fn finish(self) -> Vec<u8> {
        let words = self.ans.into_compressed().unwrap_infallible();
        let mut bytes = Vec::with_capacity(words.len() * 4);
        for w in &words {
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        while bytes.last() == Some(&0) {
            bytes.pop();
        }
        bytes
    }
}

/// Pops values off an ANS stack built from untrusted bytes.
pub(crate) struct AnsDecoder {
    ans: DefaultAnsCoder,
}

impl AnsDecoder {
    /// Prepares to decode `bytes`. `symbols` is the number of values the caller will pop; a
    /// stream longer than any such stream can be is rejected before anything is allocated.
    pub(crate) fn new(bytes: &[u8], symbols: usize) -> Result<AnsDecoder, CodecError> {
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
        let words: Vec<u32> = bytes
            .chunks(4)
            .map(|c| {
                let mut w = [0u8; 4];
                w[..c.len()].copy_from_slice(c);
                u32::from_le_bytes(w)
            })
            .collect();
        let ans =
            DefaultAnsCoder::from_compressed(words).map_err(|_| CodecError::CorruptStream {
                position: 0,
                reason: "stream ends in a zero word",
            })?;
        Ok(AnsDecoder { ans })
    }

    /// Pops the next value coded with `table`; `position` is only used in errors.
    #[inline]
    pub(crate) fn pop(
        &mut self,
        table: &CategoricalTable,
        position: usize,
    ) -> Result<i32, CodecError> {
        let index = self.symbol(table);
        if index != table.escape_index() {
            return Ok(table.value_of(index));
        }
        let above = self.raw(1) == 1;
        let bit_len = self.raw(LENGTH_BITS) + 1;
        let mantissa_bits = bit_len - 1;
        let mantissa = if mantissa_bits > CHUNK_BITS {
            let high = self.raw(mantissa_bits - CHUNK_BITS);
            (high << CHUNK_BITS) | self.raw(CHUNK_BITS)
        } else if mantissa_bits > 0 {
            self.raw(mantissa_bits)
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
    fn symbol(&mut self, table: &CategoricalTable) -> u32 {
        Decode::<PRECISION>::decode_symbol(&mut self.ans, table).unwrap_infallible()
    }

    #[inline]
    fn raw(&mut self, bits: u32) -> u32 {
        Decode::<PRECISION>::decode_symbol(&mut self.ans, RawBits::new(bits)).unwrap_infallible()
    }

    /// Checks that the stream held exactly the values popped: every word consumed and the
    /// coder back in its initial state.
    pub(crate) fn finish(self, symbols: usize) -> Result<(), CodecError> {
        let (bulk, state) = self.ans.into_raw_parts();
        if bulk.is_empty() && state == 0 {
            Ok(())
        } else {
            Err(CodecError::CorruptStream {
                position: symbols,
                reason: "stream does not end where the expected symbols end",
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_stream_round_trips() {
        let bytes = AnsEncoder::with_capacity(0).finish();
        assert!(bytes.is_empty());
        AnsDecoder::new(&bytes, 0).unwrap().finish(0).unwrap();
    }

    #[test]
    fn stream_byte_form_has_no_trailing_zero() {
        let table = CategoricalTable::from_weights(0, &[0.9, 0.05, 0.05]).unwrap();
        for n in 1..40 {
            let mut enc = AnsEncoder::with_capacity(n);
            for _ in 0..n {
                enc.push(0, &table).unwrap();
            }
            let bytes = enc.finish();
            assert_ne!(bytes.last(), Some(&0));
            let mut dec = AnsDecoder::new(&bytes, n).unwrap();
            for i in 0..n {
                assert_eq!(dec.pop(&table, i).unwrap(), 0);
            }
            dec.finish(n).unwrap();
        }
    }
}
