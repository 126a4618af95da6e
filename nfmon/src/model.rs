//! Saved models: one JSON document per model, the format
//! `microscope-nfmon-model/1`:
//!
//! ```json
//! {
//!   "format": "microscope-nfmon-model/1",
//!   "nf": "vpp",                       // which NF it was trained for, if any
//!   "tiers": "hardware",               // tiers of its features
//!   "features": ["hw.branch-misses", …],// schema metric names, input order
//!   "label": "…",                      // what the output means / how labels were made
//!   "trained_on": "…",                 // data description
//!   "baseline_window": 40,             // optional: inputs `<metric>~dev` need the last 40 rows
//!   "smooth_window": 2,                // optional: inputs `<metric>~avg` = mean of the last 2 rows
//!   "model": { "kind": "utilization" | "classifier" | "onoff" | "regime" | "anomaly", … }
//! }
//! ```
//!
//! `model` holds the fitted parameters of the estimator (standardiser means
//! and deviations, coefficients, centroids, PCA components, forest nodes).
//! [`ModelFile::apply`] evaluates a model on one schema [`Row`]; a row with a
//! missing input gives no output (`None`), never a guess from a zero.

use crate::error::{NfmonError, Result};
use crate::forest::Forest;
use crate::schema::{tiers_label, tiers_of, Row};
use crate::state::{CentroidClassifier, OnOff, PcaRegime};
use crate::utilization::LinearEstimator;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The format tag of model files.
pub const MODEL_FORMAT: &str = "microscope-nfmon-model/1";

/// A Random-Forest anomaly detector over schema metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyModel {
    /// Class names; class 0 is `normal`.
    pub classes: Vec<String>,
    /// The forest (multi-class over `classes`).
    pub forest: Forest,
}

/// The estimator inside a model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelBody {
    /// Least-squares utilization estimator.
    Utilization(LinearEstimator),
    /// Scenario / load-level classifier.
    Classifier(CentroidClassifier),
    /// ON/OFF detector.
    #[serde(rename = "onoff")]
    OnOff(OnOff),
    /// PCA regime detector.
    Regime(PcaRegime),
    /// Random-Forest anomaly detector.
    Anomaly(AnomalyModel),
}

/// A model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    /// Always [`MODEL_FORMAT`].
    pub format: String,
    /// NF the model is for.
    pub nf: Option<String>,
    /// Feature tiers.
    pub tiers: String,
    /// Input metric names, in order.
    pub features: Vec<String>,
    /// Output / label definition.
    pub label: String,
    /// Training data description.
    pub trained_on: String,
    /// When set, the model's `<metric>~dev` inputs are deviations from the
    /// median of the previous N rows of the same source
    /// ([`crate::train::add_deviation_features`]); apply the same transform
    /// before [`ModelFile::apply`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_window: Option<usize>,
    /// When set, the model's `<metric>~avg` inputs are means over the last N
    /// rows of the same source ([`crate::train::add_smoothed_features`],
    /// applied before the deviations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smooth_window: Option<usize>,
    /// The estimator.
    pub model: ModelBody,
}

/// The output of a model on one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Output {
    /// Utilization estimate (label units, clamped to 0..=100).
    Utilization {
        /// Estimate.
        value: f64,
    },
    /// Class and estimation distance.
    Class {
        /// Class name.
        class: String,
        /// Cosine similarity to it.
        similarity: f64,
        /// Estimation distance to the second-best class.
        margin: f64,
    },
    /// ON/OFF.
    #[serde(rename = "onoff")]
    OnOff {
        /// Traffic present.
        on: bool,
        /// Estimation distance.
        margin: f64,
    },
    /// Regime membership.
    Regime {
        /// Inside the regime.
        inside: bool,
        /// PC1, PC2 coordinates.
        pc: [f64; 2],
    },
    /// Anomaly score and most likely fault.
    Anomaly {
        /// 1 − P(normal).
        score: f64,
        /// Most likely non-normal class.
        likely: String,
        /// Its probability.
        p_likely: f64,
    },
}

impl ModelFile {
    /// Wrap an estimator with its metadata.
    pub fn new(
        nf: Option<String>,
        features: Vec<String>,
        label: impl Into<String>,
        trained_on: impl Into<String>,
        model: ModelBody,
    ) -> ModelFile {
        ModelFile {
            format: MODEL_FORMAT.into(),
            nf,
            tiers: tiers_label(&tiers_of(&features)),
            features,
            label: label.into(),
            trained_on: trained_on.into(),
            baseline_window: None,
            smooth_window: None,
            model,
        }
    }

