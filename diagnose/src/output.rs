//! What the engine produces: per-victim ranked culprits and causal
//! relations, serializable as JSON lines or a compact binary form.

use crate::DiagnoseError;
use collector::FiveTuple;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Read, Write};

/// One packet observation in the trace (shared with the simulator's truth).
pub use collector::PacketSlot;

/// A culprit location.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    /// Local processing at this NF instance (its S_p share).
    Nf(String),
    /// Input traffic from this traffic source.
    Source(String),
}

impl Location {
    pub fn name(&self) -> &str {
        match self {
            Location::Nf(n) | Location::Source(n) => n,
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Nf(n) => write!(f, "nf:{n}"),
            Location::Source(n) => write!(f, "source:{n}"),
        }
    }
}

/// One culprit of one victim.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Culprit {
    pub location: Location,
    /// Packets of the victim's queue attributed to this culprit.
    pub score: f64,
    /// Flows of the culprit packets with the part of `score` each carries
    /// (absolute, largest first, at most `Config::max_flows`; packets with
    /// no recorded 5-tuple are not listed).
    pub flows: Vec<(FiveTuple, f64)>,
    /// Victim arrival time minus the culprit packets' first event at the
    /// culprit location (score-weighted over merged branches), ns.
    pub gap_ns: f64,
    /// Number of culprit packets (PreSet packets for a source, packets
    /// processed in the queuing period for an NF).
    pub packets: u64,
    /// Time range of the culprit packets at the culprit location, ns.
    pub first_ns: i64,
    pub last_ns: i64,
    /// Recursion depth at which this culprit was found (0 = the victim NF).
    pub depth: u32,
}

/// The diagnosis of one victim packet at one NF.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VictimDiagnosis {
    /// Rx observation at the NF (for a lost packet: its last observation,
    /// the upstream tx).
    pub slot: PacketSlot,
    pub nf: String,
    pub flow: Option<FiveTuple>,
    /// End-to-end latency (delivered) or time from the source to the loss
    /// point (lost), ns; 0 when the journey's start is unknown.
    pub latency_ns: f64,
    /// Queuing delay at this NF (dequeue − arrival), ns; 0 for lost.
    pub local_delay_ns: f64,
    pub lost: bool,
    /// Arrival at the NF (upstream tx time), ns.
    pub arrival_ns: i64,
    /// Queuing period: length, n_i, n_p, S_i, S_p.
    pub period_ns: i64,
    pub n_i: u32,
    pub n_p: u32,
    pub s_i: f64,
    pub s_p: f64,
    /// Culprits sorted by score, descending; their scores plus
    /// `unattributed` sum to `n_i − n_p` (the queue length).
    pub ranked: Vec<Culprit>,
    /// Score that could not be attributed (PreSet packets whose journey
    /// could not be rebuilt).
    pub unattributed: f64,
    /// True when the recursion cap stopped a branch.
    pub truncated: bool,
}

impl VictimDiagnosis {
    pub fn queue_len(&self) -> u32 {
        self.n_i - self.n_p
    }
}

/// `<culprit packets, culprit location> → <victim packet, victim NF>: score`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CausalRelation {
    pub culprit: Location,
    /// Culprit packets summarised: count, time range and flows.
    pub culprit_packets: u64,
    pub culprit_first_ns: i64,
    pub culprit_last_ns: i64,
    pub culprit_flows: Vec<(FiveTuple, f64)>,
    pub culprit_nf_type: String,
    pub victim: PacketSlot,
    pub victim_nf: String,
    pub victim_nf_type: String,
    pub victim_flow: Option<FiveTuple>,
    pub score: f64,
    pub gap_ns: f64,
}

/// Writes relations as JSON lines.
pub fn write_jsonl<W: Write>(mut out: W, rels: &[CausalRelation]) -> std::io::Result<()> {
    for r in rels {
        serde_json::to_writer(&mut out, r)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Reads relations written by [`write_jsonl`]; `name` names the input in
/// errors.
pub fn read_jsonl<R: BufRead>(input: R, name: &str) -> Result<Vec<CausalRelation>, DiagnoseError> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|e| DiagnoseError::Input {
            name: name.to_string(),
            offset,
            reason: e.to_string(),
        })?;
        let len = line.len() as u64 + 1;
        if !line.trim().is_empty() {
            let r = serde_json::from_str(&line).map_err(|e| DiagnoseError::Input {
                name: name.to_string(),
                offset,
                reason: format!("line {}: expected a causal relation: {e}", i + 1),
            })?;
            out.push(r);
        }
        offset += len;
    }
    Ok(out)
}

/// Magic of the binary relation format.
pub const BIN_MAGIC: &[u8; 8] = b"MSREL\x00\x00\x01";

/// Writes relations in the compact binary form: [`BIN_MAGIC`], then
/// bincode 2 (standard config, varint integers) of the relation vector.
pub fn write_bin<W: Write>(mut out: W, rels: &[CausalRelation]) -> std::io::Result<()> {
    out.write_all(BIN_MAGIC)?;
    let bytes = bincode::serde::encode_to_vec(rels, bincode::config::standard())
        .map_err(std::io::Error::other)?;
    out.write_all(&bytes)?;
    out.flush()
}

