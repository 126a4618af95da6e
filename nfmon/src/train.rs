//! Training entry points shared by `microscope nf train|eval`: turn schema
//! rows into labelled series and fit any model kind into a [`ModelFile`].
//!
//! Rows become series by `source` and, within a source, by contiguous runs
//! of the same `label` (a campaign run's baseline, injection and recovery
//! phases are three series of one run). A row without a label cannot be used
//! for training and is an error naming it.

use crate::dataset::{Dataset, Series};
use crate::error::{NfmonError, Result};
use crate::forest::{eval_by_run, DetectionScore, Forest, ForestParams};
use crate::model::{AnomalyModel, ModelBody, ModelFile};
use crate::schema::{Row, Tier};
use crate::state::{CentroidClassifier, OnOff, PcaRegime};
use crate::utilization::{search, LinearEstimator};
use serde::{Deserialize, Serialize};

/// Model kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Least squares over the best subset of `events` events.
    Utilization,
    /// Cosine-centroid classifier over all classes.
    Classifier,
    /// ON/OFF (OFF = `off_class`).
    OnOff,
    /// PCA regime (regime = `regime_classes`).
    Regime,
    /// Random-Forest anomaly detector (normal = `normal_class`).
    Anomaly,
}

impl Kind {
    /// Parse a kind name.
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "utilization" => Kind::Utilization,
            "classifier" => Kind::Classifier,
            "onoff" => Kind::OnOff,
            "regime" => Kind::Regime,
            "anomaly" => Kind::Anomaly,
            _ => return None,
        })
    }
}

/// Training options.
#[derive(Debug, Clone)]
pub struct TrainOpts {
    /// NF name recorded in the model.
    pub nf: Option<String>,
    /// Explicit feature list, or all usable metrics of `tiers`.
    pub features: Option<Vec<String>>,
    /// Tiers to draw features from (empty = all).
    pub tiers: Vec<Tier>,
    /// Events per utilization estimator (1–3).
    pub events: usize,
    /// OFF class for ON/OFF.
    pub off_class: String,
    /// Regime classes for PCA regime.
    pub regime_classes: Vec<String>,
    /// Normal class for anomaly detection.
    pub normal_class: String,
    /// Label definition stored in the model.
    pub label: String,
    /// Data description stored in the model.
    pub trained_on: String,
    /// Forest parameters.
    pub forest: ForestParams,
    /// Add rolling-baseline deviation features over this many past rows
    /// (recorded in the model; applied by whoever uses it).
    pub baseline_window: Option<usize>,
    /// Add `<metric>~avg` features over this many rows (recorded likewise).
    pub smooth_window: Option<usize>,
}

impl Default for TrainOpts {
    fn default() -> Self {
        TrainOpts {
            nf: None,
            features: None,
            tiers: Vec::new(),
            events: 2,
            off_class: "idle".into(),
            regime_classes: Vec::new(),
            normal_class: "normal".into(),
            label: String::new(),
            trained_on: String::new(),
            forest: ForestParams::default(),
            baseline_window: None,
            smooth_window: None,
        }
    }
}

/// Group rows into series by source and contiguous label. The numeric target
/// of a series is its label parsed as a number (NaN otherwise).
pub fn series_from_rows(rows: &[Row]) -> Result<Vec<Series>> {
    let mut out: Vec<Series> = Vec::new();
    let mut count: std::collections::BTreeMap<String, usize> = Default::default();
    for (i, r) in rows.iter().enumerate() {
        let label = r.label.clone().ok_or_else(|| {
            NfmonError::Data(format!(
                "row {} (source {}, t={:.3}) has no label; training needs labelled rows",
                i + 1,
                r.source,
                r.t_s
            ))
        })?;
        let same = out
            .last()
            .is_some_and(|s| s.class == label && s.rows[0].source == r.source);
        if same {
            if let Some(s) = out.last_mut() {
                s.rows.push(r.clone());
            }
        } else {
            let k = count.entry(r.source.clone()).or_insert(0);
            out.push(Series {
                name: format!("{}#{}", r.source, k),
                class: label.clone(),
                target: label.trim_end_matches('%').parse().unwrap_or(f64::NAN),
                rows: vec![r.clone()],
            });
            *k += 1;
        }
    }
    if out.is_empty() {
        return Err(NfmonError::Data("no rows".into()));
    }
    Ok(out)
}

