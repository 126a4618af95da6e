//! Victim selection (paper §4.1): packets with high end-to-end latency, low
//! per-flow throughput, or lost; each diagnosed at the NFs where its local
//! performance (queuing delay) is abnormal — beyond `abnormal_sigma`
//! standard deviations above the mean of the NF's recent history.

use crate::config::{Config, VictimRule};
use crate::dag::Dag;
use crate::index::{Index, NONE};
use crate::queue::{local, Target};
use crate::reconstruct::Journeys;
use collector::Role;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// One (victim packet, NF) pair to diagnose.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VictimTarget {
    pub node: u32,
    pub target: Target,
    /// Observation reported as the victim's slot.
    pub slot_obs: u32,
    pub pkt: u32,
    pub latency_ns: f64,
    pub local_delay_ns: f64,
    pub lost: bool,
}

/// What victim selection found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VictimStats {
    /// Packets with a complete journey (source to a terminal node).
    pub delivered: u64,
    /// Latency threshold in force (the lowest of the latency rules), ns.
    pub latency_threshold_ns: Option<f64>,
    /// Delivered packets selected by latency or throughput rules.
    pub slow_packets: u64,
    /// Packets lost at a queue.
    pub lost_packets: u64,
    /// Upstream observations with no downstream match while the downstream
    /// stream reported record loss (not counted as lost).
    pub unobserved: u64,
    /// (victim, NF) pairs whose local delay was normal and were skipped.
    pub skipped_normal: u64,
    /// (victim, NF) pairs diagnosed.
    pub targets: u64,
}

/// Per rx stream, history of queuing delays in time buckets.
struct History {
    t0: i64,
    count: Vec<u32>,
    sum: Vec<f64>,
    sumsq: Vec<f64>,
}

fn histories(ix: &Index, j: &Journeys, dag: &Dag, bucket: i64) -> Vec<Option<History>> {
    let mut of_nf = vec![false; ix.n_streams()];
    for node in dag.nodes.iter().filter(|n| n.role == Role::Nf) {
        for &s in &node.rx_streams {
            of_nf[s as usize] = true;
        }
    }
    (0..ix.n_streams() as u32)
        .into_par_iter()
        .map(|s| {
            let r = ix.stream_obs(s);
            if !of_nf[s as usize] || r.is_empty() {
                return None;
            }
            let t0 = ix.time(r.start);
            let t1 = ix.time(r.end - 1);
            let nb = ((t1 - t0) / bucket + 1) as usize;
            let mut h = History {
                t0,
                count: vec![0; nb],
                sum: vec![0.0; nb],
                sumsq: vec![0.0; nb],
            };
            for x in r {
                let p = j.prev[x as usize];
                if p == NONE {
                    continue;
                }
                let t = ix.time(x);
                let d = (t - ix.time(p)) as f64;
                let b = ((t - t0) / bucket) as usize;
                h.count[b] += 1;
                h.sum[b] += d;
                h.sumsq[b] += d * d;
            }
            Some(h)
        })
        .collect()
}

impl History {
    /// True when `d` is beyond mean + k·std of the `n` buckets before `t`
    /// (or when there is too little history to tell).
    fn abnormal(&self, t: i64, d: f64, bucket: i64, n: i64, k: f64) -> bool {
        let b = (t - self.t0) / bucket;
        let lo = (b - n).max(0) as usize;
        let hi = (b.max(0) as usize).min(self.count.len());
        let (mut c, mut s, mut s2) = (0u64, 0.0, 0.0);
        for i in lo..hi {
            c += self.count[i] as u64;
            s += self.sum[i];
            s2 += self.sumsq[i];
        }
        if c < 2 {
            return true;
        }
        let mean = s / c as f64;
        let var = (s2 / c as f64 - mean * mean).max(0.0);
        d > mean + k * var.sqrt()
    }
}

