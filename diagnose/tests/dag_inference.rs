//! DAG inference from IPIDs (issue #4, "The DAG"): with the topology
//! stripped from the trace's metadata the engine must find the simulated
//! scenario's edges on its own, each with its confidence; chance IPID
//! collisions between unrelated streams must not make an edge.
mod common;

use common::*;
use diagnose::{reconstruct, Config, DagOrigin};
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use testbeds::scenario::Scenario;
use testbeds::sim::simulate;

fn names(d: &diagnose::Dag) -> BTreeSet<(String, String)> {
    d.edges
        .iter()
        .map(|e| (d.nodes[e.from].name.clone(), d.nodes[e.to].name.clone()))
        .collect()
}

/// Paper Fig. 10 (16 NFs: NATs → firewalls → monitors or VPNs, flows
/// hashed across instances), 0.3 s: the inferred DAG is exactly the
/// scenario's, every edge with a high confidence, and reconstruction over
/// it is as accurate as over the given topology.
#[test]
fn inferred_dag_equals_the_scenario_topology() {
    let mut sc = Scenario::by_name_or_path("paper-moderate").unwrap();
    sc.set("duration", "0.3s").unwrap();
    let out = simulate(&sc).unwrap();
    let topo = out.trace.meta.topology.clone().expect("simulator topology");
    // Edges the trace can show: the upstream node transmits and the
    // downstream node receives in some stream.
    let has = |name: &str, dir: collector::Direction| {
        out.trace.streams.iter().any(|s| {
            s.info
                .as_ref()
                .is_some_and(|i| i.nf == name && i.direction == dir)
        })
    };
    let expected: BTreeSet<(String, String)> = topo
        .edges
        .iter()
        .filter(|e| has(&e.from, collector::Direction::Tx) && has(&e.to, collector::Direction::Rx))
        .map(|e| (e.from.clone(), e.to.clone()))
        .collect();
    assert!(expected.len() >= 16, "{expected:?}");

    let mut stripped = out.trace.clone();
    stripped.meta.topology = None;
    let cfg = Config::default();
    let rec = reconstruct(&stripped, &cfg).unwrap();
    assert!(matches!(rec.dag.origin, DagOrigin::Inferred { .. }));
    assert_eq!(names(&rec.dag), expected);
    for e in &rec.dag.edges {
        assert!(
            (0.5..=1.0).contains(&e.confidence) && e.matched_fraction > 0.0,
            "{} -> {}: confidence {} matched {}",
            rec.dag.nodes[e.from].name,
            rec.dag.nodes[e.to].name,
            e.confidence,
            e.matched_fraction
        );
    }

    // Every rx packet's nearest earlier same-IPID tx is its true upstream
    // hop, so a node's inferred in-edges explain (nearly) all its packets.
    for (f, node) in rec.dag.nodes.iter().enumerate() {
        let ins: Vec<_> = rec.dag.edges.iter().filter(|e| e.to == f).collect();
        if !ins.is_empty() {
            let sum: f64 = ins.iter().map(|e| e.matched_fraction).sum();
            assert!(sum >= 0.95, "{}: in-edges explain {sum:.3}", node.name);
        }
    }

    // What `microscope inspect` shows: the same DAG, with its origin and
    // each inferred edge's confidence.
    let shown = diagnose::dag_of(&stripped, &cfg).unwrap();
    assert_eq!(shown, rec.dag);
    let text = shown.describe();
    assert!(text.starts_with("DAG in use: ") && text.contains("inferred from IPIDs"));
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(" -> ")).collect();
    assert_eq!(lines.len(), expected.len());
    assert!(lines
        .iter()
        .all(|l| l.contains("confidence 0.") || l.contains("confidence 1.")));
    let given_text = diagnose::dag_of(&out.trace, &cfg).unwrap().describe();
    assert!(
        given_text.contains("from the trace's topology"),
        "{given_text}"
    );

    // `infer_dag` ignores a topology that is present: same graph.
    let forced = reconstruct(
        &out.trace,
        &Config {
            infer_dag: true,
            ..Config::default()
        },
    )
    .unwrap();
    assert!(matches!(forced.dag.origin, DagOrigin::Inferred { .. }));
    assert_eq!(names(&forced.dag), expected);
    let given = reconstruct(&out.trace, &cfg).unwrap();
    assert_eq!(given.dag.origin, DagOrigin::Topology);
    assert!(given.dag.edges.iter().all(|e| e.confidence == 1.0));

    // Reconstruction over the inferred DAG maps packet-hops as well.
    let pairs = out.truth.true_upstream_pairs();
    let ok = pairs
        .iter()
        .filter(|(rx, up)| rec.upstream(rx) == Some(*up))
        .count();
    let acc = ok as f64 / pairs.len() as f64;
    assert!(acc >= 0.999, "accuracy {acc:.5} over the inferred DAG");
}

