//! Small numeric kernels: standardisation, cosine similarity, least squares,
//! PCA (Jacobi eigen-decomposition), and the evaluation metrics (RMSE,
//! ROC AUC, average precision). Dense, `f64`, sized for tens of features and
//! thousands of rows; no external linear-algebra dependency.

// Dense linear algebra reads clearest with explicit indices.
#![allow(clippy::needless_range_loop)]

use serde::{Deserialize, Serialize};

/// Per-feature mean and standard deviation fitted on training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    /// Feature means.
    pub mean: Vec<f64>,
    /// Feature standard deviations (a constant feature gets 1.0, so it maps to 0).
    pub std: Vec<f64>,
}

impl Standardizer {
    /// Fit on rows (all rows must have the same length; NaN is not allowed).
    pub fn fit(x: &[Vec<f64>]) -> Standardizer {
        let d = x.first().map_or(0, Vec::len);
        let n = x.len().max(1) as f64;
        let mut mean = vec![0.0; d];
        for r in x {
            for (m, v) in mean.iter_mut().zip(r) {
                *m += v / n;
            }
        }
        let mut std = vec![0.0; d];
        for r in x {
            for ((s, v), m) in std.iter_mut().zip(r).zip(&mean) {
                *s += (v - m) * (v - m) / n;
            }
        }
        for s in &mut std {
            *s = s.sqrt();
            if *s < 1e-12 {
                *s = 1.0;
            }
        }
        Standardizer { mean, std }
    }

    /// Standardise one row.
    pub fn apply(&self, r: &[f64]) -> Vec<f64> {
        r.iter()
            .zip(&self.mean)
            .zip(&self.std)
            .map(|((v, m), s)| (v - m) / s)
            .collect()
    }

    /// Standardise many rows.
    pub fn apply_all(&self, x: &[Vec<f64>]) -> Vec<Vec<f64>> {
        x.iter().map(|r| self.apply(r)).collect()
    }
}

/// Cosine similarity; 0 when either vector is all zeros.
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if na < 1e-300 || nb < 1e-300 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// Solve `A x = b` (A square) by Gaussian elimination with partial pivoting.
/// Returns `None` when A is (numerically) singular.
pub fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    let scale = a
        .iter()
        .flat_map(|r| r.iter())
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(1e-300);
    for col in 0..n {
        let piv = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[piv][col].abs() < 1e-12 * scale {
            return None;
        }
        a.swap(col, piv);
        b.swap(col, piv);
        for r in col + 1..n {
            let f = a[r][col] / a[col][col];
            if f != 0.0 {
                for c in col..n {
                    a[r][c] -= f * a[col][c];
                }
                b[r] -= f * b[col];
            }
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|c| a[r][c] * x[c]).sum();
        x[r] = (b[r] - s) / a[r][r];
    }
    Some(x)
}

/// Ordinary least squares with intercept: returns `[b0, b1, …]` such that
/// `y ≈ b0 + Σ bi·xi`. A tiny ridge (1e-9 of the diagonal scale) keeps
/// collinear inputs solvable; `None` if still singular or no rows.
pub fn least_squares(x: &[Vec<f64>], y: &[f64]) -> Option<Vec<f64>> {
    if x.is_empty() || x.len() != y.len() {
        return None;
    }
    let d = x[0].len() + 1;
    let mut ata = vec![vec![0.0; d]; d];
    let mut aty = vec![0.0; d];
    let mut row = vec![0.0; d];
    for (r, &t) in x.iter().zip(y) {
        row[0] = 1.0;
        row[1..].copy_from_slice(r);
        for i in 0..d {
            aty[i] += row[i] * t;
            for j in 0..d {
                ata[i][j] += row[i] * row[j];
            }
        }
    }
    let diag = (0..d).map(|i| ata[i][i]).fold(0.0f64, f64::max);
    for (i, r) in ata.iter_mut().enumerate().skip(1) {
        r[i] += 1e-9 * diag.max(1.0);
    }
    solve(ata, aty)
}

/// Apply least-squares coefficients from [`least_squares`] to one input.
pub fn predict_linear(coef: &[f64], x: &[f64]) -> f64 {
    coef[0] + coef[1..].iter().zip(x).map(|(c, v)| c * v).sum::<f64>()
}

/// Root mean squared error.
pub fn rmse(pred: &[f64], truth: &[f64]) -> f64 {
    let n = pred.len().max(1) as f64;
    (pred
        .iter()
        .zip(truth)
        .map(|(p, t)| (p - t) * (p - t))
        .sum::<f64>()
        / n)
        .sqrt()
}

/// Principal components of standardised data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pca {
    /// Components (rows), ordered by decreasing variance.
    pub components: Vec<Vec<f64>>,
    /// Variance along each component.
    pub variance: Vec<f64>,
}