/// Selects victims and the NFs to diagnose them at.
pub(crate) fn select(
    ix: &Index,
    j: &Journeys,
    dag: &Dag,
    cfg: &Config,
    empties: &[Vec<u32>],
    rates: &[f64],
    loss_ns: &[Vec<(i64, i64)>],
) -> (Vec<VictimTarget>, VictimStats) {
    let mut st = VictimStats::default();
    let n_pkts = j.pkt_first.len();
    let terminal: Vec<bool> = (0..dag.nodes.len())
        .map(|n| {
            dag.downstream(n)
                .all(|d| dag.nodes[d].rx_streams.is_empty())
        })
        .collect();
    let is_source = |o: u32| {
        let n = ix.node_of_obs(o);
        n != NONE && dag.nodes[n as usize].role == Role::Source
    };
    // End-to-end latency of delivered packets (NaN otherwise).
    let latency: Vec<f64> = (0..n_pkts)
        .into_par_iter()
        .map(|p| {
            let (a, b) = (j.pkt_first[p], j.pkt_last[p]);
            let n = ix.node_of_obs(b);
            if is_source(a) && n != NONE && terminal[n as usize] && a != b {
                (ix.time(b) - ix.time(a)) as f64
            } else {
                f64::NAN
            }
        })
        .collect();
    let mut delivered: Vec<f64> = latency
        .par_iter()
        .copied()
        .filter(|l| !l.is_nan())
        .collect();
    st.delivered = delivered.len() as u64;
    let mut slow = vec![false; n_pkts];
    let mut threshold: Option<f64> = None;
    for rule in &cfg.victims {
        let thr = match *rule {
            VictimRule::Percentile(pc) if !delivered.is_empty() => {
                let k = ((pc / 100.0) * delivered.len() as f64).floor() as usize;
                let k = k.min(delivered.len() - 1);
                let (_, v, _) = delivered.select_nth_unstable_by(k, |a, b| a.total_cmp(b));
                Some(*v)
            }
            VictimRule::LatencyAbove(ns) => Some(ns),
            _ => None,
        };
        if let Some(thr) = thr {
            threshold = Some(threshold.map_or(thr, |t: f64| t.min(thr)));
            slow.par_iter_mut().zip(&latency).for_each(|(s, &l)| {
                if l > thr {
                    *s = true;
                }
            });
        }
        if let VictimRule::ThroughputBelow { pps, window_ns } = *rule {
            mark_low_throughput(ix, j, &latency, pps, window_ns, &mut slow);
        }
    }
    st.latency_threshold_ns = threshold;
    drop(delivered);

    let bucket = cfg.history_bucket_ns.max(1);
    let n_hist = (cfg.history_ns / bucket).max(1);
    let hist = if cfg.require_abnormal {
        histories(ix, j, dag, bucket)
    } else {
        Vec::new()
    };
    // Slow packets in parallel, in chunks of packets; results are
    // concatenated in packet order (the same as one sequential pass).
    const CHUNK: usize = 1 << 14;
    let per_chunk: Vec<(Vec<VictimTarget>, u64, u64)> = slow
        .par_chunks(CHUNK)
        .enumerate()
        .map(|(ci, ch)| {
            let (mut out, mut n_slow, mut normal) = (Vec::new(), 0u64, 0u64);
            let mut found = Vec::new();
            for (k, _) in ch.iter().enumerate().filter(|e| *e.1) {
                let p = ci * CHUNK + k;
                n_slow += 1;
                // Walk the journey back; diagnose at each NF rx where abnormal.
                let mut o = j.pkt_last[p];
                found.clear();
                loop {
                    let prev = j.prev[o as usize];
                    let n = ix.node_of_obs(o);
                    if prev != NONE
                        && n != NONE
                        && dag.nodes[n as usize].role == Role::Nf
                        && ix.stream_dir[ix.stream_of(o) as usize] == collector::Direction::Rx
                    {
                        let t = ix.time(o);
                        let d = (t - ix.time(prev)) as f64;
                        let s = ix.stream_of(o) as usize;
                        let abnormal = !cfg.require_abnormal
                            || hist[s].as_ref().is_none_or(|h| {
                                h.abnormal(t, d, bucket, n_hist, cfg.abnormal_sigma)
                            });
                        if abnormal {
                            found.push(VictimTarget {
                                node: n,
                                target: Target::Received(o),
                                slot_obs: o,
                                pkt: p as u32,
                                latency_ns: latency[p],
                                local_delay_ns: d,
                                lost: false,
                            });
                        } else {
                            normal += 1;
                        }
                    }
                    if prev == NONE {
                        break;
                    }
                    o = prev;
                }
                out.extend(found.iter().rev());
            }
            (out, n_slow, normal)
        })
        .collect();
    let mut out = Vec::with_capacity(per_chunk.iter().map(|c| c.0.len()).sum());
    for (v, n_slow, normal) in per_chunk {
        st.slow_packets += n_slow;
        st.skipped_normal += normal;
        out.extend(v);
    }

    if cfg.victims.contains(&VictimRule::Lost) {
        for (u, node) in dag.nodes.iter().enumerate() {
            if node.role == Role::Sink {
                continue;
            }
            let downs: Vec<usize> = dag
                .downstream(u)
                .filter(|&d| !dag.nodes[d].rx_streams.is_empty())
                .collect();
            if downs.is_empty() {
                continue;
            }
            // Each unmatched tx observation is judged on its own (in
            // parallel); outcomes are folded in observation order.
            enum Lost {
                Uncovered,
                Unobserved,
                At(VictimTarget),
            }
            for &s in &node.tx_streams {
                let outcomes: Vec<Lost> = ix
                    .stream_obs(s)
                    .into_par_iter()
                    .filter(|&y| !j.has_next[y as usize])
                    .map(|y| {
                        let t = ix.time(y);
                        // Choose the queue it was dropped at: among the
                        // downstream rx streams whose records extend past the
                        // matching window, the longest queue at t.
                        let mut best: Option<(u32, u32, u32)> = None; // (queue, node, stream)
                        let mut unobserved = false;
                        let mut any_covered = false;
                        for &d in &downs {
                            for &ds in &dag.nodes[d].rx_streams {
                                let r = ix.stream_obs(ds);
                                if r.is_empty() || ix.time(r.end - 1) < t + cfg.match_window_ns {
                                    continue;
                                }
                                any_covered = true;
                                if loss_ns[ds as usize]
                                    .iter()
                                    .any(|&(a, b)| a <= t + cfg.match_window_ns && b >= t)
                                {
                                    unobserved = true;
                                    continue;
                                }
                                let per = local(
                                    ix,
                                    j,
                                    &empties[ds as usize],
                                    rates[d],
                                    Target::Lost { stream: ds, t },
                                );
                                let q = per.queue_len();
                                if best.is_none_or(|b| q > b.0) {
                                    best = Some((q, d as u32, ds));
                                }
                            }
                        }
                        if !any_covered {
                            return Lost::Uncovered;
                        }
                        if unobserved {
                            return Lost::Unobserved;
                        }
                        let Some((_, d, ds)) = best else {
                            return Lost::Uncovered;
                        };
                        let pkt = j.obs_pkt[y as usize];
                        let first = j.pkt_first[pkt as usize];
                        Lost::At(VictimTarget {
                            node: d,
                            target: Target::Lost { stream: ds, t },
                            slot_obs: y,
                            pkt,
                            latency_ns: if is_source(first) {
                                (t - ix.time(first)) as f64
                            } else {
                                0.0
                            },
                            local_delay_ns: 0.0,
                            lost: true,
                        })
                    })
                    .collect();
                for o in outcomes {
                    match o {
                        Lost::Uncovered => {}
                        Lost::Unobserved => st.unobserved += 1,
                        Lost::At(v) => {
                            st.lost_packets += 1;
                            out.push(v);
                        }
                    }
                }
            }
        }
    }
    st.targets = out.len() as u64;
    (out, st)
}

