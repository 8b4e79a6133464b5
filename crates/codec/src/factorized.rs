//! The factorised prior: the entropy model of the hyper-latent `z`.
//!
//! As in CompressAI's `EntropyBottleneck`, each channel of `z` has its own learnt
//! distribution, the same at every spatial position. The model evaluates the learnt density
//! once (on integer bins around the median) and hands the pmfs over; this module quantises
//! them into [`CategoricalTable`]s. The quantised tables are what the model manifest should
//! store: they serialise with serde, and a decoder that loads them codes bit-identically to
//! the encoder, whatever floating-point unit either machine has.

use serde::{Deserialize, Serialize};

use crate::CodecError;
use crate::coder::{RangeStreamDecoder, RangeStreamEncoder};
use crate::table::{CategoricalTable, MAX_ALPHABET};

/// A learnt pmf of one channel, over the consecutive symbols `min_symbol ..`.
///
/// The mass missing from 1 (`1 - Σ pmf`, if positive) is the tail mass: it goes to the escape
/// symbol, which codes every value outside the pmf's range. Entries must be finite and
/// non-negative.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelPmf {
    /// The symbol of `pmf[0]`.
    pub min_symbol: i32,
    /// Probabilities of `min_symbol, min_symbol + 1, ...` (at most [`MAX_ALPHABET`] entries).
    pub pmf: Vec<f32>,
}

/// Per-channel quantised tables for the hyper-latent, coded in CHW order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PriorRepr", into = "PriorRepr")]
pub struct FactorizedPrior {
    channels: Vec<CategoricalTable>,
}

/// Wire form of a [`FactorizedPrior`].
#[derive(Serialize, Deserialize)]
struct PriorRepr {
    channels: Vec<CategoricalTable>,
}

impl TryFrom<PriorRepr> for FactorizedPrior {
    type Error = CodecError;

    fn try_from(repr: PriorRepr) -> Result<Self, Self::Error> {
        FactorizedPrior::from_tables(repr.channels)
    }
}

impl From<FactorizedPrior> for PriorRepr {
    fn from(p: FactorizedPrior) -> Self {
        PriorRepr {
            channels: p.channels,
        }
    }
}

