//! The device state the controller tracks from observations.

/// Battery and CPU state as last observed; `None` where nothing was observed yet.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DeviceState {
    /// Battery level in `[0, 1]`.
    pub battery_level: Option<f64>,
    /// Battery discharge power in watts, where the device reports it.
    pub battery_power_w: Option<f64>,
    /// Whether the device is on external power (no energy pressure).
    pub charging: bool,
    /// CPU load in `[0, 1]` (1 = all cores busy).
    pub cpu_load: Option<f64>,
}

impl DeviceState {
    /// The battery level to plan with: unknown counts as full, charging counts as full.
    #[inline]
    pub fn effective_battery(&self) -> f64 {
        if self.charging {
            1.0
        } else {
            self.battery_level.unwrap_or(1.0).clamp(0.0, 1.0)
        }
    }

    /// Factor by which device compute takes longer under the observed CPU load.
    ///
    /// With load `l` from other work the model gets roughly `1 - l` of the CPU; capped at 4× so
    /// that a spurious reading of 100 % load does not make local execution look impossible.
    #[inline]
    pub fn compute_slowdown(&self) -> f64 {
        let load = self.cpu_load.unwrap_or(0.0).clamp(0.0, 0.75);
        1.0 / (1.0 - load)
    }
}
