//! The twelve dimension hierarchies and the packed pattern key.
//!
//! A coordinate is a node of one dimension's tree: a `level` (0 = root,
//! "any") and a `value` whose meaning depends on the dimension kind:
//!
//! | kind  | levels | value at level `t`                                     |
//! |-------|--------|--------------------------------------------------------|
//! | Ip    | 0..=32 | the address masked to a `/t` prefix                    |
//! | Proto | 0..=1  | 0 (any) / the protocol number                          |
//! | Port  | 0..=L  | 0 (any); 1: 0 or 1024 (class); ≥2: port masked to the |
//! |       |        | prefix length `port_lens[t-2]`                         |
//! | Loc   | 0..=2  | 0 (any); 1: type id; 2: instance id                    |
//!
//! Every ancestor map `value ↦ ancestor(value, t)` is monotone non-decreasing
//! in the value (instance ids are assigned in (type, name) order), so sorting
//! by value groups the members of every node together — the one-dimensional
//! pass relies on it.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use rustc_hash::FxHashSet;

use crate::{LocationPattern, PortHierarchy, PortRange, SidePattern};

/// Dimensions in total (six per side).
pub(crate) const NDIM: usize = 12;
/// Dimensions per side.
pub(crate) const SIDE_DIMS: usize = 6;

/// What kind of hierarchy a dimension has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Ip,
    Proto,
    Port,
    Loc,
}

/// Kinds of the six dimensions of one side, in key order: src, dst, proto,
/// sport, dport, location.
pub(crate) const SIDE_KINDS: [Kind; SIDE_DIMS] = [
    Kind::Ip,
    Kind::Ip,
    Kind::Proto,
    Kind::Port,
    Kind::Port,
    Kind::Loc,
];

/// Kind of dimension `d` (0..12; 0..6 culprit, 6..12 victim).
#[inline]
pub(crate) fn kind(d: usize) -> Kind {
    SIDE_KINDS[d % SIDE_DIMS]
}

/// A pattern (or an item, which is a pattern holding relations): one node
/// per dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key {
    pub v: [u32; NDIM],
    pub l: [u8; NDIM],
}

impl Key {
    /// Sum of levels; strictly larger for a pattern strictly below another.
    pub fn depth(&self) -> u32 {
        self.l.iter().map(|&l| l as u32).sum()
    }
}

/// The hierarchies of one aggregation run: the port levels and the interned
/// locations.
#[derive(Clone, Debug)]
pub(crate) struct Hier {
    /// Prefix lengths of port levels 2.., ascending; the last is 16 (exact).
    port_lens: Vec<u8>,
    /// Instance id → type id.
    inst_type: Vec<u32>,
    /// Instance id → (instance name, type name).
    inst_names: Vec<(String, String)>,
    /// Type id → type name.
    type_names: Vec<String>,
    /// Per dimension, the one-dimensional HHH nodes `(level, value)` kept in
    /// the restricted hierarchy (see [`Hier::is_kept`]); empty until
    /// [`Hier::restrict`] is called, which means unrestricted.
    kept: Vec<FxHashSet<(u8, u32)>>,
}

impl Hier {
    /// Builds the hierarchies for a port scheme and a set of locations
    /// (`(type, instance)` pairs, any order, duplicates allowed).
    pub fn new<'a>(
        ports: PortHierarchy,
        locations: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Hier {
        let port_lens = match ports {
            PortHierarchy::Classic => vec![16],
            PortHierarchy::Aligned { step_bits } => {
                let step = step_bits.clamp(1, 10);
                let mut lens = vec![16u8];
                let mut len = 16u8;
                while len >= 6 + step {
                    len -= step;
                    lens.push(len);
                }
                if len != 6 {
                    lens.push(6);
                }
                lens.reverse();
                lens
            }
        };
        // Deduplicate first: there are two locations per relation but few
        // distinct ones.
        let distinct: FxHashSet<(&str, &str)> = locations.into_iter().collect();
        let mut locs: Vec<(&str, &str)> = distinct.into_iter().collect();
        locs.sort_unstable();
        let mut inst_type = Vec::with_capacity(locs.len());
        let mut inst_names = Vec::with_capacity(locs.len());
        let mut type_names: Vec<String> = Vec::new();
        for (ty, inst) in locs {
            if type_names.last().map(String::as_str) != Some(ty) {
                type_names.push(ty.to_string());
            }
            inst_type.push((type_names.len() - 1) as u32);
            inst_names.push((inst.to_string(), ty.to_string()));
        }
        Hier {
            port_lens,
            inst_type,
            inst_names,
            type_names,
            kept: Vec::new(),
        }
    }

