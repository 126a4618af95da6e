//! The eval matching rule: which entry of a method's ranking is the injected
//! culprit, and at which rank it stands.
//!
//! Both diagnosers' rankings are first converted to [`Candidate`]s (a
//! location plus the culprit flows with their score shares), then one rule
//! decides for both:
//!
//! - interrupt → the candidate `Nf(fault.nf)`;
//! - burst → a `Source(_)` candidate whose flow breakdown is led by the
//!   burst flows: among its K heaviest flows (K = number of burst flows),
//!   burst flows carry more than half of the score. (A source culprit's
//!   score always includes the background packets that arrived in the same
//!   queuing period, so "burst flows > 50% of the whole score" would fail
//!   for correct diagnoses whenever the burst is not most of the traffic;
//!   what an operator reads is which flows lead the breakdown.)
//! - bug → `Nf(fault.nf)`; for the stricter "NF+flows" rank, the same NF
//!   whose culprit flows include a bug-triggering flow. (The buggy NF's
//!   culprit packets are everything it processed slowly in the queuing
//!   period; the few bug packets are the cause but not the bulk, so
//!   "include" rather than "mostly".)
//!
//! Flows are compared exactly, except that a bug flow also matches a flow
//! with the same destination address, destination port and protocol: the
//! NATs rewrite source address and port, and a diagnoser may name culprit
//! flows by their post-NAT tuple. Bug flows are built with distinct
//! destination ports, so this key still names them uniquely.

use collector::FiveTuple;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Where a culprit is, as both diagnosers can name it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Loc {
    /// Local processing at this NF.
    Nf(String),
    /// Input traffic from this source.
    Source(String),
}

impl std::fmt::Display for Loc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Loc::Nf(n) => write!(f, "nf:{n}"),
            Loc::Source(s) => write!(f, "source:{s}"),
        }
    }
}

/// One entry of a ranking, best first in the slice that holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub loc: Loc,
    pub score: f64,
    /// Culprit flows with the part of `score` each carries.
    pub flows: Vec<(FiveTuple, f64)>,
}

/// The kind of injected problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Burst,
    Interrupt,
    Bug,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Burst, Kind::Interrupt, Kind::Bug];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Burst => "burst",
            Kind::Interrupt => "interrupt",
            Kind::Bug => "bug",
        }
    }
}

/// The injected culprit of one fault, as the matching rule needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub kind: Kind,
    /// The faulty NF (interrupt, bug).
    pub nf: Option<String>,
    /// Burst flows, or bug-triggering flows.
    pub flows: Vec<FiveTuple>,
}

fn nat_key(t: &FiveTuple) -> (u32, u16, u8) {
    (t.dst_ip, t.dst_port, t.proto)
}

impl Target {
    /// Share of the candidate's score carried by this target's flows. Flow
    /// parts are absolute (parts of `score`); the denominator is the larger
    /// of `score` and the listed parts, so score a ranking does not break
    /// down by flow counts against the match.
    fn flow_share(&self, c: &Candidate, nat_tolerant: bool) -> f64 {
        let flows = &c.flows;
        let exact: HashSet<&FiveTuple> = self.flows.iter().collect();
        let keys: HashSet<(u32, u16, u8)> = self.flows.iter().map(nat_key).collect();
        let listed: f64 = flows.iter().map(|(_, s)| s.max(0.0)).sum();
        let total = listed.max(c.score);
        if total <= 0.0 {
            return 0.0;
        }
        let hit: f64 = flows
            .iter()
            .filter(|(f, _)| exact.contains(f) || (nat_tolerant && keys.contains(&nat_key(f))))
            .map(|(_, s)| s.max(0.0))
            .sum();
        hit / total
    }

    /// True when the target's flows carry most of the score among the
    /// candidate's K heaviest flows, K = the number of target flows: the
    /// burst flows are what the culprit's flow breakdown leads with.
    fn heavy_flows_mostly_mine(&self, c: &Candidate) -> bool {
        let mine: HashSet<&FiveTuple> = self.flows.iter().collect();
        let k = self
            .flows
            .iter()
            .map(|f| (f.src_ip, f.dst_ip, f.src_port, f.dst_port, f.proto))
            .collect::<HashSet<_>>()
            .len()
            .max(1);
        let mut flows: Vec<&(FiveTuple, f64)> = c.flows.iter().filter(|(_, s)| *s > 0.0).collect();
        flows.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top = &flows[..flows.len().min(k)];
        let total: f64 = top.iter().map(|(_, s)| s).sum();
        let hit: f64 = top
            .iter()
            .filter(|(f, _)| mine.contains(f))
            .map(|(_, s)| s)
            .sum();
        total > 0.0 && hit > 0.5 * total
    }

