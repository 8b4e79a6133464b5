//! Per-frame layer sizes drawn from a profile, deterministically for a seed.

use offload_controller::Profile;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Something that yields the cumulative layer sizes of successive frames.
pub trait FrameSource {
    /// The next frame's cumulative sizes (`[k-1]` = bytes of the first `k` layers).
    fn next_frame(&mut self) -> &[u64];
}

/// Draws the cumulative layer sizes of successive frames.
///
/// With measured per-frame sizes in the profile, frames cycle through them from a seeded random
/// start; otherwise each frame draws one standard normal `z` and sets
/// `bytes_k = median_k · exp(sigma_k · z)`, so a frame rich in detail is large at every `k`
/// (sizes of one frame are correlated across `k`, as real coded layers are), then takes a
/// running maximum so sizes never shrink as `k` grows.
#[derive(Debug)]
pub struct FrameSizes<'p> {
    profile: &'p Profile,
    rng: ChaCha8Rng,
    next_measured: usize,
    sizes: Vec<u64>,
}

impl<'p> FrameSizes<'p> {
    /// A source seeded with `seed`.
    pub fn new(profile: &'p Profile, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_f4a3_e517_0001);
        let next_measured = if profile.frames.is_empty() {
            0
        } else {
            rng.random_range(0..profile.frames.len())
        };
        FrameSizes {
            profile,
            rng,
            next_measured,
            sizes: Vec::with_capacity(profile.layers.len()),
        }
    }

    /// The next frame's cumulative sizes (`[k-1]` = bytes of the first `k` layers).
    pub fn next_frame(&mut self) -> &[u64] {
        self.sizes.clear();
        if !self.profile.frames.is_empty() {
            let row = &self.profile.frames[self.next_measured];
            self.next_measured = (self.next_measured + 1) % self.profile.frames.len();
            self.sizes.extend_from_slice(row);
            return &self.sizes;
        }
        let z: f64 = StandardNormal.sample(&mut self.rng);
        let mut running = 0u64;
        // Layers usually share one sigma: `exp` is then computed once per frame, not per layer
        // (the same expression, so the same bits).
        let mut factor = (f64::NAN, 1.0);
        for l in &self.profile.layers {
            if l.bytes_sigma.to_bits() != factor.0.to_bits() {
                factor = (l.bytes_sigma, (l.bytes_sigma * z).exp());
            }
            let b = (l.bytes_median * factor.1).round().max(1.0) as u64;
            running = running.max(b);
            self.sizes.push(running);
        }
        &self.sizes
    }
}

impl FrameSource for FrameSizes<'_> {
    fn next_frame(&mut self) -> &[u64] {
        FrameSizes::next_frame(self)
    }
}

/// The sizes of the first `n` frames of a [`FrameSizes`] sequence, drawn once and kept, so that
/// every policy (and the oracle) replaying one trace reads them instead of drawing them again.
#[derive(Debug, Clone)]
pub struct FrameTable {
    layers: usize,
    sizes: Vec<u64>,
}

impl FrameTable {
    /// Draws `frames` frames from `FrameSizes::new(profile, seed)`.
    pub fn new(profile: &Profile, seed: u64, frames: u64) -> Self {
        let layers = profile.layers.len();
        let mut source = FrameSizes::new(profile, seed);
        let mut sizes = Vec::with_capacity(layers * frames as usize);
        for _ in 0..frames {
            let row = source.next_frame();
            debug_assert_eq!(row.len(), layers);
            sizes.extend_from_slice(row);
        }
        FrameTable { layers, sizes }
    }

    /// Frames held.
    pub fn len(&self) -> usize {
        self.sizes.len().checked_div(self.layers).unwrap_or(0)
    }

    /// Whether it holds no frame.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A source reading the table from its first frame; past its end, frames have no layer.
    pub fn cursor(&self) -> TableCursor<'_> {
        TableCursor {
            table: self,
            next: 0,
        }
    }
}

/// Reads a [`FrameTable`] frame after frame.
#[derive(Debug, Clone)]
pub struct TableCursor<'a> {
    table: &'a FrameTable,
    next: usize,
}

impl FrameSource for TableCursor<'_> {
    fn next_frame(&mut self) -> &[u64] {
        let l = self.table.layers;
        let at = self.next * l;
        self.next += 1;
        self.table.sizes.get(at..at + l).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_replays_the_stream() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../profiles/illustrative-detector.toml"
        );
        let profile = Profile::load(std::path::Path::new(path)).unwrap();
        let table = FrameTable::new(&profile, 7, 500);
        assert_eq!(table.len(), 500);
        let mut stream = FrameSizes::new(&profile, 7);
        let mut cursor = table.cursor();
        for _ in 0..500 {
            assert_eq!(stream.next_frame(), cursor.next_frame());
        }
        assert!(cursor.next_frame().is_empty());
    }
}
