//! Ticks → nanoseconds from (TSC, CLOCK_MONOTONIC) anchor pairs.
//!
//! `rte_get_tsc_hz()` is an estimate (0.15 % off on the machines we measured,
//! 1.5 ms per second), so Microscope fits the conversion to anchors recorded
//! in the trace: a least-squares line `ns = a + b·tsc` over all anchors of a
//! host. With a single anchor the nominal frequency supplies the slope; with
//! none, the nominal frequency and a zero offset are used.

use crate::record::ClockAnchor;
use serde::{Deserialize, Serialize};

/// A linear map from TSC ticks to nanoseconds on one host.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Nanoseconds at tick `tsc0`.
    pub ns0: f64,
    pub tsc0: u64,
    /// Nanoseconds per tick.
    pub ns_per_tick: f64,
    /// How the slope was obtained.
    pub source: CalibrationSource,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationSource {
    /// Least-squares fit over two or more anchors.
    Anchors,
    /// One anchor for the offset, nominal frequency for the slope.
    AnchorAndNominal,
    /// No anchors: nominal frequency, offset 0.
    Nominal,
}

impl Calibration {
    /// Fits the conversion. `nominal_hz` is used only where the anchors do
    /// not determine the slope; it must be positive.
    pub fn fit(anchors: &[ClockAnchor], nominal_hz: f64) -> Calibration {
        let nominal = 1e9 / nominal_hz;
        match anchors {
            [] => Calibration {
                ns0: 0.0,
                tsc0: 0,
                ns_per_tick: nominal,
                source: CalibrationSource::Nominal,
            },
            [a] => Calibration {
                ns0: a.mono_ns as f64,
                tsc0: a.tsc,
                ns_per_tick: nominal,
                source: CalibrationSource::AnchorAndNominal,
            },
            _ => {
                // Centre on the first anchor so the f64 arithmetic stays exact
                // enough over hours of ticks.
                let t0 = anchors[0].tsc;
                let n0 = anchors[0].mono_ns;
                let n = anchors.len() as f64;
                let xs = anchors.iter().map(|a| a.tsc.wrapping_sub(t0) as f64);
                let ys = anchors.iter().map(|a| a.mono_ns as f64 - n0 as f64);
                let mx = xs.clone().sum::<f64>() / n;
                let my = ys.clone().sum::<f64>() / n;
                let (mut sxy, mut sxx) = (0.0, 0.0);
                for (x, y) in xs.zip(ys) {
                    sxy += (x - mx) * (y - my);
                    sxx += (x - mx) * (x - mx);
                }
                if sxx <= 0.0 || !(sxy / sxx).is_finite() || sxy / sxx <= 0.0 {
                    return Calibration::fit(&anchors[..1], nominal_hz);
                }
                let b = sxy / sxx;
                Calibration {
                    ns0: n0 as f64 + (my - b * mx),
                    tsc0: t0,
                    ns_per_tick: b,
                    source: CalibrationSource::Anchors,
                }
            }
        }
    }

    /// Converts a tick count to nanoseconds (may be negative before the
    /// first anchor only if the anchors lie; callers treat it as a float).
    pub fn to_ns(&self, tsc: u64) -> f64 {
        let dt = tsc as i128 - self.tsc0 as i128;
        self.ns0 + dt as f64 * self.ns_per_tick
    }

    /// The effective TSC frequency in Hz.
    pub fn hz(&self) -> f64 {
        1e9 / self.ns_per_tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anchor(tsc: u64, mono_ns: u64) -> ClockAnchor {
        ClockAnchor {
            seq: 0,
            tsc,
            mono_ns,
        }
    }

    #[test]
    fn fit_recovers_true_frequency_not_nominal() {
        // True 2596.096 MHz, nominal 2600 MHz (the skew measured on this VM).
        let hz = 2_596_096_000.0f64;
        let anchors: Vec<_> = (0..10u64)
            .map(|i| {
                let ns = 1_000_000_000 + i * 100_000_000;
                anchor(((ns - 1_000_000_000) as f64 * hz / 1e9) as u64 + 5_000, ns)
            })
            .collect();
        let c = Calibration::fit(&anchors, 2.6e9);
        assert_eq!(c.source, CalibrationSource::Anchors);
        assert!((c.hz() - hz).abs() / hz < 1e-6, "hz {}", c.hz());
        let t = anchors[9].tsc;
        assert!((c.to_ns(t) - anchors[9].mono_ns as f64).abs() < 2.0);
    }

    #[test]
    fn fit_falls_back_to_nominal() {
        let c = Calibration::fit(&[], 1e9);
        assert_eq!(c.source, CalibrationSource::Nominal);
        assert_eq!(c.to_ns(1234), 1234.0);
        let c = Calibration::fit(&[anchor(1000, 5000)], 1e9);
        assert_eq!(c.source, CalibrationSource::AnchorAndNominal);
        assert_eq!(c.to_ns(2000), 6000.0);
    }
}
