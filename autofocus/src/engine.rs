//! The exact two-stage compressed-HHH engine.
//!
//! 1. **Encode**: intern locations, turn each valid relation into a leaf
//!    [`Item`] (every coordinate at its deepest level).
//! 2. **One-dimensional pass** (per dimension, in parallel): the
//!    one-dimensional HHH nodes and the port blocks joining two or more of
//!    them, which define the restricted hierarchy, and
//!    each leaf value's *lowest kept frequent ancestor* (deepest kept ancestor
//!    with score ≥ `th·T`).
//! 3. **Stage 1** (per exact culprit side, in parallel): generalize the
//!    victim side (and the culprit side, once per group) to the lowest
//!    frequent ancestors and merge equal keys → intermediate patterns.
//! 4. **Stage 2**: enumerate the frequent *closed* patterns over the
//!    intermediate patterns by closure extension from the root (split rule:
//!    prefix-preserving, depth first with conditional databases, subtrees in
//!    parallel — see [`crate::split`]; overlap rule: parallel per
//!    breadth-first wave), then decide them in the decision order.
//!
//! Why each step is exact is argued in `docs/autofocus.md`.

use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::hier::{kind, Hier, Key, Kind, NDIM, SIDE_DIMS};
use crate::{Config, CountRule, FlowRelation, Location, Relation};
use collector::FiveTuple;

/// A weighted point or aggregate of the lattice: relations folded together.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Item {
    pub key: Key,
    /// Summed score.
    pub w: f64,
    /// Number of input relations folded in.
    pub n: u64,
    /// Per dimension, bit `t` set when the item's ancestor at level `t` is a
    /// node of the restricted hierarchy (stage-2 items only; zero on leaves).
    pub mask: [u64; NDIM],
}

/// A reported pattern, before conversion to [`crate::Pattern`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hhh {
    pub key: Key,
    pub score: f64,
    pub gross: f64,
    pub n: u64,
    pub gross_n: u64,
}

/// Encoded input.
pub(crate) struct Encoded {
    pub hier: Hier,
    /// One leaf per valid relation, in input order.
    pub leaves: Vec<Item>,
    /// Index in the input of each leaf.
    pub source: Vec<usize>,
    pub total: f64,
    pub ignored: usize,
}

/// Whether a relation can be aggregated: a finite positive score and
/// locations inside the table.
pub(crate) fn valid(r: &FlowRelation, n_locations: usize) -> bool {
    r.score.is_finite()
        && r.score > 0.0
        && (r.culprit_location as usize) < n_locations
        && (r.victim_location as usize) < n_locations
}

/// Encodes every valid relation as a leaf (see [`encode_flows`]).
pub(crate) fn encode(relations: &[Relation], config: &Config) -> Encoded {
    let (locations, flows) = crate::intern(relations);
    encode_flows(&locations, &flows, config)
}

/// Interns the locations used by valid relations and encodes every valid
/// relation as a leaf, in input order.
pub(crate) fn encode_flows(
    locations: &[Location],
    relations: &[FlowRelation],
    config: &Config,
) -> Encoded {
    let n_loc = locations.len();
    let mut used = vec![false; n_loc];
    for r in relations.iter().filter(|r| valid(r, n_loc)) {
        used[r.culprit_location as usize] = true;
        used[r.victim_location as usize] = true;
    }
    let hier = Hier::new(
        config.port_hierarchy,
        locations
            .iter()
            .zip(&used)
            .filter(|(_, u)| **u)
            .map(|(l, _)| (l.nf_type.as_str(), l.instance.as_str())),
    );
    // Location index → instance id of the hierarchy (for used locations).
    let inst: Vec<u32> = locations
        .iter()
        .zip(&used)
        .map(|(l, u)| {
            if *u {
                hier.instance_id(&l.nf_type, &l.instance)
                    .expect("every used location is interned")
            } else {
                u32::MAX
            }
        })
        .collect();
    let mut leaves = Vec::with_capacity(relations.len());
    let mut source = Vec::with_capacity(relations.len());
    let mut ignored = 0;
    for (i, r) in relations.iter().enumerate() {
        if !valid(r, n_loc) {
            ignored += 1;
            continue;
        }
        leaves.push(Item {
            key: leaf_key(
                &hier,
                [
                    (&r.culprit, inst[r.culprit_location as usize]),
                    (&r.victim, inst[r.victim_location as usize]),
                ],
            ),
            w: r.score,
            n: 1,
            mask: [0; NDIM],
        });
        source.push(i);
    }
    // Sum in input order: the reference does the same.
    let total = leaves.iter().map(|l| l.w).sum();
    Encoded {
        hier,
        leaves,
        source,
        total,
        ignored,
    }
}

