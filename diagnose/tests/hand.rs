//! Hand-computed cases with exact expected scores (paper §4.1–§4.3).
mod common;

use common::*;
use diagnose::blame::split_scores;
use diagnose::{diagnose_slots, reconstruct, Config, Location, PacketSlot, VictimDiagnosis};

fn diag(b: &Built, nf: usize, pkt: usize) -> VictimDiagnosis {
    let cfg = Config::default();
    let rec = reconstruct(&b.trace, &cfg).unwrap();
    let (seq, idx) = b.rx_slot[nf][pkt].expect("packet dequeued");
    let slot = PacketSlot {
        stream: b.nf_streams[nf].0,
        seq,
        idx,
    };
    let mut v = diagnose_slots(&rec, &cfg, &[slot]).unwrap();
    assert_eq!(v.len(), 1);
    v.remove(0)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

/// src → A (1 Mpps); packets every 2 µs; A stalls in [100 µs, 200 µs).
/// Victim: the packet arriving at 150 µs. The queue emptied at 98 µs; the
/// period starts with the arrival at 100 µs: T = 50 µs, r·T = 50,
/// n_i = 25 (arrivals 100..148 µs), n_p = 0 → S_i = 0, S_p = 25, all blame
/// on A's local processing.
#[test]
fn single_nf_stalled_blames_local_processing() {
    let m = Model {
        sources: vec!["src".into()],
        nfs: vec![Nf {
            name: "A".into(),
            rate_pps: 1e6,
            stalls: vec![(100_000, 200_000)],
        }],
        pkts: periodic(0, 400_000, 2_000, 0, &[0], 1, 0),
    };
    let b = build(&m);
    let v = diag(&b, 0, 75);
    assert_eq!(v.arrival_ns, 150_000);
    assert_eq!((v.n_i, v.n_p, v.period_ns), (25, 0, 50_000));
    assert!(close(v.s_i, 0.0) && close(v.s_p, 25.0), "{v:?}");
    assert_eq!(v.ranked.len(), 1);
    assert_eq!(v.ranked[0].location, Location::Nf("A".into()));
    assert!(close(v.ranked[0].score, 25.0));
    // Nothing was processed in T: the culprit packets are the 25 waiting.
    assert_eq!(v.ranked[0].packets, 25);
}

fn burst_model(with_b: bool) -> Model {
    // Regular flow 0 every 4 µs from 2 µs; flow 9 bursts 64 packets at 100 µs.
    let route: Vec<usize> = if with_b { vec![0, 1] } else { vec![0] };
    let mut pkts = periodic(2_000, 400_000, 4_000, 0, &route, 1, 0);
    for k in 0..64u16 {
        pkts.push(Pkt {
            t: 100_000,
            src: 0,
            route: route.clone(),
            ipid: 1000 + k,
            tuple: tuple(9),
        });
    }
    let mut nfs = vec![Nf {
        name: "A".into(),
        rate_pps: 1e6,
        stalls: vec![],
    }];
    if with_b {
        nfs.push(Nf {
            name: "B".into(),
            rate_pps: 1e6,
            stalls: vec![],
        });
    }
    Model {
        sources: vec!["src".into()],
        nfs,
        pkts,
    }
}

/// Victim at A: the regular packet arriving at 130 µs (index 32). PreSet:
/// the 64 burst packets + 7 regulars (102..126 µs) = 71; T = 30 µs from the
/// burst's arrival; A dequeued 32 at 100 µs and has processed 30 of them
/// by 130 µs at 1 Mpps (the other 2 are still pending ahead of the victim,
/// §4.1's "queue with pending packets"): n_p = 30 = r·T →
/// S_i = 71 − 30 = 41, S_p = 0. One path [src], source timespan 26 µs,
/// T_exp = 71 µs, T_f = 26 µs → the source gets all 41, split by flow
/// 64:7 between the burst flow and the regular flow.
#[test]
fn source_burst_blames_the_source() {
    let b = build(&burst_model(false));
    let v = diag(&b, 0, 32);
    assert_eq!(v.arrival_ns, 130_000);
    assert_eq!((v.n_i, v.n_p, v.period_ns), (71, 30, 30_000));
    assert!(close(v.s_i, 41.0) && close(v.s_p, 0.0), "{v:?}");
    assert_eq!(v.ranked.len(), 1);
    assert_eq!(v.ranked[0].location, Location::Source("src".into()));
    assert!(close(v.ranked[0].score, 41.0));
    let f = &v.ranked[0].flows;
    assert_eq!(f[0].0, tuple(9));
    assert!(close(f[0].1, 41.0 * 64.0 / 71.0));
    assert!(close(f[1].1, 41.0 * 7.0 / 71.0));
}

/// The batch in service is pending (§4.1, busy period). src → A (1 Mpps);
/// flow 0 every 4 µs from 2 µs; flow 9 sends 20 packets at 100 µs. A
/// dequeues the 20 at 100 µs in one batch (< 32 requested: the ring is
/// empty) and processes them until 120 µs. Victim: the regular packet
/// arriving at 110 µs (index 27), dequeued at 120 µs. The ring was empty
/// after the 100 µs dequeue, but that batch could not have been processed
/// before the next arrival (102 µs < 100 + 20 µs), so the period extends
/// back to the dequeue of the 98 µs packet (served by 99 µs < 100 µs):
/// PreSet = 20 burst + 2 regulars (102, 106 µs) = 22, τ = 100 µs,
/// T = 10 µs, r·T = 10; of the batch in service A has processed
/// ⌊10 µs · 1 Mpps⌋ = 10 → n_p = 10. S_i = 22 − 10 = 12, S_p = 0. One path
/// [src]: source timespan 100→106 µs = 6 µs = T_f, T_exp = 22 µs → the
/// source gets all 12, flows 20:2. (Ending the period at the emptying
/// dequeue instead gives PreSet = 2 regulars, T = 8 µs, n_p = 0: S_p = 2,
/// all blamed on A — though A ran at its peak rate throughout.)
#[test]
fn batch_in_service_is_pending_burst_blamed_on_the_source() {
    let mut pkts = periodic(2_000, 400_000, 4_000, 0, &[0], 1, 0);
    for k in 0..20u16 {
        pkts.push(Pkt {
            t: 100_000,
            src: 0,
            route: vec![0],
            ipid: 1000 + k,
            tuple: tuple(9),
        });
    }
    let m = Model {
        sources: vec!["src".into()],
        nfs: vec![Nf {
            name: "A".into(),
            rate_pps: 1e6,
            stalls: vec![],
        }],
        pkts,
    };
    let b = build(&m);
    let v = diag(&b, 0, 27);
    assert_eq!(v.arrival_ns, 110_000);
    assert_eq!((v.n_i, v.n_p, v.period_ns), (22, 10, 10_000));
    assert!(close(v.s_i, 12.0) && close(v.s_p, 0.0), "{v:?}");
    assert_eq!(v.ranked.len(), 1, "{:?}", v.ranked);
    assert_eq!(v.ranked[0].location, Location::Source("src".into()));
    assert!(close(v.ranked[0].score, 12.0));
    let f = &v.ranked[0].flows;
    assert_eq!(f[0].0, tuple(9));
    assert!(close(f[0].1, 12.0 * 20.0 / 22.0));
    assert!(close(f[1].1, 12.0 * 2.0 / 22.0));
}

/// Chain src → A → B (both 1 Mpps). A forwards the burst as two 32-packet
/// batches (132, 164 µs) then 16 regulars at 180 µs. Victim at B: the 6th
/// packet of the 180 µs batch (regular sent at 122 µs, index 30). B's
/// period starts at 132 µs: T = 48 µs, n_i = 69; B dequeued 32 at 132 µs
/// and 32 at 164 µs, of which it has processed 16 by 180 µs at 1 Mpps (16
/// still pending): n_p = 48 = r·T → S_i = 21, S_p = 0. Path [src, A]:
/// source timespan 100→118 µs = 18 µs, A timespan 132→180 µs = 48 µs: A
/// *widened* the timespan, so by the non-monotone rule A gets 0 and the
/// source gets the effective reduction T_exp − T_A = 69 − 48 = 21 µs of
/// the total 21 µs: all 21.
#[test]
fn burst_through_a_chain_blames_the_source_non_monotone() {
    let b = build(&burst_model(true));
    let v = diag(&b, 1, 30);
    assert_eq!(v.arrival_ns, 180_000);
    assert_eq!((v.n_i, v.n_p, v.period_ns), (69, 48, 48_000));
    assert!(close(v.s_i, 21.0) && close(v.s_p, 0.0), "{v:?}");
    assert_eq!(v.ranked.len(), 1, "{:?}", v.ranked);
    assert_eq!(v.ranked[0].location, Location::Source("src".into()));
    assert!(close(v.ranked[0].score, 21.0));
}

/// Paper Fig. 2 / Fig. 8: src1 → NAT → VPN and src2 (flow A) → VPN. The NAT
/// is interrupted for 200 µs, then drains its queue at peak rate: a burst
/// at the VPN. A flow-A victim at the VPN is blamed, through recursion into
/// the NAT (in the queuing period of the PreSet packet that waited longest
/// there), on the NAT's
/// local processing.
#[test]
fn fig2_interrupt_upstream_blamed_by_recursion() {
    let mut pkts = periodic(0, 600_000, 2_000, 0, &[0, 1], 1, 1);
    pkts.extend(periodic(1_000, 600_000, 4_000, 1, &[1], 30_000, 2));
    let m = Model {
        sources: vec!["src1".into(), "src2".into()],
        nfs: vec![
            Nf {
                name: "nat".into(),
                rate_pps: 1e6,
                stalls: vec![(100_000, 300_000)],
            },
            Nf {
                name: "vpn".into(),
                rate_pps: 1e6,
                stalls: vec![],
            },
        ],
        pkts,
    };
    let b = build(&m);
    // Flow-A packet sent at 341 µs (index 300 + 85 = 385).
    let idx = 300 + 85;
    assert_eq!(m.pkts[idx].t, 341_000);
    let v = diag(&b, 1, idx);
    assert!(v.s_i > 0.0, "{v:?}");
    let total: f64 = v.ranked.iter().map(|c| c.score).sum::<f64>() + v.unattributed;
    assert!(close(total, v.queue_len() as f64));
    assert_eq!(
        v.ranked[0].location,
        Location::Nf("nat".into()),
        "{:?}",
        v.ranked
    );
    assert_eq!(v.ranked[0].depth, 1, "found by recursion");
    // The culprit NAT packets are flow-1 packets processed in its period.
    assert_eq!(v.ranked[0].flows[0].0, tuple(1));
    assert!(v.ranked[0].gap_ns > 0.0);
}

/// §4.2 chain with a widening hop: timespans src 40, A 10, B 30, C 5;
/// T_exp = 100, T_f = 5, S_i = 95 → source 60, A 10 (= T_src − T_B), B 0,
/// C 25.
#[test]
fn non_monotone_rule() {
    let (s, rest) = split_scores(100.0, 5.0, 95.0, &[vec![40.0, 10.0, 30.0, 5.0]]);
    assert_eq!(rest, 0.0);
    let want = [60.0, 10.0, 0.0, 25.0];
    for (a, b) in s[0].iter().zip(want) {
        assert!(close(*a, b), "{s:?}");
    }
}

/// DAG merge: two paths whose raw scores sum to 3·S_i are scaled down.
/// T_exp = 100, T_f = 50 (D = 50), S_i = 30. Path 1 [src 80, X 20]: raw
/// 20/50, 60/50 of S_i; path 2 [src 90, Y 30]: 10/50, 60/50. Sum 150/50 =
/// 3·S_i → ×1/3: src 4 + 2, X 12, Y 12; total 30.
#[test]
fn dag_merge_scales_down() {
    let (s, rest) = split_scores(100.0, 50.0, 30.0, &[vec![80.0, 20.0], vec![90.0, 30.0]]);
    assert_eq!(rest, 0.0);
    let want = [[4.0, 12.0], [2.0, 12.0]];
    for k in 0..2 {
        for h in 0..2 {
            assert!(close(s[k][h], want[k][h]), "{s:?}");
        }
    }
    let sum: f64 = s.iter().flatten().sum();
    assert!(close(sum, 30.0));
}

/// Paper Fig. 8 two hops away: src → NAT → FW → VPN, NAT and FW at
/// 1 Mpps, the VPN at 0.4 Mpps; packets every 4 µs (250 kpps, below every
/// peak). The NAT stalls in [100 µs, 500 µs); its 100-packet backlog drains
/// at 1 Mpps through the FW (no queue there: same rate) and reaches the VPN
/// at 1 Mpps, 2.5× its peak. A VPN victim late in that burst has S_i > 0;
/// the squeeze happened at the NAT (its timespan falls from the source's
/// ≈ 400 µs to ≈ 100 µs; the FW keeps it), so the NAT's share is diagnosed
/// recursively in the NAT queuing period that holds the PreSet packets —
/// the stall: all local processing (S_p), so the NAT, found at depth 1,
/// carries the input share, the VPN only its own S_p.
#[test]
fn fig8_interrupt_two_hops_upstream_blamed_on_the_nat() {
    let pkts = periodic(0, 900_000, 4_000, 0, &[0, 1, 2], 1, 1);
    let nf = |name: &str, rate_pps: f64, stalls: Vec<(i64, i64)>| Nf {
        name: name.into(),
        rate_pps,
        stalls,
    };
    let m = Model {
        sources: vec!["src".into()],
        nfs: vec![
            nf("nat", 1e6, vec![(100_000, 500_000)]),
            nf("fw", 1e6, vec![]),
            nf("vpn", 0.4e6, vec![]),
        ],
        pkts,
    };
    let b = build(&m);
    // Packets sent in [100, 500) µs (indices 25..125) queue at the NAT.
    // Victim: index 110, deep in the drained burst at the VPN.
    let v = diag(&b, 2, 110);
    assert!(v.s_i > 0.0, "{v:?}");
    let total: f64 = v.ranked.iter().map(|c| c.score).sum::<f64>() + v.unattributed;
    assert!(close(total, v.queue_len() as f64));
    let nat = v
        .ranked
        .iter()
        .find(|c| c.location == Location::Nf("nat".into()))
        .unwrap_or_else(|| panic!("NAT not blamed: {:?}", v.ranked));
    assert_eq!(
        v.ranked[0].location,
        Location::Nf("nat".into()),
        "{:?}",
        v.ranked
    );
    assert!(nat.depth >= 1, "found by recursion");
    // The input share goes upstream, nearly all of it to the NAT (the
    // source sent at 250 kpps, below the VPN's peak: no source share), and
    // nothing to the FW, which did not squeeze the timespan.
    assert!(nat.score >= 0.9 * v.s_i, "{:?} s_i {}", v.ranked, v.s_i);
    assert!(!v
        .ranked
        .iter()
        .any(|c| c.location == Location::Nf("fw".into()) && c.score > 1e-6));
}

/// Burst culprit flows across a DAG: src → A → C carries a 40-packet
/// burst of flow 9 at 100 µs; src → B → C carries flow 1, one packet every
/// 5 µs. A and B run at 10 Mpps, C at 1 Mpps. Every path's subset has a
/// source timespan below T_exp (a one-packet path has timespan 0), so the
/// raw path scores exceed S_i and are scaled down: per path they come out
/// nearly equal whatever the path's size. The source culprit's packets are
/// PreSet(p) (§4.2), so its flows carry its score in proportion to their
/// PreSet packets — 40 burst packets against a handful of flow-1 ones —
/// not in proportion to path scores.
#[test]
fn burst_source_culprit_flows_are_its_preset_packets() {
    let mut pkts = periodic(0, 400_000, 5_000, 0, &[1, 2], 1, 1);
    for k in 0..40u16 {
        pkts.push(Pkt {
            t: 100_000,
            src: 0,
            route: vec![0, 2],
            ipid: 5000 + k,
            tuple: tuple(9),
        });
    }
    let nf = |name: &str, rate_pps: f64| Nf {
        name: name.into(),
        rate_pps,
        stalls: vec![],
    };
    let m = Model {
        sources: vec!["src".into()],
        nfs: vec![nf("A", 10e6), nf("B", 10e6), nf("C", 1e6)],
        pkts,
    };
    let b = build(&m);
    // Victim: the flow-1 packet sent at 120 µs (index 24), which queues
    // behind the burst at C.
    assert_eq!(m.pkts[24].t, 120_000);
    let v = diag(&b, 2, 24);
    assert!(v.s_i > 0.0, "{v:?}");
    // PreSet composition from the model's arrival times at C.
    let t = v.arrival_ns;
    let tau = t - v.period_ns;
    let in_preset = |i: usize| matches!(b.arrival[2][i], Some(a) if a >= tau && a < t);
    let n9 = (0..m.pkts.len())
        .filter(|&i| in_preset(i) && m.pkts[i].tuple == tuple(9))
        .count();
    let n1 = (0..m.pkts.len())
        .filter(|&i| in_preset(i) && m.pkts[i].tuple == tuple(1))
        .count();
    assert_eq!((n9 + n1) as u32, v.n_i, "{v:?}");
    assert!(n9 == 40 && n1 >= 2, "PreSet: {n9} burst, {n1} regular");
    let src = v
        .ranked
        .iter()
        .find(|c| c.location == Location::Source("src".into()))
        .unwrap_or_else(|| panic!("source not blamed: {:?}", v.ranked));
    assert_eq!(src.packets, v.n_i as u64);
    let f9 = src.flows.iter().find(|f| f.0 == tuple(9)).unwrap().1;
    let f1 = src.flows.iter().find(|f| f.0 == tuple(1)).unwrap().1;
    assert!(close(f9, src.score * n9 as f64 / v.n_i as f64), "{src:?}");
    assert!(close(f1, src.score * n1 as f64 / v.n_i as f64), "{src:?}");
}
