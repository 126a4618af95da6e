//! The operator's report: ranked patterns plus the summaries (location
//! matrix, time-gap percentiles, relation/pattern counts), as a table, JSON
//! or CSV.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::engine::{self, Hhh};
use crate::hier::{Hier, SIDE_DIMS};
use crate::{Config, FlowRelation, Location, Pattern};

/// The aggregation result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Threshold used, as a fraction of `total_score`.
    pub threshold: f64,
    /// Sum of the scores of the aggregated relations.
    pub total_score: f64,
    /// Relations aggregated (valid input relations).
    pub relations: usize,
    /// Input relations skipped because their score was not finite and > 0.
    pub ignored: usize,
    /// Reported patterns, ranked by compressed score (then gross score, then
    /// the more specific first).
    pub patterns: Vec<Pattern>,
    /// Culprit-location type × victim-location type.
    pub matrix: LocationMatrix,
    /// Share of the total score whose culprit instance differs from the
    /// victim instance (propagation).
    pub propagated_share: f64,
    /// Distribution of culprit→victim time gaps over the relations with a
    /// finite gap; `None` when there is none.
    pub gaps: Option<GapSummary>,
    /// Problems with the configuration that were worked around.
    pub notes: Vec<String>,
}

/// The paper's Table 2: score share per (culprit location type, victim
/// location type).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LocationMatrix {
    /// Row labels: culprit location types (`source` first).
    pub culprit_types: Vec<String>,
    /// Column labels: victim location types.
    pub victim_types: Vec<String>,
    /// `cells[row][column]`.
    pub cells: Vec<Vec<MatrixCell>>,
}

/// One cell of the location matrix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MatrixCell {
    /// Share of the total score.
    pub share: f64,
    /// Part of `share` where the culprit instance differs from the victim
    /// instance (a *propagation* cell when positive).
    pub propagated_share: f64,
}

/// Culprit→victim time-gap percentiles (nearest rank), nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GapSummary {
    /// Relations with a finite gap.
    pub count: usize,
    /// 10th percentile.
    pub p10_ns: f64,
    /// 25th percentile.
    pub p25_ns: f64,
    /// Median.
    pub p50_ns: f64,
    /// 75th percentile.
    pub p75_ns: f64,
    /// 90th percentile.
    pub p90_ns: f64,
    /// 99th percentile.
    pub p99_ns: f64,
    /// Largest gap.
    pub max_ns: f64,
}

/// Builds the report (threshold and port hierarchy already valid).
pub(crate) fn build(
    locations: &[Location],
    relations: &[FlowRelation],
    config: &Config,
    notes: Vec<String>,
) -> Report {
    let mut enc = engine::encode_flows(locations, relations, config);
    // The summaries first: the engine then frees the leaves as it goes.
    let valid = || enc.source.iter().map(|&i| &relations[i]);
    let (matrix, propagated_share) = location_matrix(locations, valid(), enc.total);
    let gaps = gap_summary(valid().map(|r| r.gap_ns));
    let n_valid = enc.leaves.len();
    enc.source = Vec::new();
    let hhh = engine::run(&mut enc, config.threshold, config.rule);
    let patterns = to_patterns(&enc.hier, hhh, enc.total);
    Report {
        threshold: config.threshold,
        total_score: enc.total,
        relations: n_valid,
        ignored: enc.ignored,
        patterns,
        matrix,
        propagated_share,
        gaps,
        notes,
    }
}

/// Converts and ranks reported keys.
pub(crate) fn to_patterns(h: &Hier, mut hhh: Vec<Hhh>, total: f64) -> Vec<Pattern> {
    hhh.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.gross.total_cmp(&a.gross))
            .then(b.key.depth().cmp(&a.key.depth()))
            .then(a.key.cmp(&b.key))
    });
    hhh.into_iter()
        .map(|x| Pattern {
            culprit: h.side(&x.key, 0),
            victim: h.side(&x.key, SIDE_DIMS),
            score: x.score,
            share: if total > 0.0 { x.score / total } else { 0.0 },
            gross_score: x.gross,
            relations: x.n,
            gross_relations: x.gross_n,
        })
        .collect()
}