/// The fully specific key of a relation: per side, its flow and the
/// hierarchy's instance id of its location.
pub(crate) fn leaf_key(hier: &Hier, sides: [(&FiveTuple, u32); 2]) -> Key {
    let mut key = Key {
        v: [0; NDIM],
        l: [0; NDIM],
    };
    for (base, (f, inst)) in [0, SIDE_DIMS].into_iter().zip(sides) {
        let vals = [
            f.src_ip,
            f.dst_ip,
            f.proto as u32,
            f.src_port as u32,
            f.dst_port as u32,
            inst,
        ];
        for (j, v) in vals.into_iter().enumerate() {
            key.v[base + j] = v;
            key.l[base + j] = hier.max_level(kind(base + j));
        }
    }
    key
}

/// Scores below the threshold by less than this relative slack are still
/// treated as frequent when *pruning*; the final decision is exact. Pruning
/// more loosely never changes the result, and the slack absorbs rounding
/// differences between summation orders.
pub(crate) const PRUNE_SLACK: f64 = 1e-9;

/// The lowest kept frequent ancestor of every leaf value of one dimension:
/// sorted distinct leaf values and, for each, that ancestor's level.
pub(crate) struct Lfa {
    vals: Vec<u32>,
    level: Vec<u8>,
    /// Bit `t`: the ancestor at level `t` is kept.
    mask: Vec<u64>,
}

impl Lfa {
    /// Level of the lowest kept frequent ancestor of leaf value `v`, and the
    /// kept-level mask of the path from it to the root.
    fn of(&self, v: u32) -> (u8, u64) {
        match self.vals.binary_search(&v) {
            Ok(i) => {
                let l = self.level[i];
                (l, self.mask[i] & low_bits(l))
            }
            Err(_) => (0, 1),
        }
    }
}

/// Bits `0..=t`.
#[inline]
pub(crate) fn low_bits(t: u8) -> u64 {
    if t >= 63 {
        u64::MAX
    } else {
        (2u64 << t) - 1
    }
}

/// One run of equal ancestors at some level: distinct values `start..end`,
/// their mass, and the mass it covers for its parent (its mass if reported,
/// else what its reported descendants cover).
struct Run {
    start: usize,
    end: usize,
    mass: f64,
    out: f64,
    /// A one-dimensional HHH, or a port block joining two such (see below).
    sig: bool,
}

