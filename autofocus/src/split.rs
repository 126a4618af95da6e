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

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::engine::{closure, decision_order, Column, Hhh, Item, PRUNE_SLACK};
use crate::hier::{kind, Hier, Key, NDIM};

/// A frequent closed pattern.
struct Node {
    key: Key,
    /// The dimension whose specialization created it (0 for the root).
    core: u8,
    /// Gross score.
    mass: f64,
    /// Indices of the items it holds, ascending.
    items: Vec<u32>,
}

/// The prefix-preserving frequent closed children of `node`.
fn expand(hier: &Hier, items: &[Item], cols: &[Column], node: &Node, prune: f64) -> Vec<Node> {
    let mut out = Vec::new();
    let mut mass: FxHashMap<(u8, u32), f64> = FxHashMap::default();
    let mut fresh: FxHashMap<(u8, u32), Vec<u32>> = FxHashMap::default();
    for (d, col) in cols.iter().enumerate().skip(node.core as usize) {
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
        mass.clear();
        for &i in &node.items {
            let i = i as usize;
            if col.l[i] > pl {
                *mass.entry(child_of(i)).or_insert(0.0) += col.w[i];
            }
        }
        fresh.clear();
        for (&c, &m) in &mass {
            if m >= prune {
                fresh.insert(c, Vec::new());
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
            if (0..d).any(|j| key.l[j] != node.key.l[j]) {
                continue;
            }
            out.push(Node {
                key,
                core: d as u8,
                mass: mass[&c],
                items: idx,
            });
        }
    }
    out
}

/// Every frequent closed pattern.
fn enumerate(hier: &Hier, items: &[Item], prune: f64) -> Vec<Node> {
    let all: Vec<u32> = (0..items.len() as u32).collect();
    let top = Key {
        v: [0; NDIM],
        l: [0; NDIM],
    };
    let root_mass: f64 = items.iter().map(|i| i.w).sum();
    if root_mass < prune {
        return Vec::new();
    }
    let cols = Column::all(items);
    let mut nodes = vec![Node {
        key: closure(hier, items, &all, &top),
        core: 0,
        mass: root_mass,
        items: all,
    }];
    let mut frontier = 0..1;
    // Expand breadth-first, a bounded wave at a time.
    const WAVE: usize = 1024;
    while !frontier.is_empty() {
        let end = nodes.len();
        let mut start = frontier.start;
        while start < frontier.end {
            let stop = (start + WAVE).min(frontier.end);
            let kids: Vec<Vec<Node>> = nodes[start..stop]
                .par_iter()
                .map(|n| expand(hier, items, &cols, n, prune))
                .collect();
            nodes.extend(kids.into_iter().flatten());
            start = stop;
        }
        frontier = end..nodes.len();
    }
    nodes
}

/// Stage 2 under the split rule.
pub(crate) fn hhh(hier: &Hier, items: &[Item], thr: f64) -> Vec<Hhh> {
    let prune = thr * (1.0 - PRUNE_SLACK);
    let mut nodes = enumerate(hier, items, prune);
    nodes.par_sort_unstable_by(|a, b| decision_order((&a.key, a.mass), (&b.key, b.mass)));
    let mut taken = vec![false; items.len()];
    let mut out = Vec::new();
    for node in &nodes {
        let (mut score, mut n, mut gross_n) = (0.0, 0u64, 0u64);
        for &i in &node.items {
            let it = &items[i as usize];
            gross_n += it.n;
            if !taken[i as usize] {
                score += it.w;
                n += it.n;
            }
        }
        if score >= thr {
            for &i in &node.items {
                taken[i as usize] = true;
            }
            out.push(Hhh {
                key: node.key,
                score,
                gross: node.mass,
                n,
                gross_n,
            });
        }
    }
    out
}