    /// Apply the model's feature transforms ([`crate::train::prepare_rows`])
    /// to rows in time order (several sources may be interleaved).
    pub fn prepare(&self, rows: &[Row]) -> Vec<Row> {
        crate::train::prepare_rows(rows, self.smooth_window, self.baseline_window)
    }

    /// Rows of history a live user must keep (current row included) for
    /// [`ModelFile::prepare`] to give the last row its full inputs.
    pub fn history_rows(&self) -> usize {
        self.baseline_window.unwrap_or(0) + self.smooth_window.unwrap_or(1)
    }

    /// Save as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        let s = serde_json::to_string_pretty(self).map_err(|e| NfmonError::Json {
            path: path.into(),
            source: e,
        })?;
        std::fs::write(path, s + "\n").map_err(|e| NfmonError::io(path, e))
    }

    /// Load and check the format tag and feature count.
    pub fn load(path: &Path) -> Result<ModelFile> {
        let s = std::fs::read_to_string(path).map_err(|e| NfmonError::io(path, e))?;
        let m: ModelFile = serde_json::from_str(&s).map_err(|e| NfmonError::Json {
            path: path.into(),
            source: e,
        })?;
        if m.format != MODEL_FORMAT {
            return Err(NfmonError::Model {
                path: path.into(),
                what: format!("format {:?}, expected {MODEL_FORMAT:?}", m.format),
            });
        }
        m.validate().map_err(|what| NfmonError::Model {
            path: path.into(),
            what,
        })?;
        Ok(m)
    }

    /// Check every array length and index of the estimator against the
    /// feature list, so that applying a loaded model cannot panic.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let d = self.features.len();
        let std_ok = |s: &crate::stats::Standardizer, what: &str| {
            if s.mean.len() != d || s.std.len() != d {
                Err(format!(
                    "{what}: standardizer has {} means / {} deviations for {d} features",
                    s.mean.len(),
                    s.std.len()
                ))
            } else {
                Ok(())
            }
        };
        let centroids_ok = |c: &CentroidClassifier| {
            std_ok(&c.standardizer, "classifier")?;
            if c.centroids.len() != c.classes.len() || c.centroids.is_empty() {
                return Err(format!(
                    "{} centroids for {} classes",
                    c.centroids.len(),
                    c.classes.len()
                ));
            }
            if c.centroids.iter().any(|v| v.len() != d) {
                return Err(format!("a centroid does not have {d} values"));
            }
            Ok(())
        };
        match &self.model {
            ModelBody::Utilization(e) => {
                std_ok(&e.standardizer, "utilization")?;
                if e.coef.len() != d + 1 {
                    return Err(format!(
                        "{} coefficients for {d} features (+ intercept)",
                        e.coef.len()
                    ));
                }
            }
            ModelBody::Classifier(c) => centroids_ok(c)?,
            ModelBody::OnOff(o) => {
                centroids_ok(&o.classifier)?;
                if o.off_class >= o.classifier.classes.len() {
                    return Err(format!("off_class {} out of range", o.off_class));
                }
            }
            ModelBody::Regime(r) => {
                std_ok(&r.standardizer, "regime")?;
                if r.pca.components.is_empty() || r.pca.components.iter().any(|c| c.len() != d) {
                    return Err(format!("PCA components must have {d} loadings"));
                }
            }
            ModelBody::Anomaly(a) => {
                let f = &a.forest;
                if f.features != d || f.classes != a.classes.len() || f.classes == 0 {
                    return Err(format!(
                        "forest takes {} features and {} classes; file lists {d} features and {} classes",
                        f.features, f.classes, a.classes.len()
                    ));
                }
                for (ti, t) in f.trees.iter().enumerate() {
                    let n = t.nodes.len();
                    if n == 0 {
                        return Err(format!("tree {ti} is empty"));
                    }
                    for (ni, node) in t.nodes.iter().enumerate() {
                        let ok = match node {
                            crate::forest::Node::Split {
                                feature,
                                left,
                                right,
                                ..
                            } => {
                                // Children come after their parent: no cycles.
                                *feature < d && *left < n && *right < n && *left > ni && *right > ni
                            }
                            crate::forest::Node::Leaf { p } => p.len() == f.classes,
                        };
                        if !ok {
                            return Err(format!("tree {ti} node {ni} is malformed"));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The model's input vector from a row; `None` if any input is missing.
    pub fn inputs(&self, row: &Row) -> Option<Vec<f64>> {
        self.features.iter().map(|f| row.get(f)).collect()
    }

    /// Apply the model to one row.
    pub fn apply(&self, row: &Row) -> Option<Output> {
        let x = self.inputs(row)?;
        Some(match &self.model {
            ModelBody::Utilization(e) => Output::Utilization {
                value: e.predict(&x).clamp(0.0, 100.0),
            },
            ModelBody::Classifier(c) => {
                let p = c.predict(&x);
                Output::Class {
                    class: c.classes[p.class].clone(),
                    similarity: p.similarity,
                    margin: p.margin,
                }
            }
            ModelBody::OnOff(o) => {
                let (on, margin) = o.is_on(&x);
                Output::OnOff { on, margin }
            }
            ModelBody::Regime(r) => Output::Regime {
                inside: r.in_regime(&x),
                pc: r.coords(&x),
            },
            ModelBody::Anomaly(a) => {
                let p = a.forest.predict_proba(&x);
                let (li, lp) = p
                    .iter()
                    .enumerate()
                    .skip(1)
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(i, v)| (i, *v))
                    .unwrap_or((0, 0.0));
                Output::Anomaly {
                    score: 1.0 - p[0],
                    likely: a.classes[li].clone(),
                    p_likely: lp,
                }
            }
        })
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Utilization { value } => write!(f, "utilization {value:.1}"),
            Output::Class {
                class,
                similarity,
                margin,
            } => write!(
                f,
                "class {class} (similarity {similarity:.3}, distance to 2nd {margin:.3})"
            ),
            Output::OnOff { on, margin } => {
                write!(
                    f,
                    "{} (distance to 2nd {margin:.3})",
                    if *on { "ON" } else { "OFF" }
                )
            }
            Output::Regime { inside, pc } => write!(
                f,
                "{} regime (PC1 {:.2}, PC2 {:.2})",
                if *inside { "in" } else { "out of" },
                pc[0],
                pc[1]
            ),
            Output::Anomaly {
                score,
                likely,
                p_likely,
            } => write!(
                f,
                "anomaly score {score:.2} (most likely {likely}: {p_likely:.2})"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Standardizer;

    #[test]
    fn save_load_apply_and_missing_input() {
        let est = LinearEstimator {
            features: vec!["hw.a".into()],
            standardizer: Standardizer {
                mean: vec![10.0],
                std: vec![2.0],
            },
            coef: vec![50.0, 10.0],
            label: "test".into(),
        };
        let m = ModelFile::new(
            Some("nf1".into()),
            vec!["hw.a".into()],
            "test label",
            "unit test",
            ModelBody::Utilization(est),
        );
        assert_eq!(m.tiers, "hardware");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.json");
        m.save(&p).unwrap();
        let back = ModelFile::load(&p).unwrap();
        assert_eq!(back, m);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("\"kind\": \"utilization\""), "{text}");
        let mut row = Row::new("x", 1.0, Some(1.0));
        row.set("hw.a", Some(12.0));
        assert_eq!(back.apply(&row), Some(Output::Utilization { value: 60.0 }));
        row.set("hw.a", None);
        assert_eq!(back.apply(&row), None);
        std::fs::write(&p, text.replace(MODEL_FORMAT, "other/9")).unwrap();
        assert!(ModelFile::load(&p)
            .unwrap_err()
            .to_string()
            .contains("format"));
    }

    #[test]
    fn malformed_forest_is_rejected_not_panicking() {
        let x: Vec<Vec<f64>> = (0..40).map(|i| vec![i as f64, (i % 3) as f64]).collect();
        let y: Vec<usize> = (0..40).map(|i| (i >= 20) as usize).collect();
        let forest = Forest::fit(&x, &y, 2, crate::forest::ForestParams::default()).unwrap();
        let m = ModelFile::new(
            None,
            vec!["proc.a".into(), "proc.b".into()],
            "l",
            "t",
            ModelBody::Anomaly(AnomalyModel {
                classes: vec!["normal".into(), "cpu".into()],
                forest,
            }),
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        m.save(&p).unwrap();
        assert!(ModelFile::load(&p).is_ok());
        let mut bad = m.clone();
        if let ModelBody::Anomaly(a) = &mut bad.model {
            if let Some(crate::forest::Node::Split { left, .. }) =
                a.forest.trees[0].nodes.get_mut(0)
            {
                *left = 10_000;
            }
        }
        bad.save(&p).unwrap();
        let e = ModelFile::load(&p).unwrap_err().to_string();
        assert!(e.contains("malformed"), "{e}");
    }
}
