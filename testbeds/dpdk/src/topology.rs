//! The chain to run: NF processes and the memif links between them.
//!
//! File format (TOML), e.g. the built-in `small` chain:
//!
//! ```toml
//! [[nf]]
//! name = "gen"
//! kind = "gen"            # gen | firewall | monitor | nat | vpn | sink
//! [[nf]]
//! name = "fw1"
//! kind = "firewall"
//! rules = ["mark dst 192.168.0.0/17"]   # see nf::Rule::parse
//! peak_rate_pps = 1200000 # optional: the NF's processing cap and r_f
//! [[link]]
//! from = "gen"
//! to = "fw1"
//! ```
//!
//! An NF's outputs are its links in file order: for a firewall, output 0
//! takes `mark`ed flows and the last output `allow`ed ones; other NFs spread
//! flows over their outputs by flow hash. Invariants checked by
//! [`Topology::validate`]: unique names, known kinds, links between existing
//! NFs, no cycles, exactly the source (`gen`) has no inputs and sinks no
//! outputs, every other NF has at least one of each.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// One NF process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NfNode {
    pub name: String,
    pub kind: Kind,
    /// Firewall rules (`nf::Rule` syntax); ignored by other kinds.
    #[serde(default)]
    pub rules: Vec<String>,
    /// CPU core to pin to; default: spread round-robin.
    #[serde(default)]
    pub core: Option<u32>,
    /// Peak processing rate: the NF processes at most this many packets per
    /// second (`ms-nf --peak-rate`, paced on the TSC), and the trace's
    /// topology metadata carries it as the NF's `r_f`. Without it the NF
    /// runs as fast as its core allows and the engine estimates `r_f`.
    #[serde(default)]
    pub peak_rate_pps: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Gen,
    Firewall,
    Monitor,
    Nat,
    Vpn,
    Sink,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Gen => "gen",
            Kind::Firewall => "firewall",
            Kind::Monitor => "monitor",
            Kind::Nat => "nat",
            Kind::Vpn => "vpn",
            Kind::Sink => "sink",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "gen" => Kind::Gen,
            "firewall" => Kind::Firewall,
            "monitor" => Kind::Monitor,
            "nat" => Kind::Nat,
            "vpn" => Kind::Vpn,
            "sink" => Kind::Sink,
            _ => return None,
        })
    }

    /// The role written into the trace.
    pub fn role(self) -> collector::Role {
        match self {
            Kind::Gen => collector::Role::Source,
            Kind::Sink => collector::Role::Sink,
            _ => collector::Role::Nf,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub from: String,
    pub to: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    pub nf: Vec<NfNode>,
    pub link: Vec<Link>,
}

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Parse { path: String, msg: String },
    #[error("topology: {0}")]
    Invalid(String),
}

const SMALL: &str = r#"
# gen -> fw1 -> mon1 -> nat1 -> vpn1 -> sink, and fw1 -> nat1 for unmarked flows
[[nf]]
name = "gen"
kind = "gen"
[[nf]]
name = "fw1"
kind = "firewall"
rules = ["mark dst 192.168.0.0/17"]
peak_rate_pps = 1200000
[[nf]]
name = "mon1"
kind = "monitor"
peak_rate_pps = 1200000
[[nf]]
name = "nat1"
kind = "nat"
peak_rate_pps = 1200000
[[nf]]
name = "vpn1"
kind = "vpn"
peak_rate_pps = 600000
[[nf]]
name = "sink"
kind = "sink"
[[link]]
from = "gen"
to = "fw1"
[[link]]
from = "fw1"
to = "mon1"
[[link]]
from = "fw1"
to = "nat1"
[[link]]
from = "mon1"
to = "nat1"
[[link]]
from = "nat1"
to = "vpn1"
[[link]]
from = "vpn1"
to = "sink"
"#;

impl Topology {
    /// The built-in 4-NF chain (firewall, monitor, NAT, VPN) between a
    /// generator and a sink.
    pub fn small() -> Topology {
        let t = Topology::from_toml(SMALL, "<small>").expect("built-in topology parses");
        t.validate().expect("built-in topology is valid");
        t
    }

    pub fn from_toml(text: &str, path: &str) -> Result<Topology, TopologyError> {
        toml::from_str(text).map_err(|e| TopologyError::Parse {
            path: path.to_string(),
            msg: e.to_string(),
        })
    }

    /// `small` or a TOML file path.
    pub fn by_name_or_path(s: &str) -> Result<Topology, TopologyError> {
        if s == "small" {
            return Ok(Topology::small());
        }
        let text = std::fs::read_to_string(Path::new(s)).map_err(|source| TopologyError::Io {
            path: s.to_string(),
            source,
        })?;
        let t = Topology::from_toml(&text, s)?;
        t.validate()?;
        Ok(t)
    }

    pub fn node(&self, name: &str) -> Option<&NfNode> {
        self.nf.iter().find(|n| n.name == name)
    }

