//! Reported patterns: one node per dimension, for each side.

use std::fmt;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// An inclusive port range; `0-65535` is "any".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortRange {
    /// First port in the range.
    pub lo: u16,
    /// Last port in the range (inclusive).
    pub hi: u16,
}

impl PortRange {
    /// Every port.
    pub const ANY: PortRange = PortRange { lo: 0, hi: 65535 };

    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == PortRange::ANY {
            f.write_str("*")
        } else if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// A node of the location hierarchy.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "level")]
pub enum LocationPattern {
    /// One NF instance (or one traffic source).
    Instance {
        /// Instance name.
        instance: String,
        /// Its type.
        nf_type: String,
    },
    /// Every instance of one type (`source` for all traffic sources).
    Type {
        /// The type name.
        nf_type: String,
    },
    /// Anywhere.
    Any,
}

impl LocationPattern {
    /// Whether the location is in this node.
    pub fn contains(&self, loc: &crate::Location) -> bool {
        match self {
            LocationPattern::Instance { instance, nf_type } => {
                *instance == loc.instance && *nf_type == loc.nf_type
            }
            LocationPattern::Type { nf_type } => *nf_type == loc.nf_type,
            LocationPattern::Any => true,
        }
    }
}

impl fmt::Display for LocationPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocationPattern::Instance { instance, .. } => f.write_str(instance),
            LocationPattern::Type { nf_type } => write!(f, "{nf_type}/*"),
            LocationPattern::Any => f.write_str("*"),
        }
    }
}

/// One side (culprit or victim) of a pattern: a flow aggregate and a location
/// set.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SidePattern {
    /// Source address prefix (`0.0.0.0/0` is any).
    pub src: Ipv4Net,
    /// Destination address prefix.
    pub dst: Ipv4Net,
    /// Protocol number, `None` for any.
    pub proto: Option<u8>,
    /// Source ports.
    pub sport: PortRange,
    /// Destination ports.
    pub dport: PortRange,
    /// Location set.
    pub location: LocationPattern,
}

impl SidePattern {
    /// Whether a flow at a location falls in this aggregate.
    pub fn contains(&self, side: &crate::Side) -> bool {
        let f = &side.flow;
        self.src.contains(&std::net::Ipv4Addr::from(f.src_ip))
            && self.dst.contains(&std::net::Ipv4Addr::from(f.dst_ip))
            && (self.proto.is_none() || self.proto == Some(f.proto))
            && self.sport.contains(f.src_port)
            && self.dport.contains(f.dst_port)
            && self.location.contains(&side.location)
    }

    /// The fields as display strings: src, dst, proto, sport, dport, location.
    pub fn fields(&self) -> [String; 6] {
        let ip = |n: &Ipv4Net| {
            if n.prefix_len() == 0 {
                "*".to_string()
            } else {
                n.to_string()
            }
        };
        [
            ip(&self.src),
            ip(&self.dst),
            self.proto.map_or("*".to_string(), |p| p.to_string()),
            self.sport.to_string(),
            self.dport.to_string(),
            self.location.to_string(),
        ]
    }
}

impl fmt::Display for SidePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fields().join(" "))
    }
}

/// A reported aggregate `<culprit> => <victim>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pattern {
    /// Culprit flow aggregate and location set.
    pub culprit: SidePattern,
    /// Victim flow aggregate and location set.
    pub victim: SidePattern,
    /// Compressed score: the score of the relations in the pattern that no
    /// reported pattern strictly below it holds. Reported because it is at
    /// least `threshold × total`.
    pub score: f64,
    /// `score / total`.
    pub share: f64,
    /// Score of every relation in the pattern (compressed or not).
    pub gross_score: f64,
    /// Relations counted in `score`.
    pub relations: u64,
    /// Relations counted in `gross_score`.
    pub gross_relations: u64,
}

impl Pattern {
    /// Whether a relation falls in the pattern (gross membership).
    pub fn contains(&self, r: &crate::Relation) -> bool {
        self.culprit.contains(&r.culprit) && self.victim.contains(&r.victim)
    }

    /// Whether `other` lies inside this pattern on every dimension (or is
    /// equal to it).
    pub fn covers(&self, other: &Pattern) -> bool {
        side_covers(&self.culprit, &other.culprit) && side_covers(&self.victim, &other.victim)
    }
}

fn side_covers(a: &SidePattern, b: &SidePattern) -> bool {
    let loc = match (&a.location, &b.location) {
        (LocationPattern::Any, _) => true,
        (LocationPattern::Type { nf_type }, LocationPattern::Type { nf_type: t2 }) => nf_type == t2,
        (LocationPattern::Type { nf_type }, LocationPattern::Instance { nf_type: t2, .. }) => {
            nf_type == t2
        }
        (LocationPattern::Instance { .. }, LocationPattern::Instance { .. }) => {
            a.location == b.location
        }
        _ => false,
    };
    loc && a.src.contains(&b.src)
        && a.dst.contains(&b.dst)
        && (a.proto.is_none() || a.proto == b.proto)
        && a.sport.lo <= b.sport.lo
        && b.sport.hi <= a.sport.hi
        && a.dport.lo <= b.dport.lo
        && b.dport.hi <= a.dport.hi
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} => {}", self.culprit, self.victim)
    }
}
