//! The instantiated NF graph of a scenario: instances, routing (rules, then
//! load balancing by 5-tuple hash), NAT rewriting, and the
//! [`collector::Topology`] written into the trace.

use crate::rng::{mix, purpose, splitmix64};
use crate::scenario::{parse_prefix, Behavior, Scenario};
use collector::{Edge, FiveTuple, NfSpec, Role, Topology};
use std::collections::HashMap;

/// Where a packet goes after an NF type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    Type(usize),
    Sink,
}

#[derive(Clone, Debug)]
struct Rule {
    proto: Option<u8>,
    src: Option<(u32, u32)>,
    dst: Option<(u32, u32)>,
    src_port: Option<[u16; 2]>,
    dst_port: Option<[u16; 2]>,
    next: Next,
}

impl Rule {
    fn matches(&self, t: &FiveTuple) -> bool {
        self.proto.is_none_or(|p| p == t.proto)
            && self.src.is_none_or(|(n, m)| t.src_ip & m == n)
            && self.dst.is_none_or(|(n, m)| t.dst_ip & m == n)
            && self
                .src_port
                .is_none_or(|[lo, hi]| (lo..=hi).contains(&t.src_port))
            && self
                .dst_port
                .is_none_or(|[lo, hi]| (lo..=hi).contains(&t.dst_port))
    }
}

/// One NF type.
#[derive(Clone, Debug)]
pub struct NfType {
    pub name: String,
    pub first: usize,
    pub count: usize,
    pub behavior: Behavior,
    pub peak_rate_pps: f64,
    pub queue_capacity: usize,
    pub burst: usize,
    rules: Vec<Rule>,
    default_next: Next,
}

/// One NF instance.
#[derive(Clone, Debug)]
pub struct Instance {
    pub name: String,
    pub ty: usize,
    pub index_in_type: usize,
}

/// The instantiated graph.
#[derive(Clone, Debug)]
pub struct Graph {
    pub types: Vec<NfType>,
    pub instances: Vec<Instance>,
    pub entry: usize,
    seed: u64,
    /// Steering overrides: (type, tuple as it arrives at that type) →
    /// instance; see [`Graph::pin`]. Empty unless a scenario steers flows.
    pins: HashMap<(usize, FiveTuple), usize>,
}

impl Graph {
    /// Instantiates a validated scenario.
    pub fn new(sc: &Scenario) -> Graph {
        let idx = |name: &str| -> Next {
            if name == "sink" {
                Next::Sink
            } else {
                Next::Type(
                    sc.nf
                        .iter()
                        .position(|n| n.name == name)
                        .expect("validated"),
                )
            }
        };
        let mut types = Vec::new();
        let mut instances = Vec::new();
        for (ti, n) in sc.nf.iter().enumerate() {
            let first = instances.len();
            for i in 0..n.instances as usize {
                instances.push(Instance {
                    name: format!("{}{}", Scenario::prefix_of(n), i + 1),
                    ty: ti,
                    index_in_type: i,
                });
            }
            types.push(NfType {
                name: n.name.clone(),
                first,
                count: n.instances as usize,
                behavior: n.behavior,
                peak_rate_pps: n.peak_rate.pps(),
                queue_capacity: n.queue_capacity.unwrap_or(sc.nf_defaults.queue_capacity) as usize,
                burst: n.burst.unwrap_or(sc.nf_defaults.burst) as usize,
                rules: n
                    .rule
                    .iter()
                    .map(|r| Rule {
                        proto: r.proto,
                        src: r
                            .src
                            .as_deref()
                            .map(|p| parse_prefix(p).expect("validated")),
                        dst: r
                            .dst
                            .as_deref()
                            .map(|p| parse_prefix(p).expect("validated")),
                        src_port: r.src_port,
                        dst_port: r.dst_port,
                        next: idx(&r.next),
                    })
                    .collect(),
                default_next: idx(&n.next),
            });
        }
        let entry = match idx(sc.entry_type()) {
            Next::Type(t) => t,
            Next::Sink => unreachable!("validated: entry is an NF type"),
        };
        Graph {
            types,
            instances,
            entry,
            seed: sc.seed,
            pins: HashMap::new(),
        }
    }

