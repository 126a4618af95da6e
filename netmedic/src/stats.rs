//! The statistics NetMedic needs: the error function, the Gaussian tail, and
//! the abnormality of a value against its history.

use serde::{Deserialize, Serialize};

/// Error function, Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7),
/// extended to negative arguments by oddness.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    let x = x.abs();
    const P: f64 = 0.327_591_1;
    const A: [f64; 5] = [
        0.254_829_592,
        -0.284_496_736,
        1.421_413_741,
        -1.453_152_027,
        1.061_405_429,
    ];
    let t = 1.0 / (1.0 + P * x);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    sign * (1.0 - poly * (-x * x).exp())
}

/// The Gaussian tail `Q(x) = P(Z > x)` for a standard normal `Z`, i.e.
/// `½·erfc(x/√2)`.
pub fn q_tail(x: f64) -> f64 {
    0.5 * (1.0 - erf(x / std::f64::consts::SQRT_2))
}

/// Which abnormality formula to use (see `docs/netmedic.md`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AbnormalityFormula {
    /// The formula of issue 6, literally: `1 − 2·Q(|v−μ|/(√2·σ))` with `Q`
    /// the standard Gaussian tail. It equals `erf(|v−μ|/(2σ))`.
    #[default]
    Issue,
    /// NetMedic's own (Kandula et al. 2009, §5.2): `|erf((v−μ)/(σ·√2))|`,
    /// i.e. `1 − 2·Q(|v−μ|/σ)`: the probability that a normal variable lies
    /// closer to its mean than `v` does.
    NetMedic,
}

impl AbnormalityFormula {
    /// Abnormality in `[0, 1]` of value `v` for a variable with history
    /// mean `mean` and standard deviation `sd`. A variable that never
    /// varied (`sd == 0`) is abnormal (1) exactly when `v` differs from it.
    pub fn abnormality(self, v: f64, mean: f64, sd: f64) -> f64 {
        let dev = (v - mean).abs();
        if dev == 0.0 {
            return 0.0;
        }
        if sd.is_nan() || sd <= 0.0 || !sd.is_finite() {
            return if dev > 1e-9 { 1.0 } else { 0.0 };
        }
        let a = match self {
            AbnormalityFormula::Issue => 1.0 - 2.0 * q_tail(dev / (std::f64::consts::SQRT_2 * sd)),
            AbnormalityFormula::NetMedic => 1.0 - 2.0 * q_tail(dev / sd),
        };
        a.clamp(0.0, 1.0)
    }
}

/// Mean and (population) standard deviation.
pub fn mean_sd(xs: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let mut n = 0.0;
    let mut sum = 0.0;
    for x in xs.clone() {
        n += 1.0;
        sum += x;
    }
    if n == 0.0 {
        return (0.0, 0.0);
    }
    let mean = sum / n;
    let var = xs.map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_reference_values() {
        // Reference values of erf from tables.
        for (x, want) in [
            (0.0, 0.0),
            (0.5, 0.520_499_877_8),
            (1.0, 0.842_700_792_9),
            (2.0, 0.995_322_265),
            (-1.0, -0.842_700_792_9),
        ] {
            assert!((erf(x) - want).abs() < 2e-7, "erf({x}) = {}", erf(x));
        }
    }

    #[test]
    fn q_tail_is_the_normal_tail() {
        assert!((q_tail(0.0) - 0.5).abs() < 1e-7);
        assert!((q_tail(1.0) - 0.158_655_25).abs() < 1e-6);
        assert!((q_tail(1.959_964) - 0.025).abs() < 1e-6);
    }

    #[test]
    fn formulas_differ_by_a_sqrt2_rescaling() {
        // NetMedic: one sigma away ⇒ P(|Z| < 1) = 0.6827.
        let nm = AbnormalityFormula::NetMedic.abnormality(11.0, 10.0, 1.0);
        assert!((nm - 0.682_689_5).abs() < 1e-6, "{nm}");
        // Issue formula: one sigma ⇒ erf(1/2) = 0.5205.
        let is = AbnormalityFormula::Issue.abnormality(11.0, 10.0, 1.0);
        assert!((is - 0.520_499_9).abs() < 1e-6, "{is}");
        // And the issue formula at √2σ equals NetMedic's at σ.
        let is2 = AbnormalityFormula::Issue.abnormality(10.0 + 2f64.sqrt(), 10.0, 1.0);
        assert!((is2 - nm).abs() < 1e-6);
        // Symmetric, zero at the mean, saturates far away.
        assert_eq!(AbnormalityFormula::Issue.abnormality(10.0, 10.0, 1.0), 0.0);
        assert!(AbnormalityFormula::Issue.abnormality(0.0, 10.0, 1.0) > 0.999);
        // A constant history: any change is fully abnormal.
        assert_eq!(AbnormalityFormula::Issue.abnormality(3.0, 2.0, 0.0), 1.0);
        assert_eq!(AbnormalityFormula::Issue.abnormality(2.0, 2.0, 0.0), 0.0);
    }

    #[test]
    fn mean_sd_of_known_values() {
        let (m, s) = mean_sd([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0].into_iter());
        assert_eq!(m, 5.0);
        assert_eq!(s, 2.0);
    }
}
