//! NF state and traffic from CPU behaviour (after "Inference of virtual
//! network functions' state via analysis of the CPU behavior"):
//!
//! - [`CentroidClassifier`]: traffic-scenario classification by cosine
//!   similarity of a standardised measurement to per-scenario mean vectors,
//!   with the *estimation distance* (best minus second-best similarity).
//! - [`OnOff`]: ON/OFF (traffic vs idle polling) — the paper's naive
//!   branch-miss rule ([`NaiveOnOff`], "OFF when within one standard
//!   deviation of the minimum") as the baseline, and our detector: the
//!   centroid classifier over all scenarios, reporting OFF when the best
//!   scenario is the idle one.
//! - [`PcaRegime`]: regime detection (the paper's packet-loss case) in the
//!   plane of the first two principal components of standardised features:
//!   a point is in the regime when it lies within a radius of the regime's
//!   training centroid; the radius is fitted on training data.
//!
//! Every model records the metric names it uses, so its tier is known.

use crate::dataset::Dataset;
use crate::error::{NfmonError, Result};
use crate::stats::{cosine, quantile, Pca, Standardizer};
use serde::{Deserialize, Serialize};

/// Per-class mean vectors in standardised feature space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CentroidClassifier {
    /// Feature names (schema metric names).
    pub features: Vec<String>,
    /// Standardiser fitted on the training rows.
    pub standardizer: Standardizer,
    /// Class names.
    pub classes: Vec<String>,
    /// Mean standardised vector per class.
    pub centroids: Vec<Vec<f64>>,
}

/// One classification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Index of the best class.
    pub class: usize,
    /// Cosine similarity to the best class centroid.
    pub similarity: f64,
    /// Estimation distance: best similarity minus second best (≥ 0).
    pub margin: f64,
}

impl CentroidClassifier {
    /// Fit on rows `x` with class indices `y` (0..classes.len()).
    pub fn fit(
        features: Vec<String>,
        classes: Vec<String>,
        x: &[Vec<f64>],
        y: &[usize],
    ) -> Result<Self> {
        if x.is_empty() {
            return Err(NfmonError::Data("no training rows".into()));
        }
        let standardizer = Standardizer::fit(x);
        let d = features.len();
        let mut sums = vec![vec![0.0; d]; classes.len()];
        let mut counts = vec![0usize; classes.len()];
        for (r, &c) in x.iter().zip(y) {
            let z = standardizer.apply(r);
            for (s, v) in sums[c].iter_mut().zip(&z) {
                *s += v;
            }
            counts[c] += 1;
        }
        for (c, n) in counts.iter().enumerate() {
            if *n == 0 {
                return Err(NfmonError::Data(format!(
                    "class {} has no training rows",
                    classes[c]
                )));
            }
        }
        let centroids = sums
            .into_iter()
            .zip(&counts)
            .map(|(s, &n)| s.into_iter().map(|v| v / n as f64).collect())
            .collect();
        Ok(CentroidClassifier {
            features,
            standardizer,
            classes,
            centroids,
        })
    }

    /// Classify one raw feature vector.
    pub fn predict(&self, x: &[f64]) -> Prediction {
        let z = self.standardizer.apply(x);
        let mut sims: Vec<(usize, f64)> = self
            .centroids
            .iter()
            .enumerate()
            .map(|(i, c)| (i, cosine(&z, c)))
            .collect();
        sims.sort_by(|a, b| b.1.total_cmp(&a.1));
        let margin = if sims.len() > 1 {
            sims[0].1 - sims[1].1
        } else {
            0.0
        };
        Prediction {
            class: sims[0].0,
            similarity: sims[0].1,
            margin,
        }
    }
}

/// Accuracy, confusion matrix and estimation-distance summary of a
/// classification evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassEval {
    /// Class names (rows = truth, columns = prediction).
    pub classes: Vec<String>,
    /// `confusion[truth][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    /// Fraction correct.
    pub accuracy: f64,
    /// Number of test rows.
    pub n_test: usize,
    /// Estimation distance quantiles (p10, p50, p90) over test rows.
    pub margin_p10_p50_p90: [f64; 3],
    /// Share of test rows whose estimation distance exceeds 0.1.
    pub margin_gt_0_1: f64,
}

