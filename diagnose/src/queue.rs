//! Queuing periods and local diagnosis (paper §4.1, eq. (1) and (2)), and
//! peak-rate estimation.

use crate::dag::Dag;
use crate::index::{Index, NONE};
use crate::reconstruct::Journeys;
use collector::Role;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a node's peak rate `r_f` came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateOrigin {
    /// `Config::peak_rates`.
    Config,
    /// The trace's topology (`NfSpec::peak_rate_pps`).
    Topology,
    /// Estimated from the trace: the packet-weighted median of the
    /// dequeue rate between consecutive full rx batches (the NF was busy
    /// and the queue backlogged), pooled over all instances of the type.
    Estimated { nf_type: String, samples: u64 },
    /// No run of full batches: the highest dequeue rate over 1 ms bins,
    /// a lower bound of the true peak.
    Fallback,
    /// Sources and sinks have no queue to diagnose.
    NotApplicable,
}

/// Peak rate of one node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeakRate {
    pub node: String,
    pub pps: f64,
    pub origin: RateOrigin,
}

/// Determines `r_f` for every node.
pub(crate) fn peak_rates(dag: &Dag, ix: &Index, overrides: &[(String, f64)]) -> Vec<PeakRate> {
    // Samples per NF type: (rate, weight).
    let mut by_type: BTreeMap<&str, Vec<(f64, u32)>> = BTreeMap::new();
    for node in dag.nodes.iter().filter(|n| n.role == Role::Nf) {
        let v = by_type.entry(node.nf_type.as_str()).or_default();
        for &s in &node.rx_streams {
            let r = ix.stream_batch_range(s);
            for b in r.start..r.end.saturating_sub(1) {
                let len = ix.batch_obs[b as usize + 1] - ix.batch_obs[b as usize];
                let full = len > 0 && !ix.batch_emptied(b);
                let next_full = !ix.batch_emptied(b + 1);
                let dt = ix.batch_time[b as usize + 1] - ix.batch_time[b as usize];
                if full && next_full && dt > 0 {
                    v.push((len as f64 * 1e9 / dt as f64, len));
                }
            }
        }
    }
    let estimates: BTreeMap<&str, (f64, u64)> = by_type
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(t, mut v)| {
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            let total: u64 = v.iter().map(|x| x.1 as u64).sum();
            let mut acc = 0u64;
            let mut med = v[v.len() - 1].0;
            for &(r, w) in &v {
                acc += w as u64;
                if acc * 2 >= total {
                    med = r;
                    break;
                }
            }
            (t, (med, v.len() as u64))
        })
        .collect();
    dag.nodes
        .iter()
        .map(|node| {
            let over = overrides
                .iter()
                .find(|(k, _)| *k == node.name)
                .or_else(|| overrides.iter().find(|(k, _)| *k == node.nf_type));
            let (pps, origin) = if node.role != Role::Nf {
                (0.0, RateOrigin::NotApplicable)
            } else if let Some((_, r)) = over {
                (*r, RateOrigin::Config)
            } else if let Some(r) = node.topology_peak_pps {
                (r, RateOrigin::Topology)
            } else if let Some(&(r, n)) = estimates.get(node.nf_type.as_str()) {
                (
                    r,
                    RateOrigin::Estimated {
                        nf_type: node.nf_type.clone(),
                        samples: n,
                    },
                )
            } else {
                (max_bin_rate(ix, &node.rx_streams), RateOrigin::Fallback)
            };
            PeakRate {
                node: node.name.clone(),
                pps,
                origin,
            }
        })
        .collect()
}

fn max_bin_rate(ix: &Index, streams: &[u32]) -> f64 {
    const BIN: i64 = 1_000_000;
    let mut best = 0u64;
    for &s in streams {
        let r = ix.stream_batch_range(s);
        let (mut bin, mut count) = (i64::MIN, 0u64);
        for b in r.start..r.end {
            let t = ix.batch_time[b as usize].div_euclid(BIN);
            if t != bin {
                best = best.max(count);
                bin = t;
                count = 0;
            }
            count += (ix.batch_obs[b as usize + 1] - ix.batch_obs[b as usize]) as u64;
        }
        best = best.max(count);
    }
    best as f64 * 1e9 / BIN as f64
}