/// Two unrelated streams: NF `a` (fed by source `s1` at 500 kpps) and NF
/// `b` (fed by a source whose records are missing), both with random
/// IPIDs. About one in seven of `b`'s packets finds a same-IPID packet of
/// `a` within the window by chance, far above the 1 % bar an edge needs on
/// its own — only the chance baseline keeps `a → b` out. The real edge
/// `s1 → a` is found with a high confidence.
#[test]
fn chance_ipid_collisions_between_unrelated_streams_make_no_edge() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let mut pkts = Vec::new();
    let dur = 400_000_000i64;
    for (src, nf, gap) in [(0usize, 0usize, 2_000i64), (1, 1, 10_000)] {
        let mut t = 1_000 + src as i64 * 700;
        let mut k = 0u32;
        while t < dur {
            pkts.push(Pkt {
                t,
                src,
                route: vec![nf],
                ipid: rng.gen(),
                tuple: tuple(k % 64 + 100 * src as u32),
            });
            t += gap;
            k += 1;
        }
    }
    let m = Model {
        sources: vec!["s1".into(), "s2".into()],
        nfs: vec![
            Nf {
                name: "a".into(),
                rate_pps: 4e6,
                stalls: vec![],
            },
            Nf {
                name: "b".into(),
                rate_pps: 4e6,
                stalls: vec![],
            },
        ],
        pkts,
    };
    let mut b = build(&m);
    // Drop the topology and the records of b's source.
    b.trace.meta.topology = None;
    b.trace.streams[b.src_stream[1] as usize].batches.clear();
    let rec = reconstruct(&b.trace, &Config::default()).unwrap();
    assert!(matches!(rec.dag.origin, DagOrigin::Inferred { .. }));
    let got = names(&rec.dag);
    assert_eq!(
        got,
        BTreeSet::from([("s1".to_string(), "a".to_string())]),
        "{:?}",
        rec.dag.edges
    );
    assert!(rec.dag.edges[0].confidence > 0.8, "{:?}", rec.dag.edges);

    // The collisions are really there: b's rx packets that find a
    // same-IPID tx of `a` in the 20 ms before them.
    let a_tx = &b.trace.streams[b.nf_streams[0].1 as usize];
    let mut last_seen = vec![i64::MIN / 2; 65536];
    let mut a_events: Vec<(i64, u16)> = a_tx
        .batches
        .iter()
        .flat_map(|x| x.ipids.iter().map(move |&ip| (x.tsc as i64, ip)))
        .collect();
    a_events.sort_unstable();
    let b_rx = &b.trace.streams[b.nf_streams[1].0 as usize];
    let mut b_events: Vec<(i64, u16)> = b_rx
        .batches
        .iter()
        .flat_map(|x| x.ipids.iter().map(move |&ip| (x.tsc as i64, ip)))
        .collect();
    b_events.sort_unstable();
    let (mut i, mut hits) = (0, 0usize);
    for &(t, ip) in &b_events {
        while i < a_events.len() && a_events[i].0 <= t {
            last_seen[a_events[i].1 as usize] = a_events[i].0;
            i += 1;
        }
        if t - last_seen[ip as usize] <= 20_000_000 {
            hits += 1;
        }
    }
    let frac = hits as f64 / b_events.len() as f64;
    assert!(frac > 0.08, "chance collision rate {frac}");
}
