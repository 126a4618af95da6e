//! Propagation analysis (paper §4.2) and recursive diagnosis (§4.3).
//!
//! For a packet p at NF f with queuing period T and `S_i > 0`, PreSet(p) is
//! traced back hop by hop. Its packets are grouped by the path they took
//! through the DAG; per path, the *timespan* (first to last departure) of
//! the path's PreSet subset is measured at the source and at every NF, and
//! `T_exp = n_i(T)/r_f` is the expected timespan for every path. With the
//! path's timespans `X_0` (source) … `X_{m-1}` (last hop before f):
//!
//! * `Z_j = max(X_j, …, X_{m-1})` and `Z_{-1} = max(T_exp, Z_0)`;
//! * hop j's reduction is `Z_{j-1} − Z_j`, i.e. `X_{j-1} − X_j` when the
//!   timespan shrinks monotonically (the paper's chain formula), zero for a
//!   hop that widens it, and for the hop before a widening hop the
//!   *effective* reduction `X_{j-1} − X_{j+1}` (the paper's non-monotone
//!   rule: "A gets T_source − T_B and B gets zero"), generalised by the
//!   suffix maximum to any number of widening hops;
//! * hop j gets `S_i · (Z_{j-1} − Z_j) / (T_exp − T_f)` where `T_f` is the
//!   timespan of the whole PreSet arriving at f (the reduction of the
//!   merged PreSet; for a chain `T_f = X_{m-1}` and the shares sum to S_i).
//!
//! Scores of a node across paths are summed; when the sum over all nodes
//! exceeds S_i (it does whenever paths do not fully interleave) every score
//! is scaled down proportionally so the total is S_i.
//!
//! Culprit packets of a propagated share are the PreSet packets on the
//! contributing paths, each carrying an equal part of the score.
//!
//! Each NF hop with a positive score is then diagnosed recursively in the
//! queuing period there of the PreSet packet that waited longest at that NF
//! (the period holding the backlog that squeezed the timespan; the paper's
//! "period when the first packet of PreSet(p) arrives" is empty when that
//! packet arrived before a stall): its share is split in the
//! proportions of that NF's own `S_p` (local processing, culprit packets
//! are those it processed in its period) and `S_i` (propagated further up
//! the same way). The recursion stops at sources, when an NF's queue was
//! empty (its share stays local), or at `max_depth` (the share stays with
//! the NF reached and the cap is reported).

use crate::dag::Dag;
use crate::index::{Index, NONE};
use crate::queue::{local, Period, Target};
use crate::reconstruct::FxHashMap as HashMap;
use crate::reconstruct::Journeys;
use crate::Config;
use collector::Role;
use std::sync::Arc;

/// Longest journey followed back (hops).
const MAX_HOPS: usize = 64;

/// One contribution to a diagnosis, in absolute score.
#[derive(Clone, Debug)]
pub(crate) struct Contrib {
    pub node: u32,
    pub source: bool,
    pub score: f64,
    /// (tuple id, score part)
    pub flows: Vec<(u32, f64)>,
    pub t_culprit: i64,
    pub packets: u64,
    pub first_ns: i64,
    pub last_ns: i64,
    pub depth: u32,
}

impl Contrib {
    fn scaled(&self, k: f64) -> Contrib {
        let mut c = self.clone();
        c.score *= k;
        for f in &mut c.flows {
            f.1 *= k;
        }
        c
    }
}

/// Result of diagnosing one target at one node.
#[derive(Clone, Debug)]
pub(crate) struct Explanation {
    pub period: Period,
    /// Sum of scores + unattributed = S_i + S_p.
    pub contribs: Vec<Contrib>,
    pub unattributed: f64,
    pub truncated: bool,
}

impl Explanation {
    pub fn total(&self) -> f64 {
        self.period.s_i + self.period.s_p
    }
}

/// Shared read-only state of the engine.
pub(crate) struct Engine<'a> {
    pub ix: &'a Index,
    pub j: &'a Journeys,
    pub dag: &'a Dag,
    /// Peak rate per node, pps.
    pub rates: &'a [f64],
    pub empties: &'a [Vec<u32>],
    pub cfg: &'a Config,
}

#[derive(Clone, Copy)]
struct HopAcc {
    min_t: i64,
    max_t: i64,
    /// Longest queuing delay (dequeue − arrival) at the next node of a
    /// packet leaving this hop, and that packet's rx observation there: the
    /// recursion point at the next node (ties: the earliest observation).
    max_wait: i64,
    wait_next_rx: u32,
}

