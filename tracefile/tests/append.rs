//! Crash recovery: open_append after a torn tail, and failed writes.

mod common;

use collector::{Direction, LossCounters, Record};
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracefile::{read_trace, read_trace_bytes, ReadMode, Rollback, TraceError, TraceWriter};

fn seqs(t: &tracefile::Trace, id: usize) -> Vec<u64> {
    let s = &t.streams[id];
    let mut v: Vec<u64> = s
        .batches
        .iter()
        .map(|b| b.seq)
        .chain(s.anchors.iter().map(|a| a.seq))
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn open_append_after_torn_tail_continues_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.bin");
    let mut rng = common::Rng(9);
    let recs = common::records(&mut rng, 0, 300, false);
    let none = LossCounters::default();
    let mut w = TraceWriter::create(&path, &common::meta()).unwrap();
    w.declare_stream(&common::stream(0, "src", Direction::Tx, false))
        .unwrap();
    w.write_chunk(0, &recs[..100], &none).unwrap();
    let good_end = w.offset();
    w.write_chunk(0, &recs[100..200], &none).unwrap();
    let full = w.offset();
    drop(w); // killed: no footer
             // Tear the last chunk in half, as kill -9 during write() would.
    let torn = (good_end + full) / 2;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(torn)
        .unwrap();
    assert!(matches!(
        read_trace(&path, ReadMode::Strict),
        Err(TraceError::Truncated { offset, .. }) if offset == good_end
    ));

    let mut w = TraceWriter::open_append(&path).unwrap();
    let rep = w.append_report().unwrap().clone();
    assert_eq!(rep.valid_end, good_end);
    assert_eq!(rep.truncated_bytes, torn - good_end);
    assert!(!rep.footer_removed);
    assert_eq!(w.last_seq(0), Some(99));
    assert_eq!(w.stream_info(0).unwrap().nf, "src");
    // The restarted dumper redeclares and re-delivers from seq 50.
    w.declare_stream(&common::stream(0, "src", Direction::Tx, false))
        .unwrap();
    for r in &recs[50..300] {
        w.push(0, r.clone(), &none).unwrap();
    }
    assert_eq!(w.stats().duplicates_skipped, 50);
    w.finish().unwrap();

    let t = read_trace(&path, ReadMode::Strict).unwrap();
    assert_eq!(seqs(&t, 0), (0..300).collect::<Vec<_>>());
    assert!(t.report.clean_footer);
    assert_eq!(t.report.duplicates_dropped, 0);

    // Appending to a cleanly finished file removes the footer.
    let w = TraceWriter::open_append(&path).unwrap();
    assert!(w.append_report().unwrap().footer_removed);
    assert_eq!(w.last_seq(0), Some(299));
    drop(w);
    let t = read_trace(&path, ReadMode::Strict).unwrap();
    assert!(!t.report.clean_footer);
    assert_eq!(seqs(&t, 0).len(), 300);
}

#[test]
fn open_or_create_handles_missing_and_torn_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.bin");
    let w = TraceWriter::open_or_create(&path, &common::meta()).unwrap();
    assert!(w.append_report().is_none());
    drop(w);
    // Torn inside the metadata chunk: nothing to continue, start afresh.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(20)
        .unwrap();
    let mut w = TraceWriter::open_or_create(&path, &common::meta()).unwrap();
    w.declare_stream(&common::stream(0, "src", Direction::Tx, false))
        .unwrap();
    w.finish().unwrap();
    assert!(
        read_trace(&path, ReadMode::Strict)
            .unwrap()
            .report
            .clean_footer
    );
    // Not a trace: refused, never overwritten.
    std::fs::write(&path, b"hello, this is not a trace file").unwrap();
    assert!(matches!(
        TraceWriter::open_or_create(&path, &common::meta()),
        Err(TraceError::NotATrace { .. })
    ));
}

/// A sink that fails (after a short write) once `budget` bytes are used,
/// like a disk filling up; its rollback truncates the shared buffer.
#[derive(Clone)]
struct Disk {
    data: Arc<Mutex<Vec<u8>>>,
    budget: Arc<Mutex<usize>>,
}