    /// True when `c` is this target's culprit. `strict` asks for the
    /// NF+flows match of bugs (ignored for other kinds).
    pub fn matches(&self, c: &Candidate, strict: bool) -> bool {
        match self.kind {
            Kind::Interrupt => matches!(&c.loc, Loc::Nf(n) if Some(n) == self.nf.as_ref()),
            Kind::Burst => matches!(c.loc, Loc::Source(_)) && self.heavy_flows_mostly_mine(c),
            Kind::Bug => {
                matches!(&c.loc, Loc::Nf(n) if Some(n) == self.nf.as_ref())
                    && (!strict || self.flow_share(c, true) > 0.0)
            }
        }
    }

    /// 1-based rank of the first matching candidate, `None` when the ranking
    /// does not name the culprit at all.
    pub fn rank_in(&self, ranking: &[Candidate], strict: bool) -> Option<usize> {
        ranking
            .iter()
            .position(|c| self.matches(c, strict))
            .map(|p| p + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ft(i: u32) -> FiveTuple {
        FiveTuple {
            src_ip: i,
            dst_ip: 1000 + i,
            src_port: 1,
            dst_port: 10 + i as u16,
            proto: 6,
        }
    }

    fn cand(loc: Loc, flows: &[(u32, f64)]) -> Candidate {
        Candidate {
            loc,
            score: 1.0,
            flows: flows.iter().map(|(i, s)| (ft(*i), *s)).collect(),
        }
    }

    #[test]
    fn interrupt_matches_the_nf_only() {
        let t = Target {
            kind: Kind::Interrupt,
            nf: Some("fw2".into()),
            flows: vec![],
        };
        let r = vec![
            cand(Loc::Source("src".into()), &[(1, 1.0)]),
            cand(Loc::Nf("fw1".into()), &[]),
            cand(Loc::Nf("fw2".into()), &[]),
        ];
        assert_eq!(t.rank_in(&r, false), Some(3));
        assert_eq!(t.rank_in(&r[..2], false), None);
    }

    #[test]
    fn burst_needs_a_source_mostly_of_burst_flows() {
        let t = Target {
            kind: Kind::Burst,
            nf: None,
            flows: vec![ft(1), ft(2)],
        };
        let r = vec![
            cand(Loc::Nf("nat1".into()), &[(1, 1.0)]), // right flows, wrong place
            cand(Loc::Source("src".into()), &[(1, 0.2), (7, 0.8)]), // mostly others
            cand(Loc::Source("src".into()), &[(1, 0.4), (2, 0.3), (7, 0.3)]),
        ];
        assert_eq!(t.rank_in(&r, false), Some(3));
        // Burst flows lead the breakdown though background packets hold most
        // of the score: still the burst.
        let spread = cand(
            Loc::Source("src".into()),
            &[
                (1, 0.3),
                (2, 0.2),
                (7, 0.1),
                (8, 0.1),
                (9, 0.1),
                (10, 0.1),
                (11, 0.1),
            ],
        );
        assert_eq!(t.rank_in(&[spread], false), Some(1));
    }

    #[test]
    fn bug_strict_needs_the_bug_flows_even_after_nat() {
        let t = Target {
            kind: Kind::Bug,
            nf: Some("fw2".into()),
            flows: vec![ft(5)],
        };
        let mut natted = ft(5);
        natted.src_ip = 0xdead;
        natted.src_port = 4242;
        let r = vec![
            cand(Loc::Nf("fw2".into()), &[(9, 1.0)]),
            Candidate {
                loc: Loc::Nf("fw2".into()),
                score: 0.5,
                flows: vec![(natted, 0.1), (ft(9), 0.9)],
            },
        ];
        assert_eq!(t.rank_in(&r, false), Some(1));
        assert_eq!(t.rank_in(&r, true), Some(2));
    }
}
