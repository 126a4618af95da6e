//! An exhaustive one-stage reference implementation of the definition, for
//! tests on tiny inputs.
//!
//! It shares nothing with the engine but the hierarchy encoding: no
//! one-dimensional pruning, no grouping, no closure extension, no coverage
//! recurrence. Candidates are the closures of *every* non-empty subset of the
//! relations (every closed pattern is the closure of its own relations, and
//! only closed patterns can be reported — `docs/autofocus.md`, lemma 2), taken
//! in the decision order (most specific first); a candidate is reported when
//! the score of its relations not yet discounted reaches `threshold × total`,
//! checked relation by relation: under [`CountRule::Split`] a relation is
//! discounted once any reported candidate holds it, under
//! [`CountRule::Overlap`] when a reported candidate strictly inside this one
//! holds it.

use std::collections::BTreeSet;

use crate::engine::{decision_order, encode, restrict, Hhh};
use crate::hier::{Key, NDIM};
use crate::{Config, CountRule, Pattern, Relation};

/// Largest input the reference accepts (it enumerates `2^n` subsets).
pub const MAX_RELATIONS: usize = 16;

/// The input is too large for exhaustive enumeration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} valid relations; the exhaustive reference accepts at most {MAX_RELATIONS}")]
pub struct TooLarge(pub usize);

/// The reported patterns by the literal one-stage definition, ranked like
/// [`crate::Report::patterns`].
///
/// Errors: [`TooLarge`] when more than [`MAX_RELATIONS`] relations are valid.
/// The configuration is used as given (validate it first).
pub fn one_stage(relations: &[Relation], config: &Config) -> Result<Vec<Pattern>, TooLarge> {
    let mut enc = encode(relations, config);
    let n = enc.leaves.len();
    if n > MAX_RELATIONS {
        return Err(TooLarge(n));
    }
    if n == 0 {
        return Ok(Vec::new());
    }
    // The restricted hierarchy is part of the definition; the reference uses
    // it but not the generalization tables.
    restrict(&mut enc.hier, &enc.leaves, config.threshold);
    let h = &enc.hier;
    let thr = config.threshold * enc.total;
    let mut cands: BTreeSet<Key> = BTreeSet::new();
    for mask in 1u32..(1 << n) {
        let mut acc: Option<Key> = None;
        for (i, leaf) in enc.leaves.iter().enumerate() {
            if mask & (1 << i) == 0 {
                continue;
            }
            acc = Some(match acc {
                None => leaf.key,
                Some(mut a) => {
                    for d in 0..NDIM {
                        let (l, v) = h.rlca(d, (a.l[d], a.v[d]), (leaf.key.l[d], leaf.key.v[d]));
                        a.l[d] = l;
                        a.v[d] = v;
                    }
                    a
                }
            });
        }
        cands.insert(acc.expect("mask is non-empty"));
    }
    // Gross score of every candidate, summed in input order.
    let mut cands: Vec<(Key, f64)> = cands
        .into_iter()
        .map(|p| {
            let gross = enc
                .leaves
                .iter()
                .filter(|l| h.key_within(&l.key, &p))
                .map(|l| l.w)
                .sum();
            (p, gross)
        })
        .collect();
    cands.sort_by(|a, b| decision_order((&a.0, a.1), (&b.0, b.1)));
    let mut reported: Vec<Key> = Vec::new();
    let mut taken = vec![false; n];
    let mut out = Vec::new();
    for (p, gross) in &cands {
        let (mut score, mut cnt, mut gross_n) = (0.0, 0u64, 0u64);
        let mut inside = Vec::new();
        for (i, leaf) in enc.leaves.iter().enumerate() {
            if !h.key_within(&leaf.key, p) {
                continue;
            }
            inside.push(i);
            gross_n += 1;
            let discounted = match config.rule {
                CountRule::Split => taken[i],
                CountRule::Overlap => reported
                    .iter()
                    .any(|q| q != p && h.key_within(q, p) && h.key_within(&leaf.key, q)),
            };
            if !discounted {
                score += leaf.w;
                cnt += 1;
            }
        }
        if score >= thr {
            reported.push(*p);
            for i in inside {
                taken[i] = true;
            }
            out.push(Hhh {
                key: *p,
                score,
                gross: *gross,
                n: cnt,
                gross_n,
            });
        }
    }
    Ok(crate::report::to_patterns(h, out, enc.total))
}
