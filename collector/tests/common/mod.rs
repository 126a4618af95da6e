//! Shared helpers for the ring tests: identities, seeded record generators.
#![allow(dead_code)]

use collector::ring::{RingConfig, RingIdentity};
use collector::{BatchRecord, Direction, FiveTuple, Record, Role};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn identity(nf: &str, carries_tuples: bool) -> RingIdentity {
    RingIdentity {
        nf: nf.to_string(),
        nf_type: "firewall".into(),
        role: Role::Nf,
        port: 1,
        queue: 2,
        direction: Direction::Rx,
        host: "testhost".into(),
        carries_tuples,
        pid: 4242,
        created_ns: 1_700_000_000_000_000_000,
        tsc_hz_hint: Some(2_600_000_000),
    }
}

pub fn config(nf: &str, data_size: u64, carries_tuples: bool) -> RingConfig {
    RingConfig {
        identity: identity(nf, carries_tuples),
        data_size,
        max_record_size: None,
        group: None,
    }
}

/// A batch as a record (seq 0: the ring assigns sequence numbers).
pub fn random_batch(rng: &mut ChaCha8Rng, max_count: usize, tuples: bool) -> BatchRecord {
    let n = rng.gen_range(0..=max_count);
    let ipids: Vec<u16> = (0..n).map(|_| rng.gen()).collect();
    let mut non_ipv4: Vec<u16> = if n > 0 && rng.gen_bool(0.2) {
        (0..rng.gen_range(1..=n.min(4)))
            .map(|_| rng.gen_range(0..n as u16))
            .collect()
    } else {
        Vec::new()
    };
    non_ipv4.sort_unstable();
    non_ipv4.dedup();
    let tuples = tuples.then(|| {
        (0..n)
            .map(|_| FiveTuple {
                src_ip: rng.gen(),
                dst_ip: rng.gen(),
                src_port: rng.gen(),
                dst_port: rng.gen(),
                proto: rng.gen(),
            })
            .collect()
    });
    BatchRecord {
        seq: 0,
        tsc: rng.gen(),
        requested: rng.gen_range(1..=64),
        ipids,
        non_ipv4,
        tuples,
    }
}

/// A seeded mix of batches (with or without tuples) and anchors.
pub fn random_records(seed: u64, n: usize, max_count: usize, tuples: bool) -> Vec<Record> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            if rng.gen_bool(0.1) {
                Record::Anchor(collector::ClockAnchor {
                    seq: 0,
                    tsc: rng.gen(),
                    mono_ns: rng.gen(),
                })
            } else {
                Record::Batch(random_batch(&mut rng, max_count, tuples))
            }
        })
        .collect()
}

/// `r` with its sequence number set to `seq`.
pub fn with_seq(r: &Record, seq: u64) -> Record {
    match r {
        Record::Batch(b) => Record::Batch(BatchRecord { seq, ..b.clone() }),
        Record::Anchor(a) => Record::Anchor(collector::ClockAnchor { seq, ..*a }),
    }
}
