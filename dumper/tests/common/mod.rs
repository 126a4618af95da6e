//! Helpers for dumper tests: ring producers that record what they offered.
#![allow(dead_code)]

use collector::ring::{BatchView, Producer, RingConfig, RingIdentity};
use collector::{BatchRecord, ClockAnchor, Direction, Record, Role};
use std::path::Path;

pub fn config(nf: &str, queue: u16, data_size: u64) -> RingConfig {
    RingConfig {
        identity: RingIdentity {
            nf: nf.into(),
            nf_type: "nat".into(),
            role: Role::Nf,
            port: 0,
            queue,
            direction: Direction::Rx,
            host: "h".into(),
            carries_tuples: false,
            pid: 1,
            created_ns: 5,
            tsc_hz_hint: None,
        },
        data_size,
        max_record_size: None,
        group: None,
    }
}

/// The deterministic record for sequence number `i` of a test stream.
pub fn record(i: u64) -> Record {
    if i % 50 == 0 {
        Record::Anchor(ClockAnchor {
            seq: i,
            tsc: 1000 + i * 100,
            mono_ns: i * 38,
        })
    } else {
        let n = (i % 32) as u16 + 1;
        Record::Batch(BatchRecord {
            seq: i,
            tsc: 1000 + i * 100,
            requested: 32,
            ipids: (0..n)
                .map(|k| (i as u16).wrapping_mul(31).wrapping_add(k))
                .collect(),
            non_ipv4: Vec::new(),
            tuples: None,
        })
    }
}

/// Offers `record(i)` for `i` in `from..to`; returns the seqs written.
pub fn produce(p: &mut Producer, from: u64, to: u64) -> Vec<u64> {
    let mut written = Vec::new();
    for i in from..to {
        let o = match record(i) {
            Record::Anchor(a) => p.put_anchor(a.tsc, a.mono_ns),
            Record::Batch(b) => p.put_batch(&BatchView::from(&b)).unwrap(),
        };
        assert_eq!(o.seq(), i);
        if o.is_written() {
            written.push(i);
        }
    }
    written
}

pub fn create(dir: &Path, name: &str, queue: u16, data_size: u64) -> Producer {
    Producer::create(
        &dir.join(format!("{name}.ring")),
        &config(name, queue, data_size),
    )
    .unwrap()
}

/// Checks that the trace stream holds exactly `record(s)` for each s in `seqs`.
pub fn assert_stream(s: &tracefile::StreamData, seqs: &[u64]) {
    let mut got: Vec<Record> = s
        .batches
        .iter()
        .cloned()
        .map(Record::Batch)
        .chain(s.anchors.iter().copied().map(Record::Anchor))
        .collect();
    got.sort_by_key(Record::seq);
    let want: Vec<Record> = seqs.iter().map(|&i| record(i)).collect();
    assert_eq!(got.len(), want.len(), "record count");
    assert_eq!(got, want);
}