    /// Steers the flow sent by the source as `t` to instance `inst` when it
    /// reaches `inst`'s type (an operator's steering rule for that 5-tuple),
    /// instead of the hash. Instances of earlier types are unchanged.
    ///
    /// Errors: the flow's path never reaches `inst`'s type.
    pub fn pin(&mut self, t: &FiveTuple, inst: usize) -> Result<(), String> {
        let target = self.instances[inst].ty;
        let mut cur = *t;
        let mut ty = self.entry;
        loop {
            if ty == target {
                self.pins.insert((ty, cur), inst);
                return Ok(());
            }
            let i = self.pick(ty, &cur);
            cur = self.rewrite(i, &cur);
            match self.route(ty, &cur) {
                Next::Sink => {
                    return Err(format!(
                        "flow {t:?} never reaches type `{}` of {}",
                        self.types[target].name, self.instances[inst].name
                    ))
                }
                Next::Type(n) => ty = n,
            }
        }
    }

    /// Next hop type for a packet leaving an instance of `ty` with tuple `t`.
    #[inline]
    pub fn route(&self, ty: usize, t: &FiveTuple) -> Next {
        let nt = &self.types[ty];
        nt.rules
            .iter()
            .find(|r| r.matches(t))
            .map_or(nt.default_next, |r| r.next)
    }

    /// The instance of type `ty` a tuple is load-balanced to (a fixed,
    /// seed-independent hash, like an RSS key, salted per type).
    #[inline]
    pub fn pick(&self, ty: usize, t: &FiveTuple) -> usize {
        if !self.pins.is_empty() {
            if let Some(&i) = self.pins.get(&(ty, *t)) {
                return i;
            }
        }
        let nt = &self.types[ty];
        let h = splitmix64(
            splitmix64(((t.src_ip as u64) << 32) | t.dst_ip as u64)
                ^ (((t.src_port as u64) << 24) | ((t.dst_port as u64) << 8) | t.proto as u64)
                ^ ((ty as u64) << 56),
        );
        nt.first + (h % nt.count as u64) as usize
    }

    /// The tuple as it leaves instance `inst` (NAT rewrites source address
    /// and port; the port is a hash of the flow, so it is the same in every
    /// run of a seed; two flows may rarely share one, a simplification).
    #[inline]
    pub fn rewrite(&self, inst: usize, t: &FiveTuple) -> FiveTuple {
        let i = &self.instances[inst];
        match self.types[i.ty].behavior {
            Behavior::Forward => *t,
            Behavior::Nat => {
                let key = ((t.src_ip as u64) << 32 | t.dst_ip as u64)
                    ^ ((t.src_port as u64) << 40 | (t.dst_port as u64) << 16 | t.proto as u64);
                let port =
                    1024 + (mix(self.seed, purpose::NAT_PORT, inst as u64, key) % 64512) as u16;
                FiveTuple {
                    src_ip: (198 << 24)
                        | (18 << 16)
                        | ((i.ty as u32 & 0xff) << 8)
                        | (i.index_in_type as u32 + 1),
                    src_port: port,
                    ..*t
                }
            }
        }
    }

    /// The instances a packet with source tuple `t` visits, and its tuple at
    /// the sink.
    pub fn path(&self, t: &FiveTuple) -> (Vec<usize>, FiveTuple) {
        let mut out = Vec::new();
        let mut cur = *t;
        let mut ty = self.entry;
        loop {
            let inst = self.pick(ty, &cur);
            out.push(inst);
            cur = self.rewrite(inst, &cur);
            match self.route(ty, &cur) {
                Next::Sink => return (out, cur),
                Next::Type(n) => ty = n,
            }
        }
    }

    /// Type indices in topological order (every type before the types it
    /// can send to), starting from the entry type; unreachable types last.
    pub fn type_order(&self) -> Vec<usize> {
        let n = self.types.len();
        let succ = |t: usize| -> Vec<usize> {
            let nt = &self.types[t];
            nt.rules
                .iter()
                .map(|r| r.next)
                .chain(std::iter::once(nt.default_next))
                .filter_map(|x| match x {
                    Next::Type(j) => Some(j),
                    Next::Sink => None,
                })
                .collect()
        };
        let mut indeg = vec![0usize; n];
        for t in 0..n {
            for j in succ(t) {
                indeg[j] += 1;
            }
        }
        let mut ready: Vec<usize> = (0..n).rev().filter(|t| indeg[*t] == 0).collect();
        // Put the entry type first when it is a root.
        if let Some(pos) = ready.iter().position(|t| *t == self.entry) {
            let e = ready.remove(pos);
            ready.push(e);
        }
        let mut out = Vec::with_capacity(n);
        while let Some(t) = ready.pop() {
            out.push(t);
            for j in succ(t) {
                indeg[j] -= 1;
                if indeg[j] == 0 {
                    ready.push(j);
                }
            }
        }
        out
    }

