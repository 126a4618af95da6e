//! Diagnosis annotation: the anomaly detector's verdict for one NF over one
//! time window, so a queue diagnosis can say *why* an NF was slow
//! ("fw2 slow processing 12.3–13.1 ms; CPU contention detected").
//!
//! An [`Annotator`] holds recorded samples (schema rows written by the
//! sampler: `microscope nf sample --name NF -o DIR/NF.jsonl`, or a
//! campaign's `rows.jsonl`) and one or more anomaly models
//! (`microscope nf train --kind anomaly`).
//!
//! **Time alignment.** Diagnosis times are calibrated trace times: the shim's
//! anchors pair the TSC with `CLOCK_MONOTONIC`, so they are `CLOCK_MONOTONIC`
//! nanoseconds. Live-sampled rows carry [`Row::mono_ns`], the
//! `CLOCK_MONOTONIC` time at the end of their interval; a row covers
//! `(mono_ns − interval, mono_ns]`. A query window `[start_ns, end_ns]` is
//! answered from the rows of that NF whose interval overlaps it. Rows
//! without `mono_ns` (imported, or written before the field existed) cannot
//! be aligned and are counted, not used. Both clocks must be of the same host
//! (a `CLOCK_MONOTONIC` value means nothing on another machine).
//!
//! **Which rows are an NF's.** A row belongs to NF `n` when its `source` is
//! `n` or ends in `@n` (campaign rows are named `RUN@NF`).
//!
//! **Which model.** `model_path` is a model file or a directory of them. A
//! model whose `nf` is the queried NF is used first, else a model with no
//! `nf` (trained on several NFs); a model trained for another NF is never
//! applied to this one. Models with a `baseline_window` / `smooth_window`
//! get their `<metric>~dev` / `~avg` inputs from the same NF's earlier rows,
//! as in training ([`crate::train::prepare_rows`]).
//!
//! **Missing is missing.** No row overlapping the window → no verdict
//! (`None`); rows that lack a model input → [`Outcome::Unscored`], never a
//! guess from a zero.

use crate::error::{NfmonError, Result};
use crate::model::{ModelBody, ModelFile, Output};
use crate::schema::{read_jsonl, Row};
use crate::train::prepare_rows;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Default anomaly-score threshold for "detected" (1 − P(normal) ≥ 0.5).
pub const DEFAULT_THRESHOLD: f64 = 0.5;

/// What the detector says about the rows of one NF in one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Some row scored at or above the threshold.
    Anomaly {
        /// Most likely fault class of the highest-scoring row (a model class
        /// name: `cpu`, `memory`, `disk`, `loss`, `delay`, …).
        fault: String,
        /// Its anomaly score, 1 − P(normal).
        score: f64,
        /// The fault class's probability.
        p_fault: f64,
    },
    /// Every scored row is below the threshold.
    Normal {
        /// The highest anomaly score seen.
        score: f64,
    },
    /// Rows exist but none could be scored.
    Unscored {
        /// Why (missing inputs, no model for this NF).
        reason: String,
    },
}

/// The verdict for one NF and window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// NF instance name.
    pub nf: String,
    /// What the detector found.
    pub outcome: Outcome,
    /// Feature tiers of the model used (`software+process+…`), `none` when
    /// no model applied.
    pub tier: String,
    /// Model file used.
    pub model: Option<PathBuf>,
    /// Rows overlapping the window.
    pub rows: usize,
    /// Of those, rows the model scored.
    pub scored: usize,
    /// Of those, rows at or above the threshold.
    pub anomalous: usize,
    /// CLOCK_MONOTONIC span covered by the overlapping rows, ns.
    pub covered_ns: (u64, u64),
}

/// A human name for a fault class, as it reads in a diagnosis.
pub fn fault_phrase(class: &str) -> String {
    match class {
        "cpu" => "CPU contention".into(),
        "memory" => "memory pressure (leak)".into(),
        "disk" => "disk I/O storm".into(),
        "loss" => "packet loss in the NF".into(),
        "delay" => "added per-packet latency in the NF".into(),
        other => other.to_string(),
    }
}

type Windows = (Option<usize>, Option<usize>);

struct LoadedModel {
    path: PathBuf,
    model: ModelFile,
}

/// Samples + models, queried per NF and time window.
pub struct Annotator {
    models: Vec<LoadedModel>,
    /// (NF, (smooth, baseline) windows) → that NF's rows with `mono_ns`,
    /// sorted by it, with the derived features of those windows.
    rows: BTreeMap<(String, Windows), Vec<Row>>,
    threshold: f64,
    /// Rows skipped because they have no `mono_ns`.
    pub unaligned: usize,
    /// Sample files read.
    pub files: Vec<PathBuf>,
}

