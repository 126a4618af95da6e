//! The two-stage engine (one-dimensional pruning, per-culprit stage 1, closed
//! pattern HHH in stage 2) reports exactly what the exhaustive one-stage
//! reference reports, on inputs small enough to enumerate every subset.

mod common;

use autofocus::{aggregate, reference, Config, CountRule, PortHierarchy, Relation};
use common::{flow, rel};
use proptest::prelude::*;

// Small pools with shared prefixes so that aggregates at every depth occur.
const IPS: [&str; 6] = [
    "100.0.0.1",
    "100.0.0.2",
    "100.0.1.7",
    "32.0.0.1",
    "10.1.2.3",
    "200.9.9.9",
];
const PORTS: [u16; 8] = [80, 443, 2000, 2004, 2008, 6000, 6008, 40000];
const LOCS: [&str; 5] = ["fw1", "fw2", "nat1", "src0", "src1"];

fn arb_side() -> impl Strategy<Value = (collector::FiveTuple, &'static str)> {
    (
        0..6usize,
        0..6usize,
        prop::bool::ANY,
        0..8usize,
        0..8usize,
        0..5usize,
    )
        .prop_map(|(s, d, tcp, sp, dp, l)| {
            (
                flow(
                    IPS[s],
                    IPS[d],
                    if tcp { 6 } else { 17 },
                    PORTS[sp],
                    PORTS[dp],
                ),
                LOCS[l],
            )
        })
}

fn arb_relations() -> impl Strategy<Value = Vec<Relation>> {
    prop::collection::vec((arb_side(), arb_side(), 1u32..20, 0u32..5000), 1..=9).prop_map(|v| {
        v.into_iter()
            .map(|(c, vi, s, g)| rel(c, vi, s as f64, g as f64))
            .collect()
    })
}

fn arb_config() -> impl Strategy<Value = Config> {
    (
        prop::sample::select(vec![0.04, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0]),
        prop::sample::select(vec![
            PortHierarchy::Classic,
            PortHierarchy::Aligned { step_bits: 1 },
            PortHierarchy::Aligned { step_bits: 4 },
        ]),
        prop::sample::select(vec![CountRule::Split, CountRule::Overlap]),
    )
        .prop_map(|(threshold, port_hierarchy, rule)| Config {
            threshold,
            port_hierarchy,
            rule,
            threads: 0,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn two_stage_equals_exhaustive_one_stage(rels in arb_relations(), cfg in arb_config()) {
        let report = aggregate(&rels, &cfg);
        let exact = reference::one_stage(&rels, &cfg).expect("small input");
        prop_assert_eq!(&report.patterns, &exact);
        // Reported compressed scores never exceed the total, and each pattern
        // holds what it claims.
        for p in &report.patterns {
            let gross: f64 = rels.iter().filter(|r| p.contains(r)).map(|r| r.score).sum();
            prop_assert_eq!(gross, p.gross_score);
            prop_assert!(p.score <= p.gross_score);
            prop_assert!(p.score >= cfg.threshold * report.total_score);
        }
    }
}

/// Duplicated relations are exercised separately: equal keys fold together in
/// stage 1 and must still count once per relation.
#[test]
fn duplicates_fold_without_changing_the_result() {
    let a = rel(
        (flow("100.0.0.1", "32.0.0.1", 6, 2000, 6000), "fw2"),
        (flow("10.1.2.3", "200.9.9.9", 6, 40000, 80), "fw2"),
        3.0,
        10.0,
    );
    let b = rel(
        (flow("100.0.0.1", "32.0.0.1", 6, 2004, 6004), "fw2"),
        (flow("10.1.2.3", "200.9.9.9", 17, 40000, 443), "nat1"),
        2.0,
        10.0,
    );
    let rels = vec![a.clone(), a.clone(), a, b.clone(), b];
    for (th, rule) in [0.1, 0.25, 0.5, 0.7]
        .into_iter()
        .flat_map(|t| [(t, CountRule::Split), (t, CountRule::Overlap)])
    {
        let cfg = Config {
            threshold: th,
            rule,
            ..Config::default()
        };
        let report = aggregate(&rels, &cfg);
        assert_eq!(
            report.patterns,
            reference::one_stage(&rels, &cfg).unwrap(),
            "th {th}"
        );
        assert!(!report.patterns.is_empty());
    }
}