/// The one-dimensional pass over dimension `d`: the one-dimensional
/// compressed HHH nodes (which define the restricted hierarchy) and the lowest
/// kept frequent ancestor of every leaf value.
fn one_dimensional(
    hier: &Hier,
    leaves: &[Item],
    d: usize,
    thr: f64,
    prune: f64,
) -> (FxHashSet<(u8, u32)>, Lfa) {
    let k = kind(d);
    let top = hier.max_level(k);
    let mut pairs: Vec<(u32, f64)> = leaves.iter().map(|it| (it.key.v[d], it.w)).collect();
    pairs.sort_unstable_by_key(|p| p.0);
    let mut vals: Vec<u32> = Vec::new();
    let mut mass: Vec<f64> = Vec::new();
    for (v, w) in pairs {
        if vals.last() == Some(&v) {
            *mass.last_mut().expect("non-empty") += w;
        } else {
            vals.push(v);
            mass.push(w);
        }
    }
    let mut kept = FxHashSet::default();
    let mut level = vec![u8::MAX; vals.len()];
    let mut kmask = vec![0u64; vals.len()];
    let mut prev: Vec<Run> = Vec::new();
    // Members of a node are contiguous in value order (ancestors are
    // monotone), so each level is one scan over the runs of the level below.
    for t in (0..=top).rev() {
        let mut cur: Vec<Run> = Vec::with_capacity(prev.len());
        let structural = hier.is_structural(d, t);
        let mut emit = |start: usize, end: usize, m: f64, covered: f64, sig_children: usize| {
            let a = hier.ancestor(k, top, vals[start], t);
            let reported = m - covered >= thr;
            // Port blocks also keep the least common ancestor of significant
            // blocks or ports (2000..=2008 → 2000-2015), so that flows that
            // are significant one by one can still be aggregated together in
            // a multi-dimensional pattern where each is not. It is not a 1-D
            // HHH: it covers nothing for its parent.
            let joins = k == Kind::Port && !structural && sig_children >= 2;
            if reported || joins {
                kept.insert((t, a));
            }
            let is_kept = reported || joins || structural;
            if is_kept {
                for b in &mut kmask[start..end] {
                    *b |= 1u64 << t;
                }
            }
            if is_kept && m >= prune {
                for l in &mut level[start..end] {
                    if *l == u8::MAX {
                        *l = t;
                    }
                }
            }
            cur.push(Run {
                start,
                end,
                mass: m,
                out: if reported { m } else { covered },
                sig: reported || joins,
            });
        };
        if t == top {
            for (i, &m) in mass.iter().enumerate() {
                emit(i, i + 1, m, 0.0, 0);
            }
        } else {
            let mut i = 0;
            while i < prev.len() {
                let a = hier.ancestor(k, top, vals[prev[i].start], t);
                let (mut m, mut c, mut sig) = (0.0, 0.0, 0);
                let mut j = i;
                while j < prev.len() && hier.ancestor(k, top, vals[prev[j].start], t) == a {
                    m += prev[j].mass;
                    c += prev[j].out;
                    sig += usize::from(prev[j].sig);
                    j += 1;
                }
                emit(prev[i].start, prev[j - 1].end, m, c, sig);
                i = j;
            }
        }
        prev = cur;
    }
    for l in &mut level {
        if *l == u8::MAX {
            *l = 0;
        }
    }
    (
        kept,
        Lfa {
            vals,
            level,
            mask: kmask,
        },
    )
}

/// Runs the one-dimensional pass on every dimension (in parallel), restricts
/// `hier` to the resulting hierarchy, and returns the generalization tables.
pub(crate) fn restrict(hier: &mut Hier, leaves: &[Item], threshold: f64) -> Vec<Lfa> {
    let total: f64 = leaves.iter().map(|l| l.w).sum();
    let thr = threshold * total;
    let prune = thr * (1.0 - PRUNE_SLACK);
    let h: &Hier = hier;
    let (kept, lfa): (Vec<_>, Vec<_>) = (0..NDIM)
        .into_par_iter()
        .map(|d| one_dimensional(h, leaves, d, thr, prune))
        .unzip();
    hier.restrict(kept);
    lfa
}

/// Generalizes dimensions `dims` of `key` to their lowest frequent ancestors.
fn generalize(
    hier: &Hier,
    lfa: &[Lfa],
    key: &mut Key,
    mask: &mut [u64; NDIM],
    dims: std::ops::Range<usize>,
) {
    for d in dims {
        let k = kind(d);
        let (t, m) = lfa[d].of(key.v[d]);
        key.v[d] = hier.ancestor(k, key.l[d], key.v[d], t);
        key.l[d] = t;
        mask[d] = m;
    }
}

/// Sorts items by key and folds equal keys together.
fn merge(mut items: Vec<Item>) -> Vec<Item> {
    items.sort_unstable_by_key(|a| a.key);
    let mut out: Vec<Item> = Vec::with_capacity(items.len());
    for it in items {
        match out.last_mut() {
            Some(last) if last.key == it.key => {
                last.w += it.w;
                last.n += it.n;
            }
            _ => out.push(it),
        }
    }
    out
}

