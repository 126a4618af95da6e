//! Planted patterns: relations built so that known aggregates each hold a
//! known share and nothing else can reach the threshold. The report must list
//! exactly those aggregates with exactly those scores, under both counting
//! rules.
//!
//! Construction (why nothing spurious can appear): aggregate `i` spreads `n`
//! relations evenly over one IP dimension below a `/len` prefix and is
//! constant elsewhere; all its addresses lie in the `/8` region `10 + 40·i`,
//! so any pattern holding relations of two aggregates (or of an aggregate and
//! the background, which lives in 200.0.0.0/8) is a common ancestor of the
//! aggregates it touches and holds them whole. Every strict sub-aggregate
//! holds at most half of an aggregate, the threshold is 90 % of one aggregate,
//! and the background stays below it.

mod common;

use autofocus::{aggregate, Config, CountRule, Relation};
use collector::FiveTuple;
use common::rel;
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Plant {
    /// Which IP dimension spreads: 0 culprit src, 1 culprit dst, 2 victim
    /// src, 3 victim dst.
    spread: usize,
    /// Prefix length of the spread dimension, 8..=24.
    len: u8,
    /// log2 of the relation count.
    log_n: u32,
    proto: u8,
    ports: [u16; 4],
    locs: [&'static str; 2],
}

const LOCS: [&str; 6] = ["fw1", "fw2", "nat1", "vpn3", "src0", "mon2"];

fn arb_plant() -> impl Strategy<Value = Plant> {
    (
        0..4usize,
        8u8..=24,
        1u32..=4,
        prop::sample::select(vec![6u8, 17]),
        prop::array::uniform4(prop::sample::select(vec![
            80u16, 443, 2000, 2004, 6000, 40000,
        ])),
        prop::array::uniform2(prop::sample::select(LOCS.to_vec())),
    )
        .prop_map(|(spread, len, log_n, proto, ports, locs)| Plant {
            spread,
            len,
            log_n,
            proto,
            ports,
            locs,
        })
}

/// The relations of plant `i`, each of weight `w`.
fn plant_relations(i: usize, p: &Plant, w: f64) -> Vec<Relation> {
    let region = ((10 + 40 * i) as u32) << 24;
    let n = 1u32 << p.log_n;
    (0..n)
        .map(|j| {
            // Four IP coordinates: constants in the region, one spread.
            let mut ips = [
                region | 0x0001_0001,
                region | 0x0002_0002,
                region | 0x0003_0003,
                region | 0x0004_0004,
            ];
            let prefix = (region | 0x00AB_CDEF) & (u32::MAX << (32 - p.len as u32));
            let shift = 32 - p.len as u32 - p.log_n;
            ips[p.spread] = prefix | (j << shift);
            let c = FiveTuple {
                src_ip: ips[0],
                dst_ip: ips[1],
                src_port: p.ports[0],
                dst_port: p.ports[1],
                proto: p.proto,
            };
            let v = FiveTuple {
                src_ip: ips[2],
                dst_ip: ips[3],
                src_port: p.ports[2],
                dst_port: p.ports[3],
                proto: p.proto,
            };
            rel((c, p.locs[0]), (v, p.locs[1]), w, 1000.0 * j as f64)
        })
        .collect()
}

fn background(count: usize, mass: u32, seed: u32) -> Vec<Relation> {
    // Integer weights summing to `mass`, addresses in 200.0.0.0/8.
    let mut out = Vec::new();
    let mut left = mass;
    for k in 0..count {
        if left == 0 {
            break;
        }
        let w = if k + 1 == count {
            left
        } else {
            (left / 2).max(1)
        };
        left -= w;
        let x = (seed
            .wrapping_mul(2_654_435_761)
            .wrapping_add(k as u32 * 40_503))
            & 0x00FF_FFFF;
        let ip = (200u32 << 24) | x;
        let f = FiveTuple {
            src_ip: ip,
            dst_ip: ip ^ 0x5555,
            src_port: 1024 + k as u16,
            dst_port: 53,
            proto: 17,
        };
        out.push(rel((f, LOCS[k % 6]), (f, LOCS[(k + 1) % 6]), w as f64, 5.0));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn planted_aggregates_come_out_exactly(
        mut plants in prop::collection::vec(arb_plant(), 1..=4),
        log_n in 1u32..=4,
        weight in 1u32..50,
        bg_permille in 0u32..800,
        bg_count in 1usize..8,
        seed in any::<u32>(),
    ) {
        let w = weight as f64;
        // Equal sizes keep every aggregate above a threshold that no half of
        // an aggregate reaches.
        for p in &mut plants {
            p.log_n = log_n;
        }
        let mut rels = Vec::new();
        let mut masses = Vec::new();
        let mut ranges = Vec::new();
        for (i, p) in plants.iter().enumerate() {
            let start = rels.len();
            rels.extend(plant_relations(i, p, w));
            ranges.push(start..rels.len());
            masses.push(w * (1u32 << p.log_n) as f64);
        }
        let m_min = masses.iter().cloned().fold(f64::INFINITY, f64::min);
        let m_max = masses.iter().cloned().fold(0.0, f64::max);
        // Background below the threshold (90 % of the smallest aggregate).
        let bg_mass = ((m_min * 0.9 * bg_permille as f64 / 1000.0) as u32).max(1);
        rels.extend(background(bg_count, bg_mass, seed));
        let total: f64 = rels.iter().map(|r| r.score).sum();
        let threshold = 0.9 * m_min / total;
        // Every strict sub-aggregate holds at most half of an aggregate.
        assert!(m_max / 2.0 < 0.9 * m_min);
        for rule in [CountRule::Split, CountRule::Overlap] {
            let cfg = Config { threshold, rule, ..Config::default() };
            let report = aggregate(&rels, &cfg);
            prop_assert_eq!(report.patterns.len(), plants.len(), "{}", report.render_table(200));
            for (i, p) in plants.iter().enumerate() {
                let mine = &rels[ranges[i].clone()];
                let found = report
                    .patterns
                    .iter()
                    .find(|pat| mine.iter().all(|r| pat.contains(r)))
                    .expect("each planted aggregate is reported");
                prop_assert_eq!(found.score, masses[i]);
                prop_assert_eq!(found.gross_score, masses[i]);
                prop_assert_eq!(found.relations, 1u64 << p.log_n);
                // The spread dimension is exactly the planted prefix.
                let net = match p.spread {
                    0 => found.culprit.src,
                    1 => found.culprit.dst,
                    2 => found.victim.src,
                    _ => found.victim.dst,
                };
                prop_assert_eq!(net.prefix_len(), p.len);
                prop_assert_eq!(found.culprit.proto, Some(p.proto));
                prop_assert_eq!(found.culprit.sport.lo, found.culprit.sport.hi);
            }
        }
    }
}