/// The NF a row belongs to: its source, or the part after `@`.
pub fn nf_of_source(source: &str) -> &str {
    source.rsplit_once('@').map_or(source, |(_, nf)| nf)
}

fn json_files(p: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    if p.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(p)
            .map_err(|e| NfmonError::io(p, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == ext))
            .collect();
        v.sort();
        Ok(v)
    } else {
        Ok(vec![p.to_path_buf()])
    }
}

impl Annotator {
    /// Open sample rows (`samples`: a `.jsonl` file, or a directory whose
    /// `*.jsonl` files are all read) and anomaly models (`models`: a model
    /// file, or a directory whose `*.json` files are all loaded).
    ///
    /// Errors: unreadable or malformed files (named, with line and offset),
    /// a model that is not an anomaly model, no model found, no sample file.
    pub fn open(samples: &Path, models: &Path) -> Result<Annotator> {
        let mut loaded = Vec::new();
        for f in json_files(models, "json")? {
            let m = ModelFile::load(&f)?;
            if !matches!(m.model, ModelBody::Anomaly(_)) {
                return Err(NfmonError::Model {
                    path: f,
                    what: "not an anomaly model (train with --kind anomaly)".into(),
                });
            }
            loaded.push(LoadedModel { path: f, model: m });
        }
        if loaded.is_empty() {
            return Err(NfmonError::Model {
                path: models.into(),
                what: "no model file (*.json) found".into(),
            });
        }
        let files = json_files(samples, "jsonl")?;
        if files.is_empty() {
            return Err(NfmonError::Data(format!(
                "{}: no sample file (*.jsonl)",
                samples.display()
            )));
        }
        let mut rows = Vec::new();
        for f in &files {
            rows.extend(read_jsonl(f)?);
        }
        Ok(Annotator::from_parts(rows, loaded, files))
    }

    /// Build from rows and models already in memory (tests, other tools).
    pub fn from_rows(rows: Vec<Row>, models: Vec<(PathBuf, ModelFile)>) -> Result<Annotator> {
        let mut loaded = Vec::new();
        for (path, model) in models {
            if !matches!(model.model, ModelBody::Anomaly(_)) {
                return Err(NfmonError::Model {
                    path,
                    what: "not an anomaly model".into(),
                });
            }
            loaded.push(LoadedModel { path, model });
        }
        Ok(Annotator::from_parts(rows, loaded, Vec::new()))
    }

    fn from_parts(rows: Vec<Row>, models: Vec<LoadedModel>, files: Vec<PathBuf>) -> Annotator {
        let unaligned = rows.iter().filter(|r| r.mono_ns.is_none()).count();
        let mut by_nf: BTreeMap<String, Vec<Row>> = BTreeMap::new();
        for r in rows.into_iter().filter(|r| r.mono_ns.is_some()) {
            by_nf
                .entry(nf_of_source(&r.source).to_string())
                .or_default()
                .push(r);
        }
        let mut windows: Vec<(Option<usize>, Option<usize>)> = models
            .iter()
            .map(|m| (m.model.smooth_window, m.model.baseline_window))
            .collect();
        windows.sort();
        windows.dedup();
        let mut out = BTreeMap::new();
        for (nf, mut v) in by_nf {
            v.sort_by_key(|r| r.mono_ns);
            for &(sm, bw) in &windows {
                // Per source (one run / process), past rows only.
                out.insert((nf.clone(), (sm, bw)), prepare_rows(&v, sm, bw));
            }
        }
        Annotator {
            models,
            rows: out,
            threshold: DEFAULT_THRESHOLD,
            unaligned,
            files,
        }
    }

    /// Use another "detected" threshold on the anomaly score (0..=1).
    pub fn with_threshold(mut self, t: f64) -> Annotator {
        self.threshold = t.clamp(0.0, 1.0);
        self
    }

    /// NF names that have aligned samples.
    pub fn nfs(&self) -> Vec<String> {
        let mut v: Vec<String> = self.rows.keys().map(|k| k.0.clone()).collect();
        v.dedup();
        v
    }

    fn model_for(&self, nf: &str) -> Option<&LoadedModel> {
        self.models
            .iter()
            .find(|m| m.model.nf.as_deref() == Some(nf))
            .or_else(|| self.models.iter().find(|m| m.model.nf.is_none()))
    }

