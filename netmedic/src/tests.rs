//! Unit tests on hand-built traces: a tiny deterministic chain
//! `src → {a, b} → c` with fixed service per poll, where we inject a stall
//! or a source burst and check what NetMedic blames.

use super::*;
use collector::{
    BatchRecord, ClockAnchor, Direction, Edge, FiveTuple, NfSpec, Role, StreamInfo, Topology,
    TraceMeta,
};
use tracefile::{StreamData, Trace};

const POLL_NS: u64 = 20_000;
const SERVICE: usize = 8; // packets per poll at peak

struct Chain {
    duration_ns: u64,
    /// NF `a` does not poll during [start, end).
    stall_a: Option<(u64, u64)>,
    /// At this time the source emits `burst_pkts` extra packets of
    /// `burst_flows` flows in one go.
    burst: Option<(u64, usize)>,
}

fn flow(i: u32) -> FiveTuple {
    FiveTuple {
        src_ip: 0x0a00_0000 + i,
        dst_ip: 0xc0a8_0001,
        src_port: 1000 + i as u16,
        dst_port: 80,
        proto: 6,
    }
}

const BURST_FLOWS: [u32; 2] = [900, 901];

fn stream(id: u32, nf: &str, role: Role, dir: Direction, tuples: bool) -> StreamData {
    StreamData {
        info: Some(StreamInfo {
            id,
            nf: nf.into(),
            nf_type: nf.into(),
            role,
            port: 0,
            queue: 0,
            direction: dir,
            host: "sim".into(),
            carries_tuples: tuples,
        }),
        ..Default::default()
    }
}

fn push(s: &mut StreamData, ns: u64, pkts: &[FiveTuple], requested: u16) {
    let seq = s.batches.len() as u64 + s.anchors.len() as u64;
    let tuples = s.info.as_ref().unwrap().carries_tuples;
    s.batches.push(BatchRecord {
        seq,
        tsc: (ns as f64 * 2.6).round() as u64,
        requested,
        ipids: vec![0; pkts.len()],
        non_ipv4: vec![],
        tuples: tuples.then(|| pkts.to_vec()),
    });
}

