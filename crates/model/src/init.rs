//! Deterministic initialisation: candle's CPU random generator cannot be seeded, so fresh weights
//! are drawn here from a ChaCha stream, variable by variable in name order.

use candle_core::{Result, Tensor};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Redraws every convolution/linear weight (He-uniform), zeroes their biases and spreads the
/// density biases over (−½, ½); batch-norm and density matrices keep their constant init.
pub fn reinitialise(map: &VarMap, seed: u64) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let data = map.data().lock().expect("var map lock poisoned");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let device = var.device().clone();
        let is_bn = name.contains(".bn.") || name.contains("expand_bn.");
        if name.ends_with(".weight") && dims.len() >= 2 && !is_bn {
            let fan_in: usize = dims[1..].iter().product();
            let bound = (6.0 / fan_in as f64).sqrt() as f32;
            let n: usize = dims.iter().product();
            let values: Vec<f32> = (0..n).map(|_| rng.random_range(-bound..bound)).collect();
            var.set(&Tensor::from_vec(values, dims, &device)?)?;
        } else if name.ends_with(".bias") && !is_bn {
            var.set(&var.zeros_like()?)?;
        } else if name.contains(".density.bias_") {
            let d_out = dims[1];
            let n: usize = dims.iter().product();
            let values: Vec<f32> = (0..n)
                .map(|j| ((j % d_out) as f32 + 0.5) / d_out as f32 - 0.5)
                .collect();
            var.set(&Tensor::from_vec(values, dims, &device)?)?;
        }
    }
    Ok(())
}
