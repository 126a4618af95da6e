//! Packet-journey reconstruction (paper §5).
//!
//! Each rx observation at a node `f` is mapped to the tx observation of the
//! same packet at an immediate upstream neighbour, and each tx observation
//! at `f` to the rx observation of the same packet at `f` itself, using the
//! IPID plus the three side channels of §5:
//!
//! 1. **paths** — only streams of the DAG's immediate upstream neighbours
//!    (or of `f` itself for rx→tx) are candidates;
//! 2. **timing** — the upstream observation must precede the downstream one
//!    by at most `match_window_ns` (and follow it by at most `slack_ns`);
//! 3. **order** — packets keep their order on every link (one upstream
//!    stream → one downstream stream), and a downstream queue is a FIFO of
//!    arrivals from all links merged.
//!
//! Algorithm (sort-based, no per-packet allocation). Downstream nodes that
//! share an upstream node are matched *jointly* (so one upstream packet is
//! claimed at most once, e.g. by one of the NATs behind a single source
//! stream). Upstream observations are merged in time order and bucketed by
//! IPID, so the candidates of a downstream observation are one contiguous
//! range, filtered by the DAG. A pair whose candidate sets are singletons on
//! both sides is an *anchor*; the anchors of each link are filtered by a
//! longest increasing subsequence (an anchor out of order with its link is
//! a coincidence, not a match). Then all downstream observations are swept
//! in dequeue-time order: an ambiguous one takes, among the unused
//! candidates that lie on their link after the last match and before the
//! next anchor (Fig. 9) and whose time fits the merged FIFO of its queue
//! (between the last matched arrival and the next anchor's, ± slack), the
//! one whose delay is closest to the queue's last matched delay (queuing
//! delay changes smoothly along a FIFO). When no candidate fits the
//! merged-queue check, only the per-link order is used.
//!
//! Upstream observations left unmatched are losses (or unobserved, when the
//! downstream stream reports record loss then); downstream observations left
//! unmatched are orphans (their upstream record is missing).

use crate::dag::Dag;
use crate::index::{Index, NONE};
use collector::{FiveTuple, Role};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Counters of one matching step (rx of a node, or rx→tx inside a node).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MatchStats {
    /// Downstream observations considered.
    pub down: u64,
    /// Upstream observations offered.
    pub up: u64,
    /// Unique-both-ways pairs kept as anchors.
    pub anchors: u64,
    /// Unique pairs rejected because they broke the order of their link.
    pub anchors_out_of_order: u64,
    /// Observations that had several candidates (IPID collisions).
    pub ambiguous: u64,
    /// Matches decided by the order channel (non-anchors).
    pub resolved_by_order: u64,
    /// Downstream observations with no acceptable candidate.
    pub unmatched_down: u64,
    /// Largest matched delay seen (ns).
    pub max_delay_ns: i64,
}

impl MatchStats {
    fn add(&mut self, o: &MatchStats) {
        self.down += o.down;
        self.up += o.up;
        self.anchors += o.anchors;
        self.anchors_out_of_order += o.anchors_out_of_order;
        self.ambiguous += o.ambiguous;
        self.resolved_by_order += o.resolved_by_order;
        self.unmatched_down += o.unmatched_down;
        self.max_delay_ns = self.max_delay_ns.max(o.max_delay_ns);
    }
}

/// Summary of the whole reconstruction.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReconstructionStats {
    pub observations: u64,
    /// Across nodes: rx observations mapped to an upstream tx.
    pub links: MatchStats,
    /// Inside nodes: tx observations mapped to the node's rx.
    pub inside: MatchStats,
    /// Packets (journeys) rebuilt.
    pub packets: u64,
    /// Journeys starting at a traffic source.
    pub from_source: u64,
    /// Upstream observations claimed twice (a consistency check: matching
    /// is joint over all downstream nodes sharing an upstream, so this stays
    /// 0); the later claim is dropped.
    pub conflicts: u64,
    /// Packets that carry a 5-tuple (recorded anywhere on their journey).
    pub with_tuple: u64,
    /// Distinct journeys' paths through the DAG.
    pub paths: u64,
}