impl ClassEval {
    fn from_pairs(classes: Vec<String>, pairs: &[(usize, Prediction)]) -> ClassEval {
        let k = classes.len();
        let mut confusion = vec![vec![0; k]; k];
        let mut margins = Vec::with_capacity(pairs.len());
        for (t, p) in pairs {
            confusion[*t][p.class] += 1;
            margins.push(p.margin);
        }
        let correct: usize = (0..k).map(|i| confusion[i][i]).sum();
        let n = pairs.len();
        ClassEval {
            classes,
            confusion,
            accuracy: correct as f64 / n.max(1) as f64,
            n_test: n,
            margin_p10_p50_p90: [
                quantile(&margins, 0.1).unwrap_or(f64::NAN),
                quantile(&margins, 0.5).unwrap_or(f64::NAN),
                quantile(&margins, 0.9).unwrap_or(f64::NAN),
            ],
            margin_gt_0_1: margins.iter().filter(|&&m| m > 0.1).count() as f64 / n.max(1) as f64,
        }
    }

    /// A plain-text confusion matrix.
    pub fn confusion_table(&self) -> String {
        let w = self
            .classes
            .iter()
            .map(|c| c.len())
            .max()
            .unwrap_or(4)
            .max(6);
        let mut s = format!("{:>w$} |", "truth\\pred");
        for c in &self.classes {
            s += &format!(" {c:>w$}");
        }
        s.push('\n');
        for (i, row) in self.confusion.iter().enumerate() {
            s += &format!("{:>w$} |", self.classes[i]);
            for v in row {
                s += &format!(" {v:>w$}");
            }
            s.push('\n');
        }
        s
    }
}

/// Cross-validate the centroid classifier over `k` time blocks (see
/// [`Dataset::block_fold`]); the predictions of every fold are pooled.
pub fn eval_centroid(ds: &Dataset, k: usize, guard: usize) -> Result<ClassEval> {
    ds.check_folds(k)?;
    let cols: Vec<usize> = (0..ds.features.len()).collect();
    let mut pairs = Vec::new();
    for b in 0..k {
        let (tr, te) = ds.block_fold(k, b, guard);
        let xtr = ds.take(&tr, &cols);
        let ytr: Vec<usize> = tr.iter().map(|&i| ds.class[i]).collect();
        let m = CentroidClassifier::fit(ds.features.clone(), ds.class_names.clone(), &xtr, &ytr)?;
        for &i in &te {
            pairs.push((ds.class[i], m.predict(&ds.x[i])));
        }
    }
    Ok(ClassEval::from_pairs(ds.class_names.clone(), &pairs))
}

/// The paper's naive ON/OFF rule on one feature (branch misses): OFF when
/// the value is within one standard deviation of the training minimum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NaiveOnOff {
    /// The feature used.
    pub feature: String,
    /// Training minimum.
    pub min: f64,
    /// Training standard deviation (of all training rows).
    pub std: f64,
}

impl NaiveOnOff {
    /// Fit on the training values of the feature.
    pub fn fit(feature: String, v: &[f64]) -> NaiveOnOff {
        let n = v.len().max(1) as f64;
        let mean = v.iter().sum::<f64>() / n;
        let std = (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt();
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        NaiveOnOff { feature, min, std }
    }

    /// `true` = ON.
    pub fn is_on(&self, v: f64) -> bool {
        v > self.min + self.std
    }
}

/// Our ON/OFF detector: centroid classification over all training scenarios,
/// OFF when the best scenario is the idle one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnOff {
    /// The scenario classifier.
    pub classifier: CentroidClassifier,
    /// Index of the idle (OFF) class.
    pub off_class: usize,
}

