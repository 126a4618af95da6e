//! The glue on a hand-built trace: `src → a`, NF `a` stalls; labelled
//! victims are tied to hand-made Microscope rankings by slot (and by IPID
//! fallback), NetMedic runs on the same trace.

use super::*;
use collector::{
    BatchRecord, ClockAnchor, Direction, Edge, NfSpec, Role, StreamInfo, Topology, TraceMeta,
};
use tracefile::StreamData;

const STALL: (u64, u64) = (50_000_000, 50_700_000);

fn ft(i: u32) -> FiveTuple {
    FiveTuple {
        src_ip: 0x0a00_0000 + i,
        dst_ip: 0x2000_0001,
        src_port: 1024 + i as u16,
        dst_port: 443,
        proto: 6,
    }
}

fn stream(id: u32, nf: &str, role: Role, direction: Direction, tuples: bool) -> StreamData {
    StreamData {
        info: Some(StreamInfo {
            id,
            nf: nf.into(),
            nf_type: nf.into(),
            role,
            port: 0,
            queue: 0,
            direction,
            host: "sim".into(),
            carries_tuples: tuples,
        }),
        ..Default::default()
    }
}

fn push(s: &mut StreamData, ns: u64, pkts: &[(u16, FiveTuple)], requested: u16) -> u64 {
    let seq = s.batches.len() as u64;
    let tuples = s.info.as_ref().unwrap().carries_tuples;
    s.batches.push(BatchRecord {
        seq,
        tsc: (ns as f64 * 2.6).round() as u64,
        requested,
        ipids: pkts.iter().map(|p| p.0).collect(),
        non_ipv4: vec![],
        tuples: tuples.then(|| pkts.iter().map(|p| p.1).collect()),
    });
    seq
}

/// Returns the trace and the a-rx seqs of the first batches after the stall.
fn build() -> (Trace, Vec<u64>) {
    let mut st = vec![
        stream(0, "src", Role::Source, Direction::Tx, true),
        stream(1, "a", Role::Nf, Direction::Rx, false),
        stream(2, "a", Role::Nf, Direction::Tx, false),
    ];
    let mut q: VecDeque<(u16, FiveTuple)> = VecDeque::new();
    let mut ipid = 0u16;
    let mut after = Vec::new();
    let mut t = 0u64;
    while t < 100_000_000 {
        let pkts: Vec<(u16, FiveTuple)> = (0..4)
            .map(|k| {
                ipid = ipid.wrapping_add(1);
                (ipid, ft((t / 20_000 % 50) as u32 + k))
            })
            .collect();
        push(&mut st[0], t, &pkts, 32);
        q.extend(pkts);
        let stalled = t >= STALL.0 && t < STALL.1;
        if !stalled && !q.is_empty() {
            let n = q.len().min(8);
            let out: Vec<_> = q.drain(..n).collect();
            let seq = push(&mut st[1], t + 2_000, &out, 8);
            push(&mut st[2], t + 3_000, &out, 32);
            if t >= STALL.1 && after.len() < 4 {
                after.push(seq);
            }
        }
        t += 20_000;
    }
    for s in st.iter_mut() {
        let n = s.batches.len() as u64;
        for (k, ns) in [0u64, 100_000_000].into_iter().enumerate() {
            s.anchors.push(ClockAnchor {
                seq: n + k as u64,
                tsc: (ns as f64 * 2.6).round() as u64,
                mono_ns: ns,
            });
        }
    }
    let spec = |name: &str, role| NfSpec {
        name: name.into(),
        nf_type: name.into(),
        role,
        peak_rate_pps: None,
    };
    let trace = Trace {
        meta: TraceMeta {
            producer: "eval unit test".into(),
            topology: Some(Topology {
                nfs: vec![spec("src", Role::Source), spec("a", Role::Nf)],
                edges: vec![Edge {
                    from: "src".into(),
                    to: "a".into(),
                }],
            }),
            tsc_hz_hint: Some(2.6e9),
        },
        streams: st,
        report: Default::default(),
    };
    (trace, after)
}

fn cand(loc: Loc, flows: Vec<(FiveTuple, f64)>) -> Candidate {
    Candidate {
        loc,
        score: 1.0,
        flows,
    }
}

#[test]
fn victims_are_scored_by_slot_with_ipid_fallback_and_netmedic_beside() {
    let (trace, after) = build();
    let faults = vec![FaultInfo {
        id: 7,
        kind: Kind::Interrupt,
        nf: Some("a".into()),
        flows: vec![],
        start_ns: STALL.0,
        end_ns: STALL.1,
    }];
    let slot = |stream, seq| Slot {
        stream,
        seq,
        idx: 0,
    };
    let victims: Vec<VictimInfo> = after
        .iter()
        .map(|&seq| VictimInfo {
            fault_id: 7,
            slot: slot(1, seq),
            nf: "a".into(),
            lost: false,
        })
        .collect();
    let a = || cand(Loc::Nf("a".into()), vec![]);
    let src = || cand(Loc::Source("src".into()), vec![(ft(1), 1.0)]);
    let mut ms = HashMap::new();
    ms.insert(slot(1, after[0]), vec![a(), src()]); // rank 1
    ms.insert(slot(1, after[1]), vec![src(), a()]); // rank 2
    ms.insert(slot(2, after[2]), vec![a()]); // same packet at a's tx: IPID fallback, rank 1
                                             // after[3]: not diagnosed.
    let nm_cfg = netmedic::Config {
        window_ns: 1_000_000,
        source_buckets: 4,
        ..Default::default()
    };
    let r = score_victims("hand", 1, &trace, &faults, &victims, &ms, &nm_cfg).unwrap();
    let ranks: Vec<Option<usize>> = r.victims.iter().map(|v| v.microscope.rank).collect();
    assert_eq!(ranks, vec![Some(1), Some(2), Some(1), None]);
    assert!(!r.victims[3].ms_diagnosed);
    assert_eq!(r.victims[1].ms_top.as_deref(), Some("source src"));
    assert_eq!(r.microscope.interrupt.victims, 4);
    assert_eq!(r.microscope.overall.rank1, 0.5);
    assert_eq!(r.microscope.overall.rank2, 0.75);
    assert_eq!(r.microscope.burst.victims, 0);
    // NetMedic blames the stalled NF for its own victims.
    for v in &r.victims {
        assert_eq!(v.netmedic.rank, Some(1), "{v:?}");
        assert_eq!(v.hops, Some(0));
    }
    // The JSON shape of the CLI.
    let j = report::to_json(&r.microscope, &r.netmedic);
    assert_eq!(j["microscope"]["overall"]["victims"], 4);
    assert_eq!(j["netmedic"]["interrupt"]["rank1"], 1.0);
    assert!(j["microscope"]["burst"]["rank5"].is_number());
    // Floors see the missing kinds.
    let v = thresholds::REPLAY.violations(&r);
    assert!(
        v.iter().any(|m| m.contains("burst rank-1: no victims")),
        "{v:?}"
    );
}

#[test]
fn unknown_fault_is_an_error() {
    let (trace, after) = build();
    let victims = vec![VictimInfo {
        fault_id: 99,
        slot: Slot {
            stream: 1,
            seq: after[0],
            idx: 0,
        },
        nf: "a".into(),
        lost: false,
    }];
    let e = score_victims(
        "hand",
        1,
        &trace,
        &[],
        &victims,
        &HashMap::new(),
        &netmedic::Config::default(),
    )
    .unwrap_err();
    assert!(matches!(e, EvalError::UnknownFault { fault_id: 99 }));
}
