//! From schema rows to labelled feature matrices, and the data splits used
//! by every evaluation.
//!
//! Missing values stay missing in the rows; only here, when a matrix is
//! built, a missing cell is filled from the **same series** — last value
//! carried forward, else the next value — which uses no label and no other
//! series. The number of filled cells is reported ([`Dataset::imputed`]).
//! Features missing in more than half of any series are dropped instead.
//!
//! Splits are by **time blocks**: each series (one file / one run) is cut
//! into `k` contiguous blocks; fold `b` tests on block `b` of every series and
//! trains on the other blocks minus a guard of `guard` intervals on each side
//! of the test block, so autocorrelated neighbours never straddle the split.

use crate::error::{NfmonError, Result};
use crate::import;
use crate::schema::Row;
use std::path::{Path, PathBuf};

/// A labelled feature matrix.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Feature (metric) names, one per column.
    pub features: Vec<String>,
    /// Rows × features, no missing cells.
    pub x: Vec<Vec<f64>>,
    /// Class index per row (into `class_names`).
    pub class: Vec<usize>,
    /// Class names.
    pub class_names: Vec<String>,
    /// Numeric target per row (e.g. offered load in %), NaN when unknown.
    pub target: Vec<f64>,
    /// Series index per row (into `series_names`): one file or one run.
    pub series: Vec<usize>,
    /// Series names.
    pub series_names: Vec<String>,
    /// Position of the row within its series (0-based).
    pub pos: Vec<usize>,
    /// Number of rows of each series.
    pub series_len: Vec<usize>,
    /// Number of missing cells filled from neighbours in the same series.
    pub imputed: usize,
    /// When set, folds hold out whole groups instead of time blocks: row `i`
    /// is in test fold `b` iff `fold_group[i] % k == b` (see
    /// [`Dataset::group_by_run`]).
    pub fold_group: Option<Vec<usize>>,
}

/// One labelled series, input to [`Dataset::build`].
#[derive(Debug, Clone)]
pub struct Series {
    /// Series name (file stem, run id).
    pub name: String,
    /// Class name of every row in the series.
    pub class: String,
    /// Numeric target of every row (NaN when none).
    pub target: f64,
    /// The rows, in time order.
    pub rows: Vec<Row>,
}

