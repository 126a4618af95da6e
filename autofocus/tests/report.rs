//! The operator's report: table width, JSON and CSV round trips, the location
//! matrix with propagation cells, gap percentiles, and bad input.

mod common;

use autofocus::{aggregate, Config, Report};
use common::{flow, rel};

fn sample() -> Vec<autofocus::Relation> {
    let bug = flow("100.0.0.1", "32.0.0.1", 6, 2004, 6004);
    let victim = flow("186.11.183.182", "18.55.219.136", 6, 39812, 443);
    let other = flow("10.1.2.3", "20.3.4.5", 17, 5353, 53);
    let mut v = Vec::new();
    // 60 % local at fw2, 30 % propagated from a source to nat1, 10 % nat1 →
    // vpn1. Gaps 1..=100 µs.
    for i in 0..100u32 {
        let gap = (i + 1) as f64 * 1000.0;
        let r = match i % 10 {
            0..=5 => rel((bug, "fw2"), (victim, "fw2"), 1.0, gap),
            6..=8 => rel((other, "src0"), (victim, "nat1"), 1.0, gap),
            _ => rel((other, "nat1"), (victim, "vpn1"), 1.0, gap),
        };
        v.push(r);
    }
    v
}

#[test]
fn summaries_count_the_right_things() {
    let report = aggregate(&sample(), &Config::default());
    assert_eq!(report.relations, 100);
    assert_eq!(report.total_score, 100.0);
    // Each of the three groups is its own exact pattern, with exact shares.
    let shares: Vec<f64> = report.patterns.iter().map(|p| p.share).collect();
    assert_eq!(shares, vec![0.6, 0.3, 0.1]);
    assert!(report
        .summary_line()
        .starts_with("100 relations aggregated into 3 patterns"));
    // Matrix: rows source, fw, nat; columns fw, nat, vpn.
    let m = &report.matrix;
    assert_eq!(m.culprit_types, vec!["source", "fw", "nat"]);
    assert_eq!(m.victim_types, vec!["fw", "nat", "vpn"]);
    assert_eq!(m.cells[1][0].share, 0.6);
    assert_eq!(m.cells[1][0].propagated_share, 0.0);
    assert!((m.cells[0][1].propagated_share - 0.3).abs() < 1e-12);
    assert!((m.cells[2][2].propagated_share - 0.1).abs() < 1e-12);
    assert!((report.propagated_share - 0.4).abs() < 1e-12);
    // Nearest-rank percentiles of 1..=100 µs.
    let g = report.gaps.expect("gaps");
    assert_eq!(g.count, 100);
    assert_eq!(
        [g.p10_ns, g.p25_ns, g.p50_ns, g.p75_ns, g.p90_ns, g.p99_ns, g.max_ns],
        [10e3, 25e3, 50e3, 75e3, 90e3, 99e3, 100e3]
    );
}

#[test]
fn table_fits_100_columns_and_shows_fig14_fields() {
    let report = aggregate(&sample(), &Config::default());
    let table = report.render_table(100);
    let mut in_patterns = false;
    for line in table.lines() {
        if line.trim_start().starts_with('#') {
            in_patterns = true;
        }
        if line.is_empty() {
            in_patterns = false;
        }
        if in_patterns {
            assert!(
                line.chars().count() <= 100,
                "{} columns: {line}",
                line.chars().count()
            );
        }
    }
    assert!(table.contains("100.0.0.1/32"));
    assert!(table.contains("2004"));
    assert!(table.contains("=> "));
    assert!(table.contains("60.00%"));
    assert!(
        table.contains("*30.00%"),
        "propagation cell marked:\n{table}"
    );
    assert!(table.contains("p99 99.00µs"));
    // Wide terminals get Fig. 14's one line per pattern.
    let wide = report.render_table(300);
    let row = wide
        .lines()
        .find(|l| l.contains("100.0.0.1/32"))
        .expect("bug row");
    assert!(row.contains("fw2") && row.contains("=>") && row.contains("60.00%"));
}

#[test]
fn json_round_trips_and_csv_has_one_row_per_pattern() {
    let report = aggregate(&sample(), &Config::default());
    let back: Report = serde_json::from_str(&report.to_json()).expect("valid JSON");
    assert_eq!(back, report);
    let csv = report.to_csv();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + report.patterns.len());
    assert!(lines[0].starts_with("rank,culprit_src,culprit_dst,culprit_proto,culprit_sport"));
    let first: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(first.len(), 18);
    assert_eq!(
        &first[..7],
        &[
            "1",
            "100.0.0.1/32",
            "32.0.0.1/32",
            "6",
            "2004",
            "6004",
            "fw2"
        ]
    );
    assert_eq!(first[14], "0.6");
}

#[test]
fn bad_input_is_counted_not_fatal() {
    let mut rels = sample();
    rels[0].score = f64::NAN;
    rels[1].score = -1.0;
    rels[2].score = 0.0;
    rels[3].gap_ns = f64::INFINITY;
    let report = aggregate(
        &rels,
        &Config {
            threshold: 7.0,
            ..Config::default()
        },
    );
    assert_eq!(report.ignored, 3);
    assert_eq!(report.relations, 97);
    assert_eq!(report.threshold, 0.01);
    assert_eq!(report.notes.len(), 1);
    assert_eq!(report.gaps.unwrap().count, 96);
    let empty = aggregate(&[], &Config::default());
    assert!(empty.patterns.is_empty());
    assert!(empty.gaps.is_none());
    assert!(empty
        .render_table(100)
        .contains("0 relations aggregated into 0 patterns"));
}

#[test]
fn interned_input_gives_the_same_report_and_skips_unknown_locations() {
    let rels = sample();
    let (locs, mut flows) = autofocus::intern(&rels);
    assert_eq!(locs.len(), 4, "fw2, src0, nat1, vpn1");
    let cfg = Config::default();
    assert_eq!(
        autofocus::aggregate_flows(&locs, &flows, &cfg),
        aggregate(&rels, &cfg)
    );
    // A relation naming no location of the table is skipped and counted.
    flows[0].victim_location = locs.len() as u32;
    let r = autofocus::aggregate_flows(&locs, &flows, &cfg);
    assert_eq!((r.relations, r.ignored), (99, 1));
    assert_eq!(r.total_score, 99.0);
}
