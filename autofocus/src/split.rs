//! Stage 2 under the split rule: prefix-preserving closure extension (Uno et
//! al.'s LCM) enumerates every frequent closed pattern exactly once, then the
//! patterns are decided in the decision order with one "taken" flag per item.
//!
//! Prefix preservation: a pattern created by specializing dimension `d` (its
//! *core*) is only extended on dimensions `d..`, and a child is kept only if
//! its closure leaves the dimensions before the extended one unchanged. With
//! attributes ordered by (dimension, level), this is LCM's ppc-extension: every
//! closed pattern has exactly one parent that generates it (the closure of its
//! longest prefix), so no deduplication is needed.
//!
//! Data layout (what makes it fast; the semantics are those of
//! [`crate::engine::closure`]):
//! - **Paths.** Per dimension, every node of the restricted hierarchy that
//!   lies on some item's path gets a dense id, and each item's kept
//!   ancestors, root first, form its *row*, stored position-major
//!   ([`Paths`]). A pattern's coordinate is then a *position* `p` on its
//!   items' rows (the same for all of them: a node determines its kept
//!   ancestors), the child of the pattern on an item's path is at `p + 1`,
//!   and the least common kept ancestor of two items is their longest common
//!   row prefix.
//! - **Depth first, with conditional databases.** Each pattern carries its
//!   items, their scores and, per dimension it may extend, each item's child
//!   id, in contiguous arrays ([`Db`]); a child's arrays are gathered from
//!   its parent's. Subtrees are enumerated in parallel (rayon).
//! - **Counting.** Child masses are summed in a dense per-thread array
//!   indexed by node id, all extendable dimensions in one sweep, each sum in
//!   ascending item order — the same additions in the same order as a
//!   hash-map count, so every score is bit-identical.
//! - **Item lists.** Each enumerated pattern of at most [`STORE_MAX`] items
//!   keeps its ascending item list delta-encoded as LEB128 bytes
//!   ([`Packed`]): items of a frequent pattern are dense enough that most
//!   gaps fit one byte, about a quarter of a `u32` list. Larger patterns are
//!   listed again, in the same order, from the inverted rows ([`Postings`])
//!   when a decision needs them.
//! - **Barren dimensions.** A pattern remembers the dimensions where it has
//!   no frequent child; a child at the same position there inherits that and
//!   skips the dimension (its items are a subset, and a subset's score summed
//!   in the same order is no larger, even in floating point).
//! - **Decisions.** Compressed scores only change when a pattern is reported
//!   (at most `1 / th` times), so runs of patterns are scored in parallel
//!   against the current taken flags and each run is cut at its first
//!   reported pattern ([`decide`]); scores past the cut of patterns not
//!   comparable with the reported one are still exact and are kept.

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::engine::{decision_order, low_bits, Hhh, Item, PRUNE_SLACK};
use crate::hier::{kind, Hier, Key, NDIM};

/// No node (past the end of an item's path).
const NONE: u32 = u32::MAX;

/// The kept-ancestor rows of every item in one dimension, stored
/// position-major: `col[p][i]` is the id of item `i`'s kept ancestor at
/// position `p` of its row (root first), or [`NONE`] past its end. Extending
/// a pattern in this dimension reads one column only, which keeps the
/// gathers of a pass within a few megabytes even at a million relations.
struct Paths {
    /// `width` columns of `items` node ids each.
    col: Vec<Vec<u32>>,
    /// Node id → `(level, value)`.
    nodes: Vec<(u8, u32)>,
}

impl Paths {
    fn build(hier: &Hier, items: &[Item], d: usize) -> Paths {
        let k = kind(d);
        let kept = |it: &Item| {
            let l = it.key.l[d];
            debug_assert!(it.mask[d] & 1 == 1 && (it.mask[d] >> l) & 1 == 1);
            it.mask[d] & low_bits(l)
        };
        let width = items
            .iter()
            .map(|it| kept(it).count_ones() as usize)
            .max()
            .unwrap_or(1);
        let mut index: FxHashMap<(u8, u32), u32> = FxHashMap::default();
        let mut nodes = Vec::new();
        let mut col = vec![vec![NONE; items.len()]; width];
        for (i, it) in items.iter().enumerate() {
            let (l, v) = (it.key.l[d], it.key.v[d]);
            let mut m = kept(it);
            let mut j = 0;
            while m != 0 {
                let t = m.trailing_zeros() as u8;
                m &= m - 1;
                let a = hier.ancestor(k, l, v, t);
                col[j][i] = *index.entry((t, a)).or_insert_with(|| {
                    nodes.push((t, a));
                    nodes.len() as u32 - 1
                });
                j += 1;
            }
        }
        Paths { col, nodes }
    }

