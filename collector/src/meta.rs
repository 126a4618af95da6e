//! Stream and topology metadata: who produced a stream and how the NFs are
//! wired. Written once into a trace's metadata section; the diagnosis engine
//! reads the DAG from here when present (otherwise it infers it).

use crate::record::{Direction, Role, StreamId};
use serde::{Deserialize, Serialize};

/// Identity of one stream: one (NF process, port, queue, direction).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamInfo {
    pub id: StreamId,
    /// NF instance name, unique within the trace (e.g. `fw2`).
    pub nf: String,
    /// NF type (e.g. `firewall`); instances of one type share a peak rate.
    pub nf_type: String,
    pub role: Role,
    pub port: u16,
    pub queue: u16,
    pub direction: Direction,
    /// Host the NF ran on; TSC ticks are comparable only within one host.
    pub host: String,
    /// True when batch records of this stream carry full 5-tuples.
    pub carries_tuples: bool,
}

/// One node of the NF graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NfSpec {
    /// Instance name, matching [`StreamInfo::nf`].
    pub name: String,
    pub nf_type: String,
    pub role: Role,
    /// Peak processing rate in packets per second when known (stress-tested
    /// or configured); `None` lets the engine estimate it from the trace.
    pub peak_rate_pps: Option<f64>,
}

/// A directed link: packets leaving `from` (tx) arrive at `to` (rx).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
}

/// The NF graph as known when the trace was written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    pub nfs: Vec<NfSpec>,
    pub edges: Vec<Edge>,
}

impl Topology {
    pub fn nf(&self, name: &str) -> Option<&NfSpec> {
        self.nfs.iter().find(|n| n.name == name)
    }

    /// Immediate upstream neighbours of `name`.
    pub fn upstream<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.edges
            .iter()
            .filter(move |e| e.to == name)
            .map(|e| e.from.as_str())
    }

    /// Immediate downstream neighbours of `name`.
    pub fn downstream<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.edges
            .iter()
            .filter(move |e| e.from == name)
            .map(|e| e.to.as_str())
    }
}

/// Everything a trace says about itself besides the records.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceMeta {
    /// Free text naming the writer, e.g. `microscope-dumper 0.1.0` or
    /// `microscope simulate seed=7 scenario=paper-moderate`.
    pub producer: String,
    /// The NF graph when the writer knew it.
    pub topology: Option<Topology>,
    /// Nominal TSC frequency in Hz when known; only a hint, calibration from
    /// clock anchors takes precedence.
    pub tsc_hz_hint: Option<f64>,
}
