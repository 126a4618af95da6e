//! Records → file → reader: identical, through every writer path.

mod common;

use collector::{BatchRecord, ClockAnchor, Direction, FiveTuple, LossCounters, Record};
use proptest::prelude::*;
use tracefile::{read_trace, read_trace_bytes, ReadMode, TraceWriter};

fn arb_record() -> impl Strategy<Value = (u64, Record)> {
    // (seq gap, record with seq filled in later)
    let batch = (
        any::<u64>(),
        any::<u16>(),
        prop::collection::vec(any::<u16>(), 0..40),
        prop::bool::ANY,
        prop::bool::ANY,
    )
        .prop_map(|(tsc, requested, ipids, non, tuples)| {
            let n = ipids.len();
            Record::Batch(BatchRecord {
                seq: 0,
                tsc,
                requested: if requested % 3 == 0 {
                    n as u16
                } else {
                    requested
                },
                non_ipv4: if non && n > 0 {
                    vec![0, (n - 1) as u16]
                } else {
                    vec![]
                },
                tuples: tuples.then(|| {
                    (0..n)
                        .map(|i| FiveTuple {
                            src_ip: i as u32 * 7,
                            dst_ip: tsc as u32,
                            src_port: i as u16,
                            dst_port: 443,
                            proto: 17,
                        })
                        .collect()
                }),
                ipids,
            })
        });
    let anchor = (any::<u64>(), any::<u64>()).prop_map(|(tsc, mono_ns)| {
        Record::Anchor(ClockAnchor {
            seq: 0,
            tsc,
            mono_ns,
        })
    });
    let gap = prop_oneof![8 => Just(1u64), 1 => 2u64..5, 1 => 1u64..u64::MAX / 4096];
    (gap, prop_oneof![4 => batch, 1 => anchor])
}

fn with_seqs(raw: Vec<(u64, Record)>, start: u64) -> Vec<Record> {
    let mut seq = start;
    raw.into_iter()
        .enumerate()
        .map(|(i, (gap, mut r))| {
            if i > 0 {
                seq = seq.saturating_add(gap);
            }
            match &mut r {
                Record::Batch(b) => b.seq = seq,
                Record::Anchor(a) => a.seq = seq,
            }
            r
        })
        .collect()
}

fn split(r: &[Record]) -> (Vec<BatchRecord>, Vec<ClockAnchor>) {
    let mut b = Vec::new();
    let mut a = Vec::new();
    for x in r {
        match x {
            Record::Batch(x) => b.push(x.clone()),
            Record::Anchor(x) => a.push(*x),
        }
    }
    (b, a)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn records_round_trip(
        s0 in prop::collection::vec(arb_record(), 1..200),
        s1 in prop::collection::vec(arb_record(), 0..200),
        start in 0u64..1_000_000,
        chunk_records in 1usize..50,
        lost in 0u64..10,
    ) {
        let streams = [with_seqs(s0, start), with_seqs(s1, 0)];
        let loss = LossCounters { lost_full: lost, ..Default::default() };
        let mut w = TraceWriter::new(Vec::new(), &common::meta()).unwrap();
        w.set_chunk_records(chunk_records);
        for id in 0..2u32 {
            w.declare_stream(&common::stream(id, "fw1", Direction::Rx, true)).unwrap();
        }
        // Stream 0 through explicit chunks, stream 1 through push.
        for part in streams[0].chunks(chunk_records.max(3)) {
            w.write_chunk(0, part, &loss).unwrap();
        }
        for r in &streams[1] {
            w.push(1, r.clone(), &loss).unwrap();
        }
        let bytes = w.finish().unwrap();
        let t = read_trace_bytes(&bytes, ReadMode::Strict).unwrap();
        prop_assert_eq!(&t.meta, &common::meta());
        prop_assert!(t.report.clean_footer);
        prop_assert_eq!(t.report.duplicates_dropped, 0);
        prop_assert!(t.report.skipped.is_empty());
        for (id, recs) in streams.iter().enumerate() {
            let (b, a) = split(recs);
            let s = &t.streams[id];
            prop_assert_eq!(&s.batches, &b);
            prop_assert_eq!(&s.anchors, &a);
            prop_assert_eq!(s.info.as_ref().unwrap().id, id as u32);
            // Loss windows: exactly the sequence gaps, then the counter tail.
            let mut missing = recs.first().map_or(0, |r| r.seq());
            for w in recs.windows(2) {
                missing = missing.saturating_add(w[1].seq() - w[0].seq() - 1);
            }
            let windows: u64 = s.loss_windows.iter().map(|w| w.count()).sum();
            let expect = if recs.is_empty() { 0 } else { missing.max(lost) };
            prop_assert_eq!(windows, expect);
        }
    }
}