/// One path prefix through the DAG: `parent` then `node`.
#[derive(Clone, Copy, Debug)]
pub struct PathNode {
    pub parent: u32,
    pub node: u32,
    pub depth: u32,
}

/// Reconstructed journeys.
pub struct Journeys {
    /// Upstream observation of each observation ([`NONE`] if unmatched or at
    /// the journey's start): for rx, the upstream tx; for tx, the own rx.
    pub prev: Vec<u32>,
    /// True for observations some downstream observation points to.
    pub has_next: Vec<bool>,
    /// Packet (journey) of each observation.
    pub obs_pkt: Vec<u32>,
    pub pkt_first: Vec<u32>,
    pub pkt_last: Vec<u32>,
    /// Index into `tuples`, or [`NONE`].
    pub pkt_tuple: Vec<u32>,
    pub tuples: Vec<FiveTuple>,
    /// Path table: `paths[0]` is the empty root.
    pub paths: Vec<PathNode>,
    /// `child[p * n_nodes + n]`: path `p` extended by node `n`.
    child: Vec<u32>,
    n_nodes: usize,
    pub stats: ReconstructionStats,
}

impl Journeys {
    /// Path `p` extended by node `n`, if any journey took it.
    #[inline]
    pub fn child(&self, p: u32, n: u32) -> u32 {
        self.child[p as usize * self.n_nodes + n as usize]
    }
}

/// Matches the observations of `down` streams to those of `up` streams,
/// jointly (an upstream observation is claimed at most once across all
/// downstream streams). `allowed[d][k]` says whether upstream stream `k`
/// may feed downstream stream `d` (the DAG channel). Returns, per down
/// stream (same order), the matched upstream observation of each of its
/// observations ([`NONE`] if none).
fn timing() -> bool {
    std::env::var_os("MICROSCOPE_TIMING").is_some()
}