fn keep_fn(tiers: &[Tier]) -> impl Fn(&str) -> bool + '_ {
    move |n: &str| tiers.is_empty() || Tier::of_metric(n).is_some_and(|t| tiers.contains(&t))
}

/// Fit a model of `kind` on labelled series (for `opts.baseline_window` /
/// `opts.smooth_window`, the series' rows must already carry the derived
/// features: use [`prepare_rows`] before [`series_from_rows`]).
pub fn train(kind: Kind, series: &[Series], opts: &TrainOpts) -> Result<ModelFile> {
    let keep = keep_fn(&opts.tiers);
    let ds = Dataset::build(series, opts.features.as_deref(), &keep)?;
    let all: Vec<usize> = (0..ds.len()).collect();
    let cols: Vec<usize> = (0..ds.features.len()).collect();
    let x = ds.take(&all, &cols);
    let class_idx = |name: &str| -> Result<usize> {
        ds.class_names
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| {
                NfmonError::Data(format!(
                    "class {name:?} not in the data (classes: {})",
                    ds.class_names.join(", ")
                ))
            })
    };
    let (features, body) = match kind {
        Kind::Utilization => {
            if ds.target.iter().any(|t| !t.is_finite()) {
                return Err(NfmonError::Data(
                    "utilization training needs numeric labels (e.g. \"42.5\")".into(),
                ));
            }
            let sel = search(&ds, opts.events.clamp(1, 3), 3, 2, 500, 2019)?;
            let c = ds.columns(&sel.best.features)?;
            let est = LinearEstimator::fit(
                sel.best.features.clone(),
                &ds.take(&all, &c),
                &ds.target,
                &opts.label,
            )?;
            (sel.best.features, ModelBody::Utilization(est))
        }
        Kind::Classifier => (
            ds.features.clone(),
            ModelBody::Classifier(CentroidClassifier::fit(
                ds.features.clone(),
                ds.class_names.clone(),
                &x,
                &ds.class,
            )?),
        ),
        Kind::OnOff => {
            let off = class_idx(&opts.off_class)?;
            (
                ds.features.clone(),
                ModelBody::OnOff(OnOff {
                    classifier: CentroidClassifier::fit(
                        ds.features.clone(),
                        ds.class_names.clone(),
                        &x,
                        &ds.class,
                    )?,
                    off_class: off,
                }),
            )
        }
        Kind::Regime => {
            let idx = opts
                .regime_classes
                .iter()
                .map(|c| class_idx(c))
                .collect::<Result<Vec<_>>>()?;
            let flags: Vec<bool> = ds.class.iter().map(|c| idx.contains(c)).collect();
            (
                ds.features.clone(),
                ModelBody::Regime(PcaRegime::fit(ds.features.clone(), &x, &flags)?),
            )
        }
        Kind::Anomaly => {
            let normal = class_idx(&opts.normal_class)?;
            // Class 0 is normal in the saved model.
            let mut classes = vec![ds.class_names[normal].clone()];
            classes.extend(
                ds.class_names
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != normal)
                    .map(|(_, c)| c.clone()),
            );
            let y: Vec<usize> = ds
                .class
                .iter()
                .map(|&c| {
                    classes
                        .iter()
                        .position(|n| *n == ds.class_names[c])
                        .unwrap_or(0)
                })
                .collect();
            let forest = Forest::fit(&x, &y, classes.len(), opts.forest)?;
            (
                ds.features.clone(),
                ModelBody::Anomaly(AnomalyModel { classes, forest }),
            )
        }
    };
    let mut m = ModelFile::new(
        opts.nf.clone(),
        features,
        opts.label.clone(),
        opts.trained_on.clone(),
        body,
    );
    m.baseline_window = opts.baseline_window;
    m.smooth_window = opts.smooth_window;
    Ok(m)
}

