//! # autofocus — causal pattern aggregation (Microscope §4.4)
//!
//! The diagnosis engine produces many packet-level *causal relations*
//! `<culprit flow, culprit location> → <victim flow, victim location>: score`.
//! Operators want a short ranked list. This crate turns the relations into
//! *patterns*: multi-dimensional aggregates over twelve hierarchical
//! dimensions (six per side), reported as exact **compressed hierarchical
//! heavy hitters** (HHH), the AutoFocus definition applied to causal
//! relations instead of traffic.
//!
//! ## Dimensions (per side: culprit, victim)
//! - source IPv4 prefix and destination IPv4 prefix, bit granularity
//!   (`/32` … `/0`);
//! - protocol (exact → any);
//! - source port range and destination port range: aligned blocks
//!   (see [`PortHierarchy`]; default exact → 16 → 256 → 1024 ports →
//!   well-known `0-1023` / registered `1024-65535` → any);
//! - location: NF instance → NF type → any (traffic sources are locations of
//!   type `"source"`).
//!
//! Every dimension is a tree of sets (a laminar family); a pattern is one
//! node per dimension, and pattern `Q` is *inside* `P` when every node of `Q`
//! lies inside the node of `P`.
//!
//! ## Definition (the contract of [`aggregate`]; details in `docs/autofocus.md`)
//! With `T` the total score and `th` the threshold:
//! 1. *Restricted hierarchy.* Per dimension alone, the exact one-dimensional
//!    HHH nodes are computed; the multi-dimensional lattice keeps, per
//!    dimension, the root, the leaves, every protocol and location level, the
//!    port classes, and those one-dimensional HHH nodes (AutoFocus builds its
//!    multidimensional clusters the same way), plus the port blocks that join
//!    two or more such nodes (so nine significant ports 2000–2008 can still
//!    be named together as `2000-2015`).
//! 2. *Decision order.* Patterns are decided one at a time, most specific
//!    first (larger sum of levels), then larger gross score, then key order.
//! 3. *Report.* A pattern is reported when its *compressed score* is at least
//!    `th·T`. Under [`CountRule::Split`] (default) the compressed score counts
//!    the relations no earlier reported pattern holds, so each relation counts
//!    once and there are at most `1/th` patterns; under
//!    [`CountRule::Overlap`] (AutoFocus's rule) it excludes only relations held
//!    by reported patterns strictly inside it.
//!
//! The reported set is unique and computed exactly: no sketches, no sampling.
//!
//! ## Invariants the implementation rests on (proved in `docs/autofocus.md`)
//! 1. *Monotonicity.* A pattern's score is at most that of any pattern above
//!    it, so a reported pattern and all of its one-dimensional projections
//!    are *frequent* (score ≥ `th·T`). Replacing each coordinate by its lowest
//!    kept frequent ancestor therefore changes no frequent pattern's
//!    membership, hence not the result (AutoFocus's
//!    unidimensional-then-multidimensional pruning, made exact).
//! 2. *Closedness.* Every reported pattern is the closure (per-dimension least
//!    common ancestor) of the relations it holds, so only frequent *closed*
//!    patterns are candidates; they are enumerated by closure extension from
//!    the root (prefix-preserving, so once each, under the split rule).
//! 3. *Two stages (§4.4).* Stage 1 groups relations by exact culprit side
//!    (flow, location) and, per group in parallel (rayon), folds the victim
//!    side to the lowest significant one-dimensional victim aggregates,
//!    producing intermediate patterns. Stage 2 runs the exact HHH over the
//!    intermediate patterns. By (1) the result equals the one-stage HHH over
//!    the raw relations; `tests/two_stage.rs` checks it against the exhaustive
//!    [`mod@reference`] implementation. (The paper's stage 1 uses group-local
//!    significance, which can lose patterns significant only across groups.)
//!
//! Bad input never panics: relations with a non-finite or non-positive score
//! are skipped and counted in [`Report::ignored`]; an invalid threshold is
//! reported by [`Config::validate`] and replaced by the default in
//! [`aggregate`] (with a note in [`Report::notes`]).
#![deny(unsafe_code)]
#![warn(missing_docs)]

use collector::FiveTuple;
use serde::{Deserialize, Serialize};

mod engine;
mod hier;
mod pattern;
pub mod reference;
mod report;
mod split;

pub use pattern::{LocationPattern, Pattern, PortRange, SidePattern};
pub use report::{gap_summary, GapSummary, LocationMatrix, MatrixCell, Report};

/// Where a culprit or a victim was observed: an NF instance, or a traffic
/// source (`nf_type == "source"`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Location {
    /// Instance name, unique in the topology (e.g. `fw2`, `src0`).
    pub instance: String,
    /// Type name shared by instances of the same NF (e.g. `firewall`), or
    /// [`Location::SOURCE_TYPE`] for traffic sources.
    pub nf_type: String,
}

impl Location {
    /// The type name used for traffic sources.
    pub const SOURCE_TYPE: &'static str = "source";

