//! Utilization estimators from 1, 2 or 3 CPU events (after "A Black-Box
//! Approach for Estimating Utilization of Polled IO Network Functions").
//!
//! An estimator is ordinary least squares with intercept on standardised
//! event rates. The search is exhaustive over every subset of 1 and 2
//! events and samples subsets of 3 (deterministic ChaCha seed); each subset
//! is scored by k-fold cross-validated RMSE with **time-block folds** (see
//! [`crate::dataset`]). The label is whatever the dataset's `target` holds;
//! its definition travels with every result (`label`).
//!
//! - *local*: search and score within one NF / profile;
//! - *universal*: pooled over profiles, scored by CV on the pool and by
//!   leave-one-profile-out (select on the others, test on the held-out one).

use crate::dataset::Dataset;
use crate::error::{NfmonError, Result};
use crate::schema::{tiers_label, tiers_of};
use crate::stats::{least_squares, predict_linear, rmse, Standardizer};
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A fitted linear utilization estimator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearEstimator {
    /// Event (metric) names used.
    pub features: Vec<String>,
    /// Standardiser of those features.
    pub standardizer: Standardizer,
    /// `[intercept, coef…]` on standardised inputs.
    pub coef: Vec<f64>,
    /// What the output means (the training label's definition).
    pub label: String,
}

impl LinearEstimator {
    /// Fit on the given rows (columns already selected).
    pub fn fit(features: Vec<String>, x: &[Vec<f64>], y: &[f64], label: &str) -> Result<Self> {
        let standardizer = Standardizer::fit(x);
        let z = standardizer.apply_all(x);
        let coef = least_squares(&z, y)
            .ok_or_else(|| NfmonError::Data("least squares: singular system".into()))?;
        Ok(LinearEstimator {
            features,
            standardizer,
            coef,
            label: label.into(),
        })
    }

    /// Estimate from raw feature values (same order as `features`).
    pub fn predict(&self, x: &[f64]) -> f64 {
        predict_linear(&self.coef, &self.standardizer.apply(x))
    }
}

/// Cross-validated score of one event subset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubsetScore {
    /// The events.
    pub features: Vec<String>,
    /// Mean RMSE over the folds (label units).
    pub rmse: f64,
}

/// Result of a search for one subset size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResult {
    /// Subset size (1, 2 or 3).
    pub size: usize,
    /// Number of subsets evaluated.
    pub evaluated: usize,
    /// Number of subsets that exist.
    pub possible: usize,
    /// Best subset.
    pub best: SubsetScore,
    /// Median RMSE over evaluated subsets.
    pub median_rmse: f64,
    /// Feature tiers in use (`hardware+software` …).
    pub tiers: String,
}

/// k-fold time-block CV RMSE of a linear estimator on columns `cols`.
pub fn cv_rmse(ds: &Dataset, cols: &[usize], k: usize, guard: usize) -> Option<f64> {
    let mut total = 0.0;
    for b in 0..k {
        let (tr, te) = ds.block_fold(k, b, guard);
        let xtr = ds.take(&tr, cols);
        let ytr: Vec<f64> = tr.iter().map(|&i| ds.target[i]).collect();
        let st = Standardizer::fit(&xtr);
        let coef = least_squares(&st.apply_all(&xtr), &ytr)?;
        let pred: Vec<f64> = te
            .iter()
            .map(|&i| {
                let x: Vec<f64> = cols.iter().map(|&c| ds.x[i][c]).collect();
                predict_linear(&coef, &st.apply(&x))
            })
            .collect();
        let truth: Vec<f64> = te.iter().map(|&i| ds.target[i]).collect();
        total += rmse(&pred, &truth);
    }
    Some(total / k as f64)
}

fn binom(n: usize, k: usize) -> usize {
    (0..k).fold(1usize, |acc, i| acc * (n - i) / (i + 1))
}

/// The subsets searched for `size`: all of them for 1 and 2; for 3,
/// `sample3` subsets drawn uniformly without replacement (seed `seed`), or
/// all if there are fewer.
pub fn subsets(d: usize, size: usize, sample3: usize, seed: u64) -> Vec<Vec<usize>> {
    match size {
        1 => (0..d).map(|i| vec![i]).collect(),
        2 => (0..d)
            .flat_map(|i| (i + 1..d).map(move |j| vec![i, j]))
            .collect(),
        _ => {
            let all: Vec<Vec<usize>> = (0..d)
                .flat_map(|i| (i + 1..d).flat_map(move |j| (j + 1..d).map(move |k| vec![i, j, k])))
                .collect();
            if all.len() <= sample3 {
                return all;
            }
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut idx = sample(&mut rng, all.len(), sample3).into_vec();
            idx.sort_unstable();
            idx.into_iter().map(|i| all[i].clone()).collect()
        }
    }
}