/// Reads the binary form.
pub fn read_bin<R: Read>(mut input: R, name: &str) -> Result<Vec<CausalRelation>, DiagnoseError> {
    let mut buf = Vec::new();
    input
        .read_to_end(&mut buf)
        .map_err(|e| DiagnoseError::Input {
            name: name.to_string(),
            offset: 0,
            reason: e.to_string(),
        })?;
    if buf.len() < 8 || &buf[..8] != BIN_MAGIC {
        return Err(DiagnoseError::Input {
            name: name.to_string(),
            offset: 0,
            reason: "expected the binary relation magic MSREL".into(),
        });
    }
    let (rels, used): (Vec<CausalRelation>, usize) =
        bincode::serde::decode_from_slice(&buf[8..], bincode::config::standard()).map_err(|e| {
            DiagnoseError::Input {
                name: name.to_string(),
                offset: 8,
                reason: format!("expected bincode-encoded relations: {e}"),
            }
        })?;
    if 8 + used != buf.len() {
        return Err(DiagnoseError::Input {
            name: name.to_string(),
            offset: (8 + used) as u64,
            reason: "trailing bytes after the relations".into(),
        });
    }
    Ok(rels)
}

/// Expands relations into autofocus input: one relation per culprit flow
/// carrying that flow's part of the score. The part of a score not broken
/// down by flow (culprit packets beyond `Config::max_flows` flows) is left
/// out, so patterns are over flow-attributed score; a culprit with no flow
/// at all (no 5-tuple recorded anywhere) keeps its whole score on the
/// all-zero 5-tuple. A victim without a known flow gets the all-zero tuple.
///
/// Expanded relations with the same (culprit flow, culprit location, victim
/// flow, victim location) are merged, scores summed and the gap averaged by
/// score: the aggregation only ever sees those six coordinates, so its
/// patterns are unchanged, while the input shrinks by orders of magnitude
/// (paper-moderate 5 s: millions of expanded relations, 10+ GB, otherwise).
/// Gap percentiles belong to the causal relations themselves: see
/// [`gap_summary`].
pub fn to_autofocus(rels: &[CausalRelation]) -> Vec<autofocus::Relation> {
    let (locations, flows) = to_flow_relations(rels);
    flows
        .into_iter()
        .map(|f| autofocus::Relation {
            culprit: autofocus::Side {
                flow: f.culprit,
                location: locations[f.culprit_location as usize].clone(),
            },
            victim: autofocus::Side {
                flow: f.victim,
                location: locations[f.victim_location as usize].clone(),
            },
            score: f.score,
            gap_ns: f.gap_ns,
        })
        .collect()
}

/// [`to_autofocus`] in the compact form [`autofocus::aggregate_flows`]
/// takes: the location table and the merged relations with locations as
/// table indices — the same relations, in the same order, with the same
/// scores and gaps, without cloning two location strings per relation
/// (paper-moderate 5 s: 3.1 M merged relations).
pub fn to_flow_relations(
    rels: &[CausalRelation],
) -> (Vec<autofocus::Location>, Vec<autofocus::FlowRelation>) {
    use std::collections::HashMap;
    type Key = (FiveTuple, u32, FiveTuple, u32);
    // A handful of locations: intern them so merging hashes small keys.
    let mut locs: HashMap<(bool, &str), u32> = HashMap::new();
    let mut loc_values: Vec<autofocus::Location> = Vec::new();
    fn intern<'a>(
        locs: &mut HashMap<(bool, &'a str), u32>,
        values: &mut Vec<autofocus::Location>,
        is_source: bool,
        name: &'a str,
        ty: &str,
    ) -> u32 {
        *locs.entry((is_source, name)).or_insert_with(|| {
            values.push(if is_source {
                autofocus::Location::source(name.to_string())
            } else {
                autofocus::Location::nf(name.to_string(), ty.to_string())
            });
            values.len() as u32 - 1
        })
    }
    // (score sum, score-weighted gap sum, gap weight) per key, in first-seen
    // order so the output is deterministic.
    let mut index: HashMap<Key, u32> = HashMap::new();
    let mut merged: Vec<(Key, f64, f64, f64)> = Vec::new();
    let mut add = |k: Key, score: f64, gap: f64| {
        let at = *index.entry(k).or_insert_with(|| {
            merged.push((k, 0.0, 0.0, 0.0));
            merged.len() as u32 - 1
        });
        let m = &mut merged[at as usize];
        m.1 += score;
        if gap.is_finite() {
            m.2 += score * gap;
            m.3 += score;
        }
    };
    for r in rels {
        let culprit = match &r.culprit {
            Location::Nf(n) => intern(&mut locs, &mut loc_values, false, n, &r.culprit_nf_type),
            Location::Source(n) => intern(&mut locs, &mut loc_values, true, n, "source"),
        };
        let victim = intern(
            &mut locs,
            &mut loc_values,
            false,
            &r.victim_nf,
            &r.victim_nf_type,
        );
        let victim_flow = r.victim_flow.unwrap_or_default();
        let mut any = false;
        for &(flow, s) in &r.culprit_flows {
            if s > 0.0 {
                add((flow, culprit, victim_flow, victim), s, r.gap_ns);
                any = true;
            }
        }
        if r.culprit_flows.is_empty() && !any && r.score > 0.0 {
            add(
                (FiveTuple::default(), culprit, victim_flow, victim),
                r.score,
                r.gap_ns,
            );
        }
    }
    drop(index);
    let flows = merged
        .into_iter()
        .map(
            |((cf, cl, vf, vl), score, gap_sum, gap_w)| autofocus::FlowRelation {
                culprit: cf,
                culprit_location: cl,
                victim: vf,
                victim_location: vl,
                score,
                gap_ns: if gap_w > 0.0 {
                    gap_sum / gap_w
                } else {
                    f64::NAN
                },
            },
        )
        .collect();
    (loc_values, flows)
}