    /// The detector's verdict for `nf` over `[start_ns, end_ns]`
    /// (`CLOCK_MONOTONIC` ns). `None` when no sample of this NF overlaps the
    /// window: missing is missing.
    pub fn verdict(&self, nf: &str, start_ns: u64, end_ns: u64) -> Option<Verdict> {
        let (lo, hi) = (start_ns.min(end_ns), start_ns.max(end_ns));
        let model = self.model_for(nf);
        let window = model.map_or((None, None), |m| {
            (m.model.smooth_window, m.model.baseline_window)
        });
        let rows = self
            .rows
            .get(&(nf.to_string(), window))
            .or_else(|| self.rows.iter().find(|((n, _), _)| n == nf).map(|(_, v)| v))?;
        let overlapping: Vec<&Row> = rows
            .iter()
            .filter(|r| {
                let end = r.mono_ns.unwrap_or(0);
                let len = (r.interval_s.unwrap_or(0.0).max(0.0) * 1e9) as u64;
                let begin = end.saturating_sub(len);
                // (begin, end] overlaps [lo, hi]; a zero-length row is a point.
                if len == 0 {
                    lo <= end && end <= hi
                } else {
                    end >= lo && begin < hi
                }
            })
            .collect();
        if overlapping.is_empty() {
            return None;
        }
        let covered = (
            overlapping
                .iter()
                .map(|r| {
                    r.mono_ns
                        .unwrap_or(0)
                        .saturating_sub((r.interval_s.unwrap_or(0.0).max(0.0) * 1e9) as u64)
                })
                .min()
                .unwrap_or(0),
            overlapping
                .iter()
                .filter_map(|r| r.mono_ns)
                .max()
                .unwrap_or(0),
        );
        let base = Verdict {
            nf: nf.to_string(),
            outcome: Outcome::Unscored {
                reason: String::new(),
            },
            tier: "none".into(),
            model: None,
            rows: overlapping.len(),
            scored: 0,
            anomalous: 0,
            covered_ns: covered,
        };
        let Some(m) = model else {
            let others: Vec<&str> = self
                .models
                .iter()
                .filter_map(|m| m.model.nf.as_deref())
                .collect();
            return Some(Verdict {
                outcome: Outcome::Unscored {
                    reason: format!("no model for {nf} (models are for {})", others.join(", ")),
                },
                ..base
            });
        };
        let mut best: Option<(f64, String, f64)> = None;
        let (mut scored, mut anomalous) = (0, 0);
        for r in &overlapping {
            if let Some(Output::Anomaly {
                score,
                likely,
                p_likely,
            }) = m.model.apply(r)
            {
                scored += 1;
                if score >= self.threshold {
                    anomalous += 1;
                }
                if best.as_ref().is_none_or(|b| score > b.0) {
                    best = Some((score, likely, p_likely));
                }
            }
        }
        let outcome = match best {
            None => Outcome::Unscored {
                reason: format!(
                    "the samples lack inputs of the model (tier {})",
                    m.model.tiers
                ),
            },
            Some((score, fault, p_fault)) if score >= self.threshold => Outcome::Anomaly {
                fault,
                score,
                p_fault,
            },
            Some((score, ..)) => Outcome::Normal { score },
        };
        Some(Verdict {
            outcome,
            tier: m.model.tiers.clone(),
            model: Some(m.path.clone()),
            scored,
            anomalous,
            ..base
        })
    }

    /// One phrase for a diagnosis line, e.g. `CPU contention detected
    /// (anomaly score 0.91, 2 of 2 samples; tier software+process+host)`.
    pub fn describe(&self, nf: &str, start_ns: u64, end_ns: u64) -> String {
        match self.verdict(nf, start_ns, end_ns) {
            None => format!("no NF samples for {nf} at this time"),
            Some(v) => v.to_string(),
        }
    }
}

/// NF-local culprit intervals of one NF closer than this are one episode.
pub const EPISODE_GAP_NS: i64 = 100_000_000;

/// One NF-local culprit episode with the detector's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// NF instance.
    pub nf: String,
    /// First culprit event, CLOCK_MONOTONIC ns.
    pub first_ns: i64,
    /// Last culprit event, CLOCK_MONOTONIC ns.
    pub last_ns: i64,
    /// Sum of the culprit scores merged into the episode.
    pub score: f64,
    /// Culprit relations merged.
    pub relations: usize,
    /// The verdict (`None`: no samples of this NF at this time; also when
    /// the times are negative, i.e. the trace had no clock anchors).
    pub verdict: Option<Verdict>,
}