    /// Length of item `i`'s row.
    #[inline]
    fn len(&self, i: u32) -> usize {
        self.col
            .iter()
            .take_while(|c| c[i as usize] != NONE)
            .count()
    }
}

/// An ascending item list, delta-encoded as LEB128 bytes.
struct Packed {
    len: u32,
    bytes: Box<[u8]>,
}

impl Packed {
    fn new(list: &[u32]) -> Packed {
        let mut bytes = Vec::with_capacity(list.len() + list.len() / 4 + 4);
        let mut prev = 0u32;
        for &x in list {
            let mut g = x - prev;
            prev = x;
            while g >= 0x80 {
                bytes.push((g as u8) | 0x80);
                g >>= 7;
            }
            bytes.push(g as u8);
        }
        Packed {
            len: list.len() as u32,
            bytes: bytes.into_boxed_slice(),
        }
    }

    /// Appends the items to `out`.
    fn unpack_into(&self, out: &mut Vec<u32>) {
        out.reserve(self.len as usize);
        let mut prev = 0u32;
        let mut g = 0u32;
        let mut shift = 0;
        for &b in self.bytes.iter() {
            g |= ((b & 0x7F) as u32) << shift;
            if b & 0x80 == 0 {
                prev += g;
                out.push(prev);
                g = 0;
                shift = 0;
            } else {
                shift += 7;
            }
        }
    }
}

/// Patterns holding at most this many items keep their item list; larger
/// ones are listed again from [`Postings`] when a decision needs them. At
/// paper scale (2.8 M items, 170 K patterns) storing every list takes
/// 2.4 GB, a third of it in the 4 K patterns above this size, and listing
/// a large pattern again costs little more than unpacking it.
const STORE_MAX: usize = 1 << 16;

/// A frequent closed pattern, as enumerated.
struct Node {
    key: Key,
    /// Gross score.
    mass: f64,
    /// Its items, when at most [`STORE_MAX`].
    items: Option<Packed>,
    /// Per dimension, the position of the pattern's node on its items' rows
    /// and the node's id.
    pos: [u8; NDIM],
    ids: [u32; NDIM],
}

impl Node {
    /// The node whose items' rows have prefix lengths `len`, `f` one of them.
    fn new(paths: &[Paths], idx: &[u32], len: &[u8; NDIM], mass: f64) -> Node {
        let f = idx[0];
        let mut pos = [0u8; NDIM];
        let mut ids = [0u32; NDIM];
        for d in 0..NDIM {
            pos[d] = len[d] - 1;
            ids[d] = paths[d].col[pos[d] as usize][f as usize];
        }
        Node {
            key: key_of(paths, f, len),
            mass,
            items: (idx.len() <= STORE_MAX).then(|| Packed::new(idx)),
            pos,
            ids,
        }
    }
}

/// Per dimension, the items below each node (every node but the root),
/// ascending: the inverted [`Paths`].
struct Postings {
    /// Per dimension, `start[id]..start[id + 1]` indexes `items`.
    start: Vec<Vec<usize>>,
    items: Vec<Vec<u32>>,
}

impl Postings {
    fn build(paths: &[Paths]) -> Postings {
        let (start, items) = paths
            .par_iter()
            .map(|p| {
                let mut start = vec![0usize; p.nodes.len() + 1];
                for c in p.col.iter().skip(1) {
                    for &id in c.iter().filter(|&&id| id != NONE) {
                        start[id as usize + 1] += 1;
                    }
                }
                for k in 1..start.len() {
                    start[k] += start[k - 1];
                }
                let mut fill = start.clone();
                let mut items = vec![0u32; start[p.nodes.len()]];
                // A node sits at one position of every row through it, so
                // scanning each column in item order lists its items in
                // ascending order.
                for c in p.col.iter().skip(1) {
                    for (i, &id) in c.iter().enumerate() {
                        if id != NONE {
                            items[fill[id as usize]] = i as u32;
                            fill[id as usize] += 1;
                        }
                    }
                }
                (start, items)
            })
            .unzip();
        Postings { start, items }
    }