impl Pca {
    /// Fit `k` components on already-standardised (centred) rows.
    pub fn fit(z: &[Vec<f64>], k: usize) -> Pca {
        let d = z.first().map_or(0, Vec::len);
        let n = z.len().max(2) as f64;
        let mut cov = vec![vec![0.0; d]; d];
        for r in z {
            for i in 0..d {
                for j in i..d {
                    cov[i][j] += r[i] * r[j] / (n - 1.0);
                }
            }
        }
        for i in 0..d {
            for j in 0..i {
                cov[i][j] = cov[j][i];
            }
        }
        let (vals, vecs) = jacobi_eigen(cov);
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| vals[b].total_cmp(&vals[a]));
        let k = k.min(d);
        let components: Vec<Vec<f64>> = order[..k]
            .iter()
            .map(|&c| {
                let mut v: Vec<f64> = (0..d).map(|r| vecs[r][c]).collect();
                // Deterministic sign: largest-magnitude loading positive.
                let big = v
                    .iter()
                    .copied()
                    .max_by(|a, b| a.abs().total_cmp(&b.abs()))
                    .unwrap_or(1.0);
                if big < 0.0 {
                    v.iter_mut().for_each(|x| *x = -*x);
                }
                v
            })
            .collect();
        let variance = order[..k].iter().map(|&c| vals[c]).collect();
        Pca {
            components,
            variance,
        }
    }

    /// Project one standardised row onto the components.
    pub fn project(&self, z: &[f64]) -> Vec<f64> {
        self.components
            .iter()
            .map(|c| c.iter().zip(z).map(|(a, b)| a * b).sum())
            .collect()
    }
}

/// Eigen-decomposition of a symmetric matrix by cyclic Jacobi rotations.
/// Returns (eigenvalues, eigenvectors as columns).
pub fn jacobi_eigen(mut a: Vec<Vec<f64>>) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = a.len();
    let mut v = vec![vec![0.0; n]; n];
    for (i, r) in v.iter_mut().enumerate() {
        r[i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        if off < 1e-20 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                if a[p][q].abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let akp = a[k][p];
                    let akq = a[k][q];
                    a[k][p] = c * akp - s * akq;
                    a[k][q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let apk = a[p][k];
                    let aqk = a[q][k];
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for r in v.iter_mut() {
                    let vkp = r[p];
                    let vkq = r[q];
                    r[p] = c * vkp - s * vkq;
                    r[q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i][i]).collect(), v)
}

/// ROC AUC of scores against binary labels (Mann–Whitney U, ties count ½).
/// `None` when one class is absent.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let npos = labels.iter().filter(|&&l| l).count();
    let nneg = labels.len() - npos;
    if npos == 0 || nneg == 0 {
        return None;
    }
    // Average ranks over ties.
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] {
                rank_sum_pos += avg_rank;
            }
        }
        i = j + 1;
    }
    let u = rank_sum_pos - (npos * (npos + 1)) as f64 / 2.0;
    Some(u / (npos as f64 * nneg as f64))
}

/// Average precision (area under the precision–recall curve, step-wise, as
/// scikit-learn's `average_precision_score`; tied scores form one threshold).
/// `None` when there is no positive.
pub fn average_precision(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let npos = labels.iter().filter(|&&l| l).count();
    if npos == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut prev_recall = 0.0;
    let mut ap = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        for &k in &idx[i..=j] {
            if labels[k] {
                tp += 1;
            } else {
                fp += 1;
            }
        }
        let recall = tp as f64 / npos as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
        i = j + 1;
    }
    Some(ap)
}

/// The q-quantile (0..=1) of a sample, by linear interpolation.
pub fn quantile(v: &[f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (s.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    Some(s[lo] + (s[hi] - s[lo]) * (pos - lo as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_squares_recovers_plane() {
        let x: Vec<Vec<f64>> = (0..50)
            .map(|i| vec![i as f64, ((i * 7) % 11) as f64])
            .collect();
        let y: Vec<f64> = x.iter().map(|r| 3.0 + 2.0 * r[0] - 0.5 * r[1]).collect();
        let c = least_squares(&x, &y).unwrap();
        assert!(
            (c[0] - 3.0).abs() < 1e-6 && (c[1] - 2.0).abs() < 1e-6 && (c[2] + 0.5).abs() < 1e-6
        );
        let p: Vec<f64> = x.iter().map(|r| predict_linear(&c, r)).collect();
        assert!(rmse(&p, &y) < 1e-6);
    }

    #[test]
    fn pca_finds_dominant_direction() {
        // Points along (1,1) with small noise along (1,-1).
        let z: Vec<Vec<f64>> = (0..100)
            .map(|i| {
                let t = i as f64 - 49.5;
                let e = if i % 2 == 0 { 0.1 } else { -0.1 };
                vec![t + e, t - e]
            })
            .collect();
        let p = Pca::fit(&z, 2);
        let c = &p.components[0];
        assert!((c[0] - c[1]).abs() < 1e-3 && c[0] > 0.7, "{p:?}");
        assert!(p.variance[0] > 100.0 * p.variance[1]);
    }

    #[test]
    fn auc_and_ap_known_values() {
        let s = [0.1, 0.4, 0.35, 0.8];
        let l = [false, false, true, true];
        assert!((roc_auc(&s, &l).unwrap() - 0.75).abs() < 1e-12);
        // sklearn average_precision_score gives 0.8333…
        assert!((average_precision(&s, &l).unwrap() - 0.833_333_333).abs() < 1e-6);
        assert_eq!(roc_auc(&s, &[true; 4]), None);
        let perfect = [0.0, 0.1, 0.9, 1.0];
        assert_eq!(roc_auc(&perfect, &l), Some(1.0));
        assert_eq!(average_precision(&perfect, &l), Some(1.0));
        // All-tied scores give AUC ½.
        assert_eq!(roc_auc(&[0.5; 4], &l), Some(0.5));
    }

    #[test]
    fn cosine_and_standardizer() {
        assert!((cosine(&[1.0, 0.0], &[0.0, 1.0])).abs() < 1e-12);
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-12);
        let s = Standardizer::fit(&[vec![1.0, 5.0], vec![3.0, 5.0]]);
        assert_eq!(s.apply(&[3.0, 5.0]), vec![1.0, 0.0]);
    }
}