pub(crate) fn match_streams(
    ix: &Index,
    up: &[u32],
    down: &[u32],
    allowed: &[Vec<bool>],
    window_ns: i64,
    slack_ns: i64,
) -> (Vec<Vec<u32>>, MatchStats) {
    let mut st = MatchStats::default();
    let t0 = std::time::Instant::now();
    // Upstream observations in time order: each stream is time-sorted, so a
    // stable sort of their concatenation is a cheap run merge. Then a
    // stable sort by IPID keeps time order within each bucket.
    let mut timeline: Vec<(i64, u32, u16)> = Vec::new();
    for (k, &s) in up.iter().enumerate() {
        timeline.extend(ix.stream_obs(s).map(|o| (ix.time(o), o, k as u16)));
    }
    if up.len() > 1 {
        timeline.sort_by_key(|e| e.0);
    }
    // Stable radix sort by IPID keeps time order within each bucket.
    let (by_ip, start) = radix_u16(&timeline, |e| ix.obs_ipid[e.1 as usize]);
    drop(timeline);
    let n_up = start[65536] as usize;
    st.up = n_up as u64;
    // One 16-byte entry per upstream observation: everything the sweep
    // touches per candidate is in one cache line.
    let mut ue: Vec<UpE> = by_ip
        .iter()
        .map(|&(time, obs, k)| UpE {
            time,
            obs,
            k,
            hits: 0,
            used: false,
        })
        .collect();
    drop(by_ip);

    // All downstream observations in dequeue-time order (each stream is
    // already sorted; the stable sort merges runs, ties keep stream order).
    let mut order: Vec<(i64, u32, u32)> = Vec::new();
    for (di, &d) in down.iter().enumerate() {
        let r = ix.stream_obs(d);
        let base = r.start;
        order.extend(r.map(|x| (ix.time(x), di as u32, x - base)));
    }
    if down.len() > 1 {
        order.sort_by_key(|e| e.0);
    }
    st.down = order.len() as u64;
    // Candidate ranges: visit downstream observations IPID by IPID (time
    // order within an IPID), so each upstream bucket is scanned once with
    // two monotone pointers instead of a binary search per packet.
    let obs_of = |di: u32, i: u32| ix.stream_obs(down[di as usize]).start + i;
    let (by_ipid, dstart) = radix_u16(&order, |e| ix.obs_ipid[obs_of(e.1, e.2) as usize]);
    let mut ranges: Vec<Vec<(u32, u32)>> = down
        .iter()
        .map(|&d| vec![(0u32, 0u32); ix.stream_obs(d).len()])
        .collect();
    for v in 0..65536 {
        let (b0, b1) = (start[v] as usize, start[v + 1] as usize);
        let (mut a, mut b) = (b0, b0);
        for &(t, di, i) in &by_ipid[dstart[v] as usize..dstart[v + 1] as usize] {
            while a < b1 && ue[a].time < t - window_ns {
                a += 1;
            }
            b = b.max(a);
            while b < b1 && ue[b].time <= t + slack_ns {
                b += 1;
            }
            let al = &allowed[di as usize];
            for e in &mut ue[a..b] {
                if al[e.k as usize] {
                    e.hits = e.hits.saturating_add(1);
                }
            }
            ranges[di as usize][i as usize] = (a as u32, b as u32);
        }
    }
    // Unique candidates, found in the same IPID order (each upstream bucket
    // scanned sequentially, now that every `hits` count is final) and kept
    // with what the anchor filter and the sweep need, so neither has to
    // chase the upstream table in downstream time order (cache misses).
    let mut cand: Vec<Vec<Cand>> = ranges.iter().map(|rs| vec![Cand::NO; rs.len()]).collect();
    for v in 0..65536 {
        for &(_, di, i) in &by_ipid[dstart[v] as usize..dstart[v + 1] as usize] {
            let (a, b) = ranges[di as usize][i as usize];
            let al = &allowed[di as usize];
            let mut only = NONE;
            let mut count = 0;
            for p in a..b {
                if al[ue[p as usize].k as usize] {
                    count += 1;
                    only = p;
                }
            }
            if count == 1 && ue[only as usize].hits == 1 {
                let e = &ue[only as usize];
                cand[di as usize][i as usize] = Cand {
                    pos: only,
                    obs: e.obs,
                    k: e.k,
                    time: e.time,
                };
            } else if count > 1 {
                st.ambiguous += 1;
            }
        }
    }
    drop(by_ipid);
    drop(dstart);

    if timing() {
        eprintln!(
            "  match: buckets+candidates {:.2}s",
            t0.elapsed().as_secs_f64()
        );
    }
    // Anchors per link, filtered by LIS on upstream order.
    let n_links = up.len();
    let mut anchor: Vec<Vec<Cand>> = Vec::with_capacity(down.len());
    for cs in cand {
        let mut ap = vec![Cand::NO; cs.len()];
        let mut per_link: Vec<Vec<(u32, Cand)>> = vec![Vec::new(); n_links];
        for (i, c) in cs.into_iter().enumerate() {
            if c.pos != NONE {
                per_link[c.k as usize].push((i as u32, c));
            }
        }
        for list in per_link {
            let keep = lis_by(&list, |(_, c)| c.obs);
            for (j, &(i, c)) in list.iter().enumerate() {
                if keep[j] {
                    ap[i as usize] = c;
                    ue[c.pos as usize].used = true;
                    st.anchors += 1;
                } else {
                    st.anchors_out_of_order += 1;
                }
            }
        }
        anchor.push(ap);
    }

    // Per downstream stream state for the sweep.
    struct Queue {
        next_t: Vec<i64>,
        link_anchors: Vec<Vec<(u32, u32)>>,
        link_ptr: Vec<usize>,
        last_on_link: Vec<u32>,
        last_t: i64,
        last_delay: i64,
        res: Vec<u32>,
    }
    let mut queues: Vec<Queue> = Vec::with_capacity(down.len());
    for ap in &anchor {
        let n = ap.len();
        let mut next_t = vec![i64::MAX; n + 1];
        for i in (0..n).rev() {
            next_t[i] = if ap[i].pos != NONE {
                ap[i].time
            } else {
                next_t[i + 1]
            };
        }
        let mut link_anchors: Vec<Vec<(u32, u32)>> = vec![Vec::new(); n_links];
        for (i, c) in ap.iter().enumerate() {
            if c.pos != NONE {
                link_anchors[c.k as usize].push((i as u32, c.obs));
            }
        }
        queues.push(Queue {
            next_t,
            link_anchors,
            link_ptr: vec![0; n_links],
            last_on_link: vec![NONE; n_links],
            last_t: i64::MIN,
            last_delay: 0,
            res: vec![NONE; n],
        });
    }
    if timing() {
        eprintln!("  match: anchors {:.2}s", t0.elapsed().as_secs_f64());
    }
    // Sweep all downstream observations in time order (ties: stream, index)
    // so concurrent claims on one upstream observation are settled by who
    // dequeued first.
    for &(tx, di, i) in &order {
        let (di, i) = (di as usize, i as usize);
        let q = &mut queues[di];
        let c = anchor[di][i];
        if c.pos != NONE {
            let k = c.k as usize;
            q.res[i] = c.obs;
            q.last_on_link[k] = c.obs;
            q.last_t = q.last_t.max(c.time);
            q.last_delay = tx - c.time;
            st.max_delay_ns = st.max_delay_ns.max(tx - c.time);
            continue;
        }
        let (a, b) = ranges[di][i];
        if a == b {
            st.unmatched_down += 1;
            continue;
        }
        // Valid candidates: unused, allowed, in order on their link (after
        // the last match, before the next anchor). Preferred: those that fit
        // the merged FIFO of the queue; among them the one whose delay is
        // closest to the queue's last matched delay (queuing delay changes
        // smoothly between consecutive packets of a FIFO).
        let expect = tx - q.last_delay;
        let mut best = (NONE, i64::MAX);
        let mut best_link_only = (NONE, i64::MAX);
        for pos in a..b {
            let p = pos as usize;
            let k = ue[p].k as usize;
            if ue[p].used || !allowed[di][k] {
                continue;
            }
            let y = ue[p].obs;
            if q.last_on_link[k] != NONE && y <= q.last_on_link[k] {
                continue;
            }
            let la = &q.link_anchors[k];
            while q.link_ptr[k] < la.len() && la[q.link_ptr[k]].0 as usize <= i {
                q.link_ptr[k] += 1;
            }
            if q.link_ptr[k] < la.len() && y >= la[q.link_ptr[k]].1 {
                continue;
            }
            let t = ue[p].time;
            let dist = (t - expect).abs();
            if dist < best_link_only.1 {
                best_link_only = (pos, dist);
            }
            if t + slack_ns >= q.last_t
                && t <= q.next_t[i + 1].saturating_add(slack_ns)
                && dist < best.1
            {
                best = (pos, dist);
            }
        }
        let pick = if best.0 != NONE {
            best.0
        } else {
            best_link_only.0
        };
        if pick == NONE {
            st.unmatched_down += 1;
            continue;
        }
        let p = pick as usize;
        ue[p].used = true;
        let k = ue[p].k as usize;
        q.res[i] = ue[p].obs;
        q.last_on_link[k] = ue[p].obs;
        q.last_t = q.last_t.max(ue[p].time);
        q.last_delay = tx - ue[p].time;
        st.resolved_by_order += 1;
        st.max_delay_ns = st.max_delay_ns.max(tx - ue[p].time);
    }
    if timing() {
        eprintln!(
            "  match: sweep done {:.2}s ({} up, {} down)",
            t0.elapsed().as_secs_f64(),
            st.up,
            st.down
        );
    }
    (queues.into_iter().map(|q| q.res).collect(), st)
}