/// Marks packets of flows whose delivered rate in a window fell below `pps`
/// while they offered at least `pps` at the source in that window.
fn mark_low_throughput(
    ix: &Index,
    j: &Journeys,
    latency: &[f64],
    pps: f64,
    window_ns: i64,
    slow: &mut [bool],
) {
    // (tuple, window, packet, delivered-in-window)
    let mut sent: Vec<(u32, i64, u32)> = Vec::new();
    let mut got: Vec<(u32, i64)> = Vec::new();
    for (p, &l) in latency.iter().enumerate() {
        let tup = j.pkt_tuple[p];
        if tup == NONE {
            continue;
        }
        let t0 = ix.time(j.pkt_first[p]);
        sent.push((tup, t0.div_euclid(window_ns), p as u32));
        if !l.is_nan() {
            got.push((tup, ix.time(j.pkt_last[p]).div_euclid(window_ns)));
        }
    }
    sent.sort_unstable();
    got.sort_unstable();
    let need = pps * window_ns as f64 / 1e9;
    let mut gi = 0;
    let mut i = 0;
    while i < sent.len() {
        let key = (sent[i].0, sent[i].1);
        let mut k = i;
        while k < sent.len() && (sent[k].0, sent[k].1) == key {
            k += 1;
        }
        while gi < got.len() && got[gi] < key {
            gi += 1;
        }
        let mut g = gi;
        while g < got.len() && got[g] == key {
            g += 1;
        }
        let offered = (k - i) as f64;
        let delivered = (g - gi) as f64;
        if offered >= need && delivered < need {
            for e in &sent[i..k] {
                if !latency[e.2 as usize].is_nan() {
                    slow[e.2 as usize] = true;
                }
            }
        }
        i = k;
    }
}