fn location_matrix<'a>(
    locations: &[Location],
    valid: impl Iterator<Item = &'a FlowRelation>,
    total: f64,
) -> (LocationMatrix, f64) {
    let mut cells: BTreeMap<(&str, &str), MatrixCell> = BTreeMap::new();
    let mut prop = 0.0;
    for r in valid {
        let (cl, vl) = (
            &locations[r.culprit_location as usize],
            &locations[r.victim_location as usize],
        );
        let c = cells
            .entry((cl.nf_type.as_str(), vl.nf_type.as_str()))
            .or_default();
        c.share += r.score;
        if cl != vl {
            c.propagated_share += r.score;
            prop += r.score;
        }
    }
    let mut rows: Vec<String> = cells.keys().map(|k| k.0.to_string()).collect();
    rows.sort_by_key(|t| (t != Location::SOURCE_TYPE, t.clone()));
    rows.dedup();
    let mut cols: Vec<String> = cells.keys().map(|k| k.1.to_string()).collect();
    cols.sort();
    cols.dedup();
    let norm = |x: f64| if total > 0.0 { x / total } else { 0.0 };
    let grid = rows
        .iter()
        .map(|r| {
            cols.iter()
                .map(|c| {
                    let cell = cells
                        .get(&(r.as_str(), c.as_str()))
                        .copied()
                        .unwrap_or_default();
                    MatrixCell {
                        share: norm(cell.share),
                        propagated_share: norm(cell.propagated_share),
                    }
                })
                .collect()
        })
        .collect();
    (
        LocationMatrix {
            culprit_types: rows,
            victim_types: cols,
            cells: grid,
        },
        norm(prop),
    )
}