struct PathAcc {
    /// Nodes from origin to the hop before f.
    nodes: Vec<u32>,
    hops: Vec<HopAcc>,
    /// PreSet packets on this path, and their flows (tuple id → count).
    count: u32,
    flows: HashMap<u32, u32>,
}

/// PreSet(p) accumulated per path. Victims in one queuing period share a
/// growing prefix of PreSet, so the state is extended, never rebuilt.
pub(crate) struct PreSetAcc {
    start: u32,
    /// Next PreSet observation to add.
    next: u32,
    slot_of_path: Vec<u32>,
    accs: Vec<PathAcc>,
    arr_min: i64,
    arr_max: i64,
    unknown: u32,
    /// Flows of all PreSet packets (culprits of a stalled NF).
    all_flows: HashMap<u32, u32>,
    /// Flows of PreSet packets dequeued so far (`start..dq_next`).
    dq_next: u32,
    dq_flows: HashMap<u32, u32>,
}

impl PreSetAcc {
    pub fn new(n_paths: usize, start: u32) -> PreSetAcc {
        PreSetAcc {
            start,
            next: start,
            slot_of_path: vec![NONE; n_paths],
            accs: Vec::new(),
            arr_min: i64::MAX,
            arr_max: i64::MIN,
            unknown: 0,
            all_flows: HashMap::default(),
            dq_next: start,
            dq_flows: HashMap::default(),
        }
    }
}

/// Per-worker memo of recursive diagnoses.
#[derive(Default)]
pub(crate) struct Scratch {
    n_paths: usize,
    memo: HashMap<(u32, u32), Arc<Explanation>>,
}

impl Scratch {
    pub fn new(n_paths: usize) -> Scratch {
        Scratch {
            n_paths,
            memo: HashMap::default(),
        }
    }
}

/// Memo entries kept per worker before the memo is cleared.
const MEMO_CAP: usize = 20_000;

