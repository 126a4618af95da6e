//! End to end through the real `microscope dump` binary: kill -9 mid-run,
//! restart with the same arguments, and the final trace holds every record
//! the producers wrote exactly once (none missing, none duplicated, the
//! same streams continued); SIGTERM makes a clean exit with a footer and a
//! per-stream summary.

use collector::ring::{BatchView, Producer, RingConfig, RingIdentity};
use collector::{Direction, Role};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracefile::{read_trace, ReadMode};

fn ring(dir: &Path, nf: &str, direction: Direction) -> Producer {
    let cfg = RingConfig {
        identity: RingIdentity {
            nf: nf.into(),
            nf_type: "firewall".into(),
            role: Role::Nf,
            port: 0,
            queue: 0,
            direction,
            host: "e2e".into(),
            carries_tuples: false,
            pid: std::process::id(),
            created_ns: 1,
            tsc_hz_hint: None,
        },
        data_size: 1 << 22,
        max_record_size: None,
        group: None,
    };
    Producer::create(&dir.join(format!("{nf}-{direction:?}.ring")), &cfg).unwrap()
}

fn dumper(rings: &Path, out: &Path, sync_interval: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_microscope"))
        .args(["dump", "--rings"])
        .arg(rings)
        .arg("--out")
        .arg(out)
        .args(["--sync-interval", sync_interval, "--scan-interval", "10ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn terminate(mut child: Child) -> std::process::Output {
    // SAFETY: plain kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "dumper did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().unwrap()
}

fn wait_drained(p: &Producer) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while p.used_bytes() > 0 {
        assert!(Instant::now() < deadline, "ring never committed");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Writes `n` batches at a steady pace; returns the producer and the seqs
/// it wrote (all of them unless the ring overflowed).
fn pace(mut p: Producer, n: u64, stop_early: Arc<AtomicBool>) -> (Producer, Vec<u64>) {
    let ipids: Vec<u16> = (0..32).collect();
    let mut written = Vec::new();
    for i in 0..n {
        let o = if i % 100 == 0 {
            p.put_anchor(i, i)
        } else {
            p.put_batch(&BatchView {
                tsc: i,
                requested: 32,
                ipids: &ipids[..(i % 32) as usize + 1],
                non_ipv4: &[],
                tuples: None,
            })
            .unwrap()
        };
        if o.is_written() {
            written.push(o.seq());
        }
        if i % 250 == 0 {
            std::thread::sleep(Duration::from_millis(3));
        }
        if stop_early.load(Ordering::Relaxed) {
            break;
        }
    }
    (p, written)
}

#[test]
fn kill_9_and_restart_keeps_every_record_exactly_once() {
    const N: u64 = 40_000;
    let rings = tempfile::tempdir().unwrap();
    let outdir = tempfile::tempdir().unwrap();
    let out = outdir.path().join("trace.bin");
    let never = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = [("fw1", Direction::Rx), ("fw1", Direction::Tx)]
        .into_iter()
        .map(|(nf, d)| {
            let p = ring(rings.path(), nf, d);
            let never = never.clone();
            std::thread::spawn(move || pace(p, N, never))
        })
        .collect();

    // Run, kill -9 at arbitrary moments, restart. The killed runs sync
    // rarely, so they die with chunks written but ring tails not committed:
    // the restarted dumper gets those records again and must not duplicate.
    for run in 0..3 {
        let mut child = dumper(rings.path(), &out, "300ms");
        std::thread::sleep(Duration::from_millis(120 + 37 * run));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let child = dumper(rings.path(), &out, "15ms");
    let results: Vec<(Producer, Vec<u64>)> =
        producers.into_iter().map(|h| h.join().unwrap()).collect();
    for (p, _) in &results {
        wait_drained(p);
    }
    let output = terminate(child);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("continued an existing trace"), "{stdout}");
    assert!(
        stdout.contains("re-delivered records were already on file"),
        "{stdout}"
    );

    let t = read_trace(&out, ReadMode::Strict).unwrap();
    assert!(t.report.clean_footer);
    assert_eq!(
        t.streams.len(),
        2,
        "the restarted dumper continued the same streams"
    );
    for (p, written) in &results {
        let dir = if p.path().to_string_lossy().contains("Rx") {
            Direction::Rx
        } else {
            Direction::Tx
        };
        let s = t
            .streams
            .iter()
            .find(|s| s.info.as_ref().unwrap().direction == dir)
            .unwrap();
        let mut seqs: Vec<u64> = s
            .batches
            .iter()
            .map(|b| b.seq)
            .chain(s.anchors.iter().map(|a| a.seq))
            .collect();
        seqs.sort_unstable();
        let n = seqs.len();
        seqs.dedup();
        assert_eq!(n, seqs.len(), "no duplicates");
        assert_eq!(
            &seqs, written,
            "every record the producer wrote, exactly once"
        );
        assert_eq!(written.len() as u64 + p.counters().lost_full, N);
        assert_eq!(s.loss.lost_full, p.counters().lost_full);
        // Contents are the producer's, not just the sequence numbers.
        for b in &s.batches {
            assert_eq!((b.tsc, b.len() as u64), (b.seq, b.seq % 32 + 1));
        }
    }
    assert!(
        stdout.contains("fw1") && stdout.contains("lost_full"),
        "{stdout}"
    );
}

#[test]
fn a_missing_rings_directory_is_a_clear_error() {
    let outdir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_microscope"))
        .args(["dump", "--rings", "/nonexistent/microscope-rings", "--out"])
        .arg(outdir.path().join("t.bin"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("rings directory /nonexistent/microscope-rings"),
        "{stderr}"
    );
}

#[test]
fn injected_disk_faults_through_the_cli_are_counted_and_the_file_stays_valid() {
    let rings = tempfile::tempdir().unwrap();
    let outdir = tempfile::tempdir().unwrap();
    let out = outdir.path().join("trace.bin");
    let mut p = ring(rings.path(), "nat", Direction::Rx);
    let ipids = [9u16; 32];
    let put = |p: &mut Producer, n: u64| {
        for i in 0..n {
            let b = BatchView {
                tsc: i,
                requested: 32,
                ipids: &ipids,
                non_ipv4: &[],
                tuples: None,
            };
            assert!(p.put_batch(&b).unwrap().is_written());
        }
    };
    put(&mut p, 3000);
    // The disk fills after 20 kB; the dumper retries 3 times, drops those
    // records (lost_write), and after the 4th failure space is freed.
    let child = Command::new(env!("CARGO_BIN_EXE_microscope"))
        .args(["dump", "--rings"])
        .arg(rings.path())
        .arg("--out")
        .arg(&out)
        .args([
            "--sync-interval",
            "10ms",
            "--inject-faults",
            "capacity=20000,refill-after=4,refill=100000000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_drained(&p);
    // Later records carry the loss counters into the file.
    put(&mut p, 500);
    wait_drained(&p);
    let output = terminate(child);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "disk errors set the exit status\n{stdout}"
    );
    assert!(
        stdout.contains("disk error") && stdout.contains("gave up after 3 attempts"),
        "{stdout}"
    );
    let t = read_trace(&out, ReadMode::Strict).unwrap();
    let s = &t.streams[0];
    let on_file = s.batches.len() as u64;
    assert!(s.loss.lost_write > 0);
    assert_eq!(
        on_file + s.loss.lost_write,
        3500,
        "on file or counted, nothing else"
    );
    let gaps: u64 = s.loss_windows.iter().map(|w| w.count()).sum();
    assert_eq!(gaps, s.loss.lost_write);
}
