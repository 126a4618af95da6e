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
//! Algorithm (time-ordered sweeps, no per-packet allocation). Downstream
//! nodes that share an upstream node are matched *jointly* (so one upstream
//! packet is claimed at most once, e.g. by one of the NATs behind a single
//! source stream). Upstream and downstream observations are each merged in
//! time order; a sweep over the downstream ones keeps the upstream
//! observations inside the timing window in one FIFO list per IPID, so the
//! candidates of a downstream observation are that list, filtered by the
//! DAG, and memory is touched almost sequentially (the window's lists stay
//! in cache). A pair whose candidate sets are singletons on
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

fn timing() -> bool {
    std::env::var_os("MICROSCOPE_TIMING").is_some()
}

/// One upstream observation in the merged time line of a matching unit.
#[derive(Clone, Copy)]
struct UpE {
    time: i64,
    obs: u32,
    /// Index of its stream in `up` (its link).
    k: u16,
    ipid: u16,
}

/// One downstream observation in dequeue-time order.
#[derive(Clone, Copy)]
struct DownE {
    time: i64,
    /// Index of its stream in `down`.
    di: u32,
    /// Index in that stream.
    i: u32,
}

/// One matching unit: downstream streams matched jointly against upstream
/// streams; `allowed[d][k]` says whether upstream stream `k` may feed
/// downstream stream `d` (the DAG channel).
pub(crate) struct Job {
    ups: Vec<u32>,
    downs: Vec<u32>,
    allowed: Vec<Vec<bool>>,
    /// Across nodes (rx ← upstream tx), or inside one NF (tx ← own rx).
    is_link: bool,
    /// Observations on both sides (for scheduling).
    size: usize,
}

/// One upstream observation as a member of its IPID's window list: the
/// fields the candidate walk touches, packed in 8 bytes so that a step
/// along a list costs one cache miss, not three.
#[derive(Clone, Copy)]
struct ListNode {
    /// Next upstream observation (position in `ue`) with the same IPID.
    next: u32,
    /// Its link (stream index in `up`).
    k: u16,
    /// How many downstream observations have it as a candidate (saturating).
    hits: u8,
}

/// Working buffers of [`match_streams`], reused from one matching unit to
/// the next by a worker, so their pages are faulted in once, not per unit.
#[derive(Default)]
pub(crate) struct MatchScratch {
    ue: Vec<UpE>,
    order: Vec<DownE>,
    head: Vec<u32>,
    tail: Vec<u32>,
    node: Vec<ListNode>,
    cstart: Vec<u32>,
    cands: Vec<u32>,
    used: Vec<bool>,
    anchor: Vec<u32>,
    next_t: Vec<i64>,
}

/// Refills `v` with `n` copies of `x`, keeping its allocation.
fn refill<T: Clone>(v: &mut Vec<T>, n: usize, x: T) {
    v.clear();
    v.resize(n, x);
}

