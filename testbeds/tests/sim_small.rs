//! End-to-end properties of the simulator on the small chain.

use collector::Direction;
use std::collections::HashMap;
use testbeds::scenario::{FaultKind, Scenario};
use testbeds::{simulate, simulate_to_dir, write_output};
use tracefile::{read_trace, ReadMode};

fn small() -> Scenario {
    let mut s = Scenario::small_chain();
    s.duration = testbeds::scenario::SimDuration(160_000_000);
    s
}

#[test]
fn records_are_well_formed_and_journeys_consistent() {
    let out = simulate(&small()).unwrap();
    let tr = &out.trace;
    let topo = tr.meta.topology.as_ref().unwrap();
    assert_eq!(topo.nfs.len(), 6, "source, nat1, fw1, fw2, vpn1, sink");
    assert!(topo
        .nfs
        .iter()
        .all(|n| n.role != collector::Role::Nf || n.peak_rate_pps.is_some()));
    for s in &tr.streams {
        let info = s.info.as_ref().unwrap();
        // Dense sequence numbers shared by batches and anchors, time order.
        let mut seqs: Vec<(u64, u64)> = s.batches.iter().map(|b| (b.seq, b.tsc)).collect();
        seqs.extend(s.anchors.iter().map(|a| (a.seq, a.tsc)));
        seqs.sort();
        for (k, w) in seqs.iter().enumerate() {
            assert_eq!(w.0, k as u64, "stream {} seq gap", info.id);
        }
        assert!(
            seqs.windows(2).all(|w| w[0].1 <= w[1].1),
            "stream {} not in time order",
            info.id
        );
        assert!(s.anchors.len() >= 2);
        for b in &s.batches {
            assert!(!b.ipids.is_empty());
            assert_eq!(b.tuples.is_some(), info.carries_tuples);
            if info.direction == Direction::Rx && info.role == collector::Role::Nf {
                assert!(b.ipids.len() <= b.requested as usize);
            }
        }
        // Default: only source tx and sink rx carry 5-tuples.
        assert_eq!(
            info.carries_tuples,
            info.nf == "source" || info.nf == "sink"
        );
    }
    // Every rx observation's true upstream is a tx of the same IPID that
    // happened at least one link delay earlier.
    let ipid_at = |slot: &testbeds::PacketSlot| {
        let s = &tr.streams[slot.stream as usize];
        let b = s.batches.iter().find(|b| b.seq == slot.seq).unwrap();
        (b.ipids[slot.idx as usize], b.tsc)
    };
    let pairs = out.truth.true_upstream_pairs();
    assert!(pairs.len() > 100_000, "{}", pairs.len());
    let sample: Vec<_> = pairs.iter().step_by(101).collect();
    let rx: Vec<_> = sample.iter().map(|p| p.0).collect();
    let got = out.truth.true_upstream_of(&rx);
    assert!(sample.iter().zip(&got).all(|(p, g)| Some(p.1) == *g));
    let src_slot = testbeds::PacketSlot {
        stream: 0,
        seq: tr.streams[0].batches[0].seq,
        idx: 0,
    };
    assert_eq!(
        out.truth.true_upstream_of(&[src_slot]),
        vec![None],
        "a tx slot has no upstream"
    );
    for (rx, up) in pairs.iter().step_by(97) {
        let (a, ta) = ipid_at(rx);
        let (b, tb) = ipid_at(up);
        assert_eq!(a, b);
        assert!(
            ta >= tb + 1300,
            "rx {ta} vs tx {tb}: link delay 500 ns = 1300 ticks"
        );
    }
    // Conservation and NAT rewriting.
    let st = &out.truth.stats;
    assert_eq!(st.packets, st.delivered + st.lost);
    let src = &tr.streams[0];
    let sink = tr.streams.last().unwrap();
    let src_tuples: HashMap<u16, collector::FiveTuple> = src
        .batches
        .iter()
        .flat_map(|b| b.ipids.iter().copied().zip(b.tuples.clone().unwrap()))
        .collect();
    let mut rewritten = 0;
    for b in sink.batches.iter().take(200) {
        for (ip, t) in b.ipids.iter().zip(b.tuples.as_ref().unwrap()) {
            if let Some(s) = src_tuples.get(ip) {
                if s.dst_ip == t.dst_ip && s.src_ip != t.src_ip {
                    rewritten += 1;
                }
            }
        }
    }
    assert!(rewritten > 100, "{rewritten}");
}