    /// The items `node` holds, ascending, into `out` (cleared first): its
    /// stored list, or the shortest posting list among its non-root
    /// dimensions, filtered on the others.
    fn items_of(&self, paths: &[Paths], n_items: usize, node: &Node, out: &mut Vec<u32>) {
        out.clear();
        if let Some(p) = &node.items {
            p.unpack_into(out);
            return;
        }
        let list = |d: usize| {
            let id = node.ids[d] as usize;
            &self.items[d][self.start[d][id]..self.start[d][id + 1]]
        };
        let open: Vec<usize> = (0..NDIM).filter(|&d| node.pos[d] > 0).collect();
        let Some(&best) = open.iter().min_by_key(|&&d| list(d).len()) else {
            out.extend(0..n_items as u32);
            return;
        };
        let rest: Vec<(&[u32], u32)> = open
            .iter()
            .filter(|&&d| d != best)
            .map(|&d| (&paths[d].col[node.pos[d] as usize][..], node.ids[d]))
            .collect();
        out.extend(
            list(best)
                .iter()
                .copied()
                .filter(|&i| rest.iter().all(|(c, id)| c[i as usize] == *id)),
        );
    }
}

/// A frequent closed pattern during the depth-first enumeration.
#[derive(Clone, Copy)]
struct Pat {
    /// Per dimension, the position of the pattern's node on its items' rows.
    pos: [u8; NDIM],
    /// The dimension whose specialization created it (0 for the root).
    core: u8,
    /// Dimensions known to have no frequent child at `pos + 1`: the parent
    /// had none there and this pattern's position is the parent's. A child
    /// of this pattern holds a subset of the parent's child's items, whose
    /// score (summed in the same order) is no larger.
    barren: u16,
}

/// A pattern's conditional database: its items and, per dimension it may
/// extend, each item's child node, contiguous so that counting reads
/// sequentially. A child's database is gathered from its parent's (a small,
/// cache-resident array) wherever its position did not move.
struct Db {
    /// Item ids, ascending.
    list: Vec<u32>,
    /// Their scores.
    w: Vec<f64>,
    /// Per dimension, the id at `pos + 1` of each item (or [`NONE`]); empty
    /// for dimensions the pattern does not extend.
    nx: Vec<Vec<u32>>,
}

impl Db {
    /// The root's database.
    fn root(paths: &[Paths], w: &[f64], pat: &Pat) -> Db {
        let list: Vec<u32> = (0..w.len() as u32).collect();
        let nx = (0..NDIM)
            .map(|d| match paths[d].col.get(pat.pos[d] as usize + 1) {
                Some(c) => c.clone(),
                None => Vec::new(),
            })
            .collect();
        Db {
            list,
            w: w.to_vec(),
            nx,
        }
    }

    /// The database of `kid`, holding the items at positions `sel` of
    /// `parent`'s (whose pattern is `ppat`).
    fn child(paths: &[Paths], parent: &Db, ppat: &Pat, kid: &Pat, sel: &[u32]) -> Db {
        let list: Vec<u32> = sel.iter().map(|&j| parent.list[j as usize]).collect();
        let w = sel.iter().map(|&j| parent.w[j as usize]).collect();
        let nx = (0..NDIM)
            .map(|e| {
                let next = kid.pos[e] as usize + 1;
                if e < kid.core as usize || kid.barren & (1 << e) != 0 {
                    Vec::new()
                } else if kid.pos[e] == ppat.pos[e] && !parent.nx[e].is_empty() {
                    sel.iter().map(|&j| parent.nx[e][j as usize]).collect()
                } else if let Some(c) = paths[e].col.get(next) {
                    list.iter().map(|&i| c[i as usize]).collect()
                } else {
                    Vec::new()
                }
            })
            .collect();
        Db { list, w, nx }
    }
}

