//! The NF graph used by reconstruction and propagation analysis: taken from
//! the trace's topology, or inferred from IPIDs when the trace has none.

use crate::index::{Index, NONE};
use crate::DiagnoseError;
use collector::{Direction, Role};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tracefile::Trace;

/// One node: a traffic source, an NF instance or a sink.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DagNode {
    pub name: String,
    pub nf_type: String,
    pub role: Role,
    /// Peak rate from the topology, when it gave one.
    pub topology_peak_pps: Option<f64>,
    /// Streams of this node (rx and tx).
    pub rx_streams: Vec<u32>,
    pub tx_streams: Vec<u32>,
}

/// A directed edge `from → to` (indices into [`Dag::nodes`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DagEdge {
    pub from: usize,
    pub to: usize,
    /// 1.0 for edges from the topology; for inferred edges the share of the
    /// matched rx packets not explained by chance IPID collisions.
    pub confidence: f64,
    /// Inferred edges: fraction of sampled rx packets of `to` whose nearest
    /// preceding same-IPID tx packet was on `from`.
    pub matched_fraction: f64,
}

/// Where the DAG came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DagOrigin {
    /// `TraceMeta::topology`.
    Topology,
    /// Inferred from IPID sequences (topology absent or `Config::infer_dag`).
    Inferred {
        window_ns: i64,
        sampled_rx_per_node: usize,
    },
}

/// The graph plus its topological order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dag {
    pub nodes: Vec<DagNode>,
    pub edges: Vec<DagEdge>,
    pub origin: DagOrigin,
    /// Node indices, every edge going forward.
    pub topo_order: Vec<usize>,
}

impl Dag {
    pub fn upstream(&self, n: usize) -> impl Iterator<Item = usize> + '_ {
        self.edges.iter().filter(move |e| e.to == n).map(|e| e.from)
    }

    pub fn downstream(&self, n: usize) -> impl Iterator<Item = usize> + '_ {
        self.edges.iter().filter(move |e| e.from == n).map(|e| e.to)
    }

    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Human-readable DAG: where it came from, then one line per edge in
    /// topological order of its source node (inferred edges with their
    /// confidence and matched fraction).
    pub fn describe(&self) -> String {
        let mut s = match &self.origin {
            DagOrigin::Topology => format!(
                "DAG in use: {} nodes, {} edges, from the trace's topology\n",
                self.nodes.len(),
                self.edges.len()
            ),
            DagOrigin::Inferred {
                window_ns,
                sampled_rx_per_node,
            } => format!(
                "DAG in use: {} nodes, {} edges, inferred from IPIDs \
                 (window {:.1} ms, up to {sampled_rx_per_node} rx packets sampled per node)\n",
                self.nodes.len(),
                self.edges.len(),
                *window_ns as f64 / 1e6
            ),
        };
        let mut rank = vec![0usize; self.nodes.len()];
        for (i, &n) in self.topo_order.iter().enumerate() {
            rank[n] = i;
        }
        let mut edges: Vec<&DagEdge> = self.edges.iter().collect();
        edges.sort_by_key(|e| (rank[e.from], rank[e.to]));
        for e in edges {
            let (a, b) = (&self.nodes[e.from].name, &self.nodes[e.to].name);
            match self.origin {
                DagOrigin::Topology => s += &format!("  {a} -> {b}\n"),
                DagOrigin::Inferred { .. } => {
                    s += &format!(
                        "  {a} -> {b}  confidence {:.3}, matched {:.1}% of {b}'s sampled packets\n",
                        e.confidence,
                        e.matched_fraction * 100.0
                    )
                }
            }
        }
        s
    }
}