/// Culprit→victim time-gap percentiles over the causal relations (paper
/// Fig. 15), one sample per relation.
pub fn gap_summary(rels: &[CausalRelation]) -> Option<autofocus::GapSummary> {
    autofocus::gap_summary(rels.iter().map(|r| r.gap_ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(n: u32) -> FiveTuple {
        FiveTuple {
            src_ip: n,
            dst_ip: 7,
            src_port: 1000,
            dst_port: 80,
            proto: 6,
        }
    }

    fn rel(
        culprit: Location,
        flows: Vec<(FiveTuple, f64)>,
        victim_flow: u32,
        gap: f64,
    ) -> CausalRelation {
        CausalRelation {
            culprit,
            culprit_packets: flows.len() as u64,
            culprit_first_ns: 0,
            culprit_last_ns: 0,
            score: flows.iter().map(|f| f.1).sum(),
            culprit_flows: flows,
            culprit_nf_type: "nat".into(),
            victim: PacketSlot::default(),
            victim_nf: "vpn1".into(),
            victim_nf_type: "vpn".into(),
            victim_flow: Some(flow(victim_flow)),
            gap_ns: gap,
        }
    }

    #[test]
    fn to_autofocus_merges_identical_coordinates_and_weights_gaps_by_score() {
        let rels = vec![
            rel(
                Location::Nf("nat1".into()),
                vec![(flow(1), 3.0), (flow(2), 1.0)],
                9,
                100.0,
            ),
            rel(Location::Nf("nat1".into()), vec![(flow(1), 1.0)], 9, 500.0),
            // Same flows, another culprit location: kept apart.
            rel(
                Location::Source("src".into()),
                vec![(flow(1), 2.0)],
                9,
                50.0,
            ),
        ];
        let out = to_autofocus(&rels);
        assert_eq!(out.len(), 3, "{out:?}");
        let nat_f1 = &out[0];
        assert_eq!(nat_f1.culprit.flow, flow(1));
        assert_eq!(nat_f1.culprit.location.instance, "nat1");
        assert_eq!(nat_f1.score, 4.0);
        // (3·100 + 1·500) / 4
        assert_eq!(nat_f1.gap_ns, 200.0);
        assert_eq!(out[1].culprit.flow, flow(2));
        assert_eq!(out[1].score, 1.0);
        assert_eq!(out[2].culprit.location.nf_type, "source");
        assert_eq!(out[2].score, 2.0);
        // Total score is conserved.
        let total: f64 = out.iter().map(|r| r.score).sum();
        assert_eq!(total, rels.iter().map(|r| r.score).sum::<f64>());
    }

    #[test]
    fn flow_relations_aggregate_like_the_expanded_relations() {
        let rels = vec![
            rel(
                Location::Nf("nat1".into()),
                vec![(flow(1), 3.0), (flow(2), 1.0)],
                9,
                100.0,
            ),
            rel(Location::Nf("nat1".into()), vec![(flow(1), 1.0)], 8, 500.0),
            rel(
                Location::Source("src".into()),
                vec![(flow(3), 2.0)],
                9,
                50.0,
            ),
        ];
        let (locs, flows) = to_flow_relations(&rels);
        let expanded = to_autofocus(&rels);
        assert_eq!(flows.len(), expanded.len());
        for (f, e) in flows.iter().zip(&expanded) {
            assert_eq!(f.culprit, e.culprit.flow);
            assert_eq!(locs[f.culprit_location as usize], e.culprit.location);
            assert_eq!(f.victim, e.victim.flow);
            assert_eq!(locs[f.victim_location as usize], e.victim.location);
            assert_eq!((f.score, f.gap_ns), (e.score, e.gap_ns));
        }
        let cfg = autofocus::Config {
            threshold: 0.2,
            ..autofocus::Config::default()
        };
        let a = autofocus::aggregate_flows(&locs, &flows, &cfg);
        assert_eq!(a, autofocus::aggregate(&expanded, &cfg));
        assert!(!a.patterns.is_empty());
    }
}
