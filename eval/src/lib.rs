//! # eval — does diagnosis name the injected culprit?
//!
//! The accuracy evaluation of the Microscope paper (§6.2–§6.3) on our
//! simulator: simulate a scenario with injected problems and a
//! counterfactual ground truth ([`testbeds`]), diagnose the trace with
//! Microscope ([`diagnose`]) and with the NetMedic baseline ([`netmedic`]),
//! and for every labelled victim record the rank of the injected culprit in
//! each method's ranking.
//!
//! Layers:
//! - [`matching`]: the one rule deciding which ranking entry is the injected
//!   culprit (interrupt → its NF; burst → a source whose culprit flows are
//!   mostly burst flows; bug → its NF, and for the strict rank the NF with
//!   mostly the bug flows).
//! - [`stats`]: rank-1 / ≤2 / ≤5 shares per kind and overall, the rank CDF,
//!   mean and minimum over seeds.
//! - [`score_victims`] (this file): ties truth victims to each method's
//!   ranking. Truth and diagnosis are matched by packet slot (stream, batch
//!   seq, index in batch); when the engine reports a victim at a different
//!   slot of the same packet, by (NF, IPID) within a few milliseconds.
//! - [`run`]: the end-to-end pipeline on a scenario and seed(s), sweeps.
//! - [`report`]: tables and the `--json` document.
//! - [`replay`]: CAIDA-style captures drawn from the synthetic traffic
//!   model, for the replay regression suite (`eval/tests/replay.rs`).
//! - [`thresholds`]: the accuracy floors of the replay regression suite, in
//!   one place.
//!
//! Invariants: a victim the engine did not diagnose, or whose culprit a
//! method did not name, counts as a miss at every rank (never dropped from
//! the denominator); both methods see the same trace and the same victims.

#![deny(unsafe_code)]

pub mod matching;
pub mod replay;
pub mod report;
pub mod run;
pub mod stats;
pub mod thresholds;

use collector::FiveTuple;
use matching::{Candidate, Kind, Loc, Target};
use serde::{Deserialize, Serialize};
use stats::{MethodAccuracy, RankRecord};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use tracefile::Trace;

/// A packet observation: batch record `seq` of `stream`, packet `idx`.
pub use collector::PacketSlot as Slot;

/// An injected fault, as the evaluation needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultInfo {
    pub id: u64,
    pub kind: Kind,
    pub nf: Option<String>,
    pub flows: Vec<FiveTuple>,
    pub start_ns: u64,
    pub end_ns: u64,
}

/// A labelled victim of the ground truth.
#[derive(Clone, Debug, PartialEq)]
pub struct VictimInfo {
    pub fault_id: u64,
    pub slot: Slot,
    pub nf: String,
    pub lost: bool,
}

/// What happened to one labelled victim in both methods.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VictimOutcome {
    pub fault_id: u64,
    pub kind: Kind,
    pub nf: String,
    pub slot: Slot,
    pub lost: bool,
    /// DAG hops from the injected culprit to the victim NF (0: the faulty NF
    /// itself; for bursts, hops from the source).
    pub hops: Option<usize>,
    pub microscope: RankRecord,
    pub netmedic: RankRecord,
    /// False when the engine produced no diagnosis for this packet.
    pub ms_diagnosed: bool,
    /// Microscope's first-ranked culprit when it was not the injected one,
    /// described for the failure analysis.
    pub ms_top: Option<String>,
    pub nm_top: Option<String>,
}

/// The result of one scenario + seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalResult {
    pub scenario: String,
    pub seed: u64,
    pub faults: usize,
    pub microscope: MethodAccuracy,
    pub netmedic: MethodAccuracy,
    pub victims: Vec<VictimOutcome>,
    /// NetMedic under `Options::netmedic_alt`, when asked for.
    #[serde(default)]
    pub netmedic_alt: Option<MethodAccuracy>,
    /// Wall-clock seconds per stage (informational).
    #[serde(default)]
    pub timings: Timings,
}

/// Wall-clock seconds spent per stage of one evaluation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub simulate_s: f64,
    pub microscope_s: f64,
    /// NetMedic modelling and ranking, plus scoring.
    pub netmedic_s: f64,
}