/// Search subsets of `size` events by k-fold time-block CV RMSE.
pub fn search(
    ds: &Dataset,
    size: usize,
    k: usize,
    guard: usize,
    sample3: usize,
    seed: u64,
) -> Result<SearchResult> {
    ds.check_folds(k)?;
    let d = ds.features.len();
    if d < size {
        return Err(NfmonError::Data(format!(
            "{d} features, cannot pick {size}"
        )));
    }
    let mut scores: Vec<SubsetScore> = subsets(d, size, sample3, seed)
        .into_iter()
        .filter_map(|s| {
            cv_rmse(ds, &s, k, guard).map(|r| SubsetScore {
                features: s.iter().map(|&c| ds.features[c].clone()).collect(),
                rmse: r,
            })
        })
        .filter(|s| s.rmse.is_finite())
        .collect();
    if scores.is_empty() {
        return Err(NfmonError::Data("no subset could be fitted".into()));
    }
    scores.sort_by(|a, b| a.rmse.total_cmp(&b.rmse));
    let median_rmse = scores[scores.len() / 2].rmse;
    let best = scores[0].clone();
    Ok(SearchResult {
        size,
        evaluated: scores.len(),
        possible: binom(d, size),
        tiers: tiers_label(&tiers_of(&best.features)),
        best,
        median_rmse,
    })
}

/// Held-out RMSE of the best subset selected on `train` and refitted there,
/// applied to `test` (leave-one-profile-out). Both datasets must carry the
/// selected features.
pub fn transfer_rmse(best: &[String], train: &Dataset, test: &Dataset, label: &str) -> Result<f64> {
    let ctr = train.columns(best)?;
    let cte = test.columns(best)?;
    let all: Vec<usize> = (0..train.len()).collect();
    let m = LinearEstimator::fit(best.to_vec(), &train.take(&all, &ctr), &train.target, label)?;
    let pred: Vec<f64> = test
        .x
        .iter()
        .map(|r| m.predict(&cte.iter().map(|&c| r[c]).collect::<Vec<_>>()))
        .collect();
    Ok(rmse(&pred, &test.target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Series;
    use crate::schema::Row;

    #[test]
    fn subset_counts() {
        assert_eq!(subsets(5, 1, 0, 1).len(), 5);
        assert_eq!(subsets(5, 2, 0, 1).len(), 10);
        assert_eq!(subsets(5, 3, 100, 1).len(), 10);
        let s = subsets(10, 3, 7, 42);
        assert_eq!(s.len(), 7);
        assert_eq!(s, subsets(10, 3, 7, 42), "deterministic sampling");
        assert_eq!(binom(39, 3), 9139);
    }

    #[test]
    fn search_finds_informative_event() {
        // Target = 10·load; hw.good tracks load, hw.noise does not.
        let mut series = Vec::new();
        for (li, load) in [10.0, 40.0, 70.0, 100.0].iter().enumerate() {
            let rows = (0..60)
                .map(|i| {
                    let mut r = Row::new("s", i as f64, Some(1.0));
                    let wobble = ((i * 7 + li * 3) % 5) as f64 - 2.0;
                    r.set("hw.good", Some(load * 3.0 + wobble));
                    r.set("hw.noise", Some(((i * 13 + li) % 17) as f64));
                    r
                })
                .collect();
            series.push(Series {
                name: format!("l{li}"),
                class: format!("l{li}"),
                target: *load,
                rows,
            });
        }
        let ds = Dataset::build(&series, None, &|_| true).unwrap();
        let r = search(&ds, 1, 3, 1, 0, 1).unwrap();
        assert_eq!(r.best.features, vec!["hw.good".to_string()]);
        assert!(r.best.rmse < 1.0, "{}", r.best.rmse);
        assert_eq!(r.tiers, "hardware");
        let r2 = search(&ds, 2, 3, 1, 0, 1).unwrap();
        assert!(r2.best.rmse < 1.0, "{}", r2.best.rmse);
        assert!(r2.best.features.contains(&"hw.good".to_string()));
    }
}