/// Stable sort of `v` by a 16-bit key: two 8-bit LSD radix passes (256
/// write cursors each stay in cache, unlike 65,536 bucket cursors). Also
/// returns the bucket starts: key `k` occupies `start[k]..start[k + 1]`.
fn radix_u16<T: Copy + Default>(v: &[T], key: impl Fn(&T) -> u16) -> (Vec<T>, Vec<u32>) {
    let n = v.len();
    let mut start = vec![0u32; 65537];
    let mut lo = [0usize; 257];
    let mut hi = [0usize; 257];
    for e in v {
        let k = key(e) as usize;
        start[k + 1] += 1;
        lo[(k & 255) + 1] += 1;
        hi[(k >> 8) + 1] += 1;
    }
    for i in 0..65536 {
        start[i + 1] += start[i];
    }
    for i in 0..256 {
        lo[i + 1] += lo[i];
        hi[i + 1] += hi[i];
    }
    let mut tmp = vec![T::default(); n];
    for e in v {
        let b = (key(e) & 255) as usize;
        tmp[lo[b]] = *e;
        lo[b] += 1;
    }
    let mut out = vec![T::default(); n];
    for e in &tmp {
        let b = (key(e) >> 8) as usize;
        out[hi[b]] = *e;
        hi[b] += 1;
    }
    (out, start)
}

