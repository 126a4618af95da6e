//! Property tests over random small NF DAGs with random stalls and bursts.
mod common;

use common::*;
use diagnose::{run, Config, VictimRule};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Two sources, NFs a0,a1 → b → c (a DAG with a merge at b), random rates,
/// stalls and bursts.
fn random_model(seed: u64) -> Model {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut nfs = Vec::new();
    for name in ["a0", "a1", "b", "c"] {
        let stalls = if rng.gen_bool(0.6) {
            let s = rng.gen_range(50_000..400_000);
            vec![(s, s + rng.gen_range(20_000..150_000))]
        } else {
            vec![]
        };
        nfs.push(Nf {
            name: name.into(),
            rate_pps: rng.gen_range(0.6e6..1.5e6),
            stalls,
        });
    }
    let mut pkts = Vec::new();
    let mut ipid = 1u16;
    for src in 0..2usize {
        let mut t = 0i64;
        while t < 600_000 {
            t += rng.gen_range(500..5_000);
            let first = if rng.gen_bool(0.5) { 0 } else { 1 };
            let burst = if rng.gen_bool(0.01) {
                rng.gen_range(10..80)
            } else {
                1
            };
            for _ in 0..burst {
                pkts.push(Pkt {
                    t,
                    src,
                    route: vec![first, 2, 3],
                    ipid,
                    tuple: tuple(rng.gen_range(0..20)),
                });
                ipid = ipid.wrapping_add(1);
            }
        }
    }
    Model {
        sources: vec!["s0".into(), "s1".into()],
        nfs,
        pkts,
    }
}

fn cfg(threads: usize) -> Config {
    Config {
        victims: vec![VictimRule::Percentile(80.0)],
        require_abnormal: false,
        threads: Some(threads),
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn scores_nonnegative_and_cover_the_queue(seed in 0u64..1_000_000) {
        let b = build(&random_model(seed));
        let d = run(&b.trace, &cfg(1)).unwrap();
        prop_assert!(!d.victims.is_empty());
        for v in &d.victims {
            prop_assert!(v.s_i >= 0.0 && v.s_p >= 0.0);
            prop_assert!((v.s_i + v.s_p - v.queue_len() as f64).abs() < 1e-6);
            let mut sum = v.unattributed;
            for c in &v.ranked {
                prop_assert!(c.score >= 0.0, "negative score {:?}", c);
                prop_assert!(c.flows.iter().all(|f| f.1 >= 0.0));
                sum += c.score;
            }
            prop_assert!((sum - v.queue_len() as f64).abs() < 1e-6 * (1.0 + sum),
                "sum {} queue {} {:?}", sum, v.queue_len(), v);
            prop_assert!(v.ranked.windows(2).all(|w| w[0].score >= w[1].score));
        }
        // Reconstruction of this collision-free model is exact.
        prop_assert_eq!(d.reconstruction.links.unmatched_down, 0);
    }

    #[test]
    fn same_result_with_one_and_many_threads(seed in 0u64..1_000_000) {
        let b = build(&random_model(seed));
        let one = run(&b.trace, &cfg(1)).unwrap();
        let many = run(&b.trace, &cfg(3)).unwrap();
        prop_assert_eq!(one, many);
    }
}

/// Every rx observation at every NF is mapped to the true upstream tx.
#[test]
fn reconstruction_matches_the_model() {
    let m = random_model(7);
    let b = build(&m);
    let rec = diagnose::reconstruct(&b.trace, &Config::default()).unwrap();
    let mut checked = 0;
    for (f, _) in m.nfs.iter().enumerate() {
        for (p, slot) in b.rx_slot[f].iter().enumerate() {
            let Some((seq, idx)) = *slot else { continue };
            let rx = diagnose::PacketSlot {
                stream: b.nf_streams[f].0,
                seq,
                idx,
            };
            let up = rec.upstream(&rx).expect("mapped");
            // The upstream is the previous hop's tx (or the source's).
            let pos = m.pkts[p].route.iter().position(|&x| x == f).unwrap();
            let want_stream = if pos == 0 {
                b.src_stream[m.pkts[p].src]
            } else {
                b.nf_streams[m.pkts[p].route[pos - 1]].1
            };
            assert_eq!(up.stream, want_stream);
            assert_eq!(rec.time_ns(&up), b.arrival[f][p]);
            checked += 1;
        }
    }
    assert!(checked > 1000);
}

/// Victims diagnosed together (one growing PreSet per queuing period) get
/// the same culprits as when diagnosed one by one.
#[test]
fn grouped_equals_individual() {
    for seed in [3u64, 11, 29] {
        let b = build(&random_model(seed));
        let c = cfg(2);
        let d = run(&b.trace, &c).unwrap();
        let rec = diagnose::reconstruct(&b.trace, &c).unwrap();
        let received: Vec<_> = d.victims.iter().filter(|v| !v.lost).collect();
        let slots: Vec<_> = received.iter().map(|v| v.slot).collect();
        let single = diagnose::diagnose_slots(&rec, &c, &slots).unwrap();
        assert_eq!(single.len(), received.len());
        for (a, b) in received.iter().zip(&single) {
            assert_eq!((a.n_i, a.n_p), (b.n_i, b.n_p));
            assert_eq!(a.ranked.len(), b.ranked.len());
            for (x, y) in a.ranked.iter().zip(&b.ranked) {
                assert_eq!(x.location, y.location);
                assert!((x.score - y.score).abs() < 1e-9 * (1.0 + x.score));
                assert_eq!(x.flows.len(), y.flows.len());
            }
        }
    }
}