#[test]
fn file_round_trip_through_read_trace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.bin");
    let mut rng = common::Rng(1);
    let recs = common::records(&mut rng, 0, 10_000, false);
    let mut w = TraceWriter::create(&path, &common::meta()).unwrap();
    w.declare_stream(&common::stream(0, "src", Direction::Tx, false))
        .unwrap();
    for r in &recs {
        w.push(0, r.clone(), &LossCounters::default()).unwrap();
    }
    w.sync().unwrap();
    assert_eq!(
        w.pending_records(),
        10_000 % tracefile::DEFAULT_CHUNK_RECORDS
    );
    w.finish().unwrap();
    let t = read_trace(&path, ReadMode::Strict).unwrap();
    let (b, a) = split(&recs);
    assert_eq!(t.streams[0].batches, b);
    assert_eq!(t.streams[0].anchors, a);
    assert_eq!(t.report.bytes, std::fs::metadata(&path).unwrap().len());
    assert!(t.report.clean_footer);
    // meta + decl + 3 record chunks + footer
    assert_eq!(t.report.chunks, 6);
}

/// The compactness target of issue 2: ≤ 2.5 bytes per packet per hook
/// point at 32-packet batches, IPIDs included, with random (incompressible)
/// IPIDs and realistic TSC spacing. A size regression test, not a timing.
#[test]
fn compact_at_32_packet_batches() {
    let mut rng = common::Rng(3);
    let mut w = TraceWriter::new(Vec::new(), &common::meta()).unwrap();
    w.declare_stream(&common::stream(0, "fw1", Direction::Rx, false))
        .unwrap();
    let start = w.offset();
    let mut tsc = 0u64;
    let n = 20_000u64;
    for seq in 0..n {
        tsc += 20_000 + rng.below(2_000);
        let r = Record::Batch(BatchRecord {
            seq,
            tsc,
            requested: 32,
            ipids: (0..32).map(|_| rng.next() as u16).collect(),
            ..Default::default()
        });
        w.push(0, r, &LossCounters::default()).unwrap();
    }
    w.flush().unwrap();
    let per_packet = (w.offset() - start) as f64 / (n * 32) as f64;
    assert!(per_packet <= 2.5, "{per_packet:.3} bytes/packet");
    assert!(
        per_packet >= 2.0,
        "IPIDs alone take 2 bytes: {per_packet:.3}"
    );
}

/// `write_chunk` splits what does not fit one chunk (65 536 records or a
/// 16 MiB payload) into several, each valid on its own.
#[test]
fn oversized_writes_are_split_into_valid_chunks() {
    let mut w = TraceWriter::new(Vec::new(), &common::meta()).unwrap();
    w.declare_stream(&common::stream(0, "src", Direction::Tx, false))
        .unwrap();
    w.declare_stream(&common::stream(1, "fw1", Direction::Rx, true))
        .unwrap();
    let anchors: Vec<Record> = (0..70_000u64)
        .map(|seq| {
            Record::Anchor(ClockAnchor {
                seq,
                tsc: seq * 10,
                mono_ns: seq * 4,
            })
        })
        .collect();
    w.write_chunk(0, &anchors, &LossCounters::default())
        .unwrap();
    let mut rng = common::Rng(2);
    let big: Vec<Record> = (0..18u64)
        .map(|seq| {
            let n = u16::MAX as usize;
            Record::Batch(BatchRecord {
                seq,
                tsc: seq,
                requested: u16::MAX,
                ipids: (0..n).map(|_| rng.next() as u16).collect(),
                non_ipv4: vec![],
                tuples: Some(vec![FiveTuple::default(); n]),
            })
        })
        .collect();
    let before = w.stats().chunks;
    w.write_chunk(1, &big, &LossCounters::default()).unwrap();
    // 18 records of ~1 MB each: two chunks under the 16 MiB cap.
    assert_eq!(w.stats().chunks - before, 2);
    let bytes = w.finish().unwrap();
    let t = read_trace_bytes(&bytes, ReadMode::Strict).unwrap();
    assert_eq!(t.streams[0].anchors.len(), 70_000);
    assert_eq!(split(&big).0, t.streams[1].batches);
    // meta, 2 declarations, 2 + 2 record chunks, footer.
    assert_eq!(t.report.chunks, 8);
}

