//! The per-flow throughput victim rule (issue #4, "Victims"): a flow that
//! offered at least the rate in a window but got less delivered in it has
//! its packets of that window selected, and they are diagnosed at the NFs
//! where they were locally abnormal. A flow whose throughput holds yields
//! no victim.
mod common;

use common::*;
use diagnose::{parse_victims, run, Config, Diagnosis};

const US: i64 = 1_000;

/// Flow 1 (50 kpps, from 10 µs) goes source → A, flow 2 (50 kpps, from
/// 15 µs) source → B; both NFs run at 1 Mpps. A stalls in
/// [1500 µs, 2300 µs) when `stall`.
fn model(stall: bool) -> Model {
    let mut pkts = periodic(10 * US, 5_000 * US, 20 * US, 0, &[0], 0, 1);
    pkts.extend(periodic(15 * US, 5_000 * US, 20 * US, 0, &[1], 30_000, 2));
    Model {
        sources: vec!["src".into()],
        nfs: vec![
            Nf {
                name: "A".into(),
                rate_pps: 1e6,
                stalls: if stall {
                    vec![(1_500 * US, 2_300 * US)]
                } else {
                    vec![]
                },
            },
            Nf {
                name: "B".into(),
                rate_pps: 1e6,
                stalls: vec![],
            },
        ],
        pkts,
    }
}

fn diagnose(stall: bool) -> Diagnosis {
    let b = build(&model(stall));
    let cfg = Config {
        // 40 packets per 1 ms window; each flow offers 50.
        victims: parse_victims("throughput<40kpps@1ms").unwrap(),
        ..Config::default()
    };
    run(&b.trace, &cfg).unwrap()
}

/// With the stall, flow 1's window [1 ms, 2 ms) offers 50 packets but only
/// the 25 sent before the stall are delivered in it (< 40): its 50 packets
/// of that window are slow. The 25 sent during the stall waited at A far
/// beyond A's history (which held zero delays) and are the victims, at A;
/// the 25 sent before it passed A normally and are skipped. Window
/// [2 ms, 3 ms) gets the backlog on top of its own packets, so nothing
/// else drops. Flow 2 never drops.
#[test]
fn a_flow_whose_throughput_drops_has_its_packets_diagnosed() {
    let d = diagnose(true);
    assert_eq!(d.victim_stats.slow_packets, 50, "{:?}", d.victim_stats);
    assert_eq!(d.victim_stats.skipped_normal, 25, "{:?}", d.victim_stats);
    assert_eq!(d.victim_stats.lost_packets, 0);
    assert_eq!(d.victims.len(), 25);
    let arrivals: Vec<i64> = d.victims.iter().map(|v| v.arrival_ns).collect();
    let expected: Vec<i64> = (0..25).map(|k| 1_510 * US + k * 20 * US).collect();
    assert_eq!(arrivals, expected);
    for v in &d.victims {
        assert_eq!(v.nf, "A");
        assert_eq!(v.flow, Some(tuple(1)));
        assert!(!v.lost);
        // They waited for the stall to end (at 2300 µs).
        assert!(v.local_delay_ns >= (2_300 - 1_990) as f64 * US as f64);
    }
    // A stalled: the blame is A's own processing. (The first packet of the
    // stall found an empty queue: nothing to blame.)
    assert!(d.victims[0].ranked.is_empty());
    for v in &d.victims[1..] {
        assert_eq!(v.ranked[0].location, diagnose::Location::Nf("A".into()));
    }
    assert!(d.victims.iter().all(|v| v.flow != Some(tuple(2))));
}

/// Without the stall both flows deliver 50 packets in every window: no
/// victim at all.
#[test]
fn flows_whose_throughput_holds_yield_no_victim() {
    let d = diagnose(false);
    assert_eq!(d.victim_stats.slow_packets, 0, "{:?}", d.victim_stats);
    assert!(d.victims.is_empty());
    assert!(d.victim_stats.delivered >= 2 * 249);
}
