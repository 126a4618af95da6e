//! Helpers shared by the integration tests.
#![allow(dead_code)]

use autofocus::{Location, Relation, Side};
use collector::FiveTuple;

/// Dotted quad to u32.
pub fn ip(s: &str) -> u32 {
    u32::from(s.parse::<std::net::Ipv4Addr>().expect("valid address"))
}

/// A 5-tuple.
pub fn flow(src: &str, dst: &str, proto: u8, sport: u16, dport: u16) -> FiveTuple {
    FiveTuple {
        src_ip: ip(src),
        dst_ip: ip(dst),
        src_port: sport,
        dst_port: dport,
        proto,
    }
}

/// A location from an instance name; the type is the name without its
/// trailing digits (`fw2` → `fw`), `src*` are sources.
pub fn loc(instance: &str) -> Location {
    let ty = instance.trim_end_matches(|c: char| c.is_ascii_digit());
    if ty == "src" {
        Location::source(instance)
    } else {
        Location::nf(instance, ty)
    }
}

/// A relation.
pub fn rel(
    culprit: (FiveTuple, &str),
    victim: (FiveTuple, &str),
    score: f64,
    gap_ns: f64,
) -> Relation {
    Relation {
        culprit: Side {
            flow: culprit.0,
            location: loc(culprit.1),
        },
        victim: Side {
            flow: victim.0,
            location: loc(victim.1),
        },
        score,
        gap_ns,
    }
}

/// Synthetic CAIDA-like relations shaped like the paper's §6.4 experiment.
pub mod synth {
    use super::{flow, rel};
    use autofocus::Relation;
    use collector::FiveTuple;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// NF types of the paper's Fig. 10 topology, four instances each.
    pub const TYPES: [&str; 4] = ["nat", "fw", "mon", "vpn"];

    /// Parameters of a synthetic relation set.
    #[derive(Clone, Debug)]
    pub struct Shape {
        /// Relations to generate.
        pub relations: usize,
        /// Background flow pool size.
        pub flows: usize,
        /// Zipf exponent of flow popularity (culprits and victims).
        pub zipf: f64,
        /// Share of the total score carried by bug relations (culprit: the
        /// nine bug flows at `fw2`).
        pub bug_share: f64,
        /// Share of background relations whose culprit is at another location
        /// than the victim (propagation).
        pub propagation: f64,
        /// RNG seed.
        pub seed: u64,
    }

    impl Default for Shape {
        fn default() -> Self {
            Shape {
                relations: 84_000,
                flows: 20_000,
                zipf: 1.0,
                bug_share: 0.08,
                propagation: 0.22,
                seed: 7,
            }
        }
    }

    /// The nine bug-triggering flows of §6.4: TCP 100.0.0.1 → 32.0.0.1,
    /// sport 2000+i → dport 6000+i.
    pub fn bug_flows() -> Vec<FiveTuple> {
        (0..9)
            .map(|i| flow("100.0.0.1", "32.0.0.1", 6, 2000 + i, 6000 + i))
            .collect()
    }

    struct Pool {
        flows: Vec<FiveTuple>,
        cdf: Vec<f64>,
    }

    impl Pool {
        fn new(rng: &mut ChaCha8Rng, n: usize, s: f64) -> Pool {
            let flows = (0..n)
                .map(|_| {
                    let tcp = rng.gen_bool(0.85);
                    let dport = match rng.gen_range(0..10) {
                        0..=3 => 443,
                        4..=5 => 80,
                        6 => 53,
                        _ => rng.gen_range(1024..=65535),
                    };
                    FiveTuple {
                        src_ip: rng.gen(),
                        dst_ip: rng.gen(),
                        src_port: rng.gen_range(1024..=65535),
                        dst_port: dport,
                        proto: if tcp { 6 } else { 17 },
                    }
                })
                .collect();
            let mut acc = 0.0;
            let cdf = (1..=n)
                .map(|k| {
                    acc += (k as f64).powf(-s);
                    acc
                })
                .collect();
            Pool { flows, cdf }
        }

        fn pick(&self, rng: &mut ChaCha8Rng) -> FiveTuple {
            let u = rng.gen::<f64>() * self.cdf[self.cdf.len() - 1];
            let i = self
                .cdf
                .partition_point(|&c| c < u)
                .min(self.flows.len() - 1);
            self.flows[i]
        }
    }

    /// The instance of `ty` a flow is hashed to.
    fn instance(f: &FiveTuple, ty: &str) -> String {
        let h =
            (f.src_ip ^ f.dst_ip.rotate_left(7) ^ ((f.src_port as u32) << 16) ^ f.dst_port as u32)
                .wrapping_mul(0x9E37_79B1);
        format!("{ty}{}", (h >> 28) % 4 + 1)
    }

    /// Generates the relations.
    pub fn relations(shape: &Shape) -> Vec<Relation> {
        let mut rng = ChaCha8Rng::seed_from_u64(shape.seed);
        let pool = Pool::new(&mut rng, shape.flows, shape.zipf);
        let bugs = bug_flows();
        let exp = |rng: &mut ChaCha8Rng| -(1.0 - rng.gen::<f64>()).ln();
        // Bug relations carry `bug_share` of the expected total score: with
        // equal mean scores, that is the same share of the relations.
        let n_bug = (shape.relations as f64 * shape.bug_share).round() as usize;
        let mut out = Vec::with_capacity(shape.relations);
        for i in 0..shape.relations {
            let score = exp(&mut rng);
            if i < n_bug {
                // Victims: packets queued behind the bug packets at fw2.
                let mut v = pool.pick(&mut rng);
                while instance(&v, "fw") != "fw2" {
                    v = pool.pick(&mut rng);
                }
                let c = bugs[rng.gen_range(0..bugs.len())];
                let gap = rng.gen_range(0.0..2e6);
                out.push(rel((c, "fw2"), (v, "fw2"), score, gap));
                continue;
            }
            let v = pool.pick(&mut rng);
            let vty = TYPES[rng.gen_range(0..TYPES.len())];
            let vloc = instance(&v, vty);
            let c = pool.pick(&mut rng);
            let cloc = if rng.gen_bool(shape.propagation) {
                if rng.gen_bool(0.5) {
                    format!("src{}", rng.gen_range(0..2))
                } else {
                    instance(&c, TYPES[rng.gen_range(0..TYPES.len())])
                }
            } else {
                vloc.clone()
            };
            // Gaps: half under ~1.5 ms, a long tail to ~90 ms (Fig. 15).
            let gap = if rng.gen_bool(0.5) {
                rng.gen_range(0.0..1.5e6)
            } else {
                1.5e6 + 88.5e6 * rng.gen::<f64>().powi(2)
            };
            out.push(rel((c, &cloc), (v, &vloc), score, gap));
        }
        out
    }
}