#[test]
fn same_seed_same_bytes_and_in_memory_equals_file() {
    let sc = small();
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let out = simulate(&sc).unwrap();
    write_output(&out, d1.path()).unwrap();
    let sum = simulate_to_dir(&sc, d2.path()).unwrap();
    assert!(sum.trace_bytes > 0 && sum.observations > 0);
    for f in ["trace.bin", "truth.json", "journeys.bin"] {
        let a = std::fs::read(d1.path().join(f)).unwrap();
        let b = std::fs::read(d2.path().join(f)).unwrap();
        assert!(a == b, "{f} differs between runs of the same seed");
    }
    let read = read_trace(&d1.path().join("trace.bin"), ReadMode::Strict).unwrap();
    assert_eq!(read.meta, out.trace.meta);
    assert_eq!(read.streams.len(), out.trace.streams.len());
    for (a, b) in read.streams.iter().zip(&out.trace.streams) {
        assert_eq!(a, b);
    }
    let t = testbeds::Truth::load(d1.path()).unwrap();
    assert_eq!(t.faults, out.truth.faults);
    assert_eq!(t.victims, out.truth.victims);
    assert_eq!(t.journeys, out.truth.journeys);
    // A different seed gives a different trace.
    let mut other = sc.clone();
    other.seed += 1;
    let d3 = tempfile::tempdir().unwrap();
    simulate_to_dir(&other, d3.path()).unwrap();
    assert_ne!(
        std::fs::read(d1.path().join("trace.bin")).unwrap(),
        std::fs::read(d3.path().join("trace.bin")).unwrap()
    );
}

#[test]
fn faults_are_injected_and_victims_labelled_counterfactually() {
    let sc = small();
    let out = simulate(&sc).unwrap();
    let t = &out.truth;
    let kinds: Vec<FaultKind> = t.faults.iter().map(|f| f.kind).collect();
    assert!(
        kinds.contains(&FaultKind::Burst)
            && kinds.contains(&FaultKind::Interrupt)
            && kinds.contains(&FaultKind::Bug),
        "{kinds:?}"
    );
    for f in &t.faults {
        assert!(
            f.start_ns <= f.end_ns
                && f.window_start_ns <= f.start_ns
                && f.end_ns <= f.window_end_ns
        );
        match f.kind {
            FaultKind::Burst => assert_eq!(f.flows.len(), 2),
            FaultKind::Bug => {
                assert!(f.nf.as_deref().unwrap().starts_with("fw"));
                assert_eq!(
                    f.flows[0].src_ip,
                    u32::from(std::net::Ipv4Addr::new(100, 0, 0, 1))
                );
            }
            FaultKind::Interrupt => {
                let d = f.end_ns - f.start_ns;
                assert!((500_000..=1_000_000).contains(&d));
            }
        }
    }
    for f in t.faults.iter().filter(|f| f.kind != FaultKind::Bug) {
        assert!(
            f.victims > 0,
            "fault {} ({:?}) has no victims",
            f.id,
            f.kind
        );
    }
    for v in &t.victims {
        let f = &t.faults[v.fault_id as usize];
        let p = t.journeys.packets[v.packet as usize];
        assert!(p.sent_ns >= f.window_start_ns && p.sent_ns < f.window_end_ns);
        assert!(v.lost || v.latency_ns > t.threshold_ns);
        if let Some(b) = v.baseline_latency_ns {
            assert!(
                b <= t.threshold_ns,
                "victims were not late without the injection"
            );
        }
        assert_eq!(
            t.packet_at(&v.slot),
            (!v.lost).then_some(v.packet).or(t.packet_at(&v.slot))
        );
    }
    // Counterfactual: outside every window, background packets fare exactly
    // as in the run without injections.
    let base = simulate(&sc.without_faults()).unwrap();
    let bp: Vec<_> = base.truth.journeys.packets.clone();
    let mut bg = 0usize;
    let mut compared = 0;
    for p in &t.journeys.packets {
        if p.origin != 0 {
            continue;
        }
        let q = bp[bg];
        bg += 1;
        assert_eq!((p.flow, p.ipid, p.sent_ns), (q.flow, q.ipid, q.sent_ns));
        let outside = t
            .faults
            .iter()
            .all(|f| p.sent_ns + 5_000_000 < f.window_start_ns || p.sent_ns >= f.window_end_ns);
        if outside {
            assert_eq!((p.end_ns, p.lost_at), (q.end_ns, q.lost_at));
            compared += 1;
        }
    }
    assert_eq!(bg, bp.len());
    assert!(compared > 1000);
}