/// The queuing period of one packet at one NF and its local scores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Period {
    /// Rx stream (queue).
    pub stream: u32,
    /// PreSet(p): observations `start..end` of the stream.
    pub start: u32,
    pub end: u32,
    /// Start of the period: arrival of PreSet's first packet after the
    /// last emptying dequeue (`t` when PreSet is empty), ns.
    pub tau: i64,
    /// Arrival of the packet, ns.
    pub t: i64,
    pub n_i: u32,
    pub n_p: u32,
    pub s_i: f64,
    pub s_p: f64,
    /// True when the NF dequeued more than `r_f·T` packets in T (a whole
    /// batch is dequeued at once, ahead of its processing; or `r_f` is too
    /// low): the observed count then replaces `r_f·T`.
    pub clamped: bool,
}

impl Period {
    pub fn queue_len(&self) -> u32 {
        self.n_i - self.n_p
    }
}

/// Eq. (1) and (2), with `r_f·T` raised to `n_p` when the NF processed more
/// than that (so no score is negative and `S_i + S_p = n_i − n_p` holds).
pub fn scores(n_i: u32, n_p: u32, r_t: f64) -> (f64, f64, bool) {
    let (ni, np) = (n_i as f64, n_p as f64);
    let clamped = np > r_t;
    let r = r_t.max(np);
    if ni >= r {
        (ni - r, r - np, clamped)
    } else {
        (0.0, ni - np, clamped)
    }
}

/// What is being diagnosed at a node.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target {
    /// A packet dequeued at the node: its rx observation.
    Received(u32),
    /// A packet that reached rx stream `stream` of the node at `t` and was
    /// dropped there.
    Lost { stream: u32, t: i64 },
}

/// Arrival time of rx observation `x`: the upstream tx time when mapped,
/// else its dequeue time.
#[inline]
pub(crate) fn arrival(ix: &Index, j: &Journeys, x: u32) -> i64 {
    let p = j.prev[x as usize];
    if p != NONE {
        ix.time(p)
    } else {
        ix.time(x)
    }
}