    /// An NF instance of the given type.
    pub fn nf(instance: impl Into<String>, nf_type: impl Into<String>) -> Self {
        Location {
            instance: instance.into(),
            nf_type: nf_type.into(),
        }
    }

    /// A traffic source.
    pub fn source(instance: impl Into<String>) -> Self {
        Location::nf(instance, Self::SOURCE_TYPE)
    }
}

/// One side of a causal relation: a flow at a location.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Side {
    /// The packet's (or culprit packets') 5-tuple.
    pub flow: FiveTuple,
    /// Where it was observed.
    pub location: Location,
}

/// A packet-level causal relation `<culprit> → <victim>: score`.
///
/// A relation whose culprit is a packet set is expanded by the caller into one
/// relation per culprit flow, with the score split between them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Relation {
    /// Culprit flow and location (NF for local processing, source for input
    /// traffic).
    pub culprit: Side,
    /// Victim flow and the NF where it was late or lost.
    pub victim: Side,
    /// Blame score, > 0 and finite (others are ignored and counted).
    pub score: f64,
    /// Time from the culprit to the victim, nanoseconds (for the gap
    /// distribution only; non-finite values are left out of it).
    pub gap_ns: f64,
}

/// A causal relation with its locations given as indices into a location
/// table (see [`aggregate_flows`]): the compact input for millions of
/// relations over a handful of locations (no strings per relation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FlowRelation {
    /// Culprit flow.
    pub culprit: FiveTuple,
    /// Culprit location: index into the location table.
    pub culprit_location: u32,
    /// Victim flow.
    pub victim: FiveTuple,
    /// Victim location: index into the location table.
    pub victim_location: u32,
    /// Blame score, > 0 and finite (others are ignored and counted).
    pub score: f64,
    /// Time from the culprit to the victim, nanoseconds.
    pub gap_ns: f64,
}

/// How port numbers generalize.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum PortHierarchy {
    /// AutoFocus's original: exact port → `0-1023` / `1024-65535` → any.
    Classic,
    /// Aligned blocks: exact port, then blocks of `2^step_bits`,
    /// `2^(2·step_bits)`, … ports while smaller than 1024, then the 1024-port
    /// block, then `0-1023` / `1024-65535`, then any. `step_bits = 1` is the
    /// full binary hierarchy; the default `4` gives 1 → 16 → 256 → 1024 ports.
    /// Valid: 1..=10.
    Aligned {
        /// log2 of the growth factor between consecutive levels.
        step_bits: u8,
    },
}

impl Default for PortHierarchy {
    fn default() -> Self {
        PortHierarchy::Aligned { step_bits: 4 }
    }
}

/// How the compressed score discounts relations already held by reported
/// patterns. Patterns are decided one at a time in a fixed order — the most
/// specific first (larger sum of levels over the twelve dimensions), then the
/// larger gross score, then a fixed key order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountRule {
    /// Each relation counts toward at most one reported pattern: a pattern's
    /// compressed score is the score of its relations that no earlier
    /// reported pattern took. Compressed scores add up to at most the total,
    /// so there are at most `1 / threshold` patterns (≤ 100 at 1 %).
    #[default]
    Split,
    /// AutoFocus's and Cormode et al.'s *overlap* rule: a pattern's compressed
    /// score excludes only relations held by reported patterns strictly below
    /// it; a relation may count in several incomparable patterns. On
    /// CAIDA-like data this reports thousands of near-duplicate patterns.
    Overlap,
}

/// Aggregation settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Report threshold as a fraction of the total score, in (0, 1].
    pub threshold: f64,
    /// Port generalization.
    pub port_hierarchy: PortHierarchy,
    /// How a relation held by several reported patterns is counted.
    pub rule: CountRule,
    /// Worker threads; 0 means rayon's global pool.
    pub threads: usize,
}

/// The default threshold: 1 % of the total score.
pub const DEFAULT_THRESHOLD: f64 = 0.01;

impl Default for Config {
    fn default() -> Self {
        Config {
            threshold: DEFAULT_THRESHOLD,
            port_hierarchy: PortHierarchy::default(),
            rule: CountRule::default(),
            threads: 0,
        }
    }
}

/// Invalid configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The threshold is not in (0, 1].
    #[error("threshold {0} is not a fraction in (0, 1]")]
    Threshold(f64),
    /// `step_bits` outside 1..=10.
    #[error("port hierarchy step_bits {0} is not in 1..=10")]
    StepBits(u8),
}

impl Config {
    /// Checks every field; lists the first problem.
    ///
    /// Errors: [`ConfigError::Threshold`] when `threshold` is not finite or not
    /// in (0, 1]; [`ConfigError::StepBits`] when an aligned port hierarchy has
    /// `step_bits` outside 1..=10.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.threshold.is_finite() && self.threshold > 0.0 && self.threshold <= 1.0) {
            return Err(ConfigError::Threshold(self.threshold));
        }
        if let PortHierarchy::Aligned { step_bits } = self.port_hierarchy {
            if !(1..=10).contains(&step_bits) {
                return Err(ConfigError::StepBits(step_bits));
            }
        }
        Ok(())
    }
}

