//! A tiny deterministic queue model that writes in-memory traces for the
//! hand-computed tests: sources emit packets at given times; each NF polls
//! its input queue (burst 32), takes every packet already arrived (up to
//! 32), spends `1e9/rate` ns per packet, transmits the batch at the end,
//! and polls again; it cannot poll inside a stall interval. Propagation
//! delay is zero, so arrival at an NF = the upstream tx time. Clock: 1 tick
//! = 1 ns (`tsc_hz_hint = 1e9`, no anchors).
#![allow(dead_code)]

use collector::{
    BatchRecord, Direction, Edge, FiveTuple, NfSpec, Role, StreamInfo, Topology, TraceMeta,
};
use tracefile::{StreamData, Trace};

pub const BURST: usize = 32;

pub struct Nf {
    pub name: String,
    pub rate_pps: f64,
    pub stalls: Vec<(i64, i64)>,
}

/// A packet: emitted by source `src` at `t`, visiting `route` (NF indices).
#[derive(Clone)]
pub struct Pkt {
    pub t: i64,
    pub src: usize,
    pub route: Vec<usize>,
    pub ipid: u16,
    pub tuple: FiveTuple,
}

pub struct Model {
    pub sources: Vec<String>,
    pub nfs: Vec<Nf>,
    pub pkts: Vec<Pkt>,
}

pub struct Built {
    pub trace: Trace,
    /// Stream ids: per source its tx stream; per NF (rx, tx).
    pub src_stream: Vec<u32>,
    pub nf_streams: Vec<(u32, u32)>,
    /// Per NF, per packet index: (rx seq, idx) where it was dequeued.
    pub rx_slot: Vec<Vec<Option<(u64, u16)>>>,
    /// Per NF, per packet: arrival time.
    pub arrival: Vec<Vec<Option<i64>>>,
}

pub fn tuple(i: u32) -> FiveTuple {
    FiveTuple {
        src_ip: 0x0a00_0000 + i,
        dst_ip: 0x0b00_0001,
        src_port: 1000 + i as u16,
        dst_port: 80,
        proto: 6,
    }
}

fn info(id: u32, nf: &str, ty: &str, role: Role, dir: Direction, tuples: bool) -> StreamInfo {
    StreamInfo {
        id,
        nf: nf.into(),
        nf_type: ty.into(),
        role,
        port: 0,
        queue: 0,
        direction: dir,
        host: "h".into(),
        carries_tuples: tuples,
    }
}