    /// Restricts every dimension to its structural levels plus the given
    /// nodes (one set per dimension: the one-dimensional HHH nodes and the
    /// joining port blocks).
    pub fn restrict(&mut self, kept: Vec<FxHashSet<(u8, u32)>>) {
        debug_assert_eq!(kept.len(), NDIM);
        self.kept = kept;
    }

    /// Whether a node exists in the restricted hierarchy of dimension `d`:
    /// the root and the leaves always; every level of protocol and location;
    /// the port classes; otherwise only one-dimensional HHH nodes and the
    /// port blocks joining two or more of them (see `engine::restrict`).
    #[inline]
    pub fn is_kept(&self, d: usize, l: u8, v: u32) -> bool {
        self.kept.is_empty() || self.is_structural(d, l) || self.kept[d].contains(&(l, v))
    }

    /// Levels kept whatever the data: root, leaves, every level of protocol
    /// and location, the port classes.
    #[inline]
    pub fn is_structural(&self, d: usize, l: u8) -> bool {
        let k = kind(d);
        l == 0
            || l == self.max_level(k)
            || matches!(k, Kind::Proto | Kind::Loc)
            || (k == Kind::Port && l == 1)
    }

    /// Least common ancestor of two nodes of dimension `d` in the restricted
    /// hierarchy.
    #[inline]
    pub fn rlca(&self, d: usize, a: (u8, u32), b: (u8, u32)) -> (u8, u32) {
        let k = kind(d);
        let (mut t, mut v) = self.lca(k, a, b);
        while !self.is_kept(d, t, v) {
            t -= 1;
            v = self.ancestor(k, a.0, a.1, t);
        }
        (t, v)
    }

    /// Instance id of a location, if interned.
    pub fn instance_id(&self, nf_type: &str, instance: &str) -> Option<u32> {
        // inst_names is sorted by (type, instance).
        self.inst_names
            .binary_search_by(|(i, t)| (t.as_str(), i.as_str()).cmp(&(nf_type, instance)))
            .ok()
            .map(|i| i as u32)
    }

    /// Deepest level of a dimension kind.
    #[inline]
    pub fn max_level(&self, k: Kind) -> u8 {
        match k {
            Kind::Ip => 32,
            Kind::Proto => 1,
            Kind::Port => 1 + self.port_lens.len() as u8,
            Kind::Loc => 2,
        }
    }

    /// Value of the ancestor at level `t` of the node `(l, v)`; `t <= l`.
    #[inline]
    pub fn ancestor(&self, k: Kind, l: u8, v: u32, t: u8) -> u32 {
        debug_assert!(t <= l);
        match k {
            Kind::Ip => mask32(v, t),
            Kind::Proto => {
                if t == 0 {
                    0
                } else {
                    v
                }
            }
            Kind::Port => match t {
                0 => 0,
                1 => {
                    if v < 1024 {
                        0
                    } else {
                        1024
                    }
                }
                _ => mask16(v, self.port_lens[t as usize - 2]),
            },
            Kind::Loc => match t {
                0 => 0,
                1 if l == 2 => self.inst_type[v as usize],
                _ => v,
            },
        }
    }