/// Stages 0–1: the one-dimensional pass and the per-culprit-group folding
/// into intermediate patterns.
pub(crate) fn intermediate(hier: &Hier, lfa: &[Lfa], leaves: &[Item]) -> Vec<Item> {
    // Group by exact culprit side.
    let mut order: Vec<u32> = (0..leaves.len() as u32).collect();
    let culprit = |i: &u32| {
        let k = &leaves[*i as usize].key;
        let mut c = [0u32; SIDE_DIMS];
        c.copy_from_slice(&k.v[..SIDE_DIMS]);
        c
    };
    order.par_sort_unstable_by_key(culprit);
    let mut groups: Vec<&[u32]> = Vec::new();
    let mut rest = &order[..];
    while let Some(first) = rest.first() {
        let c = culprit(first);
        let n = rest
            .iter()
            .position(|i| culprit(i) != c)
            .unwrap_or(rest.len());
        groups.push(&rest[..n]);
        rest = &rest[n..];
    }
    let folded: Vec<Vec<Item>> = groups
        .par_iter()
        .map(|g| {
            let mut ckey = leaves[g[0] as usize].key;
            let mut cmask = [0u64; NDIM];
            generalize(hier, lfa, &mut ckey, &mut cmask, 0..SIDE_DIMS);
            let items = g
                .iter()
                .map(|&i| {
                    let leaf = &leaves[i as usize];
                    let mut key = leaf.key;
                    let mut mask = cmask;
                    key.v[..SIDE_DIMS].copy_from_slice(&ckey.v[..SIDE_DIMS]);
                    key.l[..SIDE_DIMS].copy_from_slice(&ckey.l[..SIDE_DIMS]);
                    generalize(hier, lfa, &mut key, &mut mask, SIDE_DIMS..NDIM);
                    Item { key, mask, ..*leaf }
                })
                .collect();
            merge(items)
        })
        .collect();
    // Different exact culprits may fold to the same generalized culprit.
    let mut all: Vec<Item> = folded.into_iter().flatten().collect();
    all.par_sort_unstable_by_key(|a| a.key);
    merge(all)
}

/// Closure (per-dimension least common ancestor in the restricted
/// hierarchy) of `items[idx]`, all inside `parent`.
pub(crate) fn closure(hier: &Hier, items: &[Item], idx: &[u32], parent: &Key) -> Key {
    let first = &items[idx[0] as usize];
    let mut acc = first.key;
    let mut open: Vec<usize> = (0..NDIM).filter(|&d| acc.l[d] > parent.l[d]).collect();
    for &i in &idx[1..] {
        if open.is_empty() {
            break;
        }
        let x = &items[i as usize];
        open.retain(|&d| {
            let k = kind(d);
            let (full, _) = hier.lca(k, (acc.l[d], acc.v[d]), (x.key.l[d], x.key.v[d]));
            // The deepest kept common ancestor; bit 0 (the root) is always set.
            let allowed = first.mask[d] & x.mask[d] & low_bits(full);
            let t = (63 - allowed.leading_zeros()) as u8;
            acc.l[d] = t;
            acc.v[d] = hier.ancestor(k, first.key.l[d], first.key.v[d], t);
            t > parent.l[d]
        });
    }
    acc
}

/// One dimension of the stage-2 items, column-wise for cache locality.
pub(crate) struct Column {
    pub v: Vec<u32>,
    pub l: Vec<u8>,
    pub mask: Vec<u64>,
    pub w: Vec<f64>,
}

impl Column {
    /// The columns of dimension `0..NDIM` of `items`.
    pub fn all(items: &[Item]) -> Vec<Column> {
        (0..NDIM)
            .map(|d| Column {
                v: items.iter().map(|it| it.key.v[d]).collect(),
                l: items.iter().map(|it| it.key.l[d]).collect(),
                mask: items.iter().map(|it| it.mask[d]).collect(),
                w: items.iter().map(|it| it.w).collect(),
            })
            .collect()
    }
}