/// Per-thread buffers, indexed by node id.
#[derive(Default)]
struct Scratch {
    mass: Vec<f64>,
    slot: Vec<u32>,
    /// Per dimension, the children seen.
    touched: Vec<Vec<u32>>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Closure of `idx` (non-empty, all inside a pattern whose row prefix
/// lengths are `floor`): per dimension, the length of the longest row prefix
/// the items share.
fn closure(paths: &[Paths], idx: &[u32], floor: &[u8; NDIM]) -> [u8; NDIM] {
    let f = idx[0] as usize;
    let mut len = [0u8; NDIM];
    let mut open = 0u32;
    for (d, p) in paths.iter().enumerate() {
        let n = p.len(f as u32) as u8;
        len[d] = n;
        if n > floor[d] {
            open |= 1 << d;
        }
    }
    for &x in &idx[1..] {
        if open == 0 {
            break;
        }
        let x = x as usize;
        let mut bits = open;
        while bits != 0 {
            let d = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let col = &paths[d].col;
            let mut n = len[d] as usize;
            // A shorter row holds NONE there, which never equals a real id.
            while n > floor[d] as usize && col[n - 1][x] != col[n - 1][f] {
                n -= 1;
            }
            len[d] = n as u8;
            if n == floor[d] as usize {
                open &= !(1 << d);
            }
        }
    }
    len
}

/// The pattern with the given row prefix lengths of item `f`.
fn key_of(paths: &[Paths], f: u32, len: &[u8; NDIM]) -> Key {
    let mut key = Key {
        v: [0; NDIM],
        l: [0; NDIM],
    };
    for (d, p) in paths.iter().enumerate() {
        let (l, v) = p.nodes[p.col[len[d] as usize - 1][f as usize] as usize];
        key.l[d] = l;
        key.v[d] = v;
    }
    key
}

/// The prefix-preserving frequent closed children of `pat`: each child's
/// pattern, its enumerated node, and the positions of its items in `db`.
fn expand(
    paths: &[Paths],
    s: &mut Scratch,
    pat: &Pat,
    db: &Db,
    prune: f64,
) -> Vec<(Pat, Node, Vec<u32>)> {
    // Node ids of dimension `d` live at `off[d]..` of the scratch arrays.
    let mut off = [0usize; NDIM + 1];
    for d in 0..NDIM {
        off[d + 1] = off[d] + paths[d].nodes.len();
    }
    if s.mass.len() < off[NDIM] {
        s.mass.resize(off[NDIM], 0.0);
        s.slot.resize(off[NDIM], NONE);
    }
    s.touched.resize_with(NDIM, Vec::new);
    let mut out: Vec<(Pat, Node, Vec<u32>)> = Vec::new();
    let mut fresh: Vec<Vec<u32>> = Vec::new();
    let mut barren = pat.barren;
    let mut active: Vec<usize> = Vec::with_capacity(NDIM);
    for d in pat.core as usize..NDIM {
        if db.nx[d].is_empty() || barren & (1 << d) != 0 {
            barren |= 1 << d;
        } else {
            active.push(d);
            s.touched[d].clear();
        }
    }
    // Pass 1, all dimensions in one sweep (their sums are independent, so
    // they overlap in the pipeline): the mass of every child, each summed in
    // ascending item order.
    for (j, &w) in db.w.iter().enumerate() {
        for &d in &active {
            let c = db.nx[d][j];
            if c != NONE {
                let m = &mut s.mass[off[d] + c as usize];
                if *m == 0.0 {
                    s.touched[d].push(c);
                }
                *m += w;
            }
        }
    }
    for &d in &active {
        let nx = &db.nx[d];
        let o = off[d];
        let next = pat.pos[d] as usize + 1;
        // Pass 2: the positions of the items of the frequent children.
        fresh.clear();
        for &c in &s.touched[d] {
            if s.mass[o + c as usize] >= prune {
                s.slot[o + c as usize] = fresh.len() as u32;
                fresh.push(Vec::new());
            }
        }
        if fresh.is_empty() {
            barren |= 1 << d;
        } else {
            for (j, &c) in nx.iter().enumerate() {
                if c != NONE {
                    let k = s.slot[o + c as usize];
                    if k != NONE {
                        fresh[k as usize].push(j as u32);
                    }
                }
            }
            let mut floor = [0u8; NDIM];
            for (e, f) in floor.iter_mut().enumerate() {
                *f = pat.pos[e] + 1;
            }
            floor[d] = next as u8 + 1;
            for sel in fresh.drain(..) {
                let idx: Vec<u32> = sel.iter().map(|&j| db.list[j as usize]).collect();
                let len = closure(paths, &idx, &floor);
                if (0..d).any(|j| len[j] != floor[j]) {
                    continue;
                }
                let c = nx[sel[0] as usize];
                let node = Node::new(paths, &idx, &len, s.mass[o + c as usize]);
                out.push((
                    Pat {
                        pos: node.pos,
                        core: d as u8,
                        barren: 0,
                    },
                    node,
                    sel,
                ));
            }
        }
        for &c in &s.touched[d] {
            s.mass[o + c as usize] = 0.0;
            s.slot[o + c as usize] = NONE;
        }
    }
    for (kid, _, _) in &mut out {
        let same = (0..NDIM).filter(|&e| kid.pos[e] == pat.pos[e]);
        kid.barren = same.fold(0, |m, e| m | (1 << e)) & barren;
    }
    out
}

/// Enumerates the subtree below `pat` (depth first, children in parallel),
/// appending the enumerated nodes to `out`.
fn subtree(paths: &[Paths], pat: &Pat, db: &Db, prune: f64, out: &mut Vec<Node>) {
    let kids = SCRATCH.with(|s| expand(paths, &mut s.borrow_mut(), pat, db, prune));
    let mut subs: Vec<Pat> = Vec::with_capacity(kids.len());
    let mut sels: Vec<Vec<u32>> = Vec::with_capacity(kids.len());
    for (kid, node, sel) in kids {
        out.push(node);
        subs.push(kid);
        sels.push(sel);
    }
    let below: Vec<Vec<Node>> = subs
        .par_iter()
        .zip(sels.par_iter())
        .map(|(kid, sel)| {
            let kdb = Db::child(paths, db, pat, kid, sel);
            let mut v = Vec::new();
            subtree(paths, kid, &kdb, prune, &mut v);
            v
        })
        .collect();
    for v in below {
        out.extend(v);
    }
}

/// Every frequent closed pattern of the items whose rows are `paths` and
/// scores `w`.
fn enumerate(paths: &[Paths], w: &[f64], prune: f64) -> Vec<Node> {
    let root_mass: f64 = w.iter().sum();
    if root_mass < prune {
        return Vec::new();
    }
    let all: Vec<u32> = (0..w.len() as u32).collect();
    let len = closure(paths, &all, &[1; NDIM]);
    let node = Node::new(paths, &all, &len, root_mass);
    drop(all);
    let root = Pat {
        pos: node.pos,
        core: 0,
        barren: 0,
    };
    let db = Db::root(paths, w, &root);
    let mut nodes = vec![node];
    subtree(paths, &root, &db, prune, &mut nodes);
    nodes
}

/// Whether two patterns are comparable in every dimension (one node inside
/// the other) — a necessary condition for holding a common item.
fn comparable(hier: &Hier, a: &Key, b: &Key) -> bool {
    (0..NDIM).all(|d| {
        let (x, y) = ((a.l[d], a.v[d]), (b.l[d], b.v[d]));
        hier.node_within(kind(d), x, y) || hier.node_within(kind(d), y, x)
    })
}

/// Stage 2 under the split rule.
///
/// Memory: the items are consumed; only their scores and relation counts
/// are kept past building the rows. Enumerated patterns keep their item
/// lists only up to [`STORE_MAX`] items; the decisions list a larger
/// pattern's items from the rows and their inverted index ([`Postings`]).
pub(crate) fn hhh(hier: &Hier, items: Vec<Item>, thr: f64) -> Vec<Hhh> {
    let prune = thr * (1.0 - PRUNE_SLACK);
    let paths: Vec<Paths> = (0..NDIM)
        .into_par_iter()
        .map(|d| Paths::build(hier, &items, d))
        .collect();
    let w: Vec<f64> = items.iter().map(|i| i.w).collect();
    let n: Vec<u64> = items.iter().map(|i| i.n).collect();
    drop(items);
    let mut nodes = enumerate(&paths, &w, prune);
    nodes.par_sort_unstable_by(|a, b| decision_order((&a.key, a.mass), (&b.key, b.mass)));
    let post = Postings::build(&paths);
    decide(hier, &paths, &post, &w, &n, &nodes, thr)
}

/// The split-rule decisions in the decision order. A pattern's compressed
/// score only changes when an earlier pattern is reported, which happens at
/// most `1 / th` times; so the scores of a run of patterns are computed in
/// parallel against the current taken flags, and the run is cut at its first
/// reported pattern (the patterns after it are computed again). Each score is
/// summed in ascending item order, exactly as a sequential pass would.
fn decide(
    hier: &Hier,
    paths: &[Paths],
    post: &Postings,
    w: &[f64],
    count: &[u64],
    nodes: &[Node],
    thr: f64,
) -> Vec<Hhh> {
    // Taken flags as a bitset: small enough to stay in cache.
    let mut taken = vec![0u64; w.len().div_ceil(64)];
    let is_taken = |t: &[u64], i: u32| (t[i as usize >> 6] >> (i & 63)) & 1 == 1;
    let mut out = Vec::new();
    const MIN_RUN: usize = 32;
    const MAX_RUN: usize = 4096;
    let mut run = MIN_RUN;
    let mut k = 0;
    // Scores computed in a run past its cut that are still exact: a report
    // only takes items of the reported pattern, so the score of a pattern
    // not comparable with it (no common item) does not change.
    let mut known: FxHashMap<usize, f64> = FxHashMap::default();
    while k < nodes.len() {
        let end = (k + run).min(nodes.len());
        let taken_now = &taken[..];
        let reported = &out[..];
        let known_now = &known;
        let scores: Vec<f64> = (k..end)
            .into_par_iter()
            .map_init(Vec::new, |list, at| {
                if let Some(&score) = known_now.get(&at) {
                    return score;
                }
                let node = &nodes[at];
                // Patterns that share an item are comparable in every
                // dimension (each dimension is a laminar family); a pattern
                // comparable with no reported one holds no taken item.
                if !reported
                    .iter()
                    .any(|r: &Hhh| comparable(hier, &r.key, &node.key))
                {
                    return node.mass;
                }
                post.items_of(paths, w.len(), node, list);
                if !list.iter().any(|&i| is_taken(taken_now, i)) {
                    // The same items summed in the same order as `mass`.
                    return node.mass;
                }
                let mut score = 0.0;
                for &i in list.iter() {
                    if !is_taken(taken_now, i) {
                        score += w[i as usize];
                    }
                }
                score
            })
            .collect();
        match scores.iter().position(|&score| score >= thr) {
            None => {
                known.retain(|&at, _| at >= end);
                k = end;
                run = (run * 2).min(MAX_RUN);
            }
            Some(j) => {
                let node = &nodes[k + j];
                let mut list = Vec::new();
                post.items_of(paths, w.len(), node, &mut list);
                let (mut n, mut gross_n) = (0u64, 0u64);
                for &i in &list {
                    let c = count[i as usize];
                    gross_n += c;
                    if !is_taken(&taken, i) {
                        n += c;
                    }
                }
                for &i in &list {
                    taken[i as usize >> 6] |= 1 << (i & 63);
                }
                let key = node.key;
                out.push(Hhh {
                    key,
                    score: scores[j],
                    gross: node.mass,
                    n,
                    gross_n,
                });
                known.retain(|&at, _| at > k + j && !comparable(hier, &key, &nodes[at].key));
                for (at, &score) in (k..end).zip(&scores).skip(j + 1) {
                    if !comparable(hier, &key, &nodes[at].key) {
                        known.insert(at, score);
                    }
                }
                k += j + 1;
                run = MIN_RUN;
            }
        }
    }
    out
}