impl Annotator {
    /// Annotate NF-local culprits: `(nf, first_ns, last_ns, score)` per
    /// causal relation whose culprit is an NF's local processing. Per NF,
    /// intervals closer than [`EPISODE_GAP_NS`] merge into one episode;
    /// episodes come back by decreasing score, each with its verdict.
    pub fn episodes<'a>(
        &self,
        culprits: impl IntoIterator<Item = (&'a str, i64, i64, f64)>,
    ) -> Vec<Episode> {
        let mut by_nf: BTreeMap<&str, Vec<(i64, i64, f64)>> = BTreeMap::new();
        for (nf, a, b, sc) in culprits {
            by_nf.entry(nf).or_default().push((a.min(b), a.max(b), sc));
        }
        let mut out = Vec::new();
        for (nf, mut v) in by_nf {
            v.sort_by_key(|x| x.0);
            let mut cur: Option<Episode> = None;
            for (a, b, sc) in v {
                match cur.as_mut() {
                    Some(e) if a - e.last_ns <= EPISODE_GAP_NS => {
                        e.last_ns = e.last_ns.max(b);
                        e.score += sc;
                        e.relations += 1;
                    }
                    _ => {
                        out.extend(cur.take());
                        cur = Some(Episode {
                            nf: nf.to_string(),
                            first_ns: a,
                            last_ns: b,
                            score: sc,
                            relations: 1,
                            verdict: None,
                        });
                    }
                }
            }
            out.extend(cur);
        }
        for e in &mut out {
            if e.first_ns >= 0 {
                e.verdict = self.verdict(&e.nf, e.first_ns as u64, e.last_ns.max(0) as u64);
            }
        }
        out.sort_by(|a, b| b.score.total_cmp(&a.score));
        out
    }