fn build(ch: &Chain) -> Trace {
    // Streams: 0 src tx, 1 a rx, 2 a tx, 3 b rx, 4 b tx, 5 c rx, 6 c tx.
    let mut st = vec![
        stream(0, "src", Role::Source, Direction::Tx, true),
        stream(1, "a", Role::Nf, Direction::Rx, false),
        stream(2, "a", Role::Nf, Direction::Tx, false),
        stream(3, "b", Role::Nf, Direction::Rx, false),
        stream(4, "b", Role::Nf, Direction::Tx, false),
        stream(5, "c", Role::Nf, Direction::Rx, false),
        stream(6, "c", Role::Nf, Direction::Tx, false),
    ];
    let mut qa: std::collections::VecDeque<FiveTuple> = Default::default();
    let mut qb: std::collections::VecDeque<FiveTuple> = Default::default();
    let mut qc: std::collections::VecDeque<FiveTuple> = Default::default();
    let mut next_flow = 0u32;
    let mut t = 0;
    while t < ch.duration_ns {
        // Source: 5 packets per poll interval (about 60% load on a and b).
        let mut pkts: Vec<FiveTuple> = (0..5)
            .map(|_| {
                next_flow = (next_flow + 1) % 64;
                flow(next_flow)
            })
            .collect();
        if let Some((bt, n)) = ch.burst {
            if bt >= t && bt < t + POLL_NS {
                pkts.extend((0..n).map(|k| flow(BURST_FLOWS[k % BURST_FLOWS.len()])));
            }
        }
        push(&mut st[0], t, &pkts, 32);
        for p in &pkts {
            if p.src_ip % 2 == 0 {
                qa.push_back(*p)
            } else {
                qb.push_back(*p)
            }
        }
        let stalled = ch.stall_a.is_some_and(|(s, e)| t >= s && t < e);
        for (q, rx, tx, skip) in [(&mut qa, 1usize, 2usize, stalled), (&mut qb, 3, 4, false)] {
            if skip || q.is_empty() {
                continue;
            }
            let n = q.len().min(SERVICE);
            let out: Vec<FiveTuple> = q.drain(..n).collect();
            push(&mut st[rx], t + 2_000, &out, SERVICE as u16);
            push(&mut st[tx], t + 3_000, &out, 32);
            qc.extend(out);
        }
        // c serves 2·SERVICE per poll.
        if !qc.is_empty() {
            let n = qc.len().min(2 * SERVICE);
            let out: Vec<FiveTuple> = qc.drain(..n).collect();
            push(&mut st[5], t + 10_000, &out, 2 * SERVICE as u16);
            push(&mut st[6], t + 11_000, &out, 32);
        }
        t += POLL_NS;
    }
    for s in st.iter_mut() {
        // Two anchors are enough for an exact fit (the tsc is exact).
        let n = s.batches.len() as u64;
        for (k, ns) in [0u64, ch.duration_ns].into_iter().enumerate() {
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
    let e = |f: &str, t: &str| Edge {
        from: f.into(),
        to: t.into(),
    };
    Trace {
        meta: TraceMeta {
            producer: "netmedic unit test".into(),
            topology: Some(Topology {
                nfs: vec![
                    spec("src", Role::Source),
                    spec("a", Role::Nf),
                    spec("b", Role::Nf),
                    spec("c", Role::Nf),
                ],
                edges: vec![e("src", "a"), e("src", "b"), e("a", "c"), e("b", "c")],
            }),
            tsc_hz_hint: Some(2.6e9),
        },
        streams: st,
        report: Default::default(),
    }
}

fn cfg() -> Config {
    Config {
        window_ns: 1_000_000,
        source_buckets: 4,
        ..Config::default()
    }
}

#[test]
fn model_has_components_edges_and_sane_state() {
    let tr = build(&Chain {
        duration_ns: 100_000_000,
        stall_a: None,
        burst: None,
    });
    let m = Model::build(&tr, &cfg()).unwrap();
    assert_eq!(m.windows(), 100);
    assert_eq!(m.components().len(), 4 + 3);
    // 4 buckets × 2 first hops + a→c + b→c.
    assert_eq!(m.edges().count(), 10);
    // Steady state: a dequeues what arrives (~2.5 packets/poll × 50 polls).
    let input = m.value(&Component::Nf("a".into()), "input", 50).unwrap();
    let rx = m.value(&Component::Nf("a".into()), "rx", 50).unwrap();
    assert!((input - 125.0).abs() < 10.0, "input {input}");
    assert!((rx - input).abs() < 10.0, "rx {rx}");
    // Nothing is abnormal in steady state for the NFs' rates.
    let l = m.value(&Component::Nf("c".into()), "loss", 50).unwrap();
    assert!(l < 1.0, "loss {l}");
}

#[test]
fn a_stalled_nf_ranks_itself_first() {
    let tr = build(&Chain {
        duration_ns: 200_000_000,
        stall_a: Some((100_200_000, 100_900_000)),
        burst: None,
    });
    let mut nm = netmedic(&tr, &cfg()).unwrap();
    let w = nm.model().window_of(100_500_000.0).unwrap();
    let a = Component::Nf("a".into());
    assert!(nm.model().abnormality(&a, w).unwrap() > 0.9);
    let ranked = nm.diagnose_window("a", w).unwrap();
    assert_eq!(ranked[0].component, a, "{ranked:#?}");
    // The effect downstream (c gets a burst when a resumes) also points at a
    // above every source aggregate.
    let ranked_c = nm.diagnose_window("c", w).unwrap();
    let pos_a = ranked_c.iter().position(|c| c.component == a).unwrap();
    let pos_src = ranked_c
        .iter()
        .position(|c| matches!(c.component, Component::Source { .. }))
        .unwrap();
    assert!(pos_a < pos_src, "{ranked_c:#?}");
}

#[test]
fn a_source_burst_ranks_a_source_aggregate_with_the_burst_flows() {
    let tr = build(&Chain {
        duration_ns: 200_000_000,
        stall_a: None,
        burst: Some((100_100_000, 400)),
    });
    let mut nm = netmedic(&tr, &cfg()).unwrap();
    let w = nm.model().window_of(100_100_000.0).unwrap();
    let ranked = nm.diagnose_window("c", w).unwrap();
    let top = &ranked[0];
    assert!(
        matches!(top.component, Component::Source { .. }),
        "{ranked:#?}"
    );
    let burst_share: f64 = top
        .flows
        .iter()
        .filter(|(f, _)| BURST_FLOWS.iter().any(|b| flow(*b) == *f))
        .map(|(_, s)| s)
        .sum();
    assert!(burst_share > 0.5, "flows {:?}", top.flows);
}

#[test]
fn normal_sources_get_the_low_edge_weight() {
    let tr = build(&Chain {
        duration_ns: 100_000_000,
        stall_a: Some((50_200_000, 50_900_000)),
        burst: None,
    });
    let m = Model::build(&tr, &cfg()).unwrap();
    let w = m.window_of(50_500_000.0).unwrap();
    let an = m.analyse_window(w).unwrap();
    let c = cfg();
    for (k, (from, _)) in m.edges().enumerate() {
        if matches!(from, Component::Source { .. }) && an.abnormality[m.index[from]] < 0.8 {
            assert_eq!(an.edge_weight[k], c.normal_edge_weight);
        }
    }
    // Edge a→c: a is abnormal now, so the weight comes from history.
    let k = m
        .edges()
        .position(|(f, t)| *f == Component::Nf("a".into()) && *t == Component::Nf("c".into()))
        .unwrap();
    assert_ne!(an.edge_weight[k], c.normal_edge_weight);
}

#[test]
fn errors_are_typed() {
    let mut tr = build(&Chain {
        duration_ns: 10_000_000,
        stall_a: None,
        burst: None,
    });
    let mut nm = netmedic(&tr, &cfg()).unwrap();
    assert!(matches!(
        nm.diagnose_window("nope", 0),
        Err(NetMedicError::UnknownNf(_))
    ));
    assert!(matches!(
        nm.diagnose_window("a", 10_000),
        Err(NetMedicError::WindowOutOfRange { .. })
    ));
    let bad = Config {
        window_ns: 0,
        ..cfg()
    };
    assert!(matches!(
        Model::build(&tr, &bad),
        Err(NetMedicError::BadConfig(_))
    ));
    tr.meta.topology = None;
    assert!(matches!(
        Model::build(&tr, &cfg()),
        Err(NetMedicError::NoTopology)
    ));
}

#[test]
fn rates_only_variables_still_see_a_stall() {
    let tr = build(&Chain {
        duration_ns: 200_000_000,
        stall_a: Some((100_200_000, 100_900_000)),
        burst: None,
    });
    let c = Config {
        nf_variables: NfVariables::Rates,
        ..cfg()
    };
    let m = Model::build(&tr, &c).unwrap();
    let a = Component::Nf("a".into());
    assert!(m.value(&a, "rx", 100).is_some());
    assert!(m.value(&a, "queue", 100).is_none(), "queue is not modelled");
    let w = m.window_of(100_500_000.0).unwrap();
    assert!(m.abnormality(&a, w).unwrap() > 0.8);
}