impl OnOff {
    /// `(is_on, estimation distance)` of one raw feature vector.
    pub fn is_on(&self, x: &[f64]) -> (bool, f64) {
        let p = self.classifier.predict(x);
        (p.class != self.off_class, p.margin)
    }
}

/// Binary accuracy and confusion of an ON/OFF evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnOffEval {
    /// Accuracy of our detector.
    pub accuracy: f64,
    /// Accuracy of the paper's naive branch-miss rule on the same split.
    pub naive_accuracy: Option<f64>,
    /// [[OFF→OFF, OFF→ON], [ON→OFF, ON→ON]] of our detector.
    pub confusion: [[usize; 2]; 2],
    /// Number of test rows.
    pub n_test: usize,
}

/// Cross-validate ON/OFF over `k` time blocks: class `off_class` is OFF,
/// every other class ON. `naive_feature`: the feature of the naive rule.
pub fn eval_onoff(
    ds: &Dataset,
    off_class: usize,
    naive_feature: Option<&str>,
    k: usize,
    guard: usize,
) -> Result<OnOffEval> {
    ds.check_folds(k)?;
    let cols: Vec<usize> = (0..ds.features.len()).collect();
    let naive_col = naive_feature.and_then(|f| ds.features.iter().position(|x| x == f));
    let mut conf = [[0usize; 2]; 2];
    let mut naive_ok = 0usize;
    let mut n = 0usize;
    for b in 0..k {
        let (tr, te) = ds.block_fold(k, b, guard);
        let xtr = ds.take(&tr, &cols);
        let ytr: Vec<usize> = tr.iter().map(|&i| ds.class[i]).collect();
        let m = OnOff {
            classifier: CentroidClassifier::fit(
                ds.features.clone(),
                ds.class_names.clone(),
                &xtr,
                &ytr,
            )?,
            off_class,
        };
        let naive = naive_col.map(|c| {
            let v: Vec<f64> = tr.iter().map(|&i| ds.x[i][c]).collect();
            (c, NaiveOnOff::fit(ds.features[c].clone(), &v))
        });
        for &i in &te {
            let truth_on = ds.class[i] != off_class;
            let (on, _) = m.is_on(&ds.x[i]);
            conf[truth_on as usize][on as usize] += 1;
            if let Some((c, nv)) = &naive {
                if nv.is_on(ds.x[i][*c]) == truth_on {
                    naive_ok += 1;
                }
            }
            n += 1;
        }
    }
    Ok(OnOffEval {
        accuracy: (conf[0][0] + conf[1][1]) as f64 / n.max(1) as f64,
        naive_accuracy: naive_col.map(|_| naive_ok as f64 / n.max(1) as f64),
        confusion: conf,
        n_test: n,
    })
}

/// Regime detection in the first two principal components.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PcaRegime {
    /// Feature names.
    pub features: Vec<String>,
    /// Standardiser fitted on training rows.
    pub standardizer: Standardizer,
    /// Two principal components.
    pub pca: Pca,
    /// Centroid of the regime's training points in PC space.
    pub center: [f64; 2],
    /// Radius: inside ⇒ in the regime.
    pub radius: f64,
    /// Share of total variance carried by the two components.
    pub explained: f64,
}