/// Matches the observations of the job's `downs` streams to those of its
/// `ups` streams, jointly (an upstream observation is claimed at most once
/// across all downstream streams). Writes, per down stream (same order),
/// the matched upstream observation of each of its observations into
/// `out[d]` (left as is — [`NONE`] — if none).
///
/// Everything runs as sweeps in time order, so memory is touched nearly
/// sequentially: the upstream observations inside the timing window of the
/// current downstream one are kept in one FIFO list per IPID (65,536 heads
/// and tails, and a `next` link per upstream observation), entered when
/// the window's end passes them and dropped when its start does. Because
/// both sides move forward together, the lists hold only the window's few
/// tens of thousands of observations and stay in cache.
///
/// 1. Candidates: for each downstream observation (time order), the allowed
///    upstream observations with its IPID and time in
///    `[t − window, t + slack]`, in time order, appended to one flat list;
///    each upstream observation counts how many downstream ones it is a
///    candidate of (`hits`).
/// 2. Anchors: a single candidate whose `hits` is 1; per link filtered by a
///    longest increasing subsequence of upstream order.
/// 3. The order sweep (see the module docs).
pub(crate) fn match_streams(
    ix: &Index,
    job: &Job,
    window_ns: i64,
    slack_ns: i64,
    sc: &mut MatchScratch,
    out: &mut [&mut [u32]],
) -> MatchStats {
    let MatchScratch {
        ue,
        order,
        head,
        tail,
        node,
        cstart,
        cands,
        used,
        anchor,
        next_t,
    } = sc;
    let (up, down, allowed) = (&job.ups, &job.downs, &job.allowed);
    let mut st = MatchStats::default();
    let t0 = std::time::Instant::now();
    // Upstream observations in time order: each stream is time-sorted, so a
    // stable sort of their concatenation is a cheap run merge (ties keep
    // the order of `up`).
    let n_up: usize = up.iter().map(|&s| ix.stream_obs(s).len()).sum();
    ue.clear();
    ue.reserve(n_up);
    for (k, &s) in up.iter().enumerate() {
        ue.extend(ix.stream_obs(s).map(|o| UpE {
            time: ix.time(o),
            obs: o,
            k: k as u16,
            ipid: ix.obs_ipid[o as usize],
        }));
    }
    if up.len() > 1 {
        ue.sort_by_key(|e| e.time);
    }
    st.up = n_up as u64;

    // All downstream observations in dequeue-time order (each stream is
    // already sorted; the stable sort merges runs, ties keep stream order,
    // so within a stream the order is the stream's own).
    let n_down: usize = down.iter().map(|&s| ix.stream_obs(s).len()).sum();
    order.clear();
    order.reserve(n_down);
    for (di, &d) in down.iter().enumerate() {
        let r = ix.stream_obs(d);
        let base = r.start;
        order.extend(r.map(|x| DownE {
            time: ix.time(x),
            di: di as u32,
            i: x - base,
        }));
    }
    if down.len() > 1 {
        order.sort_by_key(|e| e.time);
    }
    st.down = n_down as u64;
    let dbase: Vec<u32> = down.iter().map(|&d| ix.stream_obs(d).start).collect();

    // 1. Candidates, through the sliding window of per-IPID FIFO lists.
    refill(head, 65536, NONE);
    refill(tail, 65536, NONE);
    node.clear();
    node.extend(ue.iter().map(|e| ListNode {
        next: NONE,
        k: e.k,
        hits: 0,
    }));
    cstart.clear();
    cstart.reserve(n_down + 1);
    cands.clear();
    let (mut ins, mut ev) = (0usize, 0usize);
    for e in order.iter() {
        let (t, di) = (e.time, e.di as usize);
        while ins < n_up && ue[ins].time <= t + slack_ns {
            let v = ue[ins].ipid as usize;
            if tail[v] == NONE {
                head[v] = ins as u32;
            } else {
                node[tail[v] as usize].next = ins as u32;
            }
            tail[v] = ins as u32;
            ins += 1;
        }
        // Dropped in time order, so each is the head of its IPID's list.
        while ev < ins && ue[ev].time < t - window_ns {
            let v = ue[ev].ipid as usize;
            head[v] = node[ev].next;
            if head[v] == NONE {
                tail[v] = NONE;
            }
            ev += 1;
        }
        cstart.push(cands.len() as u32);
        let v = ix.obs_ipid[(dbase[di] + e.i) as usize] as usize;
        let al = &allowed[di];
        let (c0, mut p) = (cands.len(), head[v]);
        while p != NONE {
            let n = &mut node[p as usize];
            if al[n.k as usize] {
                n.hits = n.hits.saturating_add(1);
                cands.push(p);
            }
            p = n.next;
        }
        if cands.len() - c0 > 1 {
            st.ambiguous += 1;
        }
    }
    cstart.push(cands.len() as u32);
    if timing() {
        crate::progress::lap(
            t0,
            &format!("  match: {n_up} up, {n_down} down: candidates"),
        );
    }

    // 2. Anchors: unique both ways, then per link (downstream stream ×
    // upstream stream) only those in FIFO order (LIS on upstream order).
    let n_links = up.len();
    let mut per_link: Vec<Vec<(u32, u32)>> = vec![Vec::new(); down.len() * n_links];
    for (j, w) in cstart.windows(2).enumerate() {
        if w[1] - w[0] == 1 {
            let p = cands[w[0] as usize];
            if node[p as usize].hits == 1 {
                let e = &ue[p as usize];
                per_link[order[j].di as usize * n_links + e.k as usize].push((j as u32, p));
            }
        }
    }
    refill(used, n_up, false);
    refill(anchor, n_down, NONE);
    // Kept anchors per link as (order position, upstream observation).
    let mut link_anchors: Vec<Vec<(u32, u32)>> = Vec::with_capacity(per_link.len());
    for list in per_link {
        let keep = lis_by(&list, |&(_, p)| ue[p as usize].obs);
        let mut kept = Vec::with_capacity(list.len());
        for (&(j, p), keep) in list.iter().zip(keep) {
            if keep {
                anchor[j as usize] = p;
                used[p as usize] = true;
                kept.push((j, ue[p as usize].obs));
                st.anchors += 1;
            } else {
                st.anchors_out_of_order += 1;
            }
        }
        link_anchors.push(kept);
    }
    // Per order position: the upstream time of the next anchor of the same
    // downstream stream (the merged-FIFO bound).
    refill(next_t, n_down, i64::MAX);
    let mut cur = vec![i64::MAX; down.len()];
    for j in (0..n_down).rev() {
        let di = order[j].di as usize;
        next_t[j] = cur[di];
        if anchor[j] != NONE {
            cur[di] = ue[anchor[j] as usize].time;
        }
    }
    if timing() {
        crate::progress::lap(t0, &format!("  match: {n_up} up, {n_down} down: anchors"));
    }

    // 3. Sweep all downstream observations in time order (ties: stream,
    // index) so concurrent claims on one upstream observation are settled
    // by who dequeued first.
    struct Queue {
        last_t: i64,
        last_delay: i64,
    }
    let mut queues: Vec<Queue> = down
        .iter()
        .map(|_| Queue {
            last_t: i64::MIN,
            last_delay: 0,
        })
        .collect();
    let mut link_ptr = vec![0usize; link_anchors.len()];
    let mut last_on_link = vec![NONE; link_anchors.len()];
    for (j, e) in order.iter().enumerate() {
        let (tx, di, i) = (e.time, e.di as usize, e.i as usize);
        let q = &mut queues[di];
        let l0 = di * n_links;
        if anchor[j] != NONE {
            let c = &ue[anchor[j] as usize];
            out[di][i] = c.obs;
            last_on_link[l0 + c.k as usize] = c.obs;
            q.last_t = q.last_t.max(c.time);
            q.last_delay = tx - c.time;
            st.max_delay_ns = st.max_delay_ns.max(tx - c.time);
            continue;
        }
        // Valid candidates: unused, in order on their link (after the last
        // match, before the next anchor). Preferred: those that fit the
        // merged FIFO of the queue; among them the one whose delay is
        // closest to the queue's last matched delay (queuing delay changes
        // smoothly between consecutive packets of a FIFO).
        let expect = tx - q.last_delay;
        let mut best = (NONE, i64::MAX);
        let mut best_link_only = (NONE, i64::MAX);
        for &pos in &cands[cstart[j] as usize..cstart[j + 1] as usize] {
            let p = pos as usize;
            if used[p] {
                continue;
            }
            let c = &ue[p];
            let l = l0 + c.k as usize;
            if last_on_link[l] != NONE && c.obs <= last_on_link[l] {
                continue;
            }
            let la = &link_anchors[l];
            while link_ptr[l] < la.len() && la[link_ptr[l]].0 as usize <= j {
                link_ptr[l] += 1;
            }
            if link_ptr[l] < la.len() && c.obs >= la[link_ptr[l]].1 {
                continue;
            }
            let dist = (c.time - expect).abs();
            if dist < best_link_only.1 {
                best_link_only = (pos, dist);
            }
            if c.time + slack_ns >= q.last_t
                && c.time <= next_t[j].saturating_add(slack_ns)
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
        used[p] = true;
        let c = &ue[p];
        out[di][i] = c.obs;
        last_on_link[l0 + c.k as usize] = c.obs;
        q.last_t = q.last_t.max(c.time);
        q.last_delay = tx - c.time;
        st.resolved_by_order += 1;
        st.max_delay_ns = st.max_delay_ns.max(tx - c.time);
    }
    if timing() {
        crate::progress::lap(t0, &format!("  match: {n_up} up, {n_down} down: swept"));
    }
    st
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
        // The tails ascend strictly; anchors of a link nearly always come
        // in order, so first try appending (what the search would find).
        let j = if tail_keys.last().is_none_or(|&t| t < k) {
            tail_keys.len()
        } else {
            tail_keys.partition_point(|&t| t < k)
        };
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

/// Recorded 5-tuples, interned: `obs[k]` holds (observation, tuple id) for
/// each tuple recorded in the k-th stream carrying tuples, in observation
/// order, the streams in topological order of their nodes (tx before rx
/// within a node); `tuples` is the table, numbered in order of first
/// appearance over that order.
pub(crate) struct TupleObs {
    pub obs: Vec<Vec<(u32, u32)>>,
    pub tuples: Vec<FiveTuple>,
}

/// Interns the recorded 5-tuples (`recorded[s]`: (observation, index in
/// batch, tuple) of stream s), consuming them (see [`TupleObs`]).
pub(crate) fn collect_tuples(mut recorded: Vec<Vec<(u32, u16, FiveTuple)>>, dag: &Dag) -> TupleObs {
    let order: Vec<u32> = dag
        .topo_order
        .iter()
        .flat_map(|&f| {
            let node = &dag.nodes[f];
            node.tx_streams
                .iter()
                .chain(node.rx_streams.iter())
                .copied()
        })
        .filter(|&s| recorded.get(s as usize).is_some_and(|v| !v.is_empty()))
        .collect();
    let inputs: Vec<Vec<(u32, u16, FiveTuple)>> = order
        .iter()
        .map(|&s| std::mem::take(&mut recorded[s as usize]))
        .collect();
    drop(recorded);
    // Per stream, in parallel: its distinct tuples in order of first
    // appearance and (observation, local id) per record.
    type Local = (Vec<FiveTuple>, Vec<(u32, u32)>);
    let local: Vec<Local> = inputs
        .into_par_iter()
        .map(|recs| {
            let mut id: HashMap<FiveTuple, u32, FxBuild> = HashMap::default();
            let mut uniq = Vec::new();
            let obs = recs
                .iter()
                .map(|&(o, _, t)| {
                    let l = *id.entry(t).or_insert_with(|| {
                        uniq.push(t);
                        (uniq.len() - 1) as u32
                    });
                    (o, l)
                })
                .collect();
            (uniq, obs)
        })
        .collect();
    // Global ids in order of first appearance over the streams in order —
    // the same numbering as one sequential pass.
    let mut tuple_id: HashMap<FiveTuple, u32, FxBuild> = HashMap::default();
    let mut tuples = Vec::new();
    let mut globals = Vec::with_capacity(local.len());
    let mut obs = Vec::with_capacity(local.len());
    for (uniq, l) in local {
        let global: Vec<u32> = uniq
            .iter()
            .map(|&t| {
                *tuple_id.entry(t).or_insert_with(|| {
                    tuples.push(t);
                    (tuples.len() - 1) as u32
                })
            })
            .collect();
        globals.push(global);
        obs.push(l);
    }
    obs.par_iter_mut().zip(&globals).for_each(|(l, g)| {
        for x in l.iter_mut() {
            x.1 = g[x.1 as usize];
        }
    });
    TupleObs { obs, tuples }
}

/// A fast, non-cryptographic hasher (the "Fx" multiply-rotate scheme) for
/// interning millions of 5-tuples; the input is a trace, not an adversary
/// who could force collisions to any purpose beyond a slower run.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

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

pub(crate) type FxBuild = std::hash::BuildHasherDefault<FxHasher>;

/// A `HashMap` with [`FxHasher`]: for the engine's hot maps keyed by dense
/// ids (tuple ids, observation pairs), where SipHash's DoS resistance buys
/// nothing and costs several times the hashing time.
pub(crate) type FxHashMap<K, V> = HashMap<K, V, FxBuild>;

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
    // Each unit's inputs, and its size for scheduling.
    let jobs: Vec<Job> = units
        .iter()
        .map(|u| {
            let (ups, downs, allowed, is_link) = match u {
                Unit::Links(fs) => {
                    let mut ups_nodes: Vec<usize> =
                        fs.iter().flat_map(|&f| dag.upstream(f)).collect();
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
                    (ups, downs, allowed, true)
                }
                Unit::Inside(f) => {
                    let node = &dag.nodes[*f];
                    let allowed = vec![vec![true; node.rx_streams.len()]; node.tx_streams.len()];
                    (
                        node.rx_streams.clone(),
                        node.tx_streams.clone(),
                        allowed,
                        false,
                    )
                }
            };
            let size = ups
                .iter()
                .chain(&downs)
                .map(|&s| ix.stream_obs(s).len())
                .sum();
            Job {
                ups,
                downs,
                allowed,
                is_link,
                size,
            }
        })
        .collect();

    // Matches are written straight into `prev`: every downstream stream
    // belongs to exactly one unit (an rx stream to its node's group, an NF's
    // tx stream to its own unit), so each unit gets its streams' slices.
    let n_obs = ix.n_obs();
    let mut prev = vec![NONE; n_obs];
    let lens: Vec<usize> = (0..ix.n_streams() as u32)
        .map(|s| ix.stream_obs(s).len())
        .collect();
    let mut slices: Vec<Option<&mut [u32]>> = crate::index::split_mut(&mut prev, &lens)
        .into_iter()
        .map(Some)
        .collect();
    let outs: Vec<std::sync::Mutex<Vec<&mut [u32]>>> = jobs
        .iter()
        .map(|j| {
            std::sync::Mutex::new(
                j.downs
                    .iter()
                    .map(|&d| slices[d as usize].take().unwrap_or_default())
                    .collect(),
            )
        })
        .collect();
    drop(slices);
    // Largest units first, one worker per thread pulling the next unit and
    // reusing its buffers (results do not depend on who runs a unit).
    let mut sched: Vec<usize> = (0..jobs.len()).collect();
    sched.sort_by_key(|&u| std::cmp::Reverse(jobs[u].size));
    let cursor = std::sync::atomic::AtomicUsize::new(0);
    let workers = rayon::current_num_threads().clamp(1, jobs.len().max(1));
    let mut unit_stats: Vec<Vec<(usize, MatchStats)>> = vec![Vec::new(); workers];
    rayon::scope(|sc| {
        for done in unit_stats.iter_mut() {
            let (jobs, outs, sched, cursor) = (&jobs, &outs, &sched, &cursor);
            sc.spawn(move |_| {
                let mut scratch = MatchScratch::default();
                loop {
                    let n = cursor.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&u) = sched.get(n) else {
                        break;
                    };
                    let j = &jobs[u];
                    let mut out = outs[u].lock().unwrap_or_else(|e| e.into_inner());
                    let st = match_streams(ix, j, window_ns, slack_ns, &mut scratch, &mut out);
                    done.push((u, st));
                }
            });
        }
    });
    drop(outs);

    let t_join = std::time::Instant::now();
    crate::progress::lap(t_join, "  all units matched");
    let mut stats = ReconstructionStats {
        observations: n_obs as u64,
        ..Default::default()
    };
    let mut per_unit: Vec<(usize, MatchStats)> = unit_stats.into_iter().flatten().collect();
    per_unit.sort_by_key(|e| e.0);
    for (u, st) in per_unit {
        if jobs[u].is_link {
            stats.links.add(&st);
        } else {
            stats.inside.add(&st);
        }
    }
    crate::progress::lap(t_join, "  stats merged");
    // An upstream observation is claimed once (matching is joint within a
    // unit and units share no upstream stream); a second claim would be
    // dropped and counted.
    let mut has_next = vec![false; n_obs];
    for p in prev.iter_mut() {
        let y = *p;
        if y == NONE {
            continue;
        }
        if has_next[y as usize] {
            stats.conflicts += 1;
            *p = NONE;
            continue;
        }
        has_next[y as usize] = true;
    }

    crate::progress::lap(t_join, "  conflicts checked");
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
    crate::progress::lap(t_join, "  journeys walked");
    crate::progress::lap(t_join, "  merge + journeys");
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
    let TupleObs { obs, tuples } = tuple_obs;
    for (o, id) in obs.into_iter().flatten() {
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