/// A downstream observation's unique candidate (`pos` [`NONE`] if none):
/// its position in the upstream table and a copy of what is read later.
#[derive(Clone, Copy)]
struct Cand {
    time: i64,
    pos: u32,
    obs: u32,
    k: u16,
}

impl Cand {
    const NO: Cand = Cand {
        time: 0,
        pos: NONE,
        obs: 0,
        k: 0,
    };
}

#[derive(Clone, Copy)]
struct UpE {
    time: i64,
    obs: u32,
    k: u16,
    hits: u8,
    used: bool,
}

/// Marks the elements of a longest strictly increasing subsequence of
/// `key(list[i])` (O(n log n), keys computed once and kept next to the
/// patience tails so the binary search touches no other memory).
fn lis_by<T>(list: &[T], key: impl Fn(&T) -> u32) -> Vec<bool> {
    let n = list.len();
    let mut keep = vec![false; n];
    if n == 0 {
        return keep;
    }
    let keys: Vec<u32> = list.iter().map(key).collect();
    let mut tail_keys: Vec<u32> = Vec::new();
    let mut tail_idx: Vec<usize> = Vec::new();
    let mut pred = vec![usize::MAX; n];
    for (i, &k) in keys.iter().enumerate() {
        let j = tail_keys.partition_point(|&t| t < k);
        if j > 0 {
            pred[i] = tail_idx[j - 1];
        }
        if j == tail_keys.len() {
            tail_keys.push(k);
            tail_idx.push(i);
        } else {
            tail_keys[j] = k;
            tail_idx[j] = i;
        }
    }
    let mut i = *tail_idx.last().expect("non-empty");
    loop {
        keep[i] = true;
        if pred[i] == usize::MAX {
            break;
        }
        i = pred[i];
    }
    keep
}

/// Recorded 5-tuples: (observation, tuple id) in topological order of the
/// streams' nodes (tx before rx within a node), and the tuple table.
pub(crate) struct TupleObs {
    pub obs: Vec<(u32, u32)>,
    pub tuples: Vec<FiveTuple>,
}

/// Interns the recorded 5-tuples (`stream_tuples[s]`: (observation, tuple)
/// of stream s in observation order) in topological order of the streams'
/// nodes, tx before rx within a node.
pub(crate) fn collect_tuples(stream_tuples: &[Vec<(u32, FiveTuple)>], dag: &Dag) -> TupleObs {
    let mut obs = Vec::new();
    let mut tuples = Vec::new();
    let mut tuple_id: HashMap<FiveTuple, u32, FxBuild> = HashMap::default();
    for &f in &dag.topo_order {
        let node = &dag.nodes[f];
        for &s in node.tx_streams.iter().chain(node.rx_streams.iter()) {
            for &(o, t) in stream_tuples.get(s as usize).into_iter().flatten() {
                let id = *tuple_id.entry(t).or_insert_with(|| {
                    tuples.push(t);
                    (tuples.len() - 1) as u32
                });
                obs.push((o, id));
            }
        }
    }
    TupleObs { obs, tuples }
}