/// Add, for every metric of every row, its deviation from a rolling
/// baseline: the median of the same metric over the previous `window` rows
/// of the same `source` (only past rows: computable online). The new metric
/// is named `<metric>~dev` and keeps the tier prefix. The first row of a
/// source has no past, so its deviations are missing.
pub fn add_deviation_features(rows: &[Row], window: usize) -> Vec<Row> {
    let mut hist: std::collections::BTreeMap<String, Vec<&Row>> = Default::default();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let past = hist.entry(r.source.clone()).or_default();
        let lo = past.len().saturating_sub(window);
        let mut nr = r.clone();
        for (k, v) in &r.values {
            let mut w: Vec<f64> = past[lo..].iter().filter_map(|p| p.get(k)).collect();
            let dev = match (v, w.is_empty()) {
                (Some(x), false) => {
                    w.sort_by(f64::total_cmp);
                    Some(x - w[w.len() / 2])
                }
                _ => None,
            };
            nr.values.insert(format!("{k}~dev"), dev);
        }
        past.push(r);
        out.push(nr);
    }
    out
}

/// Add, for every metric of every row, its mean over the last `k` rows of
/// the same `source` including this one (past rows only: computable
/// online), named `<metric>~avg`. A fault lasts many intervals while
/// sampling noise does not, so the average separates them better than one
/// interval. Missing values are skipped; all missing → missing.
pub fn add_smoothed_features(rows: &[Row], k: usize) -> Vec<Row> {
    let k = k.max(1);
    let mut hist: std::collections::BTreeMap<String, Vec<&Row>> = Default::default();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let past = hist.entry(r.source.clone()).or_default();
        let lo = past.len().saturating_sub(k - 1);
        let mut nr = r.clone();
        for (name, v) in &r.values {
            if name.contains('~') {
                continue; // derived already
            }
            let vals: Vec<f64> = past[lo..]
                .iter()
                .filter_map(|p| p.get(name))
                .chain(*v)
                .collect();
            let avg = (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64);
            nr.values.insert(format!("{name}~avg"), avg);
        }
        past.push(r);
        out.push(nr);
    }
    out
}

/// The feature transforms a model was trained with, in order: smoothing
/// over `smooth` rows, then deviations from the median of the previous
/// `baseline` rows (see the two functions above). Training, evaluation and
/// every user of a model apply the same function.
pub fn prepare_rows(rows: &[Row], smooth: Option<usize>, baseline: Option<usize>) -> Vec<Row> {
    let mut v = match smooth {
        Some(k) => add_smoothed_features(rows, k),
        None => rows.to_vec(),
    };
    if let Some(w) = baseline {
        v = add_deviation_features(&v, w);
    }
    v
}