/// Nearest-rank percentiles of the finite values in `gaps`; `None` when
/// there is none.
pub fn gap_summary(gaps: impl Iterator<Item = f64>) -> Option<GapSummary> {
    let mut v: Vec<f64> = gaps.filter(|g| g.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let pct = |p: f64| {
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        v[rank.clamp(1, n) - 1]
    };
    Some(GapSummary {
        count: n,
        p10_ns: pct(10.0),
        p25_ns: pct(25.0),
        p50_ns: pct(50.0),
        p75_ns: pct(75.0),
        p90_ns: pct(90.0),
        p99_ns: pct(99.0),
        max_ns: v[n - 1],
    })
}

/// A duration in nanoseconds, human readable.
fn fmt_ns(ns: f64) -> String {
    let a = ns.abs();
    if a >= 1e9 {
        format!("{:.2}s", ns / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}ms", ns / 1e6)
    } else if a >= 1e3 {
        format!("{:.2}µs", ns / 1e3)
    } else {
        format!("{ns:.0}ns")
    }
}

fn fmt_score(s: f64) -> String {
    if s.abs() >= 1e6 || (s != 0.0 && s.abs() < 0.01) {
        format!("{s:.3e}")
    } else {
        format!("{s:.2}")
    }
}

fn fmt_pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl Report {
    /// One-line summary: "N relations aggregated into M patterns …".
    pub fn summary_line(&self) -> String {
        format!(
            "{} relations aggregated into {} patterns (threshold {}, total score {}{})",
            self.relations,
            self.patterns.len(),
            fmt_pct(self.threshold),
            fmt_score(self.total_score),
            if self.ignored > 0 {
                format!(
                    ", {} relations ignored: score not finite and > 0",
                    self.ignored
                )
            } else {
                String::new()
            }
        )
    }

    /// The ranked patterns and the summaries as text. One line per pattern
    /// (`<culprit 5-tuple> <location> => <victim 5-tuple> <location> score
    /// share`, like the paper's Fig. 14) when that fits in `width` columns,
    /// otherwise two lines per pattern with the victim under the culprit.
    pub fn render_table(&self, width: usize) -> String {
        let mut out = String::new();
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        let _ = writeln!(out, "{}", self.summary_line());
        out.push('\n');
        self.render_patterns(width, &mut out);
        out.push('\n');
        self.render_matrix(&mut out);
        out.push('\n');
        match &self.gaps {
            Some(g) => {
                let _ = writeln!(
                    out,
                    "Culprit→victim time gap over {} relations: p10 {}  p25 {}  p50 {}  p75 {}  p90 {}  p99 {}  max {}",
                    g.count,
                    fmt_ns(g.p10_ns),
                    fmt_ns(g.p25_ns),
                    fmt_ns(g.p50_ns),
                    fmt_ns(g.p75_ns),
                    fmt_ns(g.p90_ns),
                    fmt_ns(g.p99_ns),
                    fmt_ns(g.max_ns)
                );
            }
            None => out.push_str("Culprit→victim time gap: no relation has a finite gap\n"),
        }
        out
    }

    fn render_patterns(&self, width: usize, out: &mut String) {
        if self.patterns.is_empty() {
            out.push_str("No pattern reaches the threshold.\n");
            return;
        }
        let rows: Vec<([String; 6], [String; 6], String, String)> = self
            .patterns
            .iter()
            .map(|p| {
                (
                    p.culprit.fields(),
                    p.victim.fields(),
                    fmt_score(p.score),
                    fmt_pct(p.share),
                )
            })
            .collect();
        let heads = ["src", "dst", "proto", "sport", "dport", "location"];
        let mut w = [0usize; 6];
        for (j, h) in heads.iter().enumerate() {
            w[j] = h.chars().count();
        }
        let (mut ws, mut wp) = ("score".len(), "share".len());
        for (c, v, s, p) in &rows {
            for j in 0..6 {
                w[j] = w[j].max(c[j].chars().count()).max(v[j].chars().count());
            }
            ws = ws.max(s.len());
            wp = wp.max(p.len());
        }
        let wr = rows.len().to_string().len().max(1);
        let side = |f: &[String; 6]| {
            let mut s = String::new();
            for j in 0..6 {
                if j > 0 {
                    s.push(' ');
                }
                let _ = write!(s, "{:<width$}", f[j], width = w[j]);
            }
            s
        };
        let side_w: usize = w.iter().sum::<usize>() + 5;
        let one_line = wr + 2 + side_w * 2 + 4 + 2 + ws + 2 + wp;
        let head_fields: [String; 6] = heads.map(String::from);
        if one_line <= width {
            let _ = writeln!(
                out,
                "{:>wr$}  {}  => {}  {:>ws$}  {:>wp$}",
                "#",
                side(&head_fields),
                side(&head_fields),
                "score",
                "share"
            );
            for (i, (c, v, s, p)) in rows.iter().enumerate() {
                let line = format!(
                    "{:>wr$}  {}  => {}  {:>ws$}  {:>wp$}",
                    i + 1,
                    side(c),
                    side(v),
                    s,
                    p
                );
                let _ = writeln!(out, "{}", line.trim_end());
            }
        } else {
            let lead = wr + 2 + wp + 2 + ws + 2;
            let _ = writeln!(
                out,
                "{:>wr$}  {:>wp$}  {:>ws$}  {}",
                "#",
                "share",
                "score",
                side(&head_fields).trim_end()
            );
            let _ = writeln!(out, "{:lead$}=> {}", "", side(&head_fields).trim_end());
            for (i, (c, v, s, p)) in rows.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{:>wr$}  {:>wp$}  {:>ws$}  {}",
                    i + 1,
                    p,
                    s,
                    side(c).trim_end()
                );
                let _ = writeln!(out, "{:lead$}=> {}", "", side(v).trim_end());
            }
        }
    }

    fn render_matrix(&self, out: &mut String) {
        let m = &self.matrix;
        if m.cells.is_empty() {
            return;
        }
        out.push_str(
            "Culprit location × victim location, share of the total score (* = propagation: \
             culprit instance ≠ victim instance)\n",
        );
        let label = "culprit \\ victim";
        let w0 = m
            .culprit_types
            .iter()
            .map(|s| s.chars().count())
            .chain([label.len()])
            .max()
            .unwrap_or(0);
        let cell = |c: &MatrixCell| {
            if c.share == 0.0 {
                "-".to_string()
            } else if c.propagated_share > 0.0 {
                format!("*{}", fmt_pct(c.share))
            } else {
                fmt_pct(c.share)
            }
        };
        let wc: Vec<usize> = (0..m.victim_types.len())
            .map(|j| {
                m.cells
                    .iter()
                    .map(|row| cell(&row[j]).chars().count())
                    .chain([m.victim_types[j].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let _ = write!(out, "{label:<w0$}");
        for (j, t) in m.victim_types.iter().enumerate() {
            let _ = write!(out, "  {t:>width$}", width = wc[j]);
        }
        out.push('\n');
        for (i, row) in m.cells.iter().enumerate() {
            let _ = write!(out, "{:<w0$}", m.culprit_types[i]);
            for (j, c) in row.iter().enumerate() {
                let _ = write!(out, "  {:>width$}", cell(c), width = wc[j]);
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "Propagation (culprit instance ≠ victim instance): {} of the score",
            fmt_pct(self.propagated_share)
        );
    }

    /// The whole report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }

    /// The ranked patterns as CSV with a header row: rank, the six culprit
    /// fields, the six victim fields, score, share, gross score, relations,
    /// gross relations. `*` means any.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "rank,culprit_src,culprit_dst,culprit_proto,culprit_sport,culprit_dport,culprit_location,\
             victim_src,victim_dst,victim_proto,victim_sport,victim_dport,victim_location,\
             score,share,gross_score,relations,gross_relations\n",
        );
        for (i, p) in self.patterns.iter().enumerate() {
            let mut f: Vec<String> = vec![(i + 1).to_string()];
            f.extend(p.culprit.fields().iter().map(|s| csv_field(s)));
            f.extend(p.victim.fields().iter().map(|s| csv_field(s)));
            f.push(p.score.to_string());
            f.push(p.share.to_string());
            f.push(p.gross_score.to_string());
            f.push(p.relations.to_string());
            f.push(p.gross_relations.to_string());
            out.push_str(&f.join(","));
            out.push('\n');
        }
        out
    }
}