impl Dataset {
    /// Build a matrix from labelled series. `features`: the columns to use,
    /// or `None` for every metric present in at least half the rows of every
    /// series (sorted by name). `keep`: a filter on metric names (e.g. tier).
    pub fn build(
        series: &[Series],
        features: Option<&[String]>,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Dataset> {
        if series.is_empty() {
            return Err(NfmonError::Data("no series".into()));
        }
        let features: Vec<String> = match features {
            Some(f) => f.to_vec(),
            None => {
                let mut names: Vec<String> = series[0]
                    .rows
                    .iter()
                    .flat_map(|r| r.values.keys().cloned())
                    .filter(|n| keep(n))
                    .collect();
                names.sort();
                names.dedup();
                names.retain(|n| {
                    series.iter().all(|s| {
                        let present = s.rows.iter().filter(|r| r.get(n).is_some()).count();
                        !s.rows.is_empty() && present * 2 >= s.rows.len()
                    })
                });
                names
            }
        };
        if features.is_empty() {
            return Err(NfmonError::Data(
                "no feature is present in at least half of every series".into(),
            ));
        }
        let mut class_names: Vec<String> = Vec::new();
        let mut ds = Dataset {
            features: features.clone(),
            x: Vec::new(),
            class: Vec::new(),
            class_names: Vec::new(),
            target: Vec::new(),
            series: Vec::new(),
            series_names: Vec::new(),
            pos: Vec::new(),
            series_len: Vec::new(),
            imputed: 0,
            fold_group: None,
        };
        for (si, s) in series.iter().enumerate() {
            let ci = match class_names.iter().position(|c| c == &s.class) {
                Some(i) => i,
                None => {
                    class_names.push(s.class.clone());
                    class_names.len() - 1
                }
            };
            // Column-wise fill: carry forward, then backward.
            let mut cols: Vec<Vec<Option<f64>>> = features
                .iter()
                .map(|f| s.rows.iter().map(|r| r.get(f)).collect())
                .collect();
            for (fi, col) in cols.iter_mut().enumerate() {
                let missing = col.iter().filter(|v| v.is_none()).count();
                if missing == col.len() {
                    return Err(NfmonError::Data(format!(
                        "series {}: feature {} is missing in every row",
                        s.name, features[fi]
                    )));
                }
                ds.imputed += missing;
                let mut last = None;
                for v in col.iter_mut() {
                    match v {
                        Some(x) => last = Some(*x),
                        None => *v = last,
                    }
                }
                let mut next = None;
                for v in col.iter_mut().rev() {
                    match v {
                        Some(x) => next = Some(*x),
                        None => *v = next,
                    }
                }
            }
            for i in 0..s.rows.len() {
                ds.x.push(cols.iter().map(|c| c[i].unwrap_or(0.0)).collect());
                ds.class.push(ci);
                ds.target.push(s.target);
                ds.series.push(si);
                ds.pos.push(i);
            }
            ds.series_names.push(s.name.clone());
            ds.series_len.push(s.rows.len());
        }
        ds.class_names = class_names;
        Ok(ds)
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.x.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }

    /// Block index (0..k) of each row: its series cut into k contiguous blocks.
    pub fn block_of(&self, i: usize, k: usize) -> usize {
        let k = k.max(1);
        let n = self.series_len[self.series[i]].max(1);
        (self.pos[i] * k / n).min(k - 1)
    }

    /// Make folds hold out whole runs: the run of a row is the part of its
    /// series name before `#` (as [`crate::train::series_from_rows`] names
    /// series); runs are numbered in first-seen order.
    pub fn group_by_run(&mut self) {
        self.fold_group = Some(self.run_ids());
    }

    /// Each row's run: the part of its series name before `#` (as
    /// [`crate::train::series_from_rows`] names series) and before `@` (a
    /// source `RUN@NF` is one NF of a multi-NF run), numbered in first-seen
    /// order.
    pub fn run_ids(&self) -> Vec<usize> {
        let mut runs: Vec<&str> = Vec::new();
        self.series
            .iter()
            .map(|&s| {
                let name = self.series_names[s].split('#').next().unwrap_or("");
                // `RUN@NF` sources (one per NF of a multi-NF run) share the run.
                let r = name.split_once('@').map_or(name, |(run, _)| run);
                match runs.iter().position(|x| *x == r) {
                    Some(i) => i,
                    None => {
                        runs.push(r);
                        runs.len() - 1
                    }
                }
            })
            .collect()
    }

    /// Fold `b` of `k`: (train indices, test indices). Time blocks with
    /// `guard` intervals removed from training on both sides of each test
    /// block, or whole groups when [`Dataset::fold_group`] is set.
    pub fn block_fold(&self, k: usize, b: usize, guard: usize) -> (Vec<usize>, Vec<usize>) {
        let k = k.max(1);
        let mut train = Vec::new();
        let mut test = Vec::new();
        if let Some(g) = &self.fold_group {
            for (i, gi) in g.iter().enumerate() {
                if gi % k == b {
                    test.push(i);
                } else {
                    train.push(i);
                }
            }
            return (train, test);
        }
        for i in 0..self.len() {
            let blk = self.block_of(i, k);
            if blk == b {
                test.push(i);
                continue;
            }
            let n = self.series_len[self.series[i]];
            let lo = (b * n).div_ceil(k);
            let hi = ((b + 1) * n).div_ceil(k);
            let p = self.pos[i];
            let near = (p < lo && lo - p <= guard) || (p >= hi && p - hi < guard);
            if !near {
                train.push(i);
            }
        }
        (train, test)
    }

    /// Check that `k`-fold evaluation is possible (k ≥ 2 and every fold has
    /// training rows).
    pub fn check_folds(&self, k: usize) -> Result<()> {
        if k < 2 {
            return Err(NfmonError::Data(format!("need at least 2 folds, got {k}")));
        }
        if let Some(g) = &self.fold_group {
            let groups = g.iter().max().map_or(0, |m| m + 1);
            if groups < k {
                return Err(NfmonError::Data(format!(
                    "{groups} runs cannot make {k} folds"
                )));
            }
        }
        Ok(())
    }

    /// Select rows and columns.
    pub fn take(&self, rows: &[usize], cols: &[usize]) -> Vec<Vec<f64>> {
        rows.iter()
            .map(|&r| cols.iter().map(|&c| self.x[r][c]).collect())
            .collect()
    }

    /// Column indices of named features (error names the missing one).
    pub fn columns(&self, names: &[String]) -> Result<Vec<usize>> {
        names
            .iter()
            .map(|n| {
                self.features
                    .iter()
                    .position(|f| f == n)
                    .ok_or_else(|| NfmonError::Data(format!("feature {n} not in dataset")))
            })
            .collect()
    }
}

/// Locate the shared data directory: `$MICROSCOPE_SHARED_DATA`, else
/// `<workspace>/../shared/data`. Returns the path only if it exists.
pub fn shared_data_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MICROSCOPE_SHARED_DATA") {
        let p = PathBuf::from(p);
        return p.is_dir().then_some(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    p.canonicalize().ok().filter(|p| p.is_dir())
}

/// The VPP dataset directory (`<shared>/vpp-perf-counters`), if present.
pub fn vpp_dir() -> Option<PathBuf> {
    let p = shared_data_dir()?.join("vpp-perf-counters");
    p.join("README.md").is_file().then_some(p)
}

/// Which recording campaign of the VPP dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VppProfile {
    /// `out_<rate>mbits.csv`: 39 hardware + software events.
    Out,
    /// `nm_<rate>mbps.csv`: 26 hardware events.
    Nm,
}