/// Local diagnosis: the queuing period of the target and S_i, S_p.
/// `empties` are the emptying batches of the target's stream, ascending.
pub(crate) fn local(
    ix: &Index,
    j: &Journeys,
    empties: &[u32],
    rate_pps: f64,
    target: Target,
) -> Period {
    let (stream, t, bx, x_end) = match target {
        Target::Received(x) => {
            let s = ix.stream_of(x);
            (s, arrival(ix, j, x), ix.obs_batch[x as usize], Some(x))
        }
        Target::Lost { stream, t } => (stream, t, u32::MAX, None),
    };
    let sr = ix.stream_obs(stream);
    let br = ix.stream_batch_range(stream);
    let before = empties.partition_point(|&e| e < bx);
    let mut k = empties[..before].partition_point(|&e| ix.batch_time[e as usize] <= t);
    // The queuing period is the NF's busy period (§4.1: "the queue with
    // pending packets when p arrives"): packets dequeued together are
    // processed one after the other, so an emptying dequeue leaves the NF
    // idle only once that batch could have been processed at the peak rate
    // (dequeue time + len/r_f). When the next packet (PreSet's first, or p
    // itself) arrived before that, the batch was still pending ahead of it
    // and the period extends back to the previous emptying dequeue.
    while k > 0 {
        let e = empties[k - 1];
        let next = ix.batch_obs[e as usize + 1];
        let first = if next < sr.end && x_end.is_none_or(|x| next < x) {
            arrival(ix, j, next).min(t)
        } else {
            t
        };
        if served_by(ix, e, rate_pps, first) {
            break;
        }
        k -= 1;
    }
    let (first_batch, start, tau) = if k == 0 {
        let tau = if sr.is_empty() {
            t
        } else {
            arrival(ix, j, sr.start).min(t)
        };
        (br.start, sr.start, tau)
    } else {
        let e = empties[k - 1];
        (
            e + 1,
            ix.batch_obs[e as usize + 1],
            ix.batch_time[e as usize],
        )
    };
    let end = match x_end {
        Some(x) => x,
        None => {
            let mut o = start;
            while o < sr.end && arrival(ix, j, o) < t {
                o += 1;
            }
            o
        }
    };
    // Dequeues in (tau, t]: batches from first_batch whose time <= t.
    let last_b = if bx == u32::MAX {
        br.end
    } else {
        (bx + 1).min(br.end)
    };
    let times = &ix.batch_time[first_batch as usize..last_b as usize];
    let nb = times.partition_point(|&bt| bt <= t);
    let dq_end = ix.batch_obs[first_batch as usize + nb].min(end).max(start);
    // Packets of the batch in service at t (the last one dequeued) not yet
    // processed at the peak rate are still pending: not counted in n_p.
    let pending = if nb > 0 {
        let b = first_batch as usize + nb - 1;
        let lo = ix.batch_obs[b].max(start);
        let in_period = dq_end.saturating_sub(lo);
        let done = ((t - ix.batch_time[b]).max(0) as f64 * rate_pps / 1e9).floor();
        let done = if done.is_finite() && done >= 0.0 {
            done.min(u32::MAX as f64) as u32
        } else {
            u32::MAX
        };
        let len = ix.batch_obs[b + 1] - ix.batch_obs[b];
        // The batch's first `done` packets are processed; of the rest, those
        // inside the period are pending.
        len.saturating_sub(done).min(in_period)
    } else {
        0
    };
    let n_i = end - start;
    let n_p = dq_end - start - pending;
    // The period runs from the first enqueue after the queue emptied (the
    // arrival of PreSet's first packet, paper Fig. 5) to the arrival of p.
    let tau = if n_i > 0 {
        arrival(ix, j, start).clamp(tau.min(t), t)
    } else {
        t
    };
    let period_ns = (t - tau).max(0) as f64;
    let (s_i, s_p, clamped) = scores(n_i, n_p, rate_pps * period_ns / 1e9);
    Period {
        stream,
        start,
        end,
        tau,
        t,
        n_i,
        n_p,
        s_i,
        s_p,
        clamped,
    }
}

/// True when emptying batch `e` could have been fully processed at the
/// peak rate by time `t` (its dequeue time plus `len / r_f`).
fn served_by(ix: &Index, e: u32, rate_pps: f64, t: i64) -> bool {
    let len = (ix.batch_obs[e as usize + 1] - ix.batch_obs[e as usize]) as f64;
    if rate_pps.is_nan() || rate_pps <= 0.0 || rate_pps.is_infinite() {
        return true;
    }
    ix.batch_time[e as usize] as f64 + len * 1e9 / rate_pps <= t as f64
}

/// Emptying batches of every stream (rx streams only are ever queried).
pub(crate) fn emptying_batches(ix: &Index) -> Vec<Vec<u32>> {
    (0..ix.n_streams() as u32)
        .map(|s| {
            let r = ix.stream_batch_range(s);
            (r.start..r.end).filter(|&b| ix.batch_emptied(b)).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn paper_cases() {
        // High input: n_i = 100 ≥ r·T = 60, n_p = 50.
        assert_eq!(scores(100, 50, 60.0), (40.0, 10.0, false));
        // Low input: n_i = 40 < r·T = 60, n_p = 10 → all local.
        assert_eq!(scores(40, 10, 60.0), (0.0, 30.0, false));
        // Processed more than r·T: clamp.
        assert_eq!(scores(100, 80, 60.0), (20.0, 0.0, true));
    }

    proptest! {
        #[test]
        fn scores_cover_the_queue(n_i in 0u32..5000, frac in 0.0f64..=1.0, r_t in 0.0f64..6000.0) {
            let n_p = (n_i as f64 * frac).floor() as u32;
            let (si, sp, _) = scores(n_i, n_p, r_t);
            prop_assert!(si >= 0.0 && sp >= 0.0);
            prop_assert!((si + sp - (n_i - n_p) as f64).abs() < 1e-6);
        }
    }
}