impl Engine<'_> {
    fn stream_empties(&self, s: u32) -> &[u32] {
        &self.empties[s as usize]
    }

    /// The queuing period and local scores of `target` at node `f`.
    pub fn period(&self, f: u32, target: Target) -> Period {
        let stream = match target {
            Target::Received(x) => self.ix.stream_of(x),
            Target::Lost { stream, .. } => stream,
        };
        local(
            self.ix,
            self.j,
            self.stream_empties(stream),
            self.rates[f as usize],
            target,
        )
    }

    /// Diagnoses `target` at node `f` (`depth` 0 for a victim).
    pub fn explain(&self, f: u32, target: Target, depth: u32, sc: &mut Scratch) -> Explanation {
        let p = self.period(f, target);
        let mut st = PreSetAcc::new(sc.n_paths, p.start);
        self.explain_with(f, p, &mut st, depth, sc)
    }

    /// Diagnoses a packet whose period `p` is known, extending `st` (which
    /// must hold a prefix of the same PreSet) to `p.end`.
    pub fn explain_with(
        &self,
        f: u32,
        p: Period,
        st: &mut PreSetAcc,
        depth: u32,
        sc: &mut Scratch,
    ) -> Explanation {
        let mut ex = Explanation {
            period: p,
            contribs: Vec::new(),
            unattributed: 0.0,
            truncated: false,
        };
        let p = ex.period.clone();
        if p.s_i + p.s_p <= 0.0 {
            return ex;
        }
        debug_assert_eq!(st.start, p.start);
        self.extend(st, p.end);
        if p.s_p > 0.0 {
            // Culprit packets: those processed in T; when none were (the NF
            // stalled for the whole period), the packets that waited.
            let (a, b) = if p.n_p > 0 {
                (p.start, p.start + p.n_p)
            } else {
                (p.start, p.end)
            };
            let first_ns = if b > a { self.ix.time(a) } else { p.tau };
            let last_ns = if b > a { self.ix.time(b - 1) } else { p.t };
            let flows = if p.n_p == 0 {
                counts_to_flows(
                    st.all_flows
                        .iter()
                        .map(|(&t, &c)| (t, c as f64 * p.s_p / p.n_i as f64)),
                    self.cfg.max_flows,
                )
            } else if b >= st.dq_next {
                for o in st.dq_next..b {
                    let t = self.j.pkt_tuple[self.j.obs_pkt[o as usize] as usize];
                    *st.dq_flows.entry(t).or_insert(0) += 1;
                }
                st.dq_next = b;
                counts_to_flows(
                    st.dq_flows
                        .iter()
                        .map(|(&t, &c)| (t, c as f64 * p.s_p / p.n_p as f64)),
                    self.cfg.max_flows,
                )
            } else {
                self.flows_of_obs(a..b, p.s_p)
            };
            ex.contribs.push(Contrib {
                node: f,
                source: false,
                score: p.s_p,
                flows,
                t_culprit: p.tau,
                packets: (b - a) as u64,
                first_ns,
                last_ns,
                depth,
            });
        }
        if p.s_i > 0.0 {
            self.propagate(f, &p, st, depth, sc, &mut ex);
        }
        ex
    }

    /// Memoized recursive diagnosis of rx observation `q` at node `h`.
    fn explain_memo(&self, h: u32, q: u32, depth: u32, sc: &mut Scratch) -> Arc<Explanation> {
        if let Some(e) = sc.memo.get(&(q, depth)) {
            return e.clone();
        }
        let e = Arc::new(self.explain(h, Target::Received(q), depth, sc));
        if sc.memo.len() >= MEMO_CAP {
            sc.memo.clear();
        }
        sc.memo.insert((q, depth), e.clone());
        e
    }

    /// Adds PreSet observations `st.next..end` to the per-path state.
    fn extend(&self, st: &mut PreSetAcc, end: u32) {
        let ix = self.ix;
        let j = self.j;
        let mut stack: Vec<(u32, i64, u32)> = Vec::with_capacity(8);
        for x in st.next..end {
            let tup = j.pkt_tuple[j.obs_pkt[x as usize] as usize];
            *st.all_flows.entry(tup).or_insert(0) += 1;
            stack.clear();
            let mut r = x;
            loop {
                let y = j.prev[r as usize];
                if y == NONE || stack.len() >= MAX_HOPS {
                    break;
                }
                stack.push((ix.node_of_obs(y), ix.time(y), r));
                let r2 = j.prev[y as usize];
                if r2 == NONE {
                    break;
                }
                r = r2;
            }
            if stack.is_empty() {
                st.unknown += 1;
                continue;
            }
            let mut path = 0u32;
            for &(n, _, _) in stack.iter().rev() {
                path = j.child(path, n);
                if path == NONE {
                    break;
                }
            }
            if path == NONE {
                st.unknown += 1;
                continue;
            }
            let t_last = stack[0].1;
            st.arr_min = st.arr_min.min(t_last);
            st.arr_max = st.arr_max.max(t_last);
            let slot = st.slot_of_path[path as usize];
            let ai = if slot == NONE {
                st.slot_of_path[path as usize] = st.accs.len() as u32;
                st.accs.push(PathAcc {
                    nodes: stack.iter().rev().map(|e| e.0).collect(),
                    hops: vec![
                        HopAcc {
                            min_t: i64::MAX,
                            max_t: i64::MIN,
                            max_wait: i64::MIN,
                            wait_next_rx: NONE,
                        };
                        stack.len()
                    ],
                    count: 0,
                    flows: HashMap::default(),
                });
                st.accs.len() - 1
            } else {
                slot as usize
            };
            let acc = &mut st.accs[ai];
            acc.count += 1;
            *acc.flows.entry(tup).or_insert(0) += 1;
            let m = stack.len();
            for (k, &(_, t, rx_next)) in stack.iter().enumerate() {
                let h = &mut acc.hops[m - 1 - k];
                h.min_t = h.min_t.min(t);
                h.max_t = h.max_t.max(t);
                let wait = ix.time(rx_next) - t;
                if wait > h.max_wait || (wait == h.max_wait && rx_next < h.wait_next_rx) {
                    h.max_wait = wait;
                    h.wait_next_rx = rx_next;
                }
            }
        }
        st.next = st.next.max(end);
    }

    fn propagate(
        &self,
        f: u32,
        p: &Period,
        st: &PreSetAcc,
        depth: u32,
        sc: &mut Scratch,
        ex: &mut Explanation,
    ) {
        let ix = self.ix;
        let rate = self.rates[f as usize];
        let t_exp = p.n_i as f64 * 1e9 / rate;
        let accs = &st.accs;
        if accs.is_empty() {
            ex.unattributed += p.s_i;
            return;
        }
        // Packets of PreSet whose journey is unknown keep their share of S_i
        // unattributed.
        let known = (p.n_i - st.unknown) as f64;
        let s_i_known = p.s_i * known / p.n_i as f64;
        ex.unattributed += p.s_i - s_i_known;
        let t_f = (st.arr_max - st.arr_min) as f64;
        let spans: Vec<Vec<f64>> = accs
            .iter()
            .map(|a| a.hops.iter().map(|h| (h.max_t - h.min_t) as f64).collect())
            .collect();
        let (scores, rest) = split_scores(t_exp, t_f, s_i_known, &spans);
        ex.unattributed += rest;
        // Merge per node: score, contributing paths (for flows and the
        // recursion point).
        struct NodeAgg {
            node: u32,
            score: f64,
            per_path: Vec<(usize, usize, f64)>, // (acc index, hop index, score)
        }
        let mut aggs: Vec<NodeAgg> = Vec::new();
        for (ai, a) in accs.iter().enumerate() {
            for (hk, &s) in scores[ai].iter().enumerate() {
                if s <= 0.0 {
                    continue;
                }
                let n = a.nodes[hk];
                let g = match aggs.iter().position(|g| g.node == n) {
                    Some(g) => g,
                    None => {
                        aggs.push(NodeAgg {
                            node: n,
                            score: 0.0,
                            per_path: Vec::new(),
                        });
                        aggs.len() - 1
                    }
                };
                aggs[g].score += s;
                aggs[g].per_path.push((ai, hk, s));
            }
        }
        for g in aggs {
            let node = &self.dag.nodes[g.node as usize];
            // Culprit packets on the contributing paths, their flows weighted
            // by each path's score.
            let mut packets = 0u64;
            let (mut first_ns, mut last_ns) = (i64::MAX, i64::MIN);
            for &(ai, hk, _) in &g.per_path {
                let a = &accs[ai];
                packets += a.count as u64;
                first_ns = first_ns.min(a.hops[hk].min_t);
                last_ns = last_ns.max(a.hops[hk].max_t);
            }
            // The culprit packets are the PreSet packets on the contributing
            // paths (§4.2: "we define PreSet(p) as the culprit packets"), each
            // carrying an equal part of the node's score. (Weighting flows by
            // path score instead would let the many one-packet paths, whose
            // zero timespan earns a near-full raw reduction, outweigh a
            // burst's single heavy path after the scale-down.)
            let w = g.score / packets.max(1) as f64;
            let parts: Vec<(u32, f64)> = g
                .per_path
                .iter()
                .flat_map(|&(ai, _, _)| {
                    accs[ai].flows.iter().map(move |(&t, &c)| (t, c as f64 * w))
                })
                .collect();
            let flows = fold_flows(parts, self.cfg.max_flows);
            let is_source = node.role == Role::Source;
            // The recursion point at this node (NF hops not at the origin of
            // their path): the PreSet packet that waited longest there, whose
            // queuing period holds the backlog that squeezed the timespan.
            let first_rx = g
                .per_path
                .iter()
                .filter(|&&(_, hk, _)| hk > 0)
                .map(|&(ai, hk, _)| accs[ai].hops[hk - 1])
                .max_by_key(|h| (h.max_wait, std::cmp::Reverse(h.wait_next_rx)))
                .map(|h| h.wait_next_rx);
            let leaf = Contrib {
                node: g.node,
                source: is_source,
                score: g.score,
                flows,
                t_culprit: first_ns,
                packets,
                first_ns,
                last_ns,
                depth: depth + 1,
            };
            if is_source {
                ex.contribs.push(leaf);
                continue;
            }
            let Some(q) = first_rx.filter(|&q| q != NONE) else {
                // Origin of the path: nothing upstream to recurse into.
                ex.contribs.push(leaf);
                continue;
            };
            if depth + 1 > self.cfg.max_depth as u32 {
                ex.truncated = true;
                ex.contribs.push(leaf);
                continue;
            }
            let sub = self.explain_memo(g.node, q, depth + 1, sc);
            let sub_total = sub.total();
            if sub_total <= 0.0 {
                // The NF's queue was empty when PreSet arrived: it squeezed
                // the timespan itself. Culprit packets: q's dequeue batch.
                let b = ix.obs_batch[q as usize] as usize;
                let (a0, b0) = (ix.batch_obs[b], ix.batch_obs[b + 1]);
                ex.contribs.push(Contrib {
                    node: g.node,
                    source: false,
                    score: g.score,
                    flows: self.flows_of_obs(a0..b0, g.score),
                    t_culprit: ix.batch_time[b],
                    packets: (b0 - a0) as u64,
                    first_ns: ix.batch_time[b],
                    last_ns: ix.batch_time[b],
                    depth: depth + 1,
                });
                continue;
            }
            let factor = g.score / sub_total;
            ex.contribs
                .extend(sub.contribs.iter().map(|c| c.scaled(factor)));
            ex.unattributed += sub.unattributed * factor;
            ex.truncated |= sub.truncated;
        }
    }

    /// Flows of observations `r`, sharing `score` equally per packet.
    fn flows_of_obs(&self, r: std::ops::Range<u32>, score: f64) -> Vec<(u32, f64)> {
        if r.is_empty() {
            return Vec::new();
        }
        let w = score / r.len() as f64;
        let v = r
            .map(|o| (self.j.pkt_tuple[self.j.obs_pkt[o as usize] as usize], w))
            .collect();
        fold_flows(v, self.cfg.max_flows)
    }
}