    /// The tuple of a packet sent as `t` when it enters (`leaving` false)
    /// or leaves instance `inst`; `t` itself if the path misses `inst`.
    pub fn tuple_at(&self, t: &FiveTuple, inst: usize, leaving: bool) -> FiveTuple {
        let mut cur = *t;
        let mut ty = self.entry;
        loop {
            let i = self.pick(ty, &cur);
            if i == inst && !leaving {
                return cur;
            }
            cur = self.rewrite(i, &cur);
            if i == inst {
                return cur;
            }
            match self.route(ty, &cur) {
                Next::Sink => return *t,
                Next::Type(n) => ty = n,
            }
        }
    }

    /// Instances of a type by name.
    pub fn instances_of(&self, type_name: &str) -> std::ops::Range<usize> {
        self.types
            .iter()
            .find(|t| t.name == type_name)
            .map_or(0..0, |t| t.first..t.first + t.count)
    }

    /// The graph as trace metadata: source, instances (with peak rates), sink.
    pub fn to_topology(&self) -> Topology {
        let mut nfs = vec![NfSpec {
            name: "source".into(),
            nf_type: "source".into(),
            role: Role::Source,
            peak_rate_pps: None,
        }];
        for i in &self.instances {
            let t = &self.types[i.ty];
            nfs.push(NfSpec {
                name: i.name.clone(),
                nf_type: t.name.clone(),
                role: Role::Nf,
                peak_rate_pps: Some(t.peak_rate_pps),
            });
        }
        nfs.push(NfSpec {
            name: "sink".into(),
            nf_type: "sink".into(),
            role: Role::Sink,
            peak_rate_pps: None,
        });
        let mut edges = Vec::new();
        let e = &self.types[self.entry];
        for j in e.first..e.first + e.count {
            edges.push(Edge {
                from: "source".into(),
                to: self.instances[j].name.clone(),
            });
        }
        for t in &self.types {
            let mut nexts: Vec<Next> = t.rules.iter().map(|r| r.next).collect();
            nexts.push(t.default_next);
            nexts.dedup();
            for i in t.first..t.first + t.count {
                let mut seen = Vec::new();
                for n in &nexts {
                    if seen.contains(n) {
                        continue;
                    }
                    seen.push(*n);
                    match n {
                        Next::Sink => edges.push(Edge {
                            from: self.instances[i].name.clone(),
                            to: "sink".into(),
                        }),
                        Next::Type(nt) => {
                            let nt = &self.types[*nt];
                            for j in nt.first..nt.first + nt.count {
                                edges.push(Edge {
                                    from: self.instances[i].name.clone(),
                                    to: self.instances[j].name.clone(),
                                });
                            }
                        }
                    }
                }
            }
        }
        Topology { nfs, edges }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_graph_has_16_instances_and_fig10_edges() {
        let g = Graph::new(&Scenario::paper_moderate());
        assert_eq!(g.instances.len(), 16);
        let topo = g.to_topology();
        assert_eq!(topo.nfs.len(), 18);
        // source->4 NAT, NAT->5 FW (20), FW->2 mon + 5 vpn (35), mon->5 vpn (10), vpn->sink (5)
        assert_eq!(topo.edges.len(), 4 + 20 + 35 + 10 + 5);
        assert_eq!(topo.nf("fw2").unwrap().peak_rate_pps, Some(0.36e6));
    }

    #[test]
    fn http_goes_via_monitor_and_nat_rewrites_source() {
        let g = Graph::new(&Scenario::paper_moderate());
        let t = FiveTuple {
            src_ip: 0x0102_0304,
            dst_ip: 0x0506_0708,
            src_port: 40000,
            dst_port: 80,
            proto: 6,
        };
        let (path, at_sink) = g.path(&t);
        let names: Vec<&str> = path.iter().map(|i| g.instances[*i].name.as_str()).collect();
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(names[0].starts_with("nat") && names[1].starts_with("fw"));
        assert!(names[2].starts_with("mon") && names[3].starts_with("vpn"));
        assert_ne!(at_sink.src_ip, t.src_ip);
        assert_eq!((at_sink.dst_ip, at_sink.dst_port), (t.dst_ip, t.dst_port));
        let https = FiveTuple { dst_port: 443, ..t };
        assert_eq!(g.path(&https).0.len(), 3);
    }
}
