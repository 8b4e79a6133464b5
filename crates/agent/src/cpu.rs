//! CPU load from `sysinfo`.

use sysinfo::{CpuRefreshKind, RefreshKind, System};

/// Samples the device's overall CPU load; `None` inside where the platform offers no reading
/// (the agent then simply sends no CPU observations).
pub struct CpuMonitor {
    system: Option<System>,
}

impl CpuMonitor {
    /// Starts monitoring; the first reading is meaningful after the second refresh.
    pub fn new() -> Self {
        let refresh = RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing().with_usage());
        CpuMonitor {
            system: System::new_with_specifics(refresh).ok(),
        }
    }

    /// CPU load in `[0, 1]` since the previous call, if the platform reports it.
    pub fn sample(&mut self) -> Option<f64> {
        let system = self.system.as_mut()?;
        system.refresh_cpu_usage();
        Some((f64::from(system.global_cpu_usage()) / 100.0).clamp(0.0, 1.0))
    }
}

impl Default for CpuMonitor {
    fn default() -> Self {
        Self::new()
    }
}
