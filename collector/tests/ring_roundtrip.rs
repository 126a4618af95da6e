//! Property test: any sequence of records offered to the Rust producer comes
//! back from the consumer exactly (sequence numbers assigned in order), with
//! wrap-around, interleaved drains and commits; what was not written is
//! counted as lost.

mod common;

use collector::ring::{Consumer, Producer, TrustPolicy};
use collector::{BatchRecord, ClockAnchor, FiveTuple, Record};
use proptest::prelude::*;

fn tuple() -> impl Strategy<Value = FiveTuple> {
    (
        any::<u32>(),
        any::<u32>(),
        any::<u16>(),
        any::<u16>(),
        any::<u8>(),
    )
        .prop_map(|(src_ip, dst_ip, src_port, dst_port, proto)| FiveTuple {
            src_ip,
            dst_ip,
            src_port,
            dst_port,
            proto,
        })
}

fn batch(tuples: bool) -> impl Strategy<Value = Record> {
    (
        any::<u64>(),
        1u16..=512,
        prop::collection::vec(any::<u16>(), 0..200),
    )
        .prop_flat_map(move |(tsc, requested, ipids)| {
            let n = ipids.len();
            let non = if n == 0 {
                Just(Vec::new()).boxed()
            } else {
                prop::collection::btree_set(0..n as u16, 0..4)
                    .prop_map(|s| s.into_iter().collect())
                    .boxed()
            };
            let tup = if tuples {
                prop::collection::vec(tuple(), n).prop_map(Some).boxed()
            } else {
                Just(None).boxed()
            };
            (Just(tsc), Just(requested), Just(ipids), non, tup).prop_map(
                |(tsc, requested, ipids, non_ipv4, tuples)| {
                    Record::Batch(BatchRecord {
                        seq: 0,
                        tsc,
                        requested,
                        ipids,
                        non_ipv4,
                        tuples,
                    })
                },
            )
        })
}

fn record(tuples: bool) -> impl Strategy<Value = Record> {
    prop_oneof![
        8 => batch(tuples),
        1 => (any::<u64>(), any::<u64>()).prop_map(|(tsc, mono_ns)| Record::Anchor(ClockAnchor { seq: 0, tsc, mono_ns })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn ring_round_trip(
        tuples in any::<bool>(),
        recs in prop::collection::vec(record(true), 1..120),
        drain_every in 1usize..20,
        log_size in 12u32..15,
    ) {
        // Strip tuples when the stream does not carry them.
        let recs: Vec<Record> = recs.into_iter().map(|r| match r {
            Record::Batch(mut b) if !tuples => { b.tuples = None; Record::Batch(b) }
            r => r,
        }).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.ring");
        let mut p = Producer::create(&path, &common::config("nf", 1u64 << log_size, tuples)).unwrap();
        let mut c = Consumer::open(&path, &TrustPolicy::current_user()).unwrap();
        let (mut expect, mut got) = (Vec::new(), Vec::new());
        for (i, r) in recs.iter().enumerate() {
            let o = p.put_record(r).unwrap();
            prop_assert_eq!(o.seq(), i as u64);
            if o.is_written() {
                expect.push(common::with_seq(r, o.seq()));
            }
            if i % drain_every == 0 {
                c.drain(usize::MAX, &mut got).unwrap();
                c.commit();
            }
        }
        c.drain(usize::MAX, &mut got).unwrap();
        prop_assert_eq!(&got, &expect);
        let l = c.loss();
        prop_assert_eq!(expect.len() as u64 + l.lost_full + l.lost_too_big, recs.len() as u64);
        prop_assert_eq!(l, collector::LossCounters {
            lost_full: p.counters().lost_full,
            lost_too_big: p.counters().lost_too_big,
            ..Default::default()
        });
    }
}

#[test]
fn restarted_consumer_resumes_at_the_committed_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.ring");
    let mut p = Producer::create(&path, &common::config("nf", 1 << 16, false)).unwrap();
    let recs = common::random_records(9, 100, 32, false);
    for r in &recs {
        assert!(p.put_record(r).unwrap().is_written());
    }
    let trust = TrustPolicy::current_user();
    let mut c = Consumer::open(&path, &trust).unwrap();
    let first = c.drain_vec(40).unwrap();
    assert_eq!(first.len(), 40);
    c.commit();
    // Drained but never committed: a crash here must re-deliver these.
    let uncommitted = c.drain_vec(30).unwrap();
    assert_eq!(uncommitted[0].seq(), 40);
    drop(c);
    let mut c2 = Consumer::open(&path, &trust).unwrap();
    let rest = c2.drain_vec(usize::MAX).unwrap();
    assert_eq!(rest.len(), 60);
    assert_eq!(rest[0].seq(), 40, "resumes after the last commit");
    assert_eq!(&rest[..30], &uncommitted[..]);
    let seqs: Vec<u64> = first.iter().chain(&rest).map(Record::seq).collect();
    assert_eq!(seqs, (0..100).collect::<Vec<_>>());
}

#[test]
fn binding_and_consumer_loss_survive_a_consumer_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.ring");
    let mut p = Producer::create(&path, &common::config("nf", 1 << 14, false)).unwrap();
    p.put_anchor(1, 2);
    let trust = TrustPolicy::current_user();
    let mut c = Consumer::open(&path, &trust).unwrap();
    assert_eq!(c.binding(), None);
    c.bind(0xfeed, 3);
    c.drain_vec(10).unwrap();
    c.committer().add_lost_write(1);
    c.commit();
    drop(c);
    let c2 = Consumer::open(&path, &trust).unwrap();
    assert_eq!(c2.binding(), Some((0xfeed, 3)));
    assert_eq!(c2.loss().lost_write, 1);
}
