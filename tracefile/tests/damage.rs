//! Truncation at every byte offset, random bit flips, duplicate chunks.

mod common;

use collector::Record;
use common::{small_trace, Written};
use tracefile::{read_trace_bytes, ReadMode, Trace, TraceError};

/// Records per stream of the chunks fully inside `keep` (chunk indices).
fn expected(chunks: &[Written], keep: impl Fn(usize) -> bool) -> Vec<Vec<Record>> {
    let mut out = vec![Vec::new(), Vec::new()];
    for (i, c) in chunks.iter().enumerate() {
        if let (Some(s), true) = (c.stream, keep(i)) {
            out[s as usize].extend(c.records.iter().cloned());
        }
    }
    out
}

fn records_of(t: &Trace) -> Vec<Vec<Record>> {
    let mut out = vec![Vec::new(), Vec::new()];
    for (id, s) in t.streams.iter().enumerate() {
        let mut v: Vec<Record> = s
            .batches
            .iter()
            .cloned()
            .map(Record::Batch)
            .chain(s.anchors.iter().copied().map(Record::Anchor))
            .collect();
        v.sort_by_key(|r| r.seq());
        out[id] = v;
    }
    out
}

#[test]
fn truncation_at_every_byte_offset() {
    let (bytes, chunks) = small_trace(3);
    assert!(
        bytes.len() < 6000,
        "keep the fixture small: {}",
        bytes.len()
    );
    let meta_end = chunks[0].end;
    for k in 0..=bytes.len() {
        let cut = &bytes[..k];
        let k64 = k as u64;
        // Chunks entirely before the cut, and the boundary they end at.
        let complete = |i: usize| chunks[i].end <= k64;
        let boundary = chunks
            .iter()
            .filter(|c| c.end <= k64)
            .map(|c| c.end)
            .max()
            .unwrap_or(16);
        let strict = read_trace_bytes(cut, ReadMode::Strict);
        let salvage = read_trace_bytes(cut, ReadMode::Salvage);
        if k < 16 {
            assert!(
                matches!(strict, Err(TraceError::Truncated { offset: 0, .. })),
                "k={k}"
            );
            assert!(
                matches!(salvage, Err(TraceError::Truncated { offset: 0, .. })),
                "k={k}"
            );
            continue;
        }
        let on_boundary = k64 == boundary;
        match strict {
            Ok(t) => {
                assert!(
                    on_boundary && k64 >= meta_end,
                    "k={k}: strict accepted a torn file"
                );
                assert_eq!(records_of(&t), expected(&chunks, complete), "k={k}");
                assert_eq!(t.report.clean_footer, k == bytes.len(), "k={k}");
            }
            Err(TraceError::Truncated {
                offset,
                ref expected,
                ..
            }) => {
                assert!(
                    !on_boundary || k64 < meta_end,
                    "k={k}: strict rejected a valid prefix"
                );
                assert_eq!(offset, boundary, "k={k}: {expected}");
                let msg = strict.unwrap_err().to_string();
                assert!(
                    msg.contains("<memory>") && msg.contains("truncated at offset"),
                    "{msg}"
                );
            }
            Err(e) => panic!("k={k}: unexpected error {e}"),
        }
        let t = salvage.unwrap_or_else(|e| panic!("k={k}: salvage failed: {e}"));
        assert_eq!(records_of(&t), expected(&chunks, complete), "k={k}");
        assert_eq!(
            t.report.chunks,
            chunks.iter().filter(|c| c.end <= k64).count() as u64
        );
        if on_boundary {
            assert!(t.report.skipped.is_empty(), "k={k}: {:?}", t.report.skipped);
        } else {
            assert_eq!(t.report.skipped.len(), 1, "k={k}");
            let s = &t.report.skipped[0];
            assert_eq!((s.offset, s.offset + s.len), (boundary, k64), "k={k}");
            assert!(s.reason.contains("truncated"), "{}", s.reason);
        }
        if k64 >= meta_end {
            assert_eq!(t.meta, common::meta());
        }
    }
}