    /// Least common ancestor of two nodes of the same dimension.
    #[inline]
    pub fn lca(&self, k: Kind, a: (u8, u32), b: (u8, u32)) -> (u8, u32) {
        if k == Kind::Ip {
            let t = a.0.min(b.0).min((a.1 ^ b.1).leading_zeros() as u8);
            return (t, mask32(a.1, t));
        }
        let mut t = a.0.min(b.0);
        loop {
            let x = self.ancestor(k, a.0, a.1, t);
            if t == 0 || x == self.ancestor(k, b.0, b.1, t) {
                return (t, x);
            }
            t -= 1;
        }
    }

    /// Whether node `inner` lies inside node `outer` (or equals it).
    #[inline]
    pub fn node_within(&self, k: Kind, inner: (u8, u32), outer: (u8, u32)) -> bool {
        inner.0 >= outer.0 && self.ancestor(k, inner.0, inner.1, outer.0) == outer.1
    }

    /// Whether pattern `inner` lies inside pattern `outer` on every dimension.
    pub fn key_within(&self, inner: &Key, outer: &Key) -> bool {
        (0..NDIM)
            .all(|d| self.node_within(kind(d), (inner.l[d], inner.v[d]), (outer.l[d], outer.v[d])))
    }

    /// Port range of a port node.
    pub fn port_range(&self, l: u8, v: u32) -> PortRange {
        match l {
            0 => PortRange::ANY,
            1 => {
                if v < 1024 {
                    PortRange { lo: 0, hi: 1023 }
                } else {
                    PortRange {
                        lo: 1024,
                        hi: 65535,
                    }
                }
            }
            _ => {
                let len = self.port_lens[l as usize - 2];
                let lo = v as u16;
                let hi = lo | (0xFFFFu32 >> len) as u16;
                PortRange { lo, hi }
            }
        }
    }

    /// Location node as a pattern.
    pub fn location(&self, l: u8, v: u32) -> LocationPattern {
        match l {
            0 => LocationPattern::Any,
            1 => LocationPattern::Type {
                nf_type: self.type_names[v as usize].clone(),
            },
            _ => {
                let (instance, nf_type) = self.inst_names[v as usize].clone();
                LocationPattern::Instance { instance, nf_type }
            }
        }
    }

    /// One side (dimensions `base..base + 6`) of a key as a pattern.
    pub fn side(&self, key: &Key, base: usize) -> SidePattern {
        let ip = |d: usize| {
            Ipv4Net::new(Ipv4Addr::from(key.v[d]), key.l[d]).expect("prefix length <= 32")
        };
        SidePattern {
            src: ip(base),
            dst: ip(base + 1),
            proto: (key.l[base + 2] == 1).then_some(key.v[base + 2] as u8),
            sport: self.port_range(key.l[base + 3], key.v[base + 3]),
            dport: self.port_range(key.l[base + 4], key.v[base + 4]),
            location: self.location(key.l[base + 5], key.v[base + 5]),
        }
    }
}

#[inline]
fn mask32(v: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        v & (u32::MAX << (32 - len as u32))
    }
}