/// Builds the node list (topology NFs first, then any NF named only by a
/// stream) and the stream → node map.
pub(crate) fn nodes_of(trace: &Trace) -> (Vec<DagNode>, Vec<u32>) {
    let mut nodes: Vec<DagNode> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    if let Some(t) = &trace.meta.topology {
        for nf in &t.nfs {
            if by_name.contains_key(&nf.name) {
                continue;
            }
            by_name.insert(nf.name.clone(), nodes.len());
            nodes.push(DagNode {
                name: nf.name.clone(),
                nf_type: nf.nf_type.clone(),
                role: nf.role,
                topology_peak_pps: nf.peak_rate_pps.filter(|r| r.is_finite() && *r > 0.0),
                rx_streams: vec![],
                tx_streams: vec![],
            });
        }
    }
    let mut node_of = vec![NONE; trace.streams.len()];
    for (s, data) in trace.streams.iter().enumerate() {
        let Some(info) = &data.info else { continue };
        let n = *by_name.entry(info.nf.clone()).or_insert_with(|| {
            nodes.push(DagNode {
                name: info.nf.clone(),
                nf_type: info.nf_type.clone(),
                role: info.role,
                topology_peak_pps: None,
                rx_streams: vec![],
                tx_streams: vec![],
            });
            nodes.len() - 1
        });
        node_of[s] = n as u32;
        match info.direction {
            Direction::Rx => nodes[n].rx_streams.push(s as u32),
            Direction::Tx => nodes[n].tx_streams.push(s as u32),
        }
    }
    (nodes, node_of)
}

/// Edges from the trace's topology (names not seen anywhere are added as
/// nodes without streams).
pub(crate) fn edges_from_topology(trace: &Trace, nodes: &mut Vec<DagNode>) -> Vec<DagEdge> {
    let mut edges = Vec::new();
    let Some(t) = &trace.meta.topology else {
        return edges;
    };
    let find = |name: &str, nodes: &mut Vec<DagNode>| -> usize {
        if let Some(i) = nodes.iter().position(|n| n.name == name) {
            return i;
        }
        nodes.push(DagNode {
            name: name.to_string(),
            nf_type: "unknown".into(),
            role: Role::Nf,
            topology_peak_pps: None,
            rx_streams: vec![],
            tx_streams: vec![],
        });
        nodes.len() - 1
    };
    for e in &t.edges {
        let from = find(&e.from, nodes);
        let to = find(&e.to, nodes);
        if from != to && !edges.iter().any(|x: &DagEdge| x.from == from && x.to == to) {
            edges.push(DagEdge {
                from,
                to,
                confidence: 1.0,
                matched_fraction: 1.0,
            });
        }
    }
    edges
}

/// Rx observations sampled per node for inference.
pub(crate) const INFER_SAMPLES: usize = 4000;
/// Minimum excess (over chance) of rx packets attributed to an upstream
/// before an edge is accepted.
const INFER_MIN_EXCESS: f64 = 0.01;
/// Minimum confidence of an inferred edge.
const INFER_MIN_CONFIDENCE: f64 = 0.5;
/// The chance baseline looks this far further back than the real window.
const INFER_CONTROL_SHIFT_NS: i64 = 50_000_000;