/// Anomaly-detection evaluation of campaign series: folds by run (the part
/// of a series name before `#`), `k` folds, binary any-fault and per-fault
/// tasks. Returns the scores and the tiers used.
pub fn eval_anomaly(
    series: &[Series],
    tiers: &[Tier],
    normal_class: &str,
    k: usize,
    params: ForestParams,
) -> Result<(Vec<DetectionScore>, Vec<String>)> {
    let keep = keep_fn(tiers);
    let ds = Dataset::build(series, None, &keep)?;
    let normal = ds
        .class_names
        .iter()
        .position(|c| c == normal_class)
        .ok_or_else(|| NfmonError::Data(format!("no {normal_class:?} rows")))?;
    let run = ds.run_ids();
    let scores = eval_by_run(&ds.x, &ds.class, &ds.class_names, normal, &run, k, params)?;
    Ok((scores, ds.features))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Row> {
        let mut v = Vec::new();
        for run in 0..6 {
            for i in 0..30 {
                let fault = (10..20).contains(&i);
                let kind = if run % 2 == 0 { "cpu" } else { "disk" };
                let mut r = Row::new(format!("run{run}"), i as f64, Some(1.0));
                let w = ((i * 7 + run * 3) % 5) as f64 * 0.01;
                r.set(
                    "proc.wait_share",
                    Some(if fault && kind == "cpu" { 0.6 } else { 0.05 } + w),
                );
                r.set(
                    "host.psi_io_some",
                    Some(if fault && kind == "disk" { 0.4 } else { 0.02 } + w),
                );
                r.set("hw.cycles", None);
                r.label = Some(if fault { kind.into() } else { "normal".into() });
                v.push(r);
            }
        }
        v
    }

    #[test]
    fn deviation_features_use_only_the_past() {
        let rows = rows();
        let d = add_deviation_features(&rows, 5);
        assert_eq!(
            d[0].get("proc.wait_share~dev"),
            None,
            "no past for the first row"
        );
        // Row 10 of run0 is the first CPU-fault row: its past is 5 normal rows.
        let dev = d[10].get("proc.wait_share~dev").unwrap();
        assert!(dev > 0.5, "{dev}");
        assert!(d[5].get("proc.wait_share~dev").unwrap().abs() < 0.05);
        // Another source starts with no past again.
        assert_eq!(d[30].get("proc.wait_share~dev"), None);
    }

    #[test]
    fn smoothing_averages_the_past_of_the_same_source_only() {
        let rows = rows();
        let d = add_smoothed_features(&rows, 3);
        let w = |i: usize| rows[i].get("proc.wait_share").unwrap();
        // Row 0: only itself; row 11: rows 9, 10, 11 of run0.
        assert_eq!(d[0].get("proc.wait_share~avg"), Some(w(0)));
        let want = (w(9) + w(10) + w(11)) / 3.0;
        assert!((d[11].get("proc.wait_share~avg").unwrap() - want).abs() < 1e-12);
        // A new source starts over; missing stays missing.
        assert_eq!(d[30].get("proc.wait_share~avg"), Some(w(30)));
        assert_eq!(d[5].get("hw.cycles~avg"), None);
        // prepare_rows smooths first, then takes deviations of both.
        let p = prepare_rows(&rows, Some(3), Some(5));
        assert!(p[12].values.contains_key("proc.wait_share~avg~dev"));
        assert!(p[12].values.contains_key("proc.wait_share~dev"));
    }

    #[test]
    fn series_split_by_source_and_label() {
        let s = series_from_rows(&rows()).unwrap();
        assert_eq!(s.len(), 18);
        assert_eq!(s[0].name, "run0#0");
        assert_eq!(s[1].class, "cpu");
        assert_eq!(s[2].name, "run0#2");
        let mut bad = rows();
        bad[3].label = None;
        assert!(series_from_rows(&bad)
            .unwrap_err()
            .to_string()
            .contains("row 4"));
    }

    #[test]
    fn anomaly_train_and_eval_on_synthetic_campaign() {
        let s = series_from_rows(&rows()).unwrap();
        let m = train(Kind::Anomaly, &s, &TrainOpts::default()).unwrap();
        assert_eq!(m.tiers, "process+host", "absent hw tier dropped");
        let mut r = rows()[15].clone(); // run0, cpu fault
        match m.apply(&r) {
            Some(crate::model::Output::Anomaly { score, likely, .. }) => {
                assert!(score > 0.5);
                assert_eq!(likely, "cpu");
            }
            o => panic!("{o:?}"),
        }
        r.set("proc.wait_share", None);
        assert_eq!(m.apply(&r), None);
        let (scores, feats) = eval_anomaly(&s, &[], "normal", 3, ForestParams::default()).unwrap();
        assert_eq!(feats.len(), 2);
        for d in &scores {
            assert!(d.roc_auc.unwrap() > 0.95, "{d:?}");
        }
    }
}
