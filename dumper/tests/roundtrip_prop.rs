//! Property test: arbitrary records offered to a ring come out of the trace
//! file the dumper writes exactly as written (sequence numbers included),
//! and whatever the ring dropped is in the file's loss counters.

use collector::ring::{Producer, RingConfig, RingIdentity};
use collector::{BatchRecord, ClockAnchor, Direction, FiveTuple, Record, Role};
use proptest::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracefile::{read_trace, ReadMode};

fn record(tuples: bool) -> impl Strategy<Value = Record> {
    let batch = (
        any::<u64>(),
        1u16..=64,
        prop::collection::vec(any::<u16>(), 0..80),
        prop::collection::btree_set(0u16..80, 0..3),
        any::<[u8; 13]>(),
    )
        .prop_map(move |(tsc, requested, ipids, non, t)| {
            let n = ipids.len();
            Record::Batch(BatchRecord {
                seq: 0,
                tsc,
                requested,
                non_ipv4: non.into_iter().filter(|&i| (i as usize) < n).collect(),
                tuples: tuples.then(|| {
                    (0..n)
                        .map(|k| {
                            let mut f = FiveTuple::from_bytes(&t);
                            f.src_port = f.src_port.wrapping_add(k as u16);
                            f
                        })
                        .collect()
                }),
                ipids,
            })
        });
    prop_oneof![
        6 => batch,
        1 => (any::<u64>(), any::<u64>()).prop_map(|(tsc, mono_ns)| Record::Anchor(ClockAnchor { seq: 0, tsc, mono_ns })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn records_survive_ring_and_file(
        tuples in any::<bool>(),
        seed_records in prop::collection::vec(record(true), 1..400),
        small_ring in any::<bool>(),
    ) {
        let recs: Vec<Record> = seed_records.into_iter().map(|r| match r {
            Record::Batch(mut b) if !tuples => { b.tuples = None; Record::Batch(b) }
            r => r,
        }).collect();
        let rings = tempfile::tempdir().unwrap();
        let outdir = tempfile::tempdir().unwrap();
        let out = outdir.path().join("t.bin");
        let cfg = RingConfig {
            identity: RingIdentity {
                nf: "p".into(), nf_type: "t".into(), role: Role::Source, port: 3, queue: 4,
                direction: Direction::Tx, host: "h".into(), carries_tuples: tuples,
                pid: 9, created_ns: 1, tsc_hz_hint: Some(2_000_000_000),
            },
            data_size: if small_ring { 4096 } else { 1 << 20 },
            max_record_size: None,
            group: None,
        };
        let mut p = Producer::create(&rings.path().join("p.ring"), &cfg).unwrap();
        let mut expect = Vec::new();
        for r in &recs {
            let o = p.put_record(r).unwrap();
            if o.is_written() {
                expect.push(match r {
                    Record::Batch(b) => Record::Batch(BatchRecord { seq: o.seq(), ..b.clone() }),
                    Record::Anchor(a) => Record::Anchor(ClockAnchor { seq: o.seq(), ..*a }),
                });
            }
        }
        let mut dc = dumper::Config::new(rings.path(), &out);
        dc.sync_interval = Duration::from_millis(5);
        dc.scan_interval = Duration::from_millis(2);
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let h = std::thread::spawn(move || dumper::run(&dc, s2));
        while p.used_bytes() > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        stop.store(true, Ordering::Release);
        h.join().unwrap().unwrap();
        let t = read_trace(&out, ReadMode::Strict).unwrap();
        prop_assert_eq!(t.meta.tsc_hz_hint, Some(2e9));
        prop_assert_eq!(t.streams.len(), 1);
        let s = &t.streams[0];
        let info = s.info.as_ref().unwrap();
        prop_assert_eq!(info, &cfg.identity.stream_info(0));
        let mut got: Vec<Record> = s.batches.iter().cloned().map(Record::Batch)
            .chain(s.anchors.iter().copied().map(Record::Anchor)).collect();
        got.sort_by_key(Record::seq);
        prop_assert_eq!(got, expect.clone());
        let c = p.counters();
        prop_assert_eq!(s.loss.lost_full, c.lost_full);
        prop_assert_eq!(s.loss.lost_too_big, c.lost_too_big);
        prop_assert_eq!(expect.len() as u64 + c.lost_full + c.lost_too_big, recs.len() as u64);
    }
}
