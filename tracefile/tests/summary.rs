//! The inspect summary: calibrated time span, loss windows in time, DAG.

mod common;

use collector::{BatchRecord, ClockAnchor, Direction, LossCounters, Record};
use tracefile::{read_trace_bytes, summary::summarize, ReadMode, TraceWriter};

#[test]
fn summary_calibrates_from_anchors_and_places_losses_in_time() {
    // 2 GHz true clock, hint says 2.6 GHz: anchors must win.
    let mut w = TraceWriter::new(Vec::new(), &common::meta()).unwrap();
    w.declare_stream(&common::stream(0, "src", Direction::Tx, false))
        .unwrap();
    w.declare_stream(&common::stream(1, "fw1", Direction::Rx, false))
        .unwrap();
    let mut recs = Vec::new();
    for seq in 0..1000u64 {
        let tsc = 2_000_000 + seq * 2_000; // 1 µs apart
        recs.push(if seq.is_multiple_of(100) {
            Record::Anchor(ClockAnchor {
                seq,
                tsc,
                mono_ns: 5_000_000 + seq * 1_000,
            })
        } else {
            Record::Batch(BatchRecord {
                seq,
                tsc,
                requested: 32,
                ipids: vec![1; 32],
                ..Default::default()
            })
        });
    }
    let kept: Vec<Record> = recs
        .iter()
        .filter(|r| !(500..520).contains(&r.seq()))
        .cloned()
        .collect();
    let loss = LossCounters {
        lost_full: 20,
        lost_write: 5,
        ..Default::default()
    };
    w.write_chunk(0, &kept, &loss).unwrap();
    w.write_chunk(1, &recs[..10], &LossCounters::default())
        .unwrap();
    let bytes = w.finish().unwrap();
    let t = read_trace_bytes(&bytes, ReadMode::Strict).unwrap();
    let s = summarize(&t);
    assert_eq!(s.records, 980 + 10);
    assert_eq!(s.packets, (971 + 9) * 32);
    assert!((s.span_ns - 999_000.0).abs() < 1.0, "{}", s.span_ns);
    assert!((s.clocks[0].hz - 2e9).abs() < 1.0);
    assert_eq!(s.losses.len(), 2);
    let gap = &s.losses[0];
    assert_eq!((gap.records, gap.first_seq, gap.last_seq), (20, 500, 519));
    assert!((gap.after_ns.unwrap() - 5_499_000.0).abs() < 1.0);
    assert!((gap.before_ns.unwrap() - 5_520_000.0).abs() < 1.0);
    // 25 counted, 20 in the gap: 5 more after the last record.
    let tail = &s.losses[1];
    assert_eq!(
        (tail.records, tail.first_seq, tail.before_ns),
        (5, 1000, None)
    );
    assert!(s.footer);
    assert_eq!(s.nfs.len(), 2);
    let text = s.render_text();
    assert!(
        text.contains("20 records lost on stream 0 between +0.000499 s and +0.000520 s"),
        "{text}"
    );
    assert!(
        text.contains("DAG: from trace metadata\n  src -> fw1"),
        "{text}"
    );
    assert!((s.bytes_per_packet.unwrap() - bytes.len() as f64 / s.packets as f64).abs() < 1e-9);
}
