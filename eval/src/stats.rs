//! Accuracy figures from per-victim ranks: rank-1 / ≤2 / ≤5 shares per
//! fault kind and overall, the rank CDF (paper Fig. 11/12), and the mean and
//! minimum over seeds.

use crate::matching::Kind;
use serde::{Deserialize, Serialize};

/// The rank of the injected culprit for one victim, per method.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankRecord {
    pub kind: Kind,
    /// `None`: the method did not name the culprit at all (counts as a miss
    /// at every rank threshold).
    pub rank: Option<usize>,
    /// Bugs only: rank of the NF+flows match.
    pub strict_rank: Option<usize>,
    /// Bursts only: rank of the first source culprit whatever its flows
    /// (the location-only reading of the paper's figure).
    #[serde(default)]
    pub source_rank: Option<usize>,
}

/// Shares of victims whose culprit ranked first, in the top 2, in the top 5.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    pub victims: usize,
    pub rank1: f64,
    pub rank2: f64,
    pub rank5: f64,
}

impl Accuracy {
    /// From a list of ranks (None = never named).
    pub fn from_ranks(ranks: impl IntoIterator<Item = Option<usize>>) -> Accuracy {
        let (mut n, mut r1, mut r2, mut r5) = (0usize, 0usize, 0usize, 0usize);
        for r in ranks {
            n += 1;
            if let Some(r) = r {
                r1 += (r <= 1) as usize;
                r2 += (r <= 2) as usize;
                r5 += (r <= 5) as usize;
            }
        }
        let share = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
        Accuracy {
            victims: n,
            rank1: share(r1),
            rank2: share(r2),
            rank5: share(r5),
        }
    }
}

/// One method's figures: overall, per kind, and the bugs' NF+flows rank.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MethodAccuracy {
    pub overall: Accuracy,
    pub burst: Accuracy,
    pub interrupt: Accuracy,
    pub bug: Accuracy,
    /// Bugs ranked as the NF *with* the bug flows (the paper's NF-flow pair).
    pub bug_flows: Accuracy,
    /// Bursts ranked as "a source culprit", flows not checked.
    pub burst_source: Accuracy,
}

impl MethodAccuracy {
    pub fn from_records(recs: &[RankRecord]) -> MethodAccuracy {
        let of =
            |k: Kind| Accuracy::from_ranks(recs.iter().filter(|r| r.kind == k).map(|r| r.rank));
        MethodAccuracy {
            overall: Accuracy::from_ranks(recs.iter().map(|r| r.rank)),
            burst: of(Kind::Burst),
            interrupt: of(Kind::Interrupt),
            bug: of(Kind::Bug),
            bug_flows: Accuracy::from_ranks(
                recs.iter()
                    .filter(|r| r.kind == Kind::Bug)
                    .map(|r| r.strict_rank),
            ),
            burst_source: Accuracy::from_ranks(
                recs.iter()
                    .filter(|r| r.kind == Kind::Burst)
                    .map(|r| r.source_rank),
            ),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Accuracy> {
        match key {
            "overall" => Some(&self.overall),
            "burst" => Some(&self.burst),
            "interrupt" => Some(&self.interrupt),
            "bug" => Some(&self.bug),
            "bug_flows" => Some(&self.bug_flows),
            "burst_source" => Some(&self.burst_source),
            _ => None,
        }
    }

    pub const KEYS: [&'static str; 6] = [
        "overall",
        "burst",
        "interrupt",
        "bug",
        "bug_flows",
        "burst_source",
    ];
}

/// The rank CDF: for k = 1..=max_k the share of victims with rank ≤ k.
pub fn rank_cdf(ranks: &[Option<usize>], max_k: usize) -> Vec<f64> {
    let n = ranks.len();
    (1..=max_k)
        .map(|k| {
            if n == 0 {
                0.0
            } else {
                ranks.iter().filter(|r| r.is_some_and(|r| r <= k)).count() as f64 / n as f64
            }
        })
        .collect()
}

/// The rank at each victim percentile (Fig. 11's curve: x% of victims have
/// rank ≤ y). `None` where the culprit was not named.
pub fn rank_at_percentiles(ranks: &[Option<usize>], pcts: &[f64]) -> Vec<Option<usize>> {
    let mut sorted: Vec<usize> = ranks.iter().map(|r| r.unwrap_or(usize::MAX)).collect();
    sorted.sort_unstable();
    pcts.iter()
        .map(|p| {
            if sorted.is_empty() {
                return None;
            }
            let idx = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
            let v = sorted[idx.clamp(1, sorted.len()) - 1];
            (v != usize::MAX).then_some(v)
        })
        .collect()
}

/// Mean and minimum of one figure over seeds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MeanMin {
    pub mean: f64,
    pub min: f64,
}

/// Mean and minimum over seeds of every share, per key; seeds with no
/// victim of a kind are left out of that kind's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeedSummary {
    pub key: String,
    pub seeds: usize,
    pub victims_total: usize,
    pub rank1: MeanMin,
    pub rank2: MeanMin,
    pub rank5: MeanMin,
}