#[test]
fn bit_flips_are_detected_and_the_rest_is_read() {
    let (bytes, chunks) = small_trace(8);
    let mut rng = common::Rng(7);
    for _ in 0..400 {
        let pos = rng.below(bytes.len() as u64) as usize;
        let bit = rng.below(8);
        let mut b = bytes.clone();
        b[pos] ^= 1 << bit;
        let hit = chunks
            .iter()
            .position(|c| (c.start..c.end).contains(&(pos as u64)));
        let strict = read_trace_bytes(&b, ReadMode::Strict);
        let salvage = read_trace_bytes(&b, ReadMode::Salvage);
        match hit {
            None if (8..12).contains(&pos) => {
                assert!(matches!(strict, Err(TraceError::UnsupportedVersion { .. })));
                assert!(matches!(
                    salvage,
                    Err(TraceError::UnsupportedVersion { .. })
                ));
            }
            None if pos < 8 => {
                assert!(matches!(strict, Err(TraceError::NotATrace { .. })));
                let t = salvage.expect("salvage reads past a damaged magic");
                assert_eq!(records_of(&t), expected(&chunks, |_| true));
                assert_eq!(t.report.skipped[0].offset, 0);
            }
            None => {
                // Header flags: reserved, ignored.
                assert!(strict.is_ok());
            }
            Some(i) => {
                let err = strict.expect_err("strict must reject a flipped bit");
                match err {
                    TraceError::Corrupt { offset, .. } | TraceError::Truncated { offset, .. } => {
                        assert_eq!(offset, chunks[i].start, "pos {pos}: {err}")
                    }
                    e => panic!("pos {pos}: unexpected {e}"),
                }
                let t = salvage.expect("salvage survives a flipped bit");
                assert_eq!(
                    records_of(&t),
                    expected(&chunks, |j| j != i),
                    "pos {pos}: salvage must keep every other chunk"
                );
                assert!(t.report.skipped.iter().any(|s| s.offset == chunks[i].start));
                if i == 0 {
                    assert_eq!(t.meta, Default::default());
                }
                if (1..=2).contains(&i) {
                    assert!(t.streams[i - 1].info.is_none());
                }
            }
        }
    }
}

#[test]
fn duplicate_chunks_are_dropped_and_counted() {
    let (bytes, chunks) = small_trace(5);
    let footer = chunks.last().unwrap();
    let mut b = bytes[..footer.start as usize].to_vec();
    // Re-append two record chunks, as a restarted dumper might.
    let dup = [&chunks[3], &chunks[6]];
    for c in dup {
        b.extend_from_slice(&bytes[c.start as usize..c.end as usize]);
    }
    let t = read_trace_bytes(&b, ReadMode::Strict).unwrap();
    assert_eq!(records_of(&t), expected(&chunks, |_| true));
    assert_eq!(t.report.duplicates_dropped, 10);
    assert!(!t.report.clean_footer);
    assert!(t.streams.iter().all(|s| s.loss_windows.is_empty()));
}

#[test]
fn hostile_headers_are_rejected_without_huge_allocations() {
    use tracefile::format::{frame_chunk, ChunkHeader, KIND_RECORDS};
    let (bytes, chunks) = small_trace(2);
    let prefix = &bytes[..chunks[2].end as usize];
    let cases: Vec<(ChunkHeader, Vec<u8>)> = vec![
        // Huge record count in a tiny payload.
        (
            ChunkHeader {
                kind: KIND_RECORDS,
                record_count: u32::MAX,
                last_seq: 5,
                ..Default::default()
            },
            vec![3, 0],
        ),
        // A batch claiming 65535 packets with two bytes left.
        (
            ChunkHeader {
                kind: KIND_RECORDS,
                record_count: 1,
                ..Default::default()
            },
            vec![2, 0, 0xff, 0xff, 0x03, 1, 2],
        ),
        // Stream id far beyond the cap.
        (
            ChunkHeader {
                kind: KIND_RECORDS,
                stream: u32::MAX,
                record_count: 1,
                ..Default::default()
            },
            vec![0x0e, 0],
        ),
        // Unknown IPID encoding.
        (
            ChunkHeader {
                kind: KIND_RECORDS,
                record_count: 1,
                ..Default::default()
            },
            vec![0xc2, 0, 1],
        ),
    ];
    for (h, payload) in cases {
        let mut b = prefix.to_vec();
        frame_chunk(&mut b, h, |o| o.extend_from_slice(&payload));
        let e = read_trace_bytes(&b, ReadMode::Strict).unwrap_err();
        assert!(
            matches!(e, TraceError::Corrupt { offset, .. } if offset == chunks[2].end),
            "{e}"
        );
        let t = read_trace_bytes(&b, ReadMode::Salvage).unwrap();
        assert_eq!(t.report.skipped.len(), 1);
    }
    // A header claiming a payload beyond the cap.
    let mut b = prefix.to_vec();
    let h = ChunkHeader {
        kind: KIND_RECORDS,
        ..Default::default()
    };
    frame_chunk(&mut b, h, |_| {});
    let at = chunks[2].end as usize;
    b[at + 8..at + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = read_trace_bytes(&b, ReadMode::Strict).unwrap_err();
    assert!(e.to_string().contains("exceeds the cap"), "{e}");
}