#[test]
fn tuples_on_every_stream_follow_the_nat_rewrite() {
    let mut sc = small();
    sc.duration = testbeds::scenario::SimDuration(20_000_000);
    sc.faults.enabled = false;
    sc.set("trace.tuples", "[\"all\"]").unwrap();
    let out = simulate(&sc).unwrap();
    let tr = &out.trace;
    assert!(tr
        .streams
        .iter()
        .all(|s| s.info.as_ref().unwrap().carries_tuples));
    let tuple_at = |slot: &testbeds::PacketSlot| {
        let s = &tr.streams[slot.stream as usize];
        let b = s.batches.iter().find(|b| b.seq == slot.seq).unwrap();
        b.tuples.as_ref().unwrap()[slot.idx as usize]
    };
    let mut nat_rewrites = 0;
    for (rx, up) in out.truth.true_upstream_pairs().iter().step_by(13) {
        // What a hop transmits is what the next hop receives.
        assert_eq!(tuple_at(rx), tuple_at(up));
    }
    // At the NAT, rx and tx tuples differ in the source only.
    let nat_rx = tr
        .streams
        .iter()
        .position(|s| s.info.as_ref().unwrap().nf == "nat1")
        .unwrap();
    let (rx, tx) = (&tr.streams[nat_rx], &tr.streams[nat_rx + 1]);
    for (a, b) in rx.batches.iter().zip(&tx.batches).take(500) {
        assert_eq!(
            a.ipids, b.ipids,
            "an NF transmits the batch it dequeued, IPIDs unchanged"
        );
        for (x, y) in a
            .tuples
            .as_ref()
            .unwrap()
            .iter()
            .zip(b.tuples.as_ref().unwrap())
        {
            assert_eq!(
                (x.dst_ip, x.dst_port, x.proto),
                (y.dst_ip, y.dst_port, y.proto)
            );
            if x.src_ip != y.src_ip {
                nat_rewrites += 1;
            }
        }
    }
    assert!(nat_rewrites > 500);
}

#[test]
fn pcap_replay_keeps_tuples_and_ipids_in_order() {
    use testbeds::pcap::{write_pcap, PcapPacket};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.pcap");
    // A small synthetic capture: 3000 packets over 40 flows, 1 ms apart.
    let pk: Vec<PcapPacket> = (0..3000u32)
        .map(|i| PcapPacket {
            ts_ns: 1_000_000_000 + i as u64 * 1_000_000,
            tuple: collector::FiveTuple {
                src_ip: 0x0a00_0000 + (i % 40),
                dst_ip: 0xc633_6401,
                src_port: 40000 + (i % 40) as u16,
                dst_port: if i % 5 == 0 { 53 } else { 443 },
                proto: if i % 5 == 0 { 17 } else { 6 },
            },
            ipid: (i.wrapping_mul(2654435761) >> 16) as u16,
        })
        .collect();
    write_pcap(&path, &pk).unwrap();
    let mut sc = small();
    sc.faults.enabled = false;
    sc.duration = testbeds::scenario::SimDuration(5_000_000);
    let pcap = format!("{:?}", path.to_str().unwrap());
    sc.set_all([
        ("traffic.kind", "\"pcap\""),
        ("traffic.pcap", pcap.as_str()),
        ("traffic.pcap_loop", "false"),
    ])
    .unwrap();
    // 0.4 Mpps: the 3000 packets take 7.5 ms, so 5 ms replays about 2000.
    let out = simulate(&sc).unwrap();
    let src = &out.trace.streams[0];
    let sent: Vec<(u16, collector::FiveTuple)> = src
        .batches
        .iter()
        .flat_map(|b| b.ipids.iter().copied().zip(b.tuples.clone().unwrap()))
        .collect();
    assert!((1800..2200).contains(&sent.len()), "{}", sent.len());
    for (k, (ipid, t)) in sent.iter().enumerate() {
        assert_eq!((*ipid, *t), (pk[k].ipid, pk[k].tuple));
    }
    assert_eq!(out.truth.stats.lost, 0);
    // Scaled timing keeps the file's spacing (1 ms here at 1 kpps -> scaled to 0.4 Mpps).
    sc.set("traffic.pcap_timing", "\"scaled\"").unwrap();
    sc.set("traffic.arrivals", "\"constant\"").unwrap();
    let out = simulate(&sc).unwrap();
    let n: usize = out.trace.streams[0]
        .batches
        .iter()
        .map(|b| b.ipids.len())
        .sum();
    assert!((1990..=2001).contains(&n), "{n}");
}