impl VppProfile {
    /// Both profiles.
    pub const ALL: [VppProfile; 2] = [VppProfile::Out, VppProfile::Nm];

    /// Short name (`out`, `nm`).
    pub fn name(self) -> &'static str {
        match self {
            VppProfile::Out => "out",
            VppProfile::Nm => "nm",
        }
    }
}

/// The offered loads of the VPP dataset, Mbps.
pub const VPP_RATES_MBPS: [u32; 4] = [500, 1000, 5000, 9000];

/// The utilisation label used with the VPP data: **offered load as a
/// percentage of the 10 Gbps line rate**, 0 before traffic starts (the data
/// has no measured busy share, so this is the label, stated with every figure).
pub const VPP_LABEL_DEFINITION: &str = "offered load as % of the 10 Gbps line rate, 0 while idle \
     (VPP data has no measured utilization)";

/// The event whose step defines the traffic onset in each VPP file. It is
/// used **only** for labelling and is excluded from every feature set.
pub const VPP_ONSET_EVENT: &str = "hw.cache-references";

/// How the idle/traffic labels of the VPP data are derived, stated with
/// every figure that uses them.
pub const VPP_ONSET_DEFINITION: &str = "each VPP file starts idle (busy polling, no traffic) and \
     traffic starts once; the onset is the single change point minimising the squared error of \
     a two-segment fit of log10(cache-references) (an offline, whole-file method); intervals \
     within 3 of the onset are dropped; cache-references is then excluded from the features";

/// Intervals dropped on each side of the onset.
pub const VPP_ONSET_GUARD: usize = 3;

/// The single change point of a series: index `i` (first index of the second
/// segment) minimising the total squared error of a two-mean fit of
/// `log10(1 + v)`, over indices where the value is present. `None` if fewer
/// than 4 values are present.
pub fn change_point(values: &[Option<f64>]) -> Option<usize> {
    let pts: Vec<(usize, f64)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|x| (i, (1.0 + x.max(0.0)).log10())))
        .collect();
    let n = pts.len();
    if n < 4 {
        return None;
    }
    let total: f64 = pts.iter().map(|p| p.1).sum();
    let total2: f64 = pts.iter().map(|p| p.1 * p.1).sum();
    let (mut s, mut s2) = (0.0, 0.0);
    let mut best: Option<(f64, usize)> = None;
    for k in 1..n {
        s += pts[k - 1].1;
        s2 += pts[k - 1].1 * pts[k - 1].1;
        let (nl, nr) = (k as f64, (n - k) as f64);
        let sse = (s2 - s * s / nl) + ((total2 - s2) - (total - s) * (total - s) / nr);
        if best.is_none_or(|(b, _)| sse < b) {
            best = Some((sse, pts[k].0));
        }
    }
    best.map(|b| b.1)
}