/// A frequent closed pattern during enumeration.
struct Node {
    key: Key,
    /// Gross score.
    mass: f64,
    items: Vec<u32>,
    children: Vec<u32>,
}

/// A frequent child found by [`expand`]: either a pattern already known by
/// its raw key (the parent with one coordinate specialized), or a new one
/// with its closure and items.
enum Child {
    Known(u32),
    New {
        raw: Key,
        key: Key,
        mass: f64,
        items: Vec<u32>,
    },
}

/// The frequent children of a node: for each dimension and each child node of
/// the pattern's node there (in the restricted hierarchy), the closure of the
/// items inside. Raw keys already enumerated are looked up instead of
/// recomputed: a raw key determines the item set.
fn expand(
    hier: &Hier,
    items: &[Item],
    cols: &[Column],
    node: &Node,
    raw_index: &FxHashMap<Key, u32>,
    prune: f64,
) -> Vec<Child> {
    let mut out = Vec::new();
    let mut mass: FxHashMap<(u8, u32), f64> = FxHashMap::default();
    let mut fresh: FxHashMap<(u8, u32), Vec<u32>> = FxHashMap::default();
    for (d, col) in cols.iter().enumerate() {
        let k = kind(d);
        let pl = node.key.l[d];
        if pl == hier.max_level(k) {
            continue;
        }
        let child_of = |i: usize| {
            // The next kept level below the parent on the item's path.
            let t = pl + 1 + (col.mask[i] >> (pl + 1)).trailing_zeros() as u8;
            (t, hier.ancestor(k, col.l[i], col.v[i], t))
        };
        // Pass 1: the mass of every child.
        mass.clear();
        for &i in &node.items {
            let i = i as usize;
            if col.l[i] > pl {
                *mass.entry(child_of(i)).or_insert(0.0) += col.w[i];
            }
        }
        // Pass 2: items of the frequent children not seen before.
        fresh.clear();
        for (&c, &m) in &mass {
            if m < prune {
                continue;
            }
            let mut raw = node.key;
            raw.l[d] = c.0;
            raw.v[d] = c.1;
            match raw_index.get(&raw) {
                Some(&id) => out.push(Child::Known(id)),
                None => {
                    fresh.insert(c, Vec::new());
                }
            }
        }
        if fresh.is_empty() {
            continue;
        }
        for &i in &node.items {
            if col.l[i as usize] > pl {
                if let Some(v) = fresh.get_mut(&child_of(i as usize)) {
                    v.push(i);
                }
            }
        }
        for (c, idx) in fresh.drain() {
            let mut raw = node.key;
            raw.l[d] = c.0;
            raw.v[d] = c.1;
            let key = closure(hier, items, &idx, &raw);
            out.push(Child::New {
                raw,
                key,
                mass: mass[&c],
                items: idx,
            });
        }
    }
    out
}

