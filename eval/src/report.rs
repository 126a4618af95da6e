//! Rendering evaluation results: the accuracy table, the rank CDF table
//! (paper Fig. 11/12), the per-seed summary, sweeps, the failure analysis,
//! and the `--json` shape.

use crate::stats::{rank_at_percentiles, rank_cdf, MethodAccuracy, SeedSummary};
use crate::{EvalResult, VictimOutcome};
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write;

fn pct(x: f64) -> String {
    format!("{:5.1}%", 100.0 * x)
}

/// The accuracy table: one row per (method, fault kind).
pub fn accuracy_table(ms: &MethodAccuracy, nm: &MethodAccuracy) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<10} {:<10} {:>8} {:>8} {:>8} {:>8}",
        "method", "victims", "of kind", "rank=1", "rank<=2", "rank<=5"
    );
    for (name, m) in [("microscope", ms), ("netmedic", nm)] {
        for key in MethodAccuracy::KEYS {
            let a = m.get(key).expect("known key");
            let _ = writeln!(
                s,
                "{:<10} {:<10} {:>8} {:>8} {:>8} {:>8}",
                name,
                key,
                a.victims,
                pct(a.rank1),
                pct(a.rank2),
                pct(a.rank5)
            );
        }
    }
    s
}

/// The rank CDF of Fig. 11 (overall) and Fig. 12 (per kind): share of
/// victims whose culprit has rank ≤ k, k = 1..=10, and the rank reached at
/// victim percentiles.
/// The rank of the injected culprit for each victim of `kind` (all kinds
/// when `None`), by Microscope (`microscope`) or NetMedic.
fn ranks_of(
    victims: &[VictimOutcome],
    kind: Option<crate::matching::Kind>,
    microscope: bool,
) -> Vec<Option<usize>> {
    victims
        .iter()
        .filter(|v| kind.is_none_or(|k| v.kind == k))
        .map(|v| {
            if microscope {
                v.microscope.rank
            } else {
                v.netmedic.rank
            }
        })
        .collect()
}

pub fn cdf_table(victims: &[VictimOutcome]) -> String {
    let mut s = String::new();
    let groups: Vec<(&str, Option<crate::matching::Kind>)> = vec![
        ("overall", None),
        ("burst", Some(crate::matching::Kind::Burst)),
        ("interrupt", Some(crate::matching::Kind::Interrupt)),
        ("bug", Some(crate::matching::Kind::Bug)),
    ];
    let _ = writeln!(s, "share of victims with culprit rank <= k:");
    let _ = write!(s, "{:<22}", "group");
    for k in 1..=10 {
        let _ = write!(s, " {:>6}", format!("k={k}"));
    }
    let _ = writeln!(s);
    for (gname, kind) in &groups {
        for (mname, ms) in [("microscope", true), ("netmedic", false)] {
            let ranks = ranks_of(victims, *kind, ms);
            if ranks.is_empty() {
                continue;
            }
            let _ = write!(s, "{:<22}", format!("{gname}/{mname}"));
            for x in rank_cdf(&ranks, 10) {
                let _ = write!(s, " {:>6}", format!("{:.1}", 100.0 * x));
            }
            let _ = writeln!(s);
        }
    }
    let pcts = [10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 100.0];
    let _ = writeln!(
        s,
        "\nrank of the injected culprit at victim percentile (Fig. 11; '-' = not named):"
    );
    let _ = write!(s, "{:<22}", "group");
    for p in pcts {
        let _ = write!(s, " {:>6}", format!("{p}%"));
    }
    let _ = writeln!(s);
    for (gname, kind) in &groups {
        for (mname, ms) in [("microscope", true), ("netmedic", false)] {
            let ranks = ranks_of(victims, *kind, ms);
            if ranks.is_empty() {
                continue;
            }
            let _ = write!(s, "{:<22}", format!("{gname}/{mname}"));
            for r in rank_at_percentiles(&ranks, &pcts) {
                let _ = write!(
                    s,
                    " {:>6}",
                    r.map(|r| r.to_string()).unwrap_or_else(|| "-".into())
                );
            }
            let _ = writeln!(s);
        }
    }
    s
}