    /// [`Annotator::episodes`] rendered one line each, times in ms from
    /// `origin_ns` (e.g. the earliest time in the diagnosis):
    /// `fw2 slow processing 12.3–13.1 ms (score 41.0, 17 relations); CPU contention detected (…)`.
    pub fn describe_culprits<'a>(
        &self,
        culprits: impl IntoIterator<Item = (&'a str, i64, i64, f64)>,
        origin_ns: i64,
    ) -> Vec<String> {
        self.episodes(culprits)
            .into_iter()
            .map(|e| {
                let ms = |t: i64| (t - origin_ns) as f64 / 1e6;
                let what = match (&e.verdict, e.first_ns >= 0) {
                    (Some(v), _) => v.to_string(),
                    (None, true) => format!("no NF samples for {} at this time", e.nf),
                    (None, false) => {
                        "no verdict (trace times are not CLOCK_MONOTONIC: no clock anchors)".into()
                    }
                };
                format!(
                    "{} slow processing {:.1}–{:.1} ms (score {:.1}, {} relation{}); {what}",
                    e.nf,
                    ms(e.first_ns),
                    ms(e.last_ns),
                    e.score,
                    e.relations,
                    if e.relations == 1 { "" } else { "s" }
                )
            })
            .collect()
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = |k: usize| if k == 1 { "sample" } else { "samples" };
        match &self.outcome {
            Outcome::Anomaly { fault, score, .. } => write!(
                f,
                "{} detected (anomaly score {score:.2}, {} of {} {}; tier {})",
                fault_phrase(fault),
                self.anomalous,
                self.scored,
                n(self.scored),
                self.tier
            ),
            Outcome::Normal { score } => write!(
                f,
                "no anomaly detected (max score {score:.2} over {} {}; tier {})",
                self.scored,
                n(self.scored),
                self.tier
            ),
            Outcome::Unscored { reason } => write!(f, "anomaly detector: no verdict ({reason})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::{series_from_rows, train, Kind, TrainOpts};

    const T0: u64 = 5_000_000_000_000; // CLOCK_MONOTONIC ns of the first row's end
    const STEP: u64 = 500_000_000; // 500 ms rows

    /// One NF's rows: 40 intervals, rows 16..24 with CPU wait high (labelled
    /// `cpu`), deterministic small wobble.
    fn nf_rows(source: &str, fault_from: usize, fault_to: usize) -> Vec<Row> {
        (0..40)
            .map(|i| {
                let mut r = Row::new(source, i as f64 * 0.5, Some(0.5));
                r.mono_ns = Some(T0 + i as u64 * STEP);
                let w = ((i * 7) % 5) as f64 * 0.01;
                let fault = (fault_from..fault_to).contains(&i);
                r.set("proc.wait_share", Some(if fault { 0.8 } else { 0.1 } + w));
                r.set("proc.run_share", Some(0.4 - w));
                r.label = Some(if fault { "cpu" } else { "normal" }.into());
                r
            })
            .collect()
    }

    fn model(window: Option<usize>, nf: Option<&str>) -> ModelFile {
        let mut rows = Vec::new();
        for run in 0..4 {
            rows.extend(nf_rows(&format!("run{run}@fw1"), 16, 24));
        }
        if let Some(w) = window {
            rows = crate::train::add_deviation_features(&rows, w);
        }
        let s = series_from_rows(&rows).unwrap();
        let opts = TrainOpts {
            nf: nf.map(String::from),
            baseline_window: window,
            ..TrainOpts::default()
        };
        train(Kind::Anomaly, &s, &opts).unwrap()
    }

    fn annotator(window: Option<usize>) -> Annotator {
        // Recorded samples: fw2 has CPU contention in rows 20..26; fw1 is fine.
        let mut rows = nf_rows("fw2", 20, 26);
        rows.extend(nf_rows("fw1", 99, 99));
        Annotator::from_rows(rows, vec![("m.json".into(), model(window, None))]).unwrap()
    }

    /// The window [start, end] in ns inside row `i`'s interval.
    fn inside(i: u64) -> (u64, u64) {
        let end = T0 + i * STEP;
        (end - 300_000_000, end - 100_000_000)
    }

    #[test]
    fn culprit_window_inside_fault_gets_the_fault() {
        for window in [None, Some(6)] {
            let a = annotator(window);
            let (s, e) = inside(22);
            let v = a.verdict("fw2", s, e).unwrap();
            assert_eq!(v.rows, 1, "a window inside one interval overlaps one row");
            match &v.outcome {
                Outcome::Anomaly { fault, score, .. } => {
                    assert_eq!(fault, "cpu");
                    assert!(*score >= 0.5);
                }
                o => panic!("{window:?}: {o:?}"),
            }
            assert_eq!(v.tier, "process");
            let d = a.describe("fw2", s, e);
            assert!(d.starts_with("CPU contention detected"), "{d}");
        }
    }

    #[test]
    fn window_outside_fault_and_other_nf_are_normal() {
        let a = annotator(None);
        let (s, e) = inside(5);
        assert!(matches!(
            a.verdict("fw2", s, e).unwrap().outcome,
            Outcome::Normal { .. }
        ));
        let (s, e) = inside(22);
        let v = a.verdict("fw1", s, e).unwrap();
        assert!(matches!(v.outcome, Outcome::Normal { .. }), "{v:?}");
        assert!(a.describe("fw1", s, e).starts_with("no anomaly detected"));
    }

    #[test]
    fn missing_is_missing() {
        let a = annotator(None);
        // Unknown NF, and a time before the first sample / after the last.
        let (s, e) = inside(22);
        assert_eq!(a.verdict("nat9", s, e), None);
        assert_eq!(a.verdict("fw2", T0 - 10 * STEP, T0 - 9 * STEP), None);
        assert_eq!(a.verdict("fw2", T0 + 41 * STEP, T0 + 42 * STEP), None);
        assert!(a
            .describe("fw2", T0 - 10 * STEP, T0 - 9 * STEP)
            .contains("no NF samples"));
        // A row lacking a model input is not scored, never read as 0.
        let mut rows = nf_rows("fw2", 20, 26);
        for r in &mut rows {
            r.set("proc.wait_share", None);
        }
        let b = Annotator::from_rows(rows, vec![("m.json".into(), model(None, None))]).unwrap();
        let v = b.verdict("fw2", s, e).unwrap();
        assert!(matches!(v.outcome, Outcome::Unscored { .. }), "{v:?}");
        assert_eq!(v.scored, 0);
        // Rows without CLOCK_MONOTONIC times cannot be aligned.
        let mut rows = nf_rows("fw2", 20, 26);
        rows.iter_mut().for_each(|r| r.mono_ns = None);
        let c = Annotator::from_rows(rows, vec![("m.json".into(), model(None, None))]).unwrap();
        assert_eq!(c.unaligned, 40);
        assert_eq!(c.verdict("fw2", s, e), None);
    }

    #[test]
    fn window_spanning_rows_takes_the_worst() {
        let a = annotator(None);
        // From row 17 (normal) to row 22 (fault): 6 rows overlap.
        let v = a
            .verdict("fw2", T0 + 16 * STEP + 1, T0 + 22 * STEP - 1)
            .unwrap();
        assert_eq!(v.rows, 6);
        assert_eq!(v.scored, 6);
        assert!(matches!(v.outcome, Outcome::Anomaly { .. }));
        assert!(v.anomalous >= 2 && v.anomalous <= 3, "{v:?}");
    }

    #[test]
    fn per_nf_model_not_applied_to_other_nfs() {
        let rows = nf_rows("fw2", 20, 26);
        let a = Annotator::from_rows(rows, vec![("fw1.json".into(), model(None, Some("fw1")))])
            .unwrap();
        let (s, e) = inside(22);
        let v = a.verdict("fw2", s, e).unwrap();
        match v.outcome {
            Outcome::Unscored { reason } => {
                assert!(reason.contains("no model for fw2"), "{reason}")
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn culprits_merge_into_episodes_with_verdicts() {
        let a = annotator(None);
        let ms = 1_000_000i64;
        let (s22, _) = inside(22);
        let (s5, _) = inside(5);
        let c = vec![
            ("fw2", s22 as i64, s22 as i64 + ms, 2.0),
            ("fw2", s22 as i64 + 50 * ms, s22 as i64 + 60 * ms, 3.0), // merges
            ("fw2", s5 as i64, s5 as i64 + ms, 1.0),                  // far: own episode
            ("nat9", s5 as i64, s5 as i64 + ms, 0.5),                 // no samples
            ("fw1", -5, -1, 0.1),                                     // no anchors
        ];
        let e = a.episodes(c.clone());
        assert_eq!(e.len(), 4);
        assert_eq!(
            (e[0].nf.as_str(), e[0].relations, e[0].score),
            ("fw2", 2, 5.0)
        );
        assert_eq!(e[0].last_ns, s22 as i64 + 60 * ms);
        assert!(matches!(
            e[0].verdict.as_ref().unwrap().outcome,
            Outcome::Anomaly { .. }
        ));
        assert!(matches!(
            e[1].verdict.as_ref().unwrap().outcome,
            Outcome::Normal { .. }
        ));
        assert_eq!(e[2].nf, "nat9");
        assert_eq!(e[2].verdict, None);
        let lines = a.describe_culprits(c, s22 as i64);
        assert!(
            lines[0].starts_with(
                "fw2 slow processing 0.0–60.0 ms (score 5.0, 2 relations); CPU contention detected"
            ),
            "{}",
            lines[0]
        );
        assert!(
            lines[2].ends_with("no NF samples for nat9 at this time"),
            "{}",
            lines[2]
        );
        assert!(lines[3].contains("no clock anchors"), "{}", lines[3]);
    }

    #[test]
    fn open_reads_files_and_rejects_non_anomaly_models() {
        let dir = tempfile::tempdir().unwrap();
        let samples = dir.path().join("samples");
        std::fs::create_dir(&samples).unwrap();
        crate::schema::write_jsonl(&samples.join("fw2.jsonl"), &nf_rows("fw2", 20, 26)).unwrap();
        let mp = dir.path().join("anomaly.json");
        model(Some(6), None).save(&mp).unwrap();
        let a = Annotator::open(&samples, &mp).unwrap();
        assert_eq!(a.nfs(), vec!["fw2".to_string()]);
        let (s, e) = inside(23);
        assert!(a.describe("fw2", s, e).starts_with("CPU contention"));
        // A utilization model is refused with the file named.
        let est = crate::utilization::LinearEstimator {
            features: vec!["proc.a".into()],
            standardizer: crate::stats::Standardizer {
                mean: vec![0.0],
                std: vec![1.0],
            },
            coef: vec![0.0, 1.0],
            label: "x".into(),
        };
        let um = ModelFile::new(
            None,
            vec!["proc.a".into()],
            "l",
            "t",
            ModelBody::Utilization(est),
        );
        let up = dir.path().join("util.json");
        um.save(&up).unwrap();
        let e = Annotator::open(&samples, &up).err().unwrap().to_string();
        assert!(
            e.contains("util.json") && e.contains("not an anomaly model"),
            "{e}"
        );
        // No samples at all is an error naming the place.
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let e = Annotator::open(&empty, &mp).err().unwrap().to_string();
        assert!(e.contains("no sample file"), "{e}");
    }
}
