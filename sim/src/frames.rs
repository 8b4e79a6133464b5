//! Per-frame layer sizes drawn from a profile, deterministically for a seed.

use offload_controller::Profile;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

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
        for l in &self.profile.layers {
            let b = (l.bytes_median * (l.bytes_sigma * z).exp())
                .round()
                .max(1.0) as u64;
            running = running.max(b);
            self.sizes.push(running);
        }
        &self.sizes
    }
}