pub fn summarize_seeds(per_seed: &[MethodAccuracy]) -> Vec<SeedSummary> {
    MethodAccuracy::KEYS
        .iter()
        .map(|key| {
            let accs: Vec<&Accuracy> = per_seed
                .iter()
                .filter_map(|m| m.get(key))
                .filter(|a| a.victims > 0)
                .collect();
            let mm = |f: fn(&Accuracy) -> f64| {
                if accs.is_empty() {
                    return MeanMin::default();
                }
                let vals: Vec<f64> = accs.iter().map(|a| f(a)).collect();
                MeanMin {
                    mean: vals.iter().sum::<f64>() / vals.len() as f64,
                    min: vals.iter().copied().fold(f64::INFINITY, f64::min),
                }
            };
            SeedSummary {
                key: key.to_string(),
                seeds: accs.len(),
                victims_total: accs.iter().map(|a| a.victims).sum(),
                rank1: mm(|a| a.rank1),
                rank2: mm(|a| a.rank2),
                rank5: mm(|a| a.rank5),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: Kind, rank: Option<usize>) -> RankRecord {
        RankRecord {
            kind,
            rank,
            strict_rank: rank.map(|r| r + 1),
            source_rank: None,
        }
    }

    #[test]
    fn shares_count_misses_as_failures() {
        let a = Accuracy::from_ranks([Some(1), Some(2), Some(3), None]);
        assert_eq!(a.victims, 4);
        assert_eq!(a.rank1, 0.25);
        assert_eq!(a.rank2, 0.5);
        assert_eq!(a.rank5, 0.75);
        assert_eq!(Accuracy::from_ranks([]), Accuracy::default());
    }

    #[test]
    fn per_kind_and_strict_figures() {
        let recs = vec![
            rec(Kind::Burst, Some(1)),
            rec(Kind::Bug, Some(1)),
            rec(Kind::Bug, Some(2)),
            rec(Kind::Interrupt, None),
        ];
        let m = MethodAccuracy::from_records(&recs);
        assert_eq!(m.overall.victims, 4);
        assert_eq!(m.overall.rank1, 0.5);
        assert_eq!(m.burst.rank1, 1.0);
        assert_eq!(m.interrupt.rank5, 0.0);
        assert_eq!(m.bug.rank1, 0.5);
        assert_eq!(m.bug_flows.rank1, 0.0);
        assert_eq!(m.bug_flows.rank2, 0.5);
    }

    #[test]
    fn cdf_and_percentiles() {
        let r = [Some(1), Some(1), Some(3), None];
        assert_eq!(rank_cdf(&r, 3), vec![0.5, 0.5, 0.75]);
        assert_eq!(
            rank_at_percentiles(&r, &[50.0, 75.0, 100.0]),
            vec![Some(1), Some(3), None]
        );
    }

    #[test]
    fn seed_summary_mean_and_min() {
        let a =
            MethodAccuracy::from_records(&[rec(Kind::Burst, Some(1)), rec(Kind::Burst, Some(3))]);
        let b = MethodAccuracy::from_records(&[rec(Kind::Burst, Some(1))]);
        let s = summarize_seeds(&[a, b]);
        let burst = s.iter().find(|s| s.key == "burst").unwrap();
        assert_eq!(burst.seeds, 2);
        assert_eq!(burst.rank1.mean, 0.75);
        assert_eq!(burst.rank1.min, 0.5);
        let intr = s.iter().find(|s| s.key == "interrupt").unwrap();
        assert_eq!(intr.seeds, 0);
    }
}