/// A fast, non-cryptographic hasher (the "Fx" multiply-rotate scheme) for
/// interning millions of 5-tuples; the input is a trace, not an adversary
/// who could force collisions to any purpose beyond a slower run.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u8(&mut self, v: u8) {
        self.write_u64(v as u64);
    }
    fn write_u16(&mut self, v: u16) {
        self.write_u64(v as u64);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxBuild = std::hash::BuildHasherDefault<FxHasher>;

pub(crate) fn reconstruct(
    tuple_obs: TupleObs,
    ix: &Index,
    dag: &Dag,
    window_ns: i64,
    slack_ns: i64,
) -> Journeys {
    let n_nodes = dag.nodes.len();
    // Matching units: (a) each group of downstream nodes that share an
    // upstream node, matched jointly against all their upstream tx streams
    // (so one upstream packet is claimed once); (b) each NF's tx against
    // its own rx.
    let mut comp: Vec<usize> = (0..n_nodes).collect();
    fn find(c: &mut [usize], x: usize) -> usize {
        let mut r = x;
        while c[r] != r {
            r = c[r];
        }
        let mut y = x;
        while c[y] != r {
            let n = c[y];
            c[y] = r;
            y = n;
        }
        r
    }
    let receivers: Vec<usize> = (0..n_nodes)
        .filter(|&f| dag.nodes[f].role != Role::Source && !dag.nodes[f].rx_streams.is_empty())
        .collect();
    for u in 0..n_nodes {
        let downs: Vec<usize> = dag
            .downstream(u)
            .filter(|d| receivers.contains(d))
            .collect();
        for w in downs.windows(2) {
            let (a, b) = (find(&mut comp, w[0]), find(&mut comp, w[1]));
            comp[a] = b;
        }
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group_of = vec![usize::MAX; n_nodes];
    for &f in &receivers {
        let r = find(&mut comp, f);
        if group_of[r] == usize::MAX {
            group_of[r] = groups.len();
            groups.push(Vec::new());
        }
        groups[group_of[r]].push(f);
    }
    enum Unit {
        Links(Vec<usize>),
        Inside(usize),
    }
    let mut units: Vec<Unit> = groups.into_iter().map(Unit::Links).collect();
    for f in 0..n_nodes {
        let node = &dag.nodes[f];
        if node.role == Role::Nf && !node.tx_streams.is_empty() && !node.rx_streams.is_empty() {
            units.push(Unit::Inside(f));
        }
    }
    type UnitResult = (Vec<(u32, Vec<u32>)>, MatchStats, bool);
    let results: Vec<UnitResult> = units
        .par_iter()
        .map(|u| match u {
            Unit::Links(fs) => {
                let mut ups_nodes: Vec<usize> = fs.iter().flat_map(|&f| dag.upstream(f)).collect();
                ups_nodes.sort_unstable();
                ups_nodes.dedup();
                let ups: Vec<u32> = ups_nodes
                    .iter()
                    .flat_map(|&u| dag.nodes[u].tx_streams.iter().copied())
                    .collect();
                let downs: Vec<u32> = fs
                    .iter()
                    .flat_map(|&f| dag.nodes[f].rx_streams.iter().copied())
                    .collect();
                let allowed: Vec<Vec<bool>> = downs
                    .iter()
                    .map(|&d| {
                        let f = ix.stream_node[d as usize] as usize;
                        ups.iter()
                            .map(|&s| {
                                let u = ix.stream_node[s as usize] as usize;
                                dag.edges.iter().any(|e| e.from == u && e.to == f)
                            })
                            .collect()
                    })
                    .collect();
                let (res, st) = match_streams(ix, &ups, &downs, &allowed, window_ns, slack_ns);
                (downs.into_iter().zip(res).collect(), st, true)
            }
            Unit::Inside(f) => {
                let node = &dag.nodes[*f];
                let allowed = vec![vec![true; node.rx_streams.len()]; node.tx_streams.len()];
                let (res, st) = match_streams(
                    ix,
                    &node.rx_streams,
                    &node.tx_streams,
                    &allowed,
                    window_ns,
                    slack_ns,
                );
                (
                    node.tx_streams.iter().copied().zip(res).collect(),
                    st,
                    false,
                )
            }
        })
        .collect();

    let t_join = std::time::Instant::now();
    if timing() {
        eprintln!("  all units matched");
    }
    let n_obs = ix.n_obs();
    let mut stats = ReconstructionStats {
        observations: n_obs as u64,
        ..Default::default()
    };
    let mut prev = vec![NONE; n_obs];
    let mut has_next = vec![false; n_obs];
    for (per_stream, st, is_link) in results {
        if is_link {
            stats.links.add(&st);
        } else {
            stats.inside.add(&st);
        }
        for (s, res) in per_stream {
            let base = ix.stream_obs(s).start as usize;
            for (i, y) in res.into_iter().enumerate() {
                if y == NONE {
                    continue;
                }
                if has_next[y as usize] {
                    stats.conflicts += 1;
                    continue;
                }
                has_next[y as usize] = true;
                prev[base + i] = y;
            }
        }
    }

    // Journeys, paths and tuples in topological order.
    let mut obs_pkt = vec![NONE; n_obs];
    let mut pkt_first = Vec::new();
    let mut pkt_last = Vec::new();
    let mut pkt_path: Vec<u32> = Vec::new();
    let mut paths = vec![PathNode {
        parent: NONE,
        node: NONE,
        depth: 0,
    }];
    let mut child = vec![NONE; n_nodes];
    for &f in &dag.topo_order {
        let node = &dag.nodes[f];
        for &s in node.rx_streams.iter().chain(node.tx_streams.iter()) {
            let is_tx = node.tx_streams.contains(&s);
            for o in ix.stream_obs(s) {
                let p = prev[o as usize];
                let pkt = if p != NONE {
                    obs_pkt[p as usize]
                } else {
                    pkt_first.push(o);
                    pkt_last.push(o);
                    pkt_path.push(0);
                    (pkt_first.len() - 1) as u32
                };
                obs_pkt[o as usize] = pkt;
                pkt_last[pkt as usize] = o;
                if is_tx {
                    let cur = pkt_path[pkt as usize];
                    let slot = cur as usize * n_nodes + f;
                    let mut c = child[slot];
                    if c == NONE {
                        c = paths.len() as u32;
                        paths.push(PathNode {
                            parent: cur,
                            node: f as u32,
                            depth: paths[cur as usize].depth + 1,
                        });
                        child.extend(std::iter::repeat_n(NONE, n_nodes));
                        child[slot] = c;
                    }
                    pkt_path[pkt as usize] = c;
                }
            }
        }
    }
    drop(pkt_path);
    if timing() {
        eprintln!("  merge + journeys {:.2}s", t_join.elapsed().as_secs_f64());
    }
    let n_pkts = pkt_first.len();
    stats.packets = n_pkts as u64;
    stats.paths = (paths.len() - 1) as u64;
    stats.from_source = pkt_first
        .iter()
        .filter(|&&o| {
            let n = ix.node_of_obs(o);
            n != NONE && dag.nodes[n as usize].role == Role::Source
        })
        .count() as u64;

    // 5-tuples: the first recorded on the journey names the packet's flow
    // (source-side tuple when recorded there; else the egress tuple).
    let mut pkt_tuple = vec![NONE; n_pkts];
    let TupleObs {
        obs: tuple_obs,
        tuples,
    } = tuple_obs;
    for (o, id) in tuple_obs {
        let pkt = obs_pkt[o as usize] as usize;
        if pkt_tuple[pkt] == NONE {
            pkt_tuple[pkt] = id;
        }
    }
    stats.with_tuple = pkt_tuple.iter().filter(|&&t| t != NONE).count() as u64;
    Journeys {
        prev,
        has_next,
        obs_pkt,
        pkt_first,
        pkt_last,
        pkt_tuple,
        tuples,
        paths,
        child,
        n_nodes,
        stats,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lis_keeps_longest_increasing() {
        let v = [1u32, 5, 2, 3, 9, 4];
        let keep = lis_by(&v, |&x| x);
        let kept: Vec<u32> = v
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(x, _)| *x)
            .collect();
        assert_eq!(kept, vec![1, 2, 3, 4]);
    }
}