/// Timespan analysis of §4.2 for one PreSet: `spans[k][j]` is the timespan
/// of path k's packets at hop j (0 = origin, last = the hop before f),
/// `t_exp = n_i/r_f`, `t_f` the timespan of the whole PreSet arriving at f.
/// Returns per path, per hop, the score (non-negative, total `s_i` — scaled
/// down proportionally when the paths' sum exceeds it) and the part of
/// `s_i` left unattributed (only when no path shows any reduction).
pub fn split_scores(t_exp: f64, t_f: f64, s_i: f64, spans: &[Vec<f64>]) -> (Vec<Vec<f64>>, f64) {
    let red: Vec<Vec<f64>> = spans
        .iter()
        .map(|xs| {
            let m = xs.len();
            let mut z = vec![0.0; m];
            let mut run = f64::MIN;
            for k in (0..m).rev() {
                run = run.max(xs[k]);
                z[k] = run;
            }
            (0..m)
                .map(|k| {
                    let prev = if k == 0 { t_exp.max(z[0]) } else { z[k - 1] };
                    (prev - z[k]).max(0.0)
                })
                .collect()
        })
        .collect();
    let mut denom = t_exp - t_f;
    if denom <= 0.0 {
        // Arrival timestamps disagree with the period (clock jitter):
        // normalise by the largest path reduction instead.
        denom = red
            .iter()
            .map(|r| r.iter().sum::<f64>())
            .fold(0.0, f64::max);
    }
    let raw_sum: f64 = red.iter().flatten().sum();
    if s_i <= 0.0 || denom <= 0.0 || raw_sum <= 0.0 || !raw_sum.is_finite() {
        return (
            red.iter().map(|r| vec![0.0; r.len()]).collect(),
            s_i.max(0.0),
        );
    }
    let total = raw_sum * s_i / denom;
    let k = if total > s_i {
        s_i / raw_sum
    } else {
        s_i / denom
    };
    let out: Vec<Vec<f64>> = red
        .iter()
        .map(|r| r.iter().map(|v| v * k).collect())
        .collect();
    let rest = (s_i - raw_sum * k).max(0.0);
    (out, rest)
}