#[inline]
fn mask16(v: u32, len: u8) -> u32 {
    v & (0xFFFFu32 << (16 - len as u32)) & 0xFFFF
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hier(p: PortHierarchy) -> Hier {
        Hier::new(
            p,
            [
                ("nat", "nat1"),
                ("firewall", "fw2"),
                ("firewall", "fw1"),
                ("source", "s0"),
            ],
        )
    }

    #[test]
    fn port_levels() {
        let h = hier(PortHierarchy::default());
        assert_eq!(h.port_lens, vec![6, 8, 12, 16]);
        let h1 = hier(PortHierarchy::Aligned { step_bits: 1 });
        assert_eq!(h1.port_lens, (6..=16).collect::<Vec<u8>>());
        let h3 = hier(PortHierarchy::Aligned { step_bits: 3 });
        assert_eq!(h3.port_lens, vec![6, 7, 10, 13, 16]);
        let hc = hier(PortHierarchy::Classic);
        assert_eq!(hc.port_lens, vec![16]);
        // 2000..=2008 share the 16-block 2000-2015 and no smaller level.
        let top = h.max_level(Kind::Port);
        let n = |p: u32| (top, p);
        let mut acc = n(2000);
        for p in 2001..=2008 {
            acc = h.lca(Kind::Port, acc, n(p));
        }
        assert_eq!(h.port_range(acc.0, acc.1), PortRange { lo: 2000, hi: 2015 });
        let mut acc = n(6000);
        for p in 6001..=6008 {
            acc = h.lca(Kind::Port, acc, n(p));
        }
        assert_eq!(h.port_range(acc.0, acc.1), PortRange { lo: 6000, hi: 6015 });
        // Classic: only the class.
        let t = hc.max_level(Kind::Port);
        let c = hc.lca(Kind::Port, (t, 2000), (t, 2008));
        assert_eq!(
            hc.port_range(c.0, c.1),
            PortRange {
                lo: 1024,
                hi: 65535
            }
        );
        let c = hc.lca(Kind::Port, (t, 80), (t, 2008));
        assert_eq!(c, (0, 0));
    }

    /// The LCA agrees with the definition: the deepest common ancestor found
    /// by walking both paths.
    #[test]
    fn lca_matches_walk() {
        let h = hier(PortHierarchy::Aligned { step_bits: 3 });
        let walk = |k: Kind, a: (u8, u32), b: (u8, u32)| {
            let mut best = (0u8, 0u32);
            for t in 0..=a.0.min(b.0) {
                let x = h.ancestor(k, a.0, a.1, t);
                if x == h.ancestor(k, b.0, b.1, t) {
                    best = (t, x);
                }
            }
            best
        };
        let ports = [
            0u32, 1, 80, 443, 1023, 1024, 2000, 2008, 6000, 65535, 32768, 4096,
        ];
        let pm = h.max_level(Kind::Port);
        for &a in &ports {
            for &b in &ports {
                assert_eq!(
                    h.lca(Kind::Port, (pm, a), (pm, b)),
                    walk(Kind::Port, (pm, a), (pm, b))
                );
            }
        }
        let ips = [0u32, 1, 0x6400_0001, 0x2000_0001, 0xFFFF_FFFF, 0x8000_0000];
        for &a in &ips {
            for &b in &ips {
                assert_eq!(
                    h.lca(Kind::Ip, (32, a), (32, b)),
                    walk(Kind::Ip, (32, a), (32, b))
                );
            }
        }
        let fw1 = h.instance_id("firewall", "fw1").unwrap();
        let fw2 = h.instance_id("firewall", "fw2").unwrap();
        let nat = h.instance_id("nat", "nat1").unwrap();
        let l = h.lca(Kind::Loc, (2, fw1), (2, fw2));
        assert_eq!(
            h.location(l.0, l.1),
            LocationPattern::Type {
                nf_type: "firewall".into()
            }
        );
        assert_eq!(h.lca(Kind::Loc, (2, fw1), (2, nat)), (0, 0));
        assert_eq!(h.lca(Kind::Loc, (2, fw1), (2, fw1)), (2, fw1));
    }

    #[test]
    fn ancestors_are_monotone_in_value() {
        let h = hier(PortHierarchy::default());
        for t in 0..=h.max_level(Kind::Port) {
            let mut prev = 0;
            for p in 0..=65535u32 {
                let a = h.ancestor(Kind::Port, h.max_level(Kind::Port), p, t);
                assert!(a >= prev);
                prev = a;
            }
        }
        let mut prev = 0;
        for i in 0..4u32 {
            let a = h.ancestor(Kind::Loc, 2, i, 1);
            assert!(a >= prev);
            prev = a;
        }
    }
}