impl FactorizedPrior {
    /// Quantises one learnt pmf per channel (see [`ChannelPmf`]).
    pub fn from_pmfs(channels: Vec<ChannelPmf>) -> Result<Self, CodecError> {
        let tables = channels
            .iter()
            .enumerate()
            .map(|(channel, c)| {
                let invalid = |reason: String| CodecError::InvalidPmf { channel, reason };
                if c.pmf.is_empty() || c.pmf.len() > MAX_ALPHABET {
                    return Err(invalid(format!(
                        "{} entries; need 1 ..= {MAX_ALPHABET}",
                        c.pmf.len()
                    )));
                }
                if let Some(k) = c.pmf.iter().position(|p| !(p.is_finite() && *p >= 0.0)) {
                    return Err(invalid(format!("entry {k} is {}", c.pmf[k])));
                }
                let mut weights: Vec<f64> = c.pmf.iter().map(|&p| f64::from(p)).collect();
                let sum: f64 = weights.iter().sum();
                if sum <= 0.0 {
                    return Err(invalid("all entries are zero".to_string()));
                }
                weights.push((1.0 - sum).max(0.0));
                CategoricalTable::from_weights(c.min_symbol, &weights).map_err(|e| match e {
                    CodecError::InvalidTable { reason } => invalid(reason),
                    other => other,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        FactorizedPrior::from_tables(tables)
    }

    /// Wraps already-quantised tables, one per channel (e.g. read back from a manifest).
    pub fn from_tables(channels: Vec<CategoricalTable>) -> Result<Self, CodecError> {
        if channels.is_empty() {
            return Err(CodecError::InvalidTable {
                reason: "a factorised prior needs at least one channel".to_string(),
            });
        }
        Ok(FactorizedPrior { channels })
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.channels.len()
    }

    /// The quantised table of `channel`, if it exists.
    pub fn table(&self, channel: usize) -> Option<&CategoricalTable> {
        self.channels.get(channel)
    }

    fn check(&self, len: usize, spatial: usize) -> Result<(), CodecError> {
        let expected =
            self.channels
                .len()
                .checked_mul(spatial)
                .ok_or(CodecError::LengthMismatch {
                    what: "z (channels × spatial overflows)",
                    expected: usize::MAX,
                    actual: len,
                })?;
        if len != expected {
            return Err(CodecError::LengthMismatch {
                what: "z",
                expected,
                actual: len,
            });
        }
        Ok(())
    }

    /// Codes `z` (CHW order, `channels() × spatial` values, `spatial = H·W`) as a stream of
    /// its own; value `z[c·spatial + i]` uses channel `c`'s table. Any `i32` is codable.
    pub fn encode(&self, z: &[i32], spatial: usize) -> Result<Vec<u8>, CodecError> {
        let mut encoder = RangeStreamEncoder::with_capacity(z.len());
        self.encode_into(&mut encoder, z, spatial)?;
        Ok(encoder.finish())
    }

    /// Codes `z` onto a stream that may carry more values after it.
    pub(crate) fn encode_into(
        &self,
        encoder: &mut RangeStreamEncoder,
        z: &[i32],
        spatial: usize,
    ) -> Result<(), CodecError> {
        self.check(z.len(), spatial)?;
        if spatial > 0 {
            for (table, plane) in self.channels.iter().zip(z.chunks_exact(spatial)) {
                for &value in plane {
                    encoder.push(value, table)?;
                }
            }
        }
        Ok(())
    }

    /// Number of values of a `z` with `spatial` positions per channel.
    pub(crate) fn symbols(&self, spatial: usize) -> Result<usize, CodecError> {
        self.channels
            .len()
            .checked_mul(spatial)
            .ok_or(CodecError::LengthMismatch {
                what: "z (channels × spatial overflows)",
                expected: usize::MAX,
                actual: spatial,
            })
    }

    /// Decodes `channels() × spatial` values in CHW order from a stream of their own. Fails
    /// (never panics) on bytes that are not exactly such a stream.
    pub fn decode(&self, bytes: &[u8], spatial: usize) -> Result<Vec<i32>, CodecError> {
        let total = self.symbols(spatial)?;
        let mut decoder = RangeStreamDecoder::new(bytes, total)?;
        let out = self.decode_from(&mut decoder, spatial, 0)?;
        decoder.finish(total)?;
        Ok(out)
    }

    /// Decodes `z` from a stream that may carry more values after it; `first` is the position
    /// of its first value in the stream (for errors).
    pub(crate) fn decode_from(
        &self,
        decoder: &mut RangeStreamDecoder,
        spatial: usize,
        first: usize,
    ) -> Result<Vec<i32>, CodecError> {
        let total = self.symbols(spatial)?;
        let mut out = Vec::with_capacity(total);
        for table in &self.channels {
            for _ in 0..spatial {
                let position = first + out.len();
                out.push(decoder.pop(table, position)?);
            }
        }
        Ok(out)
    }

    /// Ideal code length in bits of `z` under the quantised tables, escape payloads included.
    pub fn cross_entropy_bits(&self, z: &[i32], spatial: usize) -> Result<f64, CodecError> {
        self.check(z.len(), spatial)?;
        if spatial == 0 {
            return Ok(0.0);
        }
        Ok(self
            .channels
            .iter()
            .zip(z.chunks_exact(spatial))
            .map(|(table, plane)| plane.iter().map(|&v| table.bits(v)).sum::<f64>())
            .sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_mass_goes_to_the_escape() {
        let prior = FactorizedPrior::from_pmfs(vec![ChannelPmf {
            min_symbol: -1,
            pmf: vec![0.25, 0.5, 0.24],
        }])
        .unwrap();
        let f = prior.table(0).unwrap().frequencies();
        assert_eq!(f.len(), 4);
        // 1 % tail mass → about 655 of 65536.
        assert!((f[3] as i64 - 655).abs() < 5, "{f:?}");
    }

    #[test]
    fn bad_pmfs_are_rejected_with_the_channel() {
        let good = ChannelPmf {
            min_symbol: 0,
            pmf: vec![0.5, 0.5],
        };
        let bad = ChannelPmf {
            min_symbol: 0,
            pmf: vec![0.5, -0.1],
        };
        match FactorizedPrior::from_pmfs(vec![good, bad]) {
            Err(CodecError::InvalidPmf { channel: 1, .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(FactorizedPrior::from_pmfs(vec![]).is_err());
    }
}
