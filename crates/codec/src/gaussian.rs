//! The Gaussian conditional: the entropy model of the latent `y`.
//!
//! As in CompressAI's `GaussianConditional`, the model computes a mean and a scale per element
//! of `y` from the decoded hyper-latent; the symbols are `q = round(y - mean)` and each is
//! coded under a zero-mean Gaussian whose scale is taken from a fixed table, chosen by an
//! integer *scale index*. Precomputing one quantised table per scale makes coding a table
//! lookup instead of evaluating the Gaussian CDF per symbol.

use serde::{Deserialize, Serialize};

use crate::CodecError;
use crate::coder::{RangeStreamDecoder, RangeStreamEncoder};
use crate::table::{CategoricalTable, MAX_ALPHABET};

/// Number of scales in [`GaussianConditional::default_table`].
///
/// Four times CompressAI's 64: a scale is rounded up to the next table entry, and with 64
/// entries (13 % apart) that rounding cost 0.26 % of the rate on hyperprior-like scales; with
/// 256 (3.1 % apart) it is ~0.02 % (`tests/rate.rs`), for ~0.5 MB of tables.
pub const DEFAULT_NUM_SCALES: usize = 256;
/// Smallest scale of the default table (CompressAI's `SCALES_MIN`).
pub const DEFAULT_SCALE_MIN: f64 = 0.11;
/// Largest scale of the default table (CompressAI's `SCALES_MAX`).
pub const DEFAULT_SCALE_MAX: f64 = 256.0;

/// Half-width of a table's symbol range in units of its scale: `-Φ⁻¹(tail_mass / 2)` for
/// CompressAI's tail mass of 1e-9, so values beyond the range occur with probability ~1e-9
/// and are coded with the escape.
pub const TAIL_SIGMAS: f64 = 6.109_410_204_869_397_5;

/// Largest half-width of a table's range, so that `2 * radius + 1 <= MAX_ALPHABET`.
pub const MAX_RADIUS: i32 = (MAX_ALPHABET as i32 - 1) / 2;

/// A table of zero-mean discretised Gaussians, one quantised categorical per scale.
///
/// The table for scale `s` covers `-r ..= r` with `r = clamp(ceil(s · TAIL_SIGMAS), 1,
/// MAX_RADIUS)`; symbol `v` gets the mass `Φ((|v| + ½)/s) − Φ((|v| − ½)/s)` and the escape
/// gets both tails beyond `r + ½`. Masses are evaluated with the pure-Rust `libm` (so every
/// platform builds bit-identical tables) and quantised to 16-bit frequencies.
///
/// Serialises with its quantised tables, so a decoder can load exactly the encoder's tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "GaussianRepr", into = "GaussianRepr")]
pub struct GaussianConditional {
    scales: Vec<f32>,
    tables: Vec<CategoricalTable>,
}

/// Wire form of a [`GaussianConditional`].
#[derive(Serialize, Deserialize)]
struct GaussianRepr {
    scales: Vec<f32>,
    tables: Vec<CategoricalTable>,
}

impl TryFrom<GaussianRepr> for GaussianConditional {
    type Error = CodecError;

    fn try_from(repr: GaussianRepr) -> Result<Self, Self::Error> {
        validate_scales(&repr.scales)?;
        if repr.tables.len() != repr.scales.len() {
            return Err(CodecError::InvalidScaleTable {
                reason: format!(
                    "{} tables for {} scales",
                    repr.tables.len(),
                    repr.scales.len()
                ),
            });
        }
        Ok(GaussianConditional {
            scales: repr.scales,
            tables: repr.tables,
        })
    }
}

impl From<GaussianConditional> for GaussianRepr {
    fn from(g: GaussianConditional) -> Self {
        GaussianRepr {
            scales: g.scales,
            tables: g.tables,
        }
    }
}

fn validate_scales(scales: &[f32]) -> Result<(), CodecError> {
    let invalid = |reason: String| CodecError::InvalidScaleTable { reason };
    if scales.is_empty() || scales.len() > usize::from(u16::MAX) + 1 {
        return Err(invalid(format!(
            "{} scales; need 1 ..= 65536",
            scales.len()
        )));
    }
    if let Some(k) = scales.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(invalid(format!(
            "scale {k} is {}; scales must be finite and positive",
            scales[k]
        )));
    }
    if let Some(k) = scales.windows(2).position(|w| w[0] >= w[1]) {
        return Err(invalid(format!(
            "scales must increase strictly, but scale {} = {} >= scale {} = {}",
            k,
            scales[k],
            k + 1,
            scales[k + 1]
        )));
    }
    Ok(())
}