/// Infers edges by IPID matching: for a sample of each node's rx packets,
/// the nearest preceding tx packet with the same IPID within the window is
/// attributed to its node (the immediate upstream hop is always the latest
/// earlier sighting, so multi-hop ancestors are not mistaken for parents).
/// The same search shifted far back in time measures the chance rate.
pub(crate) fn infer_edges(nodes: &[DagNode], ix: &Index, window_ns: i64) -> Vec<DagEdge> {
    // All tx observations, bucketed by IPID and sorted by time.
    let mut start = vec![0u32; 65537];
    let tx_streams: Vec<u32> = nodes
        .iter()
        .filter(|n| n.role != Role::Sink)
        .flat_map(|n| n.tx_streams.iter().copied())
        .collect();
    for &s in &tx_streams {
        for o in ix.stream_obs(s) {
            start[ix.obs_ipid[o as usize] as usize + 1] += 1;
        }
    }
    for i in 0..65536 {
        start[i + 1] += start[i];
    }
    let mut cursor = start.clone();
    let mut sorted = vec![0u32; start[65536] as usize];
    for &s in &tx_streams {
        for o in ix.stream_obs(s) {
            let ip = ix.obs_ipid[o as usize] as usize;
            sorted[cursor[ip] as usize] = o;
            cursor[ip] += 1;
        }
    }
    for i in 0..65536 {
        sorted[start[i] as usize..start[i + 1] as usize].sort_unstable_by_key(|&o| (ix.time(o), o));
    }
    let nearest = |x: u32, shift: i64, own: usize| -> Option<usize> {
        let ip = ix.obs_ipid[x as usize] as usize;
        let bucket = &sorted[start[ip] as usize..start[ip + 1] as usize];
        let t = ix.time(x) - shift;
        let hi = bucket.partition_point(|&o| ix.time(o) <= t);
        bucket[..hi]
            .iter()
            .rev()
            .take_while(|&&o| ix.time(o) >= t - window_ns)
            .map(|&o| ix.node_of_obs(o) as usize)
            .find(|&n| n != own)
    };
    let mut edges = Vec::new();
    for (f, node) in nodes.iter().enumerate() {
        if node.role == Role::Source || node.rx_streams.is_empty() {
            continue;
        }
        let total: usize = node
            .rx_streams
            .iter()
            .map(|&s| ix.stream_obs(s).len())
            .sum();
        if total == 0 {
            continue;
        }
        let step = (total / INFER_SAMPLES).max(1);
        let all: Vec<u32> = node
            .rx_streams
            .iter()
            .flat_map(|&s| ix.stream_obs(s))
            .step_by(step)
            .collect();
        let mut hits = vec![0usize; nodes.len()];
        let mut chance = vec![0usize; nodes.len()];
        for &x in &all {
            if let Some(u) = nearest(x, 0, f) {
                hits[u] += 1;
            }
            if let Some(u) = nearest(x, INFER_CONTROL_SHIFT_NS, f) {
                chance[u] += 1;
            }
        }
        let n = all.len() as f64;
        for u in 0..nodes.len() {
            if u == f || nodes[u].role == Role::Sink {
                continue;
            }
            let frac = hits[u] as f64 / n;
            let base = chance[u] as f64 / n;
            let confidence = if frac > 0.0 {
                ((frac - base) / frac).clamp(0.0, 1.0)
            } else {
                0.0
            };
            if frac - base >= INFER_MIN_EXCESS && confidence >= INFER_MIN_CONFIDENCE {
                edges.push(DagEdge {
                    from: u,
                    to: f,
                    confidence,
                    matched_fraction: frac,
                });
            }
        }
    }
    edges
}

/// Kahn's algorithm; for inferred graphs a cycle is broken by dropping its
/// weakest edge, for topology graphs it is an error.
pub(crate) fn topo_order(
    n_nodes: usize,
    edges: &mut Vec<DagEdge>,
    inferred: bool,
) -> Result<Vec<usize>, DiagnoseError> {
    loop {
        let mut indeg = vec![0usize; n_nodes];
        for e in edges.iter() {
            indeg[e.to] += 1;
        }
        let mut ready: Vec<usize> = (0..n_nodes).filter(|&n| indeg[n] == 0).collect();
        ready.reverse();
        let mut order = Vec::with_capacity(n_nodes);
        while let Some(n) = ready.pop() {
            order.push(n);
            let mut next: Vec<usize> = edges
                .iter()
                .filter(|e| e.from == n)
                .map(|e| e.to)
                .filter(|&m| {
                    indeg[m] -= 1;
                    indeg[m] == 0
                })
                .collect();
            next.sort_unstable();
            next.reverse();
            ready.extend(next);
        }
        if order.len() == n_nodes {
            return Ok(order);
        }
        if !inferred {
            return Err(DiagnoseError::CyclicTopology);
        }
        // Drop the weakest edge among those between unordered nodes.
        let placed: Vec<bool> = {
            let mut p = vec![false; n_nodes];
            for &n in &order {
                p[n] = true;
            }
            p
        };
        let weakest = edges
            .iter()
            .enumerate()
            .filter(|(_, e)| !placed[e.from] && !placed[e.to])
            .min_by(|a, b| a.1.confidence.total_cmp(&b.1.confidence))
            .map(|(i, _)| i)
            .ok_or(DiagnoseError::CyclicTopology)?;
        edges.remove(weakest);
    }
}