pub fn build(m: &Model) -> Built {
    let mut streams: Vec<StreamData> = Vec::new();
    let mut src_stream = Vec::new();
    for s in &m.sources {
        let id = streams.len() as u32;
        streams.push(StreamData {
            info: Some(info(id, s, "source", Role::Source, Direction::Tx, true)),
            ..Default::default()
        });
        src_stream.push(id);
    }
    let mut nf_streams = Vec::new();
    for nf in &m.nfs {
        let rx = streams.len() as u32;
        streams.push(StreamData {
            info: Some(info(rx, &nf.name, "nf", Role::Nf, Direction::Rx, false)),
            ..Default::default()
        });
        let tx = streams.len() as u32;
        streams.push(StreamData {
            info: Some(info(tx, &nf.name, "nf", Role::Nf, Direction::Tx, false)),
            ..Default::default()
        });
        nf_streams.push((rx, tx));
    }
    // Source tx batches: packets with equal time, up to BURST per batch.
    let mut order: Vec<usize> = (0..m.pkts.len()).collect();
    order.sort_by_key(|&i| (m.pkts[i].t, i));
    // Per NF arrivals: (time, pkt).
    let mut arrivals: Vec<Vec<(i64, u64, usize)>> = vec![Vec::new(); m.nfs.len()];
    // Global emission counter: arrivals with equal times keep tx order (FIFO).
    let mut emitted = 0u64;
    for (si, _) in m.sources.iter().enumerate() {
        let mine: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| m.pkts[i].src == si)
            .collect();
        let mut k = 0;
        while k < mine.len() {
            let t = m.pkts[mine[k]].t;
            let mut e = k;
            while e < mine.len() && m.pkts[mine[e]].t == t && e - k < BURST {
                e += 1;
            }
            let sd = &mut streams[src_stream[si] as usize];
            let seq = sd.batches.len() as u64;
            sd.batches.push(BatchRecord {
                seq,
                tsc: t as u64,
                requested: BURST as u16,
                ipids: mine[k..e].iter().map(|&i| m.pkts[i].ipid).collect(),
                non_ipv4: vec![],
                tuples: Some(mine[k..e].iter().map(|&i| m.pkts[i].tuple).collect()),
            });
            for &i in &mine[k..e] {
                if let Some(&first) = m.pkts[i].route.first() {
                    arrivals[first].push((t, emitted, i));
                    emitted += 1;
                }
            }
            k = e;
        }
    }
    let mut rx_slot = vec![vec![None; m.pkts.len()]; m.nfs.len()];
    let mut arrival = vec![vec![None; m.pkts.len()]; m.nfs.len()];
    // NFs in index order (models list them topologically).
    for f in 0..m.nfs.len() {
        let mut arr = std::mem::take(&mut arrivals[f]);
        arr.sort_by_key(|&(t, e, _)| (t, e));
        for &(t, _, i) in &arr {
            arrival[f][i] = Some(t);
        }
        let cost = 1e9 / m.nfs[f].rate_pps;
        let (rx, tx) = nf_streams[f];
        let mut free = 0.0f64;
        let mut i = 0;
        while i < arr.len() {
            let mut poll = free.max(arr[i].0 as f64);
            loop {
                let p = poll;
                for &(s, e) in &m.nfs[f].stalls {
                    if p >= s as f64 && p < e as f64 {
                        poll = e as f64;
                    }
                }
                if poll == p {
                    break;
                }
            }
            let mut e = i;
            while e < arr.len() && arr[e].0 as f64 <= poll && e - i < BURST {
                e += 1;
            }
            let batch: Vec<usize> = arr[i..e].iter().map(|a| a.2).collect();
            let t_rx = poll.round() as i64;
            let seq = streams[rx as usize].batches.len() as u64;
            for (k, &p) in batch.iter().enumerate() {
                rx_slot[f][p] = Some((seq, k as u16));
            }
            streams[rx as usize].batches.push(BatchRecord {
                seq,
                tsc: t_rx as u64,
                requested: BURST as u16,
                ipids: batch.iter().map(|&p| m.pkts[p].ipid).collect(),
                non_ipv4: vec![],
                tuples: None,
            });
            free = poll + cost * batch.len() as f64;
            let t_tx = free.round() as i64;
            let tseq = streams[tx as usize].batches.len() as u64;
            streams[tx as usize].batches.push(BatchRecord {
                seq: tseq,
                tsc: t_tx as u64,
                requested: BURST as u16,
                ipids: batch.iter().map(|&p| m.pkts[p].ipid).collect(),
                non_ipv4: vec![],
                tuples: None,
            });
            for &p in &batch {
                let route = &m.pkts[p].route;
                let pos = route.iter().position(|&x| x == f).unwrap();
                if let Some(&next) = route.get(pos + 1) {
                    arrivals[next].push((t_tx, emitted, p));
                    emitted += 1;
                }
            }
            i = e;
        }
    }
    let mut nfs: Vec<NfSpec> = m
        .sources
        .iter()
        .map(|s| NfSpec {
            name: s.clone(),
            nf_type: "source".into(),
            role: Role::Source,
            peak_rate_pps: None,
        })
        .collect();
    nfs.extend(m.nfs.iter().map(|n| NfSpec {
        name: n.name.clone(),
        nf_type: "nf".into(),
        role: Role::Nf,
        peak_rate_pps: Some(n.rate_pps),
    }));
    let mut edges: Vec<Edge> = Vec::new();
    for p in &m.pkts {
        let mut from = m.sources[p.src].clone();
        for &n in &p.route {
            let to = m.nfs[n].name.clone();
            let e = Edge {
                from: from.clone(),
                to: to.clone(),
            };
            if !edges.contains(&e) {
                edges.push(e);
            }
            from = to;
        }
    }
    let trace = Trace {
        meta: TraceMeta {
            producer: "diagnose test model".into(),
            topology: Some(Topology { nfs, edges }),
            tsc_hz_hint: Some(1e9),
        },
        streams,
        report: Default::default(),
    };
    Built {
        trace,
        src_stream,
        nf_streams,
        rx_slot,
        arrival,
    }
}

/// Packets every `gap` ns from `t0` to `t1` (exclusive) along `route`,
/// IPIDs from `ipid0`, flow `flow`.
pub fn periodic(
    t0: i64,
    t1: i64,
    gap: i64,
    src: usize,
    route: &[usize],
    ipid0: u16,
    flow: u32,
) -> Vec<Pkt> {
    (0..)
        .map(|k| t0 + k * gap)
        .take_while(|&t| t < t1)
        .enumerate()
        .map(|(k, t)| Pkt {
            t,
            src,
            route: route.to_vec(),
            ipid: ipid0.wrapping_add(k as u16),
            tuple: tuple(flow),
        })
        .collect()
}