/// The quantised table of a zero-mean Gaussian of scale `scale` (see [`GaussianConditional`]).
fn gaussian_table(scale: f64) -> Result<CategoricalTable, CodecError> {
    let radius = (scale * TAIL_SIGMAS)
        .ceil()
        .clamp(1.0, f64::from(MAX_RADIUS)) as i32;
    let inv = 1.0 / (scale * std::f64::consts::SQRT_2);
    // Upper tail P(X > x) = erfc(x / (s·√2)) / 2, accurate far into the tails.
    let tail = |x: f64| 0.5 * libm::erfc(x * inv);
    let mut weights = Vec::with_capacity(2 * radius as usize + 2);
    for v in -radius..=radius {
        let a = f64::from(v.abs());
        let mass = if v == 0 {
            1.0 - 2.0 * tail(0.5)
        } else {
            tail(a - 0.5) - tail(a + 0.5)
        };
        weights.push(mass.max(0.0));
    }
    weights.push(2.0 * tail(f64::from(radius) + 0.5));
    CategoricalTable::from_weights(-radius, &weights)
}

impl GaussianConditional {
    /// Builds the tables for `scales` (finite, positive, strictly increasing; 1 ..= 65536 of
    /// them).
    pub fn new(scales: &[f32]) -> Result<Self, CodecError> {
        validate_scales(scales)?;
        let tables = scales
            .iter()
            .map(|&s| gaussian_table(f64::from(s)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(GaussianConditional {
            scales: scales.to_vec(),
            tables,
        })
    }

    /// The default table: [`DEFAULT_NUM_SCALES`] scales `exp(linspace(ln 0.11, ln 256))`,
    /// CompressAI's `get_scale_table()` range with four times its 64 entries.
    pub fn default_table() -> Self {
        let scales = default_scales();
        // The default scales are valid by construction.
        match GaussianConditional::new(&scales) {
            Ok(g) => g,
            Err(e) => unreachable!("default scale table rejected: {e}"),
        }
    }

    /// The scales, in increasing order.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// The quantised table of scale index `index`, if it exists.
    pub fn table(&self, index: u16) -> Option<&CategoricalTable> {
        self.tables.get(usize::from(index))
    }

    /// The index of the first table scale `>= scale`, clamped to the last index.
    ///
    /// Scales below the first entry map to 0 (like CompressAI's lower bound on scales); NaN
    /// maps to the last (widest) index, which is always safe to code with. Encoder and decoder
    /// must compute bit-identical `scale` values for the indices to agree.
    pub fn scale_index(&self, scale: f32) -> u16 {
        let last = self.scales.len() - 1;
        if scale.is_nan() {
            return last as u16;
        }
        self.scales.partition_point(|&s| s < scale).min(last) as u16
    }

    /// Scale indices for a whole slice of scales (see [`scale_index`](Self::scale_index)).
    pub fn scale_indices(&self, scales: &[f32]) -> Vec<u16> {
        scales.iter().map(|&s| self.scale_index(s)).collect()
    }

    fn check(&self, symbols: usize, indices: &[u16]) -> Result<(), CodecError> {
        if indices.len() != symbols {
            return Err(CodecError::LengthMismatch {
                what: "indices",
                expected: symbols,
                actual: indices.len(),
            });
        }
        if let Some(position) = indices
            .iter()
            .position(|&i| usize::from(i) >= self.tables.len())
        {
            return Err(CodecError::ScaleIndexOutOfRange {
                position,
                index: indices[position],
                table_len: self.tables.len(),
            });
        }
        Ok(())
    }

    /// Codes `symbols[i]` with the table `indices[i]`, for all `i`, as a stream of its own.
    /// Any `i32` is codable.
    pub fn encode(&self, symbols: &[i32], indices: &[u16]) -> Result<Vec<u8>, CodecError> {
        let mut encoder = RangeStreamEncoder::with_capacity(symbols.len());
        self.encode_into(&mut encoder, symbols, indices)?;
        Ok(encoder.finish())
    }

    /// Codes `symbols` onto a stream that may carry other values before them.
    pub(crate) fn encode_into(
        &self,
        encoder: &mut RangeStreamEncoder,
        symbols: &[i32],
        indices: &[u16],
    ) -> Result<(), CodecError> {
        self.check(symbols.len(), indices)?;
        for (&value, &index) in symbols.iter().zip(indices) {
            encoder.push(value, &self.tables[usize::from(index)])?;
        }
        Ok(())
    }

    /// Decodes `indices.len()` symbols from `bytes`, a stream of their own, symbol `i` with
    /// table `indices[i]`.
    ///
    /// Fails (never panics) on bytes that are not exactly such a stream.
    pub fn decode(&self, bytes: &[u8], indices: &[u16]) -> Result<Vec<i32>, CodecError> {
        self.check(indices.len(), indices)?;
        let mut decoder = RangeStreamDecoder::new(bytes, indices.len())?;
        let out = self.decode_from(&mut decoder, indices, 0)?;
        decoder.finish(indices.len())?;
        Ok(out)
    }

    /// Decodes `indices.len()` symbols from a stream that carried other values before them;
    /// `first` is the position of the first one in the stream (for errors).
    pub(crate) fn decode_from(
        &self,
        decoder: &mut RangeStreamDecoder,
        indices: &[u16],
        first: usize,
    ) -> Result<Vec<i32>, CodecError> {
        self.check(indices.len(), indices)?;
        let mut out = Vec::with_capacity(indices.len());
        for (i, &index) in indices.iter().enumerate() {
            out.push(decoder.pop(&self.tables[usize::from(index)], first + i)?);
        }
        Ok(out)
    }

    /// Ideal code length in bits of `symbols` under the quantised tables, escape payloads
    /// included (a stream adds about one byte on top).
    pub fn cross_entropy_bits(&self, symbols: &[i32], indices: &[u16]) -> Result<f64, CodecError> {
        self.check(symbols.len(), indices)?;
        Ok(symbols
            .iter()
            .zip(indices)
            .map(|(&v, &i)| self.tables[usize::from(i)].bits(v))
            .sum())
    }
}

impl Default for GaussianConditional {
    /// The same as [`GaussianConditional::default_table`].
    fn default() -> Self {
        GaussianConditional::default_table()
    }
}

/// `exp(linspace(ln 0.11, ln 256, 256))` in `f32`, computed with `libm` for reproducibility.
pub fn default_scales() -> Vec<f32> {
    let lo = libm::log(DEFAULT_SCALE_MIN);
    let hi = libm::log(DEFAULT_SCALE_MAX);
    let steps = (DEFAULT_NUM_SCALES - 1) as f64;
    (0..DEFAULT_NUM_SCALES)
        .map(|k| libm::exp(lo + (hi - lo) * k as f64 / steps) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_table_matches_compressai_endpoints() {
        let g = GaussianConditional::default_table();
        assert_eq!(g.scales().len(), 256);
        assert!((g.scales()[0] - 0.11).abs() < 1e-6);
        assert!((g.scales()[255] - 256.0).abs() < 1e-3);
        let widest = g.table(255).unwrap();
        assert_eq!(widest.max_symbol(), (256.0 * TAIL_SIGMAS).ceil() as i32);
    }

    #[test]
    fn tail_sigmas_is_the_quantile_of_the_tail_mass() {
        let tail = libm::erfc(TAIL_SIGMAS / std::f64::consts::SQRT_2);
        assert!((tail - 1e-9).abs() < 1e-15, "{tail}");
    }

    #[test]
    fn scale_index_picks_first_scale_not_below() {
        let g = GaussianConditional::new(&[0.5, 1.0, 2.0]).unwrap();
        assert_eq!(g.scale_index(0.01), 0);
        assert_eq!(g.scale_index(0.5), 0);
        assert_eq!(g.scale_index(0.6), 1);
        assert_eq!(g.scale_index(1.0), 1);
        assert_eq!(g.scale_index(1.5), 2);
        assert_eq!(g.scale_index(1e9), 2);
        assert_eq!(g.scale_index(f32::INFINITY), 2);
        assert_eq!(g.scale_index(f32::NAN), 2);
        assert_eq!(g.scale_index(-3.0), 0);
    }

    #[test]
    fn bad_scale_tables_are_rejected() {
        assert!(GaussianConditional::new(&[]).is_err());
        assert!(GaussianConditional::new(&[1.0, 1.0]).is_err());
        assert!(GaussianConditional::new(&[0.0, 1.0]).is_err());
        assert!(GaussianConditional::new(&[f32::NAN]).is_err());
        // Huge scales are clamped to the largest radius, not rejected.
        let g = GaussianConditional::new(&[1e30]).unwrap();
        assert_eq!(g.table(0).unwrap().max_symbol(), MAX_RADIUS);
    }

    #[test]
    fn mismatched_indices_are_errors() {
        let g = GaussianConditional::default_table();
        assert!(matches!(
            g.encode(&[1, 2], &[0]),
            Err(CodecError::LengthMismatch { .. })
        ));
        assert!(matches!(
            g.encode(&[1], &[256]),
            Err(CodecError::ScaleIndexOutOfRange { index: 256, .. })
        ));
    }
}