/// Reads `bytes` twice, chunk by chunk: with [`TraceReader::next_chunk`]
/// and with [`TraceReader::next_chunk_into`]; the columns must hold exactly
/// the records of each record chunk (and nothing for other chunks), and
/// everything else must be the same.
/// Returns the number of records read.
fn columnar_matches_records(bytes: &[u8], mode: ReadMode) -> Result<usize, TestCaseError> {
    use tracefile::{ChunkBody, RecordColumns, TraceReader};
    let rd1 = TraceReader::new(bytes, "mem", mode);
    let rd2 = TraceReader::new(bytes, "mem", mode);
    let (mut rd1, mut rd2) = match (rd1, rd2) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(a), Err(b)) => {
            prop_assert_eq!(a.to_string(), b.to_string());
            return Ok(0);
        }
        _ => return Err(TestCaseError::fail("readers disagree on the header")),
    };
    let mut cols = RecordColumns::default();
    let mut records = 0usize;
    loop {
        let a = rd1.next_chunk();
        let b = rd2.next_chunk_into(&mut cols);
        match (a, b) {
            (Ok(None), Ok(None)) => break,
            (Ok(Some(a)), Ok(Some(b))) => {
                prop_assert_eq!((a.offset, a.len), (b.offset, b.len));
                match (&a.body, &b.body) {
                    (ChunkBody::Records(ra), ChunkBody::Records(rb)) => {
                        prop_assert!(rb.records.is_empty());
                        prop_assert_eq!(
                            (ra.stream, ra.first_seq, ra.last_seq, ra.loss),
                            (rb.stream, rb.first_seq, rb.last_seq, rb.loss)
                        );
                        prop_assert_eq!(&cols.to_records(), &ra.records);
                        prop_assert_eq!(cols.batches() + cols.anchors.len(), ra.records.len());
                        records += ra.records.len();
                    }
                    (x, y) => {
                        prop_assert_eq!(x, y);
                        prop_assert_eq!(&cols, &RecordColumns::default());
                    }
                }
            }
            (Err(a), Err(b)) => {
                prop_assert_eq!(a.to_string(), b.to_string());
                break;
            }
            (a, b) => {
                return Err(TestCaseError::fail(format!(
                    "readers disagree: {:?} vs {:?}",
                    a.map(|c| c.map(|c| c.offset)),
                    b.map(|c| c.map(|c| c.offset))
                )))
            }
        }
    }
    prop_assert_eq!(rd1.skipped(), rd2.skipped());
    Ok(records)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Column-wise decoding ([`tracefile::RecordColumns`]) yields the same
    /// records as [`tracefile::format::decode_records`], on intact files in
    /// strict mode and on damaged ones in salvage mode (a chunk that fails
    /// to decode leaves nothing behind in the columns).
    #[test]
    fn columnar_decoding_equals_record_decoding(
        s0 in prop::collection::vec(arb_record(), 1..200),
        chunk_records in 1usize..50,
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..4),
    ) {
        let recs = with_seqs(s0, 5);
        let mut w = TraceWriter::new(Vec::new(), &common::meta()).unwrap();
        w.declare_stream(&common::stream(0, "fw1", Direction::Rx, true)).unwrap();
        for part in recs.chunks(chunk_records) {
            w.write_chunk(0, part, &LossCounters::default()).unwrap();
        }
        let mut bytes = w.finish().unwrap();
        prop_assert_eq!(columnar_matches_records(&bytes, ReadMode::Strict)?, recs.len());
        // Damage the body (past the file header), then salvage.
        for (at, x) in &flips {
            let i = 16 + at.index(bytes.len() - 16);
            bytes[i] ^= x;
        }
        columnar_matches_records(&bytes, ReadMode::Salvage)?;
        columnar_matches_records(&bytes, ReadMode::Strict)?;
    }
}
