//! # netmedic — the NetMedic baseline, adapted to NF DAGs
//!
//! Microscope's paper (§6.1) compares against NetMedic (Kandula et al.,
//! "Detailed diagnosis in enterprise networks", SIGCOMM 2009) adapted to
//! NF chains. This crate is that baseline, fed the same trace Microscope
//! reads, so the evaluation compares two diagnosers on identical inputs.
//!
//! The method, in four steps (details and every constant in
//! `docs/netmedic.md`):
//!
//! 1. **Components and state** ([`model`]). Components are the NF instances
//!    and the traffic sources, a source split into flow aggregates (5-tuples
//!    hashed into [`Config::source_buckets`] buckets). Time is cut into
//!    windows ([`Config::window_ns`], default 10 ms, the paper's best
//!    setting). Per window an NF has six state variables computed from its
//!    rx/tx batch records — input (arrival) rate, rx (processing) rate, tx
//!    rate, peak queue-length estimate, share of full rx batches, and loss
//!    estimate; a source aggregate has its packet rate and its heaviest
//!    flow's packet count.
//! 2. **Abnormality** ([`stats`]). Each variable's value is compared with
//!    its history (mean μ, deviation σ over all windows) by
//!    `1 − 2·Q(|v−μ|/(√2·σ))`; a component's abnormality is the maximum over
//!    its variables.
//! 3. **Edge weights** ([`rank`]). The dependency graph has an edge wherever
//!    traffic flows (source aggregate → first-hop NF, NF → downstream NF).
//!    The weight of S→D now comes from joint history: the history is split
//!    into chunks; in each chunk the window where S was most similar to its
//!    current state is picked, and D's similarity to its current state then
//!    is averaged, weighted by S's similarity. A source that is normal now
//!    gets a low weight.
//! 4. **Ranking**. Path weight is the geometric mean of its edge weights;
//!    the impact I(c→e) is the best path weight (1 for c = e); the global
//!    impact S(c) = Σ_e I(c→e)·A_e; culprits of effect e are ranked by
//!    I(c→e)·S(c).
//!
//! Invariants: the model is a pure function of the trace and [`Config`];
//! every component reachable from the effect is ranked, never only the
//! abnormal ones (NetMedic ranks every possible culprit); NetMedic names
//! components, so NF culprits carry no flows, and a source aggregate names
//! the flows that pushed it above its usual volume.

#![deny(unsafe_code)]

pub mod model;
pub mod rank;
pub mod stats;

pub use model::{flow_hash, Component, Model, NF_VARS, SOURCE_VARS};
pub use rank::{NetMedic, RankedCulprit, WindowAnalysis};
pub use stats::AbnormalityFormula;

use serde::{Deserialize, Serialize};

/// The NF state variables NetMedic models.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NfVariables {
    /// input, rx, tx, queue, full_share, loss ([`NF_VARS`]).
    #[default]
    All,
    /// input, rx, tx only: the traffic rates the Microscope paper's NetMedic
    /// monitored (its CPU and memory counters are flat for busy-polling
    /// DPDK NFs).
    Rates,
}

/// NetMedic's knobs. Defaults follow the Microscope paper (10 ms windows)
/// and NetMedic's own choices where it had them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Window length in nanoseconds (default 10 ms).
    pub window_ns: u64,
    /// Flow-hash buckets per traffic source that carries 5-tuples (default 16).
    pub source_buckets: u32,
    /// History chunks for edge weights (default 10).
    pub chunks: usize,
    /// A component with abnormality below this is normal (default 0.8).
    pub abnormal_threshold: f64,
    /// Weight of an edge whose source is normal now (default 0.1).
    pub normal_edge_weight: f64,
    /// Weight of an edge whose source never was in a similar state in the
    /// history (default 0.8: NetMedic errs toward keeping such edges).
    pub unseen_edge_weight: f64,
    /// A chunk counts only if the source's best state difference in it is at
    /// most this (normalized, 0..1; default 0.25).
    pub similar_threshold: f64,
    /// Abnormality formula (default: the issue's, see docs).
    pub formula: AbnormalityFormula,
    /// Which NF state variables to use (default: all six).
    pub nf_variables: NfVariables,
    /// Cap on path-walk steps per component and window (a guard for large
    /// graphs; the paper's 16-NF DAG needs far fewer).
    pub max_paths: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            window_ns: 10_000_000,
            source_buckets: 16,
            chunks: 10,
            abnormal_threshold: 0.8,
            normal_edge_weight: 0.1,
            unseen_edge_weight: 0.8,
            similar_threshold: 0.25,
            formula: AbnormalityFormula::Issue,
            nf_variables: NfVariables::All,
            max_paths: 1_000_000,
        }
    }
}

impl Config {
    /// Checks ranges. Errors: [`NetMedicError::BadConfig`] naming the field.
    pub fn validate(&self) -> Result<(), NetMedicError> {
        let bad = |what: &str| Err(NetMedicError::BadConfig(what.to_string()));
        if self.window_ns == 0 {
            return bad("window_ns must be positive");
        }
        if self.source_buckets == 0 {
            return bad("source_buckets must be at least 1");
        }
        if self.chunks == 0 {
            return bad("chunks must be at least 1");
        }
        for (name, v) in [
            ("abnormal_threshold", self.abnormal_threshold),
            ("normal_edge_weight", self.normal_edge_weight),
            ("unseen_edge_weight", self.unseen_edge_weight),
            ("similar_threshold", self.similar_threshold),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(&format!("{name} must be in [0, 1], got {v}"));
            }
        }
        Ok(())
    }
}

/// Why NetMedic could not run.
#[derive(Debug, thiserror::Error)]
pub enum NetMedicError {
    #[error("trace has no topology in its metadata; NetMedic needs the NF graph")]
    NoTopology,
    #[error("trace holds no batch records on declared streams")]
    NoRecords,
    #[error("invalid NetMedic configuration: {0}")]
    BadConfig(String),
    #[error("NF `{0}` is not a component of the trace's topology")]
    UnknownNf(String),
    #[error("window {window} is outside the trace ({windows} windows)")]
    WindowOutOfRange { window: usize, windows: usize },
    #[error("time {ns} ns is outside the trace")]
    TimeOutOfRange { ns: f64 },
}

/// Convenience: model + diagnoser in one call.
pub fn netmedic<'t>(
    trace: &'t tracefile::Trace,
    cfg: &Config,
) -> Result<NetMedic<'t>, NetMedicError> {
    Ok(NetMedic::new(Model::build(trace, cfg)?))
}

#[cfg(test)]
mod tests;
