//! The dumper library end to end: rings → worker threads → trace file, with
//! rings appearing late, untrusted and corrupt rings, and a failing disk.

mod common;

use common::*;
use dumper::{sink::FaultPlan, Config};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracefile::{read_trace, ReadMode};

fn fast(dir: &std::path::Path, out: &std::path::Path) -> Config {
    let mut c = Config::new(dir, out);
    c.sync_interval = Duration::from_millis(20);
    c.scan_interval = Duration::from_millis(10);
    c.chunk_records = 512;
    c
}

fn start(
    cfg: Config,
) -> (
    Arc<AtomicBool>,
    std::thread::JoinHandle<Result<dumper::DumpSummary, dumper::DumpError>>,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    (stop, std::thread::spawn(move || dumper::run(&cfg, s2)))
}

/// Waits until the dumper committed everything in the ring (tail == head).
fn wait_committed(p: &collector::ring::Producer) {
    for _ in 0..2000 {
        if p.used_bytes() == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("the dumper did not commit the ring");
}

#[test]
fn rings_present_and_appearing_later_end_up_in_the_trace() {
    let rings = tempfile::tempdir().unwrap();
    let outdir = tempfile::tempdir().unwrap();
    let out = outdir.path().join("t.bin");
    let mut a = create(rings.path(), "a", 0, 1 << 18);
    let wa1 = produce(&mut a, 0, 300);
    let (stop, h) = start(fast(rings.path(), &out));
    let wa2 = produce(&mut a, 300, 1000);
    wait_committed(&a);
    // A ring that appears while the dumper runs.
    let mut b = create(rings.path(), "b", 1, 1 << 16);
    let wb = produce(&mut b, 0, 700);
    wait_committed(&b);
    stop.store(true, Ordering::Release);
    let summary = h.join().unwrap().unwrap();
    assert!(summary.clean(), "{summary}");
    assert_eq!(summary.records, 1700, "{summary}");
    let t = read_trace(&out, ReadMode::Strict).unwrap();
    assert!(t.report.clean_footer);
    assert_eq!(t.streams.len(), 2);
    let by_nf = |nf: &str| {
        t.streams
            .iter()
            .find(|s| s.info.as_ref().unwrap().nf == nf)
            .unwrap()
    };
    assert_stream(by_nf("a"), &[wa1, wa2].concat());
    assert_stream(by_nf("b"), &wb);
    assert_eq!(by_nf("b").info.as_ref().unwrap().queue, 1);
    let j = summary.to_json();
    assert_eq!(j["records"], 1700);
    assert_eq!(j["streams"][1]["info"]["nf"], "b");
    assert_eq!(j["streams"][0]["loss"]["lost_full"], 0);
    let text = summary.to_string();
    assert!(
        text.contains("1700 records") && text.contains("bytes/packet"),
        "{text}"
    );
}

#[test]
fn overflow_loss_is_counted_and_conserved_through_the_file() {
    let rings = tempfile::tempdir().unwrap();
    let outdir = tempfile::tempdir().unwrap();
    let out = outdir.path().join("t.bin");
    // A small ring filled before the dumper starts: most records are lost.
    let mut a = create(rings.path(), "a", 0, 4096);
    let written = produce(&mut a, 0, 2000);
    let (stop, h) = start(fast(rings.path(), &out));
    wait_committed(&a);
    stop.store(true, Ordering::Release);
    h.join().unwrap().unwrap();
    let t = read_trace(&out, ReadMode::Strict).unwrap();
    let s = &t.streams[0];
    assert_stream(s, &written);
    assert_eq!(s.loss.lost_full, 2000 - written.len() as u64);
    assert_eq!(s.loss.lost_full, a.counters().lost_full);
    let window_total: u64 = s.loss_windows.iter().map(|w| w.count()).sum();
    assert_eq!(window_total, s.loss.lost_full, "gaps explain the loss");
}

#[test]
fn untrusted_and_corrupt_rings_are_reported_and_skipped() {
    let rings = tempfile::tempdir().unwrap();
    let outdir = tempfile::tempdir().unwrap();
    let out = outdir.path().join("t.bin");
    let mut good = create(rings.path(), "good", 0, 1 << 14);
    let w = produce(&mut good, 0, 100);
    let evil = create(rings.path(), "evil", 0, 1 << 14);
    std::fs::set_permissions(evil.path(), std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::write(rings.path().join("junk.ring"), b"not a ring at all").unwrap();
    let mut bad = create(rings.path(), "bad", 0, 1 << 14);
    let wbad = produce(&mut bad, 0, 3);
    // Corrupt the fourth record of "bad" after writing it.
    produce(&mut bad, 3, 10);
    let off = 4096 + 3 * collector::ring::layout::batch_len(4, 0);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(bad.path())
        .unwrap();
    use std::io::{Seek, SeekFrom, Write};
    f.seek(SeekFrom::Start(off)).unwrap();
    f.write_all(&[0xff; 8]).unwrap();
    drop(f);
    let (stop, h) = start(fast(rings.path(), &out));
    wait_committed(&good);
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Release);
    let summary = h.join().unwrap().unwrap();
    assert!(!summary.clean());
    let errs = summary.ring_errors.join("\n");
    assert!(
        errs.contains("evil.ring: refusing untrusted ring: world-writable"),
        "{errs}"
    );
    assert!(errs.contains("junk.ring"), "{errs}");
    assert!(errs.contains("bad.ring: corrupt ring data"), "{errs}");
    let t = read_trace(&out, ReadMode::Strict).unwrap();
    let by_nf = |nf: &str| {
        t.streams
            .iter()
            .find(|s| s.info.as_ref().unwrap().nf == nf)
            .unwrap()
    };
    assert_stream(by_nf("good"), &w);
    // The records before the corruption were kept; the rest counted.
    assert_stream(by_nf("bad"), &wbad);
    assert!(by_nf("bad").loss.lost_corrupt >= 1);
}

fn disk_fault_run(plan: FaultPlan, expect_loss: bool) {
    let rings = tempfile::tempdir().unwrap();
    let outdir = tempfile::tempdir().unwrap();
    let out = outdir.path().join("t.bin");
    let mut a = create(rings.path(), "a", 0, 1 << 20);
    let mut cfg = fast(rings.path(), &out);
    cfg.faults = Some(plan);
    cfg.chunk_records = 100;
    let (stop, h) = start(cfg);
    let mut written = Vec::new();
    for k in 0..20 {
        written.extend(produce(&mut a, k * 200, (k + 1) * 200));
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_committed(&a);
    stop.store(true, Ordering::Release);
    let summary = h.join().unwrap().unwrap();
    assert!(
        !summary.write_errors.is_empty(),
        "the plan was meant to fail writes"
    );
    assert_eq!(summary.lost_write > 0, expect_loss, "{summary}");
    // Strict read: no half chunk survived, the file is whole.
    let t = read_trace(&out, ReadMode::Strict).unwrap();
    let s = &t.streams[0];
    let on_file = s.batches.len() + s.anchors.len();
    assert_eq!(written.len(), 4000, "the ring never overflowed");
    assert_eq!(
        on_file as u64 + s.loss.lost_write,
        4000,
        "every record is on file or counted in lost_write"
    );
    assert_eq!(s.loss.lost_write, summary.lost_write);
    let windows: u64 = s.loss_windows.iter().map(|w| w.count()).sum();
    assert_eq!(windows, s.loss.lost_write, "the gaps are the write losses");
    // And what is there is right.
    let mut seqs: Vec<u64> = s
        .batches
        .iter()
        .map(|b| b.seq)
        .chain(s.anchors.iter().map(|a| a.seq))
        .collect();
    seqs.sort();
    assert_stream(s, &seqs);
}

#[test]
fn disk_full_with_short_writes_never_leaves_a_half_chunk() {
    // 6000 bytes fit, then a short write and ENOSPC; the dumper retries 3
    // times, then drops (lost_write); after 5 failures 1 MB is freed.
    disk_fault_run(
        "capacity=6000,refill-after=5,refill=1000000"
            .parse()
            .unwrap(),
        true,
    );
}

#[test]
fn transient_eio_is_retried_without_loss() {
    disk_fault_run("eio-every=7".parse().unwrap(), false);
}

#[test]
fn a_ring_held_by_another_consumer_is_picked_up_once_released() {
    let rings = tempfile::tempdir().unwrap();
    let outdir = tempfile::tempdir().unwrap();
    let out = outdir.path().join("t.bin");
    let mut a = create(rings.path(), "a", 0, 1 << 14);
    let w = produce(&mut a, 0, 50);
    let holder =
        collector::ring::Consumer::open(a.path(), &collector::ring::TrustPolicy::current_user())
            .unwrap();
    let (stop, h) = start(fast(rings.path(), &out));
    std::thread::sleep(Duration::from_millis(60));
    assert!(a.used_bytes() > 0, "the dumper must not drain a held ring");
    drop(holder);
    wait_committed(&a);
    stop.store(true, Ordering::Release);
    let summary = h.join().unwrap().unwrap();
    assert_eq!(
        summary.ring_errors.len(),
        1,
        "reported once: {:?}",
        summary.ring_errors
    );
    assert!(summary.ring_errors[0].contains("another consumer"));
    let t = read_trace(&out, ReadMode::Strict).unwrap();
    assert_stream(&t.streams[0], &w);
}

/// A deterministic crash: the trace loses its tail mid-chunk (and footer)
/// and the ring's tail is back where an older commit left it, as after a
/// `kill -9` between writing and committing. The restarted dumper cuts the
/// torn tail, continues the same stream (the ring remembers it), skips the
/// re-delivered records already on file and rewrites the torn ones.
#[test]
fn restart_after_a_torn_tail_continues_the_same_stream_without_duplicates() {
    let rings = tempfile::tempdir().unwrap();
    let outdir = tempfile::tempdir().unwrap();
    let out = outdir.path().join("t.bin");
    let mut a = create(rings.path(), "a", 0, 1 << 18);
    let mut cfg = fast(rings.path(), &out);
    cfg.chunk_records = 100;
    let w1 = produce(&mut a, 0, 1000);
    let (stop, h) = start(cfg.clone());
    wait_committed(&a);
    stop.store(true, Ordering::Release);
    h.join().unwrap().unwrap();

    // Tear: cut 50 bytes (the footer and the end of the last chunk) ...
    let len = std::fs::metadata(&out).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&out)
        .unwrap()
        .set_len(len - 50)
        .unwrap();
    // ... and roll the ring's committed tail back to 0 (offset 640).
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(a.path())
        .unwrap();
    f.seek(SeekFrom::Start(640)).unwrap();
    f.write_all(&0u64.to_le_bytes()).unwrap();
    drop(f);

    let w2 = produce(&mut a, 1000, 1500);
    let (stop, h) = start(cfg);
    wait_committed(&a);
    stop.store(true, Ordering::Release);
    let summary = h.join().unwrap().unwrap();
    let appended = summary
        .appended
        .clone()
        .expect("continued the existing file");
    assert!(appended.truncated_bytes > 0, "{appended:?}");
    assert!(summary.duplicates_skipped >= 900, "{summary}");
    let t = read_trace(&out, ReadMode::Strict).unwrap();
    assert_eq!(t.streams.len(), 1, "same stream continued");
    assert_stream(&t.streams[0], &[w1, w2].concat());
    assert_eq!(t.report.duplicates_dropped, 0, "nothing written twice");
}

/// An NF that restarts replaces its ring file: the old ring is drained to
/// the end and retired, the new one (sequence numbers from 0 again) becomes
/// a new stream instead of clashing with the old one.
#[test]
fn a_replaced_ring_file_becomes_a_new_stream() {
    let rings = tempfile::tempdir().unwrap();
    let outdir = tempfile::tempdir().unwrap();
    let out = outdir.path().join("t.bin");
    let mut old = create(rings.path(), "a", 0, 1 << 16);
    let w_old = produce(&mut old, 0, 300);
    let (stop, h) = start(fast(rings.path(), &out));
    wait_committed(&old);
    let w_old2 = produce(&mut old, 300, 400);
    // Same path, new ring instance (created via tmp + rename).
    let mut new = create(rings.path(), "a", 0, 1 << 16);
    let w_new = produce(&mut new, 0, 200);
    wait_committed(&new);
    wait_committed(&old);
    stop.store(true, Ordering::Release);
    let summary = h.join().unwrap().unwrap();
    assert!(summary.clean(), "{summary}");
    let t = read_trace(&out, ReadMode::Strict).unwrap();
    assert_eq!(t.streams.len(), 2);
    assert_stream(&t.streams[0], &[w_old, w_old2].concat());
    assert_stream(&t.streams[1], &w_new);
}

#[test]
fn loss_after_the_last_record_reaches_the_file() {
    let rings = tempfile::tempdir().unwrap();
    let outdir = tempfile::tempdir().unwrap();
    let out = outdir.path().join("t.bin");
    let mut a = create(rings.path(), "a", 0, 1 << 16);
    let written = produce(&mut a, 0, 100);
    let (stop, h) = start(fast(rings.path(), &out));
    wait_committed(&a);
    // A record too big for any slot, and nothing after it: only the
    // counters can tell the reader about it.
    let huge = vec![7u16; 40_000];
    let view = collector::ring::BatchView {
        tsc: 1,
        requested: 32,
        ipids: &huge,
        non_ipv4: &[],
        tuples: None,
    };
    let outcome = a.put_batch(&view).unwrap();
    assert!(
        matches!(outcome, collector::ring::PutOutcome::LostTooBig { .. }),
        "{outcome:?}"
    );
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Release);
    h.join().unwrap().unwrap();
    let t = read_trace(&out, ReadMode::Strict).unwrap();
    let s = &t.streams[0];
    assert_stream(s, &written);
    assert_eq!(s.loss.lost_too_big, 1, "{:?}", s.loss);
}

