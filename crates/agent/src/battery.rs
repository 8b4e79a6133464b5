//! Battery readings: the Linux power-supply class in sysfs, or a simulated battery.
//!
//! The sysfs reader takes its root as a parameter (normally `/sys`), so it is tested against a
//! fake tree. On a device with no battery (a development machine, this CI), the agent falls back
//! to [`SimulatedBattery`], drained by the energy the agent accounts for its own work, and says so
//! in its log.

use std::path::{Path, PathBuf};

use offload_sim::battery::{Battery, BatteryConfig};

/// One reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatteryReading {
    /// Level in `[0, 1]`.
    pub level: f64,
    /// Discharge power in watts, where the device reports it.
    pub power_w: Option<f64>,
    /// Whether the device is on external power.
    pub charging: bool,
}

/// Something that reads the battery.
pub trait BatterySource: Send {
    /// A short description for the log.
    fn describe(&self) -> String;
    /// The current reading.
    fn read(&mut self) -> Option<BatteryReading>;
    /// Tells the source the agent spent `joules` (only a simulated battery uses it).
    fn account(&mut self, _joules: f64, _now: f64) {}
}

/// A battery under `<root>/class/power_supply/<name>/` (the kernel's power-supply class).
#[derive(Debug, Clone)]
pub struct SysfsBattery {
    dir: PathBuf,
}

impl SysfsBattery {
    /// Finds the first supply of `type` `Battery` under `<root>/class/power_supply`.
    pub fn find(root: &Path) -> Option<SysfsBattery> {
        let supplies = root.join("class/power_supply");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&supplies)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        dirs.sort();
        dirs.into_iter()
            .find(|d| read_trimmed(&d.join("type")).as_deref() == Some("Battery"))
            .map(|dir| SysfsBattery { dir })
    }
}

/// Reads a small sysfs attribute; sysfs files are tiny, but the read is bounded anyway.
fn read_trimmed(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut s = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(256)
        .read_to_string(&mut s)
        .ok()?;
    Some(s.trim().to_owned())
}

fn read_number(path: &Path) -> Option<f64> {
    read_trimmed(path)?
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

impl BatterySource for SysfsBattery {
    fn describe(&self) -> String {
        format!("sysfs battery {}", self.dir.display())
    }

    fn read(&mut self) -> Option<BatteryReading> {
        let level = read_number(&self.dir.join("capacity"))? / 100.0;
        let status = read_trimmed(&self.dir.join("status")).unwrap_or_default();
        // power_now is in µW; otherwise current_now (µA) × voltage_now (µV).
        let power_w = read_number(&self.dir.join("power_now"))
            .map(|p| p / 1e6)
            .or_else(|| {
                let i = read_number(&self.dir.join("current_now"))?;
                let v = read_number(&self.dir.join("voltage_now"))?;
                Some(i.abs() * v / 1e12)
            });
        Some(BatteryReading {
            level: level.clamp(0.0, 1.0),
            power_w,
            charging: matches!(status.as_str(), "Charging" | "Full"),
        })
    }
}

/// A simulated battery drained by a baseline draw and by the energy the agent accounts.
#[derive(Debug, Clone)]
pub struct SimulatedBattery {
    battery: Battery,
}

impl SimulatedBattery {
    /// A simulated battery with the simulator's battery parameters.
    pub fn new(config: BatteryConfig) -> Self {
        SimulatedBattery {
            battery: Battery::new(config),
        }
    }
}

impl BatterySource for SimulatedBattery {
    fn describe(&self) -> String {
        "simulated battery (no battery found on this device)".into()
    }

    fn read(&mut self) -> Option<BatteryReading> {
        Some(BatteryReading {
            level: self.battery.level(),
            power_w: None,
            charging: false,
        })
    }

    fn account(&mut self, joules: f64, now: f64) {
        self.battery.advance(now);
        self.battery.drain(joules);
    }
}

/// The device's battery if sysfs under `root` has one, else a simulated one.
pub fn open(root: &Path, fallback: BatteryConfig) -> Box<dyn BatterySource> {
    match SysfsBattery::find(root) {
        Some(mut b) => match b.read() {
            Some(_) => Box::new(b),
            None => Box::new(SimulatedBattery::new(fallback)),
        },
        None => Box::new(SimulatedBattery::new(fallback)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn supply(root: &Path, name: &str, files: &[(&str, &str)]) {
        let dir = root.join("class/power_supply").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (f, v) in files {
            std::fs::write(dir.join(f), format!("{v}\n")).unwrap();
        }
    }

    #[test]
    fn reads_a_fake_sysfs_battery_and_skips_mains() {
        let root = tempfile::tempdir().unwrap();
        supply(root.path(), "AC", &[("type", "Mains"), ("online", "1")]);
        supply(
            root.path(),
            "BAT0",
            &[
                ("type", "Battery"),
                ("capacity", "42"),
                ("status", "Discharging"),
                ("current_now", "500000"),
                ("voltage_now", "3800000"),
            ],
        );
        let mut b = SysfsBattery::find(root.path()).expect("battery found");
        let r = b.read().unwrap();
        assert!((r.level - 0.42).abs() < 1e-12);
        assert!((r.power_w.unwrap() - 1.9).abs() < 1e-9);
        assert!(!r.charging);
    }

    #[test]
    fn falls_back_to_a_simulated_battery_that_drains() {
        let root = tempfile::tempdir().unwrap();
        supply(root.path(), "AC", &[("type", "Mains")]);
        let mut b = open(
            root.path(),
            BatteryConfig {
                capacity_wh: 1.0,
                baseline_w: 0.0,
                ..BatteryConfig::default()
            },
        );
        assert!(b.describe().contains("simulated"));
        b.account(0.0, 0.0);
        b.account(360.0, 1.0);
        assert!((b.read().unwrap().level - 0.9).abs() < 1e-9);
    }

    #[test]
    fn garbage_attributes_give_no_reading_not_a_panic() {
        let root = tempfile::tempdir().unwrap();
        supply(
            root.path(),
            "BAT1",
            &[("type", "Battery"), ("capacity", "lots")],
        );
        let mut b = SysfsBattery::find(root.path()).unwrap();
        assert!(b.read().is_none());
    }
}