/// Flow scores from (tuple, score) pairs with distinct tuples (nothing to
/// sum: the same result as [`fold_flows`] without its sort by tuple).
fn counts_to_flows(it: impl Iterator<Item = (u32, f64)>, max: usize) -> Vec<(u32, f64)> {
    let mut v: Vec<(u32, f64)> = it.filter(|f| f.0 != NONE).collect();
    top_flows(&mut v, max);
    v
}

/// Keeps the `max` largest scores of distinct tuples, sorted descending
/// (ties: tuple id) — a selection then a sort of the kept ones only.
fn top_flows(v: &mut Vec<(u32, f64)>, max: usize) {
    let by_score = |a: &(u32, f64), b: &(u32, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if v.len() > max {
        v.select_nth_unstable_by(max, by_score);
        v.truncate(max);
    }
    v.sort_unstable_by(by_score);
}

/// Sums per tuple id, drops unknown tuples, keeps the `max` largest.
pub(crate) fn fold_flows(mut v: Vec<(u32, f64)>, max: usize) -> Vec<(u32, f64)> {
    v.retain(|f| f.0 != NONE);
    // Total order (tuple, then score) so sums do not depend on input order.
    v.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut out: Vec<(u32, f64)> = Vec::new();
    for (t, s) in v {
        match out.last_mut() {
            Some(l) if l.0 == t => l.1 += s,
            _ => out.push((t, s)),
        }
    }
    top_flows(&mut out, max);
    out
}
