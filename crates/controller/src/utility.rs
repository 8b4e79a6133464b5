//! Per-frame utility: accuracy delivered in time, minus a miss penalty and weighted energy.

use serde::{Deserialize, Serialize};

/// How a frame's outcome is valued; the simulator scores with it and policies optimise it.
///
/// `u = accuracy (if the result arrived by the deadline, else 0) − miss_penalty·[missed]
///      − w(b)·energy_j`, with `w(b) = energy_weight_per_j · (1 + low_battery_gain · (1 − b)²)`:
/// energy matters more as the battery `b ∈ [0, 1]` runs down, and not at all when charging.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Utility {
    /// Utility lost per frame whose result misses its deadline, on top of its lost accuracy.
    pub miss_penalty: f64,
    /// Utility per joule at a full battery.
    pub energy_weight_per_j: f64,
    /// How much more a joule weighs at an empty battery than at a full one, minus one.
    pub low_battery_gain: f64,
}

impl Default for Utility {
    /// Defaults: a miss costs a quarter of a perfect answer on top of the lost answer; a joule
    /// costs 0.05 at full battery and 0.2 at an empty one. At these weights a 0.5 J local
    /// inference costs 0.025–0.1 of utility, comparable to the accuracy gap between layer counts.
    fn default() -> Self {
        Utility {
            miss_penalty: 0.25,
            energy_weight_per_j: 0.05,
            low_battery_gain: 3.0,
        }
    }
}

impl Utility {
    /// The weight of one joule at battery level `battery` (use 1.0 while charging).
    #[inline]
    pub fn energy_weight(&self, battery: f64) -> f64 {
        let empty = 1.0 - battery.clamp(0.0, 1.0);
        self.energy_weight_per_j * (1.0 + self.low_battery_gain * empty * empty)
    }

    /// Utility of one frame: `accuracy` if its result arrived in time, else a miss.
    #[inline]
    pub fn frame(&self, delivered_accuracy: Option<f64>, energy_j: f64, battery: f64) -> f64 {
        let value = match delivered_accuracy {
            Some(a) => a,
            None => -self.miss_penalty,
        };
        value - self.energy_weight(battery) * energy_j
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_weighs_more_as_the_battery_runs_down() {
        let u = Utility::default();
        assert!(u.energy_weight(0.2) > u.energy_weight(0.8));
        assert!((u.energy_weight(0.0) / u.energy_weight(1.0) - 4.0).abs() < 1e-12);
        assert_eq!(u.frame(None, 0.0, 1.0), -0.25);
    }
}