/// Why Microscope missed rank 1: for each fault kind, what stood first.
pub fn failure_analysis(victims: &[VictimOutcome], max_rows: usize) -> String {
    let mut s = String::new();
    let mut by: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut not_diagnosed: BTreeMap<String, usize> = BTreeMap::new();
    let mut total: BTreeMap<String, usize> = BTreeMap::new();
    for v in victims {
        *total.entry(v.kind.name().to_string()).or_default() += 1;
        if v.microscope.rank == Some(1) {
            continue;
        }
        if !v.ms_diagnosed {
            *not_diagnosed.entry(v.kind.name().to_string()).or_default() += 1;
            continue;
        }
        let what = v
            .ms_top
            .clone()
            .unwrap_or_else(|| "(empty ranking)".to_string());
        *by.entry((v.kind.name().to_string(), what)).or_default() += 1;
    }
    let _ = writeln!(
        s,
        "Microscope misses (rank != 1), by fault kind and what ranked first instead:"
    );
    for (kind, n) in &total {
        let nd = not_diagnosed.get(kind).copied().unwrap_or(0);
        let _ = writeln!(
            s,
            "  {kind}: {n} victims; {nd} not diagnosed by the engine (no victim record at that slot)"
        );
        let mut rows: Vec<(&String, usize)> = by
            .iter()
            .filter(|((k, _), _)| k == kind)
            .map(|((_, w), c)| (w, *c))
            .collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        for (what, c) in rows.into_iter().take(max_rows) {
            let _ = writeln!(s, "    {c:>6}  first: {what}");
        }
    }
    s
}

/// One seed's full text report.
pub fn render_text(r: &EvalResult) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "scenario {} seed {}: {} faults injected, {} labelled victims ({} diagnosed by Microscope)",
        r.scenario,
        r.seed,
        r.faults,
        r.victims.len(),
        r.victims.iter().filter(|v| v.ms_diagnosed).count()
    );
    let _ = writeln!(
        s,
        "time: simulate {:.1}s, microscope {:.1}s, netmedic+scoring {:.1}s",
        r.timings.simulate_s, r.timings.microscope_s, r.timings.netmedic_s
    );
    s.push_str(&accuracy_table(&r.microscope, &r.netmedic));
    if let Some(alt) = &r.netmedic_alt {
        let _ = writeln!(s, "netmedic (alternative configuration):");
        for key in MethodAccuracy::KEYS {
            let a = alt.get(key).expect("known key");
            let _ = writeln!(
                s,
                "{:<10} {:<10} {:>8} {:>8} {:>8} {:>8}",
                "nm-alt",
                key,
                a.victims,
                pct(a.rank1),
                pct(a.rank2),
                pct(a.rank5)
            );
        }
    }
    s.push('\n');
    s.push_str(&cdf_table(&r.victims));
    s.push('\n');
    s.push_str(&failure_analysis(&r.victims, 8));
    s
}

/// The `--json` document of one run.
pub fn to_json(ms: &MethodAccuracy, nm: &MethodAccuracy) -> serde_json::Value {
    json!({ "microscope": ms, "netmedic": nm })
}

/// Mean/min over seeds as a table.
pub fn seeds_table(ms: &[SeedSummary], nm: &[SeedSummary]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<10} {:<10} {:>6} {:>8} {:>15} {:>15} {:>15}",
        "method",
        "kind",
        "seeds",
        "victims",
        "rank=1 mean/min",
        "rank<=2 mean/min",
        "rank<=5 mean/min"
    );
    for (name, rows) in [("microscope", ms), ("netmedic", nm)] {
        for r in rows {
            let mm =
                |m: crate::stats::MeanMin| format!("{:.1}/{:.1}", 100.0 * m.mean, 100.0 * m.min);
            let _ = writeln!(
                s,
                "{:<10} {:<10} {:>6} {:>8} {:>15} {:>15} {:>15}",
                name,
                r.key,
                r.seeds,
                r.victims_total,
                mm(r.rank1),
                mm(r.rank2),
                mm(r.rank5)
            );
        }
    }
    s
}

/// A sweep as a table: one row per point, rank-1 (and ≤2) for both methods.
pub fn sweep_table(which: crate::run::Sweep, points: &[crate::run::SweepPoint]) -> String {
    let mut s = String::new();
    let key = match which {
        crate::run::Sweep::BurstSize => "burst",
        crate::run::Sweep::InterruptLength => "interrupt",
        crate::run::Sweep::Hops | crate::run::Sweep::NetmedicWindow => "overall",
    };
    let _ = writeln!(
        s,
        "{:<20} {:>8} {:>12} {:>12} {:>12} {:>12}",
        "point", "victims", "MS rank=1", "MS rank<=2", "NM rank=1", "NM rank<=5"
    );
    for p in points {
        let ms = p.microscope.get(key).expect("known key");
        let nm = p.netmedic.get(key).expect("known key");
        let _ = writeln!(
            s,
            "{:<20} {:>8} {:>12} {:>12} {:>12} {:>12}",
            p.label,
            ms.victims,
            pct(ms.rank1),
            pct(ms.rank2),
            pct(nm.rank1),
            pct(nm.rank5)
        );
    }
    s
}