/// A threshold string that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid threshold {input:?}: expected a fraction in (0, 1] such as 0.01, or a percentage in (0, 100] such as 1%")]
pub struct ThresholdError {
    /// The text given.
    pub input: String,
}

/// Parses a threshold given as a fraction (`0.01`) or a percentage (`1%`).
/// `parse_threshold("1%") == parse_threshold("0.01")`.
///
/// Errors: [`ThresholdError`] when the text is not a number (optionally
/// followed by `%`), or the value is not in (0, 1] (a percentage: (0, 100]).
pub fn parse_threshold(s: &str) -> Result<f64, ThresholdError> {
    let err = || ThresholdError {
        input: s.to_string(),
    };
    let t = s.trim();
    let (num, pct) = match t.strip_suffix('%') {
        Some(n) => (n.trim(), true),
        None => (t, false),
    };
    let v: f64 = num.parse().map_err(|_| err())?;
    let v = if pct { v / 100.0 } else { v };
    if v.is_finite() && v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(err())
    }
}

/// Aggregates relations into the ranked compressed-HHH patterns and the
/// operator's summaries. Never fails: invalid relations are skipped and
/// counted, an invalid config is replaced field by field by the default (see
/// [`Report::notes`]).
pub fn aggregate(relations: &[Relation], config: &Config) -> Report {
    let (locations, flows) = intern(relations);
    aggregate_flows(&locations, &flows, config)
}

/// Interns the locations of `relations`: the location table and the
/// relations in the same order, with locations as table indices.
pub fn intern(relations: &[Relation]) -> (Vec<Location>, Vec<FlowRelation>) {
    let mut index: std::collections::HashMap<Location, u32> = std::collections::HashMap::new();
    let mut table: Vec<Location> = Vec::new();
    let mut id = |l: &Location| -> u32 {
        if let Some(&i) = index.get(l) {
            return i;
        }
        table.push(l.clone());
        let i = table.len() as u32 - 1;
        index.insert(l.clone(), i);
        i
    };
    let flows = relations
        .iter()
        .map(|r| FlowRelation {
            culprit: r.culprit.flow,
            culprit_location: id(&r.culprit.location),
            victim: r.victim.flow,
            victim_location: id(&r.victim.location),
            score: r.score,
            gap_ns: r.gap_ns,
        })
        .collect();
    (table, flows)
}

/// [`aggregate`] over relations whose locations are indices into
/// `locations` (as built by [`intern`], or by a caller that already has
/// them interned). A relation whose location index is out of range is
/// skipped and counted in [`Report::ignored`], like an invalid score. The
/// result equals [`aggregate`] over the same relations with the locations
/// written out.
pub fn aggregate_flows(
    locations: &[Location],
    relations: &[FlowRelation],
    config: &Config,
) -> Report {
    let mut notes = Vec::new();
    let mut cfg = config.clone();
    if let Err(e) = cfg.validate() {
        match e {
            ConfigError::Threshold(_) => {
                notes.push(format!("{e}; using the default {DEFAULT_THRESHOLD}"));
                cfg.threshold = DEFAULT_THRESHOLD;
            }
            ConfigError::StepBits(_) => {
                notes.push(format!("{e}; using the default port hierarchy"));
                cfg.port_hierarchy = PortHierarchy::default();
            }
        }
        // Both fields may be wrong.
        if let Err(e) = cfg.validate() {
            notes.push(format!("{e}; using the default port hierarchy"));
            cfg.port_hierarchy = PortHierarchy::default();
        }
    }
    let run = || report::build(locations, relations, &cfg, notes);
    if cfg.threads > 0 {
        match rayon::ThreadPoolBuilder::new()
            .num_threads(cfg.threads)
            .build()
        {
            Ok(pool) => pool.install(run),
            Err(_) => run(),
        }
    } else {
        run()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_forms_agree() {
        assert_eq!(parse_threshold("1%"), parse_threshold("0.01"));
        assert_eq!(parse_threshold("1%").unwrap(), 0.01);
        assert_eq!(parse_threshold(" 2.5 % ").unwrap(), 0.025);
        assert_eq!(parse_threshold("100%").unwrap(), 1.0);
        assert_eq!(Config::default().threshold, 0.01);
        for bad in [
            "", "%", "0", "0%", "-1%", "101%", "1.5", "abc", "nan", "inf", "1%%",
        ] {
            assert!(parse_threshold(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn config_validation_names_the_field() {
        let mut c = Config::default();
        assert!(c.validate().is_ok());
        c.threshold = 0.0;
        assert_eq!(c.validate(), Err(ConfigError::Threshold(0.0)));
        c.threshold = 0.5;
        c.port_hierarchy = PortHierarchy::Aligned { step_bits: 0 };
        assert_eq!(c.validate(), Err(ConfigError::StepBits(0)));
    }
}