/// Stage 2: the exact compressed HHH over `items` with absolute threshold
/// `thr` (> 0). The split rule is delegated to [`crate::split`]; the overlap
/// rule enumerates every parent–child edge (it needs them), deduplicating
/// children by key.
pub(crate) fn hhh(hier: &Hier, items: Vec<Item>, thr: f64, rule: CountRule) -> Vec<Hhh> {
    if items.is_empty() || thr.is_nan() || thr <= 0.0 {
        return Vec::new();
    }
    if rule == CountRule::Split {
        return crate::split::hhh(hier, items, thr);
    }
    let items = &items[..];
    let prune = thr * (1.0 - PRUNE_SLACK);
    let all: Vec<u32> = (0..items.len() as u32).collect();
    let top = Key {
        v: [0; NDIM],
        l: [0; NDIM],
    };
    let root_key = closure(hier, items, &all, &top);
    let root_mass: f64 = items.iter().map(|i| i.w).sum();
    if root_mass < prune {
        return Vec::new();
    }
    let mut nodes = vec![Node {
        key: root_key,
        mass: root_mass,
        items: all,
        children: Vec::new(),
    }];
    let cols = Column::all(items);
    let mut index: FxHashMap<Key, u32> = FxHashMap::default();
    index.insert(root_key, 0);
    let mut raw_index: FxHashMap<Key, u32> = FxHashMap::default();
    raw_index.insert(root_key, 0);
    let mut frontier: Vec<u32> = vec![0];
    // Bound the memory held by one wave's child lists.
    const WAVE: usize = 1024;
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for chunk in frontier.chunks(WAVE) {
            let expanded: Vec<Vec<Child>> = chunk
                .par_iter()
                .map(|&p| expand(hier, items, &cols, &nodes[p as usize], &raw_index, prune))
                .collect();
            for (&p, kids) in chunk.iter().zip(expanded) {
                let mut ids = Vec::with_capacity(kids.len());
                for kid in kids {
                    let id = match kid {
                        Child::Known(id) => id,
                        Child::New {
                            raw,
                            key,
                            mass,
                            items: idx,
                        } => {
                            let id = *index.entry(key).or_insert_with(|| {
                                nodes.push(Node {
                                    key,
                                    mass,
                                    items: idx,
                                    children: Vec::new(),
                                });
                                next.push(nodes.len() as u32 - 1);
                                nodes.len() as u32 - 1
                            });
                            raw_index.insert(raw, id);
                            raw_index.insert(key, id);
                            id
                        }
                    };
                    ids.push(id);
                }
                ids.sort_unstable();
                ids.dedup();
                nodes[p as usize].children = ids;
            }
        }
        frontier = next;
    }
    decide_overlap(items, &nodes, thr)
}

/// The decision order: most specific first, then larger gross score, then
/// key order.
pub(crate) fn decision_order(a: (&Key, f64), b: (&Key, f64)) -> std::cmp::Ordering {
    b.0.depth()
        .cmp(&a.0.depth())
        .then(b.1.total_cmp(&a.1))
        .then(a.0.cmp(b.0))
}

enum Covered {
    None,
    All,
    List(Vec<u32>),
}

/// Overlap rule, bottom-up: a pattern's covered items are the union of its
/// children's.
fn decide_overlap(items: &[Item], nodes: &[Node], thr: f64) -> Vec<Hhh> {
    let mut order: Vec<u32> = (0..nodes.len() as u32).collect();
    // Strictly-below implies strictly deeper: children come first.
    order.sort_unstable_by_key(|&i| std::cmp::Reverse(nodes[i as usize].key.depth()));
    let mut stamp = vec![u32::MAX; items.len()];
    let mut covered: Vec<Covered> = (0..nodes.len()).map(|_| Covered::None).collect();
    let mut out = Vec::new();
    for p in order {
        let node = &nodes[p as usize];
        let mut list = Vec::new();
        for &c in &node.children {
            let src: &[u32] = match &covered[c as usize] {
                Covered::None => continue,
                Covered::All => &nodes[c as usize].items,
                Covered::List(l) => l,
            };
            for &i in src {
                if stamp[i as usize] != p {
                    stamp[i as usize] = p;
                    list.push(i);
                }
            }
        }
        let (mut score, mut n, mut gross_n) = (0.0, 0u64, 0u64);
        for &i in &node.items {
            let it = &items[i as usize];
            gross_n += it.n;
            if stamp[i as usize] != p {
                score += it.w;
                n += it.n;
            }
        }
        if score >= thr {
            out.push(Hhh {
                key: node.key,
                score,
                gross: node.mass,
                n,
                gross_n,
            });
            covered[p as usize] = Covered::All;
        } else if !list.is_empty() {
            covered[p as usize] = Covered::List(list);
        }
    }
    out
}

/// The full two-stage computation over encoded leaves.
pub(crate) fn run(enc: &mut Encoded, threshold: f64, rule: CountRule) -> Vec<Hhh> {
    if enc.leaves.is_empty() {
        return Vec::new();
    }
    let lfa = restrict(&mut enc.hier, &enc.leaves, threshold);
    let items = intermediate(&enc.hier, &lfa, &enc.leaves);
    // The leaves are not needed past stage 1.
    enc.leaves = Vec::new();
    drop(lfa);
    hhh(&enc.hier, items, threshold * enc.total, rule)
}
