//! A simulated battery: drains by the energy the simulator accounts plus a baseline draw.

use serde::{Deserialize, Serialize};

/// Battery parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatteryConfig {
    /// Capacity in watt-hours. Default 2 Wh: smart glasses carry roughly 0.5–2 Wh, a phone
    /// 12–18 Wh; a small battery makes the battery-aware behaviour visible in minutes.
    pub capacity_wh: f64,
    /// Level at the start, in `[0, 1]`.
    pub start_level: f64,
    /// Draw of everything else on the device (camera, display, sensors), in watts.
    pub baseline_w: f64,
    /// Seconds between battery readings given to the controller.
    pub report_interval_s: f64,
}

impl Default for BatteryConfig {
    fn default() -> Self {
        BatteryConfig {
            capacity_wh: 2.0,
            start_level: 1.0,
            baseline_w: 0.5,
            report_interval_s: 1.0,
        }
    }
}

/// The battery's state.
#[derive(Debug, Clone)]
pub struct Battery {
    config: BatteryConfig,
    remaining_j: f64,
    last_t: Option<f64>,
}

impl Battery {
    /// A battery at its configured start level.
    pub fn new(config: BatteryConfig) -> Self {
        let capacity = config.capacity_wh.max(1e-9) * 3600.0;
        Battery {
            remaining_j: capacity * config.start_level.clamp(0.0, 1.0),
            config,
            last_t: None,
        }
    }

    /// Drains the baseline draw up to time `t` (monotone; earlier times are ignored).
    pub fn advance(&mut self, t: f64) {
        if let Some(last) = self.last_t.filter(|&last| t > last) {
            self.remaining_j -= self.config.baseline_w * (t - last);
        }
        self.last_t = Some(self.last_t.map_or(t, |l| l.max(t)));
        self.remaining_j = self.remaining_j.max(0.0);
    }

    /// Drains `joules` of accounted work.
    pub fn drain(&mut self, joules: f64) {
        self.remaining_j = (self.remaining_j - joules.max(0.0)).max(0.0);
    }

    /// Level in `[0, 1]`.
    pub fn level(&self) -> f64 {
        self.remaining_j / (self.config.capacity_wh.max(1e-9) * 3600.0)
    }

    /// Seconds between readings.
    pub fn report_interval(&self) -> f64 {
        self.config.report_interval_s.max(1e-3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drains_by_baseline_and_work() {
        let mut b = Battery::new(BatteryConfig {
            capacity_wh: 1.0,
            start_level: 1.0,
            baseline_w: 1.0,
            report_interval_s: 1.0,
        });
        b.advance(0.0);
        b.advance(360.0);
        b.drain(360.0);
        assert!((b.level() - 0.8).abs() < 1e-12);
    }
}
