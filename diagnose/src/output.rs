//! What the engine produces: per-victim ranked culprits and causal
//! relations, serializable as JSON lines or a compact binary form.

use crate::DiagnoseError;
use collector::{FiveTuple, StreamId};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Read, Write};

/// One packet observation in the trace: batch record `seq` of `stream`,
/// packet `idx` in that batch. Same shape as `testbeds::truth::PacketSlot`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct PacketSlot {
    pub stream: StreamId,
    pub seq: u64,
    pub idx: u16,
}

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
pub fn to_autofocus(rels: &[CausalRelation]) -> Vec<autofocus::Relation> {
    let mut out = Vec::with_capacity(rels.len() * 4);
    for r in rels {
        let culprit_loc = match &r.culprit {
            Location::Nf(n) => autofocus::Location::nf(n.clone(), r.culprit_nf_type.clone()),
            Location::Source(n) => autofocus::Location::source(n.clone()),
        };
        let victim = autofocus::Side {
            flow: r.victim_flow.unwrap_or_default(),
            location: autofocus::Location::nf(r.victim_nf.clone(), r.victim_nf_type.clone()),
        };
        let mut rest = r.score;
        for &(flow, s) in &r.culprit_flows {
            if s > 0.0 {
                out.push(autofocus::Relation {
                    culprit: autofocus::Side {
                        flow,
                        location: culprit_loc.clone(),
                    },
                    victim: victim.clone(),
                    score: s,
                    gap_ns: r.gap_ns,
                });
                rest -= s;
            }
        }
        if r.culprit_flows.is_empty() && rest > 0.0 {
            out.push(autofocus::Relation {
                culprit: autofocus::Side {
                    flow: FiveTuple::default(),
                    location: culprit_loc,
                },
                victim,
                score: rest,
                gap_ns: r.gap_ns,
            });
        }
    }
    out
}