    /// Input links of `name`, in file order.
    pub fn inputs<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Link> + 'a {
        self.link.iter().filter(move |l| l.to == name)
    }

    /// Output links of `name`, in file order (= output numbers).
    pub fn outputs<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Link> + 'a {
        self.link.iter().filter(move |l| l.from == name)
    }

    pub fn validate(&self) -> Result<(), TopologyError> {
        let bad = |m: String| Err(TopologyError::Invalid(m));
        let mut names = std::collections::HashSet::new();
        for n in &self.nf {
            if n.name.is_empty()
                || !n
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return bad(format!(
                    "NF name \"{}\": use letters, digits, '-' and '_' only",
                    n.name
                ));
            }
            if !names.insert(n.name.as_str()) {
                return bad(format!("NF name \"{}\" appears twice", n.name));
            }
            for r in &n.rules {
                crate::nf::Rule::parse(r)
                    .map_err(|e| TopologyError::Invalid(format!("NF {}: {e}", n.name)))?;
            }
        }
        for l in &self.link {
            for end in [&l.from, &l.to] {
                if !names.contains(end.as_str()) {
                    return bad(format!(
                        "link {} -> {}: no NF named \"{end}\"",
                        l.from, l.to
                    ));
                }
            }
            if l.from == l.to {
                return bad(format!("link {} -> {}: a self-loop", l.from, l.to));
            }
        }
        let mut seen_links = std::collections::HashSet::new();
        for l in &self.link {
            if !seen_links.insert((&l.from, &l.to)) {
                return bad(format!("link {} -> {} appears twice", l.from, l.to));
            }
        }
        let gens = self.nf.iter().filter(|n| n.kind == Kind::Gen).count();
        if gens != 1 {
            return bad(format!("expected exactly one gen, found {gens}"));
        }
        for n in &self.nf {
            let (ins, outs) = (self.inputs(&n.name).count(), self.outputs(&n.name).count());
            match n.kind {
                Kind::Gen if ins > 0 || outs == 0 => {
                    return bad(format!("gen {}: needs outputs and no inputs", n.name))
                }
                Kind::Sink if outs > 0 || ins == 0 => {
                    return bad(format!("sink {}: needs inputs and no outputs", n.name))
                }
                Kind::Firewall | Kind::Monitor | Kind::Nat | Kind::Vpn if ins == 0 || outs == 0 => {
                    return bad(format!(
                        "NF {}: needs at least one input and one output",
                        n.name
                    ))
                }
                _ => {}
            }
        }
        self.topo_order().map(|_| ())
    }

    /// NF names, upstream before downstream (Kahn's algorithm); an error
    /// names a node on a cycle.
    pub fn topo_order(&self) -> Result<Vec<String>, TopologyError> {
        let mut indeg: std::collections::HashMap<&str, usize> =
            self.nf.iter().map(|n| (n.name.as_str(), 0)).collect();
        for l in &self.link {
            *indeg.entry(l.to.as_str()).or_default() += 1;
        }
        let mut ready: Vec<&str> = self
            .nf
            .iter()
            .map(|n| n.name.as_str())
            .filter(|n| indeg[n] == 0)
            .collect();
        let mut out = Vec::new();
        while let Some(n) = ready.pop() {
            out.push(n.to_string());
            for l in self.outputs(n) {
                let d = indeg.get_mut(l.to.as_str()).expect("validated link");
                *d -= 1;
                if *d == 0 {
                    ready.push(l.to.as_str());
                }
            }
        }
        if out.len() != self.nf.len() {
            let stuck = self
                .nf
                .iter()
                .find(|n| !out.contains(&n.name))
                .map(|n| n.name.clone())
                .unwrap_or_default();
            return Err(TopologyError::Invalid(format!(
                "the links form a cycle through {stuck}"
            )));
        }
        Ok(out)
    }

    /// The collector's view of this graph, for the trace metadata.
    pub fn to_collector(&self) -> collector::Topology {
        collector::Topology {
            nfs: self
                .nf
                .iter()
                .map(|n| collector::NfSpec {
                    name: n.name.clone(),
                    nf_type: n.kind.as_str().to_string(),
                    role: n.kind.role(),
                    peak_rate_pps: n.peak_rate_pps,
                })
                .collect(),
            edges: self
                .link
                .iter()
                .map(|l| collector::Edge {
                    from: l.from.clone(),
                    to: l.to.clone(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_is_a_valid_four_nf_dag() {
        let t = Topology::small();
        let nfs =
            t.nf.iter()
                .filter(|n| n.kind.role() == collector::Role::Nf)
                .count();
        assert!(nfs >= 4);
        let order = t.topo_order().unwrap();
        let pos = |n: &str| order.iter().position(|x| x == n).unwrap();
        assert!(pos("gen") < pos("fw1") && pos("mon1") < pos("nat1") && pos("vpn1") < pos("sink"));
        let outs: Vec<_> = t.outputs("fw1").map(|l| l.to.as_str()).collect();
        assert_eq!(outs, ["mon1", "nat1"]);
        assert_eq!(t.to_collector().edges.len(), t.link.len());
    }

    #[test]
    fn invalid_topologies_are_explained() {
        let mut t = Topology::small();
        t.link.push(Link {
            from: "vpn1".into(),
            to: "fw1".into(),
        });
        let e = t.validate().unwrap_err().to_string();
        assert!(e.contains("cycle"), "{e}");
        let mut t = Topology::small();
        t.link.push(Link {
            from: "gen".into(),
            to: "nope".into(),
        });
        assert!(t.validate().unwrap_err().to_string().contains("nope"));
        let mut t = Topology::small();
        t.nf[1].rules = vec!["permit".into()];
        assert!(t.validate().is_err());
        let e = Topology::from_toml("[[nf]]\nname = 1", "x.toml").unwrap_err();
        assert!(e.to_string().starts_with("x.toml"));
    }
}