impl PcaRegime {
    /// Fit on rows `x` with `in_regime` flags; the radius maximises training
    /// accuracy over the candidate radii (distances of training points).
    pub fn fit(features: Vec<String>, x: &[Vec<f64>], in_regime: &[bool]) -> Result<Self> {
        if !in_regime.iter().any(|&b| b) || in_regime.iter().all(|&b| b) {
            return Err(NfmonError::Data(
                "PCA regime needs training rows both in and out of the regime".into(),
            ));
        }
        let standardizer = Standardizer::fit(x);
        let z = standardizer.apply_all(x);
        let total_var: f64 = features.len() as f64;
        let pca = Pca::fit(&z, 2);
        let pts: Vec<[f64; 2]> = z
            .iter()
            .map(|r| {
                let p = pca.project(r);
                [p[0], p.get(1).copied().unwrap_or(0.0)]
            })
            .collect();
        let (mut cx, mut cy, mut n) = (0.0, 0.0, 0.0);
        for (p, &b) in pts.iter().zip(in_regime) {
            if b {
                cx += p[0];
                cy += p[1];
                n += 1.0;
            }
        }
        let center = [cx / n, cy / n];
        let mut d: Vec<(f64, bool)> = pts
            .iter()
            .zip(in_regime)
            .map(|(p, &b)| {
                (
                    ((p[0] - center[0]).powi(2) + (p[1] - center[1]).powi(2)).sqrt(),
                    b,
                )
            })
            .collect();
        d.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Sweep radius over sorted distances: inside = first i points.
        let total_out = d.iter().filter(|x| !x.1).count();
        let (mut best_ok, mut best_r) = (total_out, 0.0);
        let mut in_inside = 0usize;
        let mut out_inside = 0usize;
        for (i, (dist, b)) in d.iter().enumerate() {
            if *b {
                in_inside += 1;
            } else {
                out_inside += 1;
            }
            let ok = in_inside + (total_out - out_inside);
            if ok > best_ok {
                best_ok = ok;
                let next = d.get(i + 1).map_or(*dist, |x| x.0);
                best_r = (dist + next) / 2.0;
            }
        }
        let explained = pca.variance.iter().sum::<f64>() / total_var.max(1.0);
        Ok(PcaRegime {
            features,
            standardizer,
            pca,
            center,
            radius: best_r,
            explained,
        })
    }

    /// PC coordinates of a raw feature vector.
    pub fn coords(&self, x: &[f64]) -> [f64; 2] {
        let p = self.pca.project(&self.standardizer.apply(x));
        [p[0], p.get(1).copied().unwrap_or(0.0)]
    }

    /// Whether a raw feature vector lies in the regime.
    pub fn in_regime(&self, x: &[f64]) -> bool {
        let p = self.coords(x);
        ((p[0] - self.center[0]).powi(2) + (p[1] - self.center[1]).powi(2)).sqrt() <= self.radius
    }
}

/// Binary detection result of a regime evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegimeEval {
    /// Accuracy on held-out blocks.
    pub accuracy: f64,
    /// Recall of the regime (in-regime rows detected).
    pub recall: f64,
    /// Precision of the regime detections.
    pub precision: f64,
    /// Mean explained variance share of PC1+PC2 over folds.
    pub explained: f64,
    /// Number of test rows.
    pub n_test: usize,
}

/// Cross-validate [`PcaRegime`] over `k` time blocks; rows whose class is in
/// `regime_classes` are in the regime.
pub fn eval_pca_regime(
    ds: &Dataset,
    regime_classes: &[usize],
    k: usize,
    guard: usize,
) -> Result<RegimeEval> {
    ds.check_folds(k)?;
    let cols: Vec<usize> = (0..ds.features.len()).collect();
    let (mut tp, mut fp, mut tn, mut fne) = (0usize, 0usize, 0usize, 0usize);
    let mut expl = 0.0;
    for b in 0..k {
        let (tr, te) = ds.block_fold(k, b, guard);
        let xtr = ds.take(&tr, &cols);
        let ytr: Vec<bool> = tr
            .iter()
            .map(|&i| regime_classes.contains(&ds.class[i]))
            .collect();
        let m = PcaRegime::fit(ds.features.clone(), &xtr, &ytr)?;
        expl += m.explained / k as f64;
        for &i in &te {
            let truth = regime_classes.contains(&ds.class[i]);
            match (truth, m.in_regime(&ds.x[i])) {
                (true, true) => tp += 1,
                (false, true) => fp += 1,
                (false, false) => tn += 1,
                (true, false) => fne += 1,
            }
        }
    }
    let n = tp + fp + tn + fne;
    Ok(RegimeEval {
        accuracy: (tp + tn) as f64 / n.max(1) as f64,
        recall: tp as f64 / (tp + fne).max(1) as f64,
        precision: tp as f64 / (tp + fp).max(1) as f64,
        explained: expl,
        n_test: n,
    })
}