/// Load one profile of the VPP dataset as labelled series: per rate, an
/// idle series (class `idle`, target 0) before the traffic onset and a
/// traffic series (class `<rate>mbps`, target = offered load % of 10 Gbps)
/// after it; see [`VPP_ONSET_DEFINITION`].
pub fn load_vpp(dir: &Path, profile: VppProfile) -> Result<Vec<Series>> {
    let mut out = Vec::new();
    for rate in VPP_RATES_MBPS {
        let file = match profile {
            VppProfile::Out => format!("out_{rate}mbits.csv"),
            VppProfile::Nm => format!("nm_{rate}mbps.csv"),
        };
        let path = dir.join(&file);
        let rows = import::import_file(&path)?;
        let onset_vals: Vec<Option<f64>> = rows.iter().map(|r| r.get(VPP_ONSET_EVENT)).collect();
        let onset = change_point(&onset_vals).ok_or_else(|| {
            NfmonError::Data(format!("{}: no {VPP_ONSET_EVENT} values", path.display()))
        })?;
        let strip = |mut r: Row, label: &str| {
            r.values.remove(VPP_ONSET_EVENT);
            r.label = Some(label.to_string());
            r
        };
        let idle: Vec<Row> = rows[..onset.saturating_sub(VPP_ONSET_GUARD)]
            .iter()
            .cloned()
            .map(|r| strip(r, "idle"))
            .collect();
        let busy: Vec<Row> = rows[(onset + VPP_ONSET_GUARD).min(rows.len())..]
            .iter()
            .cloned()
            .map(|r| strip(r, &format!("{rate}mbps")))
            .collect();
        out.push(Series {
            name: format!("{}_{rate}_idle", profile.name()),
            class: "idle".into(),
            target: 0.0,
            rows: idle,
        });
        out.push(Series {
            name: format!("{}_{rate}", profile.name()),
            class: format!("{rate}mbps"),
            target: rate as f64 / 100.0,
            rows: busy,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, class: &str, vals: &[Option<f64>]) -> Series {
        Series {
            name: name.into(),
            class: class.into(),
            target: 1.0,
            rows: vals
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let mut r = Row::new(name, i as f64, Some(1.0));
                    r.set("hw.a", *v);
                    r.set("hw.b", Some(i as f64));
                    r
                })
                .collect(),
        }
    }

    #[test]
    fn fill_from_same_series_only() {
        let s = vec![
            series("s1", "x", &[None, Some(2.0), None, Some(4.0)]),
            series("s2", "y", &[Some(9.0), Some(9.0)]),
        ];
        let ds = Dataset::build(&s, None, &|_| true).unwrap();
        assert_eq!(ds.features, vec!["hw.a".to_string(), "hw.b".into()]);
        let a: Vec<f64> = ds.x.iter().map(|r| r[0]).collect();
        assert_eq!(a, vec![2.0, 2.0, 2.0, 4.0, 9.0, 9.0]);
        assert_eq!(ds.imputed, 2);
        assert_eq!(ds.class, vec![0, 0, 0, 0, 1, 1]);
    }

    #[test]
    fn change_point_finds_step() {
        let mut v: Vec<Option<f64>> = (0..40).map(|i| Some(1000.0 + (i % 3) as f64)).collect();
        v.extend((0..60).map(|i| Some(5e5 + (i % 7) as f64 * 1e3)));
        v[10] = None;
        v[45] = Some(900.0); // a dip inside traffic does not move the onset
        assert_eq!(change_point(&v), Some(40));
        assert_eq!(change_point(&[Some(1.0), None, Some(2.0)]), None);
    }

    #[test]
    fn blocks_partition_and_guard() {
        let vals: Vec<Option<f64>> = (0..30).map(|i| Some(i as f64)).collect();
        let s = vec![series("s1", "x", &vals)];
        let ds = Dataset::build(&s, None, &|_| true).unwrap();
        let (tr, te) = ds.block_fold(3, 1, 2);
        assert_eq!(te, (10..20).collect::<Vec<_>>());
        assert!(!tr.contains(&8) && !tr.contains(&9) && !tr.contains(&20) && !tr.contains(&21));
        assert!(tr.contains(&7) && tr.contains(&22));
        let mut all: Vec<usize> = (0..3).flat_map(|b| ds.block_fold(3, b, 0).1).collect();
        all.sort();
        assert_eq!(all, (0..30).collect::<Vec<_>>());
    }
}