#[test]
fn a_topology_file_ends_up_in_the_trace_metadata() {
    let rings = tempfile::tempdir().unwrap();
    let outdir = tempfile::tempdir().unwrap();
    let out = outdir.path().join("t.bin");
    let topo = collector::Topology {
        nfs: vec![
            collector::NfSpec {
                name: "gen".into(),
                nf_type: "gen".into(),
                role: collector::Role::Source,
                peak_rate_pps: None,
            },
            collector::NfSpec {
                name: "a".into(),
                nf_type: "nat".into(),
                role: collector::Role::Nf,
                peak_rate_pps: Some(1.5e6),
            },
        ],
        edges: vec![collector::Edge {
            from: "gen".into(),
            to: "a".into(),
        }],
    };
    let tfile = outdir.path().join("topology.json");
    std::fs::write(&tfile, serde_json::to_vec_pretty(&topo).unwrap()).unwrap();
    let mut cfg = fast(rings.path(), &out);
    cfg.topology = Some(dumper::read_topology(&tfile).unwrap());
    let mut a = create(rings.path(), "a", 0, 1 << 16);
    let w = produce(&mut a, 0, 100);
    let (stop, h) = start(cfg);
    wait_committed(&a);
    stop.store(true, Ordering::Release);
    assert!(h.join().unwrap().unwrap().clean());
    let t = read_trace(&out, ReadMode::Strict).unwrap();
    assert_eq!(t.meta.topology.as_ref(), Some(&topo));
    assert_stream(&t.streams[0], &w);

    // Bad files are refused with the file and the place named.
    let bad = outdir.path().join("bad.json");
    std::fs::write(&bad, b"{\"nfs\": [\n  {\"name\": 3}]}").unwrap();
    let e = dumper::read_topology(&bad).unwrap_err().to_string();
    assert!(e.contains("bad.json") && e.contains("line 2"), "{e}");
    let mut dangling = topo.clone();
    dangling.edges[0].to = "nope".into();
    std::fs::write(&bad, serde_json::to_vec(&dangling).unwrap()).unwrap();
    let e = dumper::read_topology(&bad).unwrap_err().to_string();
    assert!(e.contains("edges[0]") && e.contains("nope"), "{e}");
    let mut twice = topo.clone();
    twice.nfs[1].name = "gen".into();
    std::fs::write(&bad, serde_json::to_vec(&twice).unwrap()).unwrap();
    assert!(dumper::read_topology(&bad)
        .unwrap_err()
        .to_string()
        .contains("twice"));
    let mut zero = topo;
    zero.nfs[1].peak_rate_pps = Some(0.0);
    std::fs::write(&bad, serde_json::to_vec(&zero).unwrap()).unwrap();
    assert!(dumper::read_topology(&bad)
        .unwrap_err()
        .to_string()
        .contains("peak_rate_pps"));
}