impl Write for Disk {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut budget = self.budget.lock().unwrap();
        if *budget == 0 {
            return Err(std::io::Error::other("ENOSPC (simulated)"));
        }
        let n = buf.len().min(*budget);
        *budget -= n;
        self.data.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Rollback for Disk {
    fn rollback(&mut self, len: u64) -> std::io::Result<()> {
        self.data.lock().unwrap().truncate(len as usize);
        Ok(())
    }
}

#[test]
fn failed_write_rolls_back_and_counts_lost_records() {
    let disk = Disk {
        data: Arc::new(Mutex::new(Vec::new())),
        budget: Arc::new(Mutex::new(usize::MAX)),
    };
    let mut rng = common::Rng(5);
    let recs = common::records(&mut rng, 0, 300, false);
    let mut lost_write = 0u64;
    let mut w = TraceWriter::with_rollback(
        disk.clone(),
        "disk",
        Box::new(disk.clone()),
        &common::meta(),
    )
    .unwrap();
    w.declare_stream(&common::stream(0, "src", Direction::Tx, false))
        .unwrap();
    w.write_chunk(0, &recs[..100], &LossCounters::default())
        .unwrap();
    // The disk fills up in the middle of the next chunk.
    *disk.budget.lock().unwrap() = 500;
    let err = w
        .write_chunk(0, &recs[100..200], &LossCounters::default())
        .unwrap_err();
    assert!(
        matches!(
            err,
            TraceError::WriteFailed {
                recovered: true,
                lost_records: 100,
                ..
            }
        ),
        "{err}"
    );
    lost_write += err.lost_records();
    assert_eq!(
        disk.data.lock().unwrap().len() as u64,
        w.offset(),
        "torn chunk rolled back"
    );
    // Space comes back; the writer continues, carrying the loss in counters.
    *disk.budget.lock().unwrap() = usize::MAX;
    let loss = LossCounters {
        lost_write,
        ..Default::default()
    };
    w.write_chunk(0, &recs[200..], &loss).unwrap();
    assert_eq!(w.stats().lost_records, 100);
    w.finish().unwrap();
    let bytes = disk.data.lock().unwrap().clone();
    let t = read_trace_bytes(&bytes, ReadMode::Strict).unwrap();
    let expect: Vec<u64> = (0..100).chain(200..300).collect();
    assert_eq!(seqs(&t, 0), expect);
    let lw = &t.streams[0].loss_windows;
    assert_eq!(lw.len(), 1);
    assert_eq!((lw[0].first_seq, lw[0].last_seq), (100, 199));
    assert_eq!(t.streams[0].loss.lost_write, 100);
}

#[test]
fn failed_write_without_rollback_breaks_the_writer() {
    let disk = Disk {
        data: Arc::new(Mutex::new(Vec::new())),
        budget: Arc::new(Mutex::new(usize::MAX)),
    };
    let mut rng = common::Rng(6);
    let recs: Vec<Record> = common::records(&mut rng, 0, 20, false);
    let mut w = TraceWriter::new(disk.clone(), &common::meta()).unwrap();
    w.declare_stream(&common::stream(0, "src", Direction::Tx, false))
        .unwrap();
    *disk.budget.lock().unwrap() = 30;
    let err = w
        .write_chunk(0, &recs[..10], &LossCounters::default())
        .unwrap_err();
    assert!(matches!(
        err,
        TraceError::WriteFailed {
            recovered: false,
            ..
        }
    ));
    *disk.budget.lock().unwrap() = usize::MAX;
    let err = w
        .write_chunk(0, &recs[10..], &LossCounters::default())
        .unwrap_err();
    assert!(
        matches!(
            err,
            TraceError::WriterBroken {
                lost_records: 10,
                ..
            }
        ),
        "{err}"
    );
    // The torn chunk is what is on disk; salvage still reads the rest.
    let bytes = disk.data.lock().unwrap().clone();
    assert!(read_trace_bytes(&bytes, ReadMode::Strict).is_err());
    let t = read_trace_bytes(&bytes, ReadMode::Salvage).unwrap();
    assert!(t.streams[0].batches.is_empty());
    assert_eq!(t.report.skipped.len(), 1);
}

#[test]
fn writer_rejects_invalid_input_without_writing() {
    let mut w = TraceWriter::new(Vec::new(), &common::meta()).unwrap();
    let mut rng = common::Rng(8);
    let recs = common::records(&mut rng, 0, 10, false);
    let before = w.offset();
    assert!(matches!(
        w.write_chunk(0, &recs, &LossCounters::default()),
        Err(TraceError::InvalidInput { .. })
    ));
    w.declare_stream(&common::stream(0, "src", Direction::Tx, false))
        .unwrap();
    let after_decl = w.offset();
    assert!(after_decl > before);
    let mut rev = recs.clone();
    rev.reverse();
    assert!(matches!(
        w.write_chunk(0, &rev, &LossCounters::default()),
        Err(TraceError::InvalidInput { .. })
    ));
    assert!(matches!(
        w.declare_stream(&common::stream(0, "other", Direction::Tx, false)),
        Err(TraceError::InvalidInput { .. })
    ));
    assert_eq!(w.offset(), after_decl);
}

#[test]
fn losses_after_the_last_record_reach_the_file() {
    let mut w = TraceWriter::new(Vec::new(), &common::meta()).unwrap();
    w.declare_stream(&common::stream(0, "src", Direction::Tx, false))
        .unwrap();
    w.declare_stream(&common::stream(1, "fw1", Direction::Rx, false))
        .unwrap();
    let mut rng = common::Rng(11);
    for r in common::records(&mut rng, 0, 10, false) {
        w.push(0, r, &LossCounters::default()).unwrap();
    }
    // Stream 0 then drops 7 records at the end; stream 1 never delivers.
    let full = |n| LossCounters {
        lost_full: n,
        ..Default::default()
    };
    w.set_loss(0, &full(7)).unwrap();
    w.write_loss(1, &full(3)).unwrap();
    let bytes = w.finish().unwrap();
    let t = read_trace_bytes(&bytes, ReadMode::Strict).unwrap();
    let lw = &t.streams[0].loss_windows;
    assert_eq!(lw.len(), 1);
    assert_eq!(
        (lw[0].first_seq, lw[0].last_seq, lw[0].before_tsc),
        (10, 16, None)
    );
    assert!(lw[0].after_tsc.is_some());
    let lw = &t.streams[1].loss_windows;
    assert_eq!(
        (lw[0].first_seq, lw[0].last_seq, lw[0].after_tsc),
        (0, 2, None)
    );
    assert_eq!(t.streams[1].loss.lost_full, 3);
}
