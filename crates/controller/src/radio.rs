//! Radio power model with promotion and tail energy, shared by the simulator (to account
//! energy) and by policies (to predict it).
//!
//! The model is the LTE model of Huang et al., "A Close Examination of Performance and Power
//! Characteristics of 4G LTE Networks", MobiSys 2012 (Table 3 and §4): while data flows the radio
//! draws `β + α_u·r_u + α_d·r_d` (r in Mbit/s), a transfer that finds the radio idle first pays an
//! RRC promotion (delay and power), and after the last packet the radio stays in a high-power
//! *tail* before it drops back to idle. Energy here is the radio's energy above its idle draw;
//! idle power is the same whatever a policy does and is left out.

use serde::{Deserialize, Serialize};

/// Parameters of the radio power model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadioModel {
    /// Uplink power per Mbit/s of throughput (W per Mbit/s): `α_u`.
    pub uplink_w_per_mbps: f64,
    /// Downlink power per Mbit/s (W per Mbit/s): `α_d`.
    pub downlink_w_per_mbps: f64,
    /// Base power while data flows (W): `β`.
    pub active_base_w: f64,
    /// RRC promotion delay from idle (s).
    pub promotion_s: f64,
    /// Power during promotion (W).
    pub promotion_w: f64,
    /// Tail duration after the last packet (s).
    pub tail_s: f64,
    /// Power during the tail (W).
    pub tail_w: f64,
}

impl RadioModel {
    /// LTE, Huang et al. MobiSys 2012: α_u = 438.39 mW/Mbit/s, α_d = 51.97 mW/Mbit/s,
    /// β = 1288.04 mW, promotion 260.1 ms at 1210.7 mW, tail 11.576 s at 1060.0 mW.
    pub const LTE: RadioModel = RadioModel {
        uplink_w_per_mbps: 0.43839,
        downlink_w_per_mbps: 0.05197,
        active_base_w: 1.28804,
        promotion_s: 0.2601,
        promotion_w: 1.2107,
        tail_s: 11.576,
        tail_w: 1.060,
    };

    /// Power while sending at `bps` uplink (W).
    #[inline]
    pub fn uplink_power_w(&self, bps: f64) -> f64 {
        self.active_base_w + self.uplink_w_per_mbps * bps / 1e6
    }

    /// Energy of sending `bits` in `duration` seconds (J), promotion and tail excluded:
    /// [`Self::uplink_power_w`] at `bits / duration`, times `duration`, multiplied out (the
    /// simulator pays this for every transfer, and two divisions were most of its cost).
    #[inline]
    pub fn uplink_energy_j(&self, bits: f64, duration: f64) -> f64 {
        if duration <= 0.0 {
            return 0.0;
        }
        self.active_base_w * duration + self.uplink_w_per_mbps * bits * 1e-6
    }

    /// Energy of receiving `bits` in `duration` seconds (J).
    pub fn downlink_energy_j(&self, bits: f64, duration: f64) -> f64 {
        if duration <= 0.0 {
            return 0.0;
        }
        (self.active_base_w + self.downlink_w_per_mbps * bits / duration / 1e6) * duration
    }

    /// Predicted radio energy (J) of a transfer of `bits` starting at `start` and lasting
    /// `duration`, given the radio's state: active energy, the promotion if the radio is idle
    /// by then, and the *marginal* tail — transmitting cuts the running tail short and starts a
    /// new full one, so the extra tail paid is the part of the old tail already elapsed.
    #[inline]
    pub fn predict_uplink_j(
        &self,
        state: &RadioState,
        start: f64,
        bits: f64,
        duration: f64,
    ) -> f64 {
        let active = self.uplink_energy_j(bits, duration);
        match state.last_active_end {
            Some(end) if start - end <= self.tail_s => {
                active + (start - end).max(0.0) * self.tail_w
            }
            _ => active + self.promotion_s * self.promotion_w + self.tail_s * self.tail_w,
        }
    }

    /// Whether a transfer starting at `start` has to wait for an RRC promotion.
    #[inline]
    pub fn needs_promotion(&self, state: &RadioState, start: f64) -> bool {
        !matches!(state.last_active_end, Some(end) if start - end <= self.tail_s)
    }
}

impl Default for RadioModel {
    fn default() -> Self {
        RadioModel::LTE
    }
}

/// What the radio did last, enough to know whether it is idle, in its tail, or busy.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RadioState {
    /// End of the latest transfer (seconds), or `None` if the radio has been idle throughout.
    pub last_active_end: Option<f64>,
}

impl RadioState {
    /// Records activity ending at `end`.
    #[inline]
    pub fn record_activity(&mut self, end: f64) {
        self.last_active_end = Some(self.last_active_end.map_or(end, |e| e.max(end)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_pause_costs_only_the_elapsed_tail() {
        let m = RadioModel::LTE;
        let mut s = RadioState::default();
        let cold = m.predict_uplink_j(&s, 0.0, 8e5, 0.1);
        s.record_activity(0.1);
        let warm = m.predict_uplink_j(&s, 0.2, 8e5, 0.1);
        let after_tail = m.predict_uplink_j(&s, 30.0, 8e5, 0.1);
        assert!(warm < cold);
        assert_eq!(after_tail, cold);
        // 0.1 s of tail elapsed: 0.106 J above the active energy.
        let active = m.uplink_energy_j(8e5, 0.1);
        assert!((warm - active - 0.1 * m.tail_w).abs() < 1e-9);
    }

    #[test]
    fn uplink_power_grows_with_rate() {
        let m = RadioModel::LTE;
        assert!((m.uplink_power_w(10e6) - (1.28804 + 4.3839)).abs() < 1e-9);
    }
}