/// Errors of the evaluation pipeline.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("scenario: {0}")]
    Scenario(#[from] testbeds::scenario::ScenarioError),
    #[error("simulation failed: {0}")]
    Sim(String),
    #[error("Microscope diagnosis failed: {0}")]
    Diagnose(String),
    #[error("NetMedic failed: {0}")]
    NetMedic(#[from] netmedic::NetMedicError),
    #[error("ground truth: victim of fault {fault_id} refers to an unknown fault")]
    UnknownFault { fault_id: u64 },
    #[error("invalid evaluation request: {0}")]
    Invalid(String),
}

/// Hop distance in the topology from `from` to `to` (BFS), if reachable.
pub fn hops(trace: &Trace, from: &str, to: &str) -> Option<usize> {
    let topo = trace.meta.topology.as_ref()?;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut q = VecDeque::new();
    seen.insert(from, 0);
    q.push_back(from);
    while let Some(n) = q.pop_front() {
        let d = seen[n];
        if n == to {
            return Some(d);
        }
        for m in topo.downstream(n) {
            if !seen.contains_key(m) {
                seen.insert(m, d + 1);
                q.push_back(m);
            }
        }
    }
    None
}

fn describe(c: &Candidate, target: &Target) -> String {
    match &c.loc {
        Loc::Nf(n) => format!("nf {n}"),
        Loc::Source(s) => {
            let mine: f64 = c
                .flows
                .iter()
                .filter(|(f, _)| target.flows.contains(f))
                .map(|(_, x)| x)
                .sum();
            let total: f64 = c.flows.iter().map(|(_, x)| x).sum::<f64>().max(c.score);
            if target.kind == Kind::Burst && total > 0.0 {
                format!(
                    "source {s} (burst flows {:.0}% of its score)",
                    100.0 * mine / total
                )
            } else {
                format!("source {s}")
            }
        }
    }
}

/// Bursts: 1-based rank of the first source culprit, flows not checked.
fn source_rank(r: &[Candidate], kind: Kind) -> Option<usize> {
    if kind != Kind::Burst {
        return None;
    }
    r.iter()
        .position(|c| matches!(c.loc, Loc::Source(_)))
        .map(|p| p + 1)
}

/// The IPID of the packet at `slot`, if the trace has it.
fn ipid_at(trace: &Trace, slot: &Slot) -> Option<u16> {
    let s = trace.streams.get(slot.stream as usize)?;
    let k = s.batches.binary_search_by_key(&slot.seq, |b| b.seq).ok()?;
    s.batches[k].ipids.get(slot.idx as usize).copied()
}

/// Ties each labelled victim to both methods' rankings and computes the
/// accuracy figures. `ms` maps a diagnosed packet slot to Microscope's
/// ranking for it. The NetMedic diagnosis runs here (configured by `nm_cfg`)
/// on the same trace.
///
/// Errors: a victim naming an unknown fault; NetMedic cannot model the trace.
pub fn score_victims(
    scenario: &str,
    seed: u64,
    trace: &Trace,
    faults: &[FaultInfo],
    victims: &[VictimInfo],
    ms: &HashMap<Slot, Vec<Candidate>>,
    nm_cfg: &netmedic::Config,
) -> Result<EvalResult, EvalError> {
    let started = std::time::Instant::now();
    let fault_by_id: HashMap<u64, &FaultInfo> = faults.iter().map(|f| (f.id, f)).collect();
    let mut nm = netmedic::netmedic(trace, nm_cfg)?;

    // Fallback index: (stream's NF, IPID) → Microscope slots, for victims the
    // engine reports at another observation of the same packet.
    let nf_of = |stream: u32| -> Option<&str> {
        trace
            .streams
            .get(stream as usize)
            .and_then(|s| s.info.as_ref())
            .map(|i| i.nf.as_str())
    };
    let mut by_ipid: HashMap<(String, u16), Vec<Slot>> = HashMap::new();
    for slot in ms.keys() {
        if let (Some(nf), Some(ipid)) = (nf_of(slot.stream), ipid_at(trace, slot)) {
            by_ipid
                .entry((nf.to_string(), ipid))
                .or_default()
                .push(*slot);
        }
    }
    const FALLBACK_NS: f64 = 5_000_000.0;
    let mut nm_cache: HashMap<(String, usize), Rc<Vec<Candidate>>> = HashMap::new();

    let mut out = Vec::with_capacity(victims.len());
    for v in victims {
        let f = fault_by_id
            .get(&v.fault_id)
            .ok_or(EvalError::UnknownFault {
                fault_id: v.fault_id,
            })?;
        let target = Target {
            kind: f.kind,
            nf: f.nf.clone(),
            flows: f.flows.clone(),
        };
        let t_ns = nm.model().batch_time_ns(v.slot.stream, v.slot.seq);

        // Microscope.
        let mut ms_rank = ms.get(&v.slot);
        if ms_rank.is_none() {
            if let (Some(ipid), Some(t)) = (ipid_at(trace, &v.slot), t_ns) {
                let cands = by_ipid.get(&(v.nf.clone(), ipid));
                let best = cands.into_iter().flatten().min_by(|a, b| {
                    let da = nm
                        .model()
                        .batch_time_ns(a.stream, a.seq)
                        .map(|x| (x - t).abs());
                    let db = nm
                        .model()
                        .batch_time_ns(b.stream, b.seq)
                        .map(|x| (x - t).abs());
                    da.unwrap_or(f64::INFINITY)
                        .total_cmp(&db.unwrap_or(f64::INFINITY))
                });
                if let Some(b) = best {
                    let d = nm
                        .model()
                        .batch_time_ns(b.stream, b.seq)
                        .map(|x| (x - t).abs())
                        .unwrap_or(f64::INFINITY);
                    if d <= FALLBACK_NS {
                        ms_rank = ms.get(b);
                    }
                }
            }
        }
        let ms_rec = RankRecord {
            kind: f.kind,
            rank: ms_rank.and_then(|r| target.rank_in(r, false)),
            strict_rank: ms_rank.and_then(|r| target.rank_in(r, true)),
            source_rank: ms_rank.and_then(|r| source_rank(r, f.kind)),
        };
        let ms_top = match (ms_rank, ms_rec.rank) {
            (Some(r), rank) if rank != Some(1) => r.first().map(|c| describe(c, &target)),
            _ => None,
        };

        // NetMedic, at the victim's NF and time (rankings are shared by all
        // victims of one NF in one window).
        let window = t_ns.and_then(|t| nm.model().window_of(t));
        let nm_cands: Rc<Vec<Candidate>> = match window {
            Some(w) => match nm_cache.get(&(v.nf.clone(), w)) {
                Some(c) => c.clone(),
                None => {
                    let c = Rc::new(match nm.diagnose_window(&v.nf, w) {
                        Ok(r) => r
                            .iter()
                            .map(|c| Candidate {
                                loc: match &c.component {
                                    netmedic::Component::Nf(n) => Loc::Nf(n.clone()),
                                    netmedic::Component::Source { source, .. } => {
                                        Loc::Source(source.clone())
                                    }
                                },
                                score: c.score,
                                // NetMedic gives shares; make them parts of the score.
                                flows: c.flows.iter().map(|(f, x)| (*f, x * c.score)).collect(),
                            })
                            .collect(),
                        Err(netmedic::NetMedicError::UnknownNf(_)) => Vec::new(),
                        Err(e) => return Err(e.into()),
                    });
                    nm_cache.insert((v.nf.clone(), w), c.clone());
                    c
                }
            },
            None => Rc::new(Vec::new()),
        };
        let nm_rec = RankRecord {
            kind: f.kind,
            rank: target.rank_in(&nm_cands, false),
            strict_rank: target.rank_in(&nm_cands, true),
            source_rank: source_rank(&nm_cands, f.kind),
        };
        let nm_top = if nm_rec.rank != Some(1) {
            nm_cands.first().map(|c| describe(c, &target))
        } else {
            None
        };

        let from = match f.kind {
            Kind::Burst => trace.meta.topology.as_ref().and_then(|t| {
                t.nfs
                    .iter()
                    .find(|n| n.role == collector::Role::Source)
                    .map(|n| n.name.clone())
            }),
            _ => f.nf.clone(),
        };
        out.push(VictimOutcome {
            fault_id: v.fault_id,
            kind: f.kind,
            nf: v.nf.clone(),
            slot: v.slot,
            lost: v.lost,
            hops: from.and_then(|from| hops(trace, &from, &v.nf)),
            microscope: ms_rec,
            netmedic: nm_rec,
            ms_diagnosed: ms_rank.is_some(),
            ms_top,
            nm_top,
        });
    }
    let ms_recs: Vec<RankRecord> = out.iter().map(|o| o.microscope.clone()).collect();
    let nm_recs: Vec<RankRecord> = out.iter().map(|o| o.netmedic.clone()).collect();
    Ok(EvalResult {
        scenario: scenario.to_string(),
        seed,
        faults: faults.len(),
        microscope: MethodAccuracy::from_records(&ms_recs),
        netmedic: MethodAccuracy::from_records(&nm_recs),
        victims: out,
        netmedic_alt: None,
        timings: Timings {
            netmedic_s: started.elapsed().as_secs_f64(),
            ..Timings::default()
        },
    })
}

#[cfg(test)]
mod tests;
