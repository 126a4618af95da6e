//! Integration test: the LD_PRELOAD shim inside Debian's unmodified
//! `dpdk-testpmd`, drained by `microscope dump`, read back with
//! `tracefile::read_trace` and `microscope inspect`.
//!
//! testpmd forwards (io mode) from a `net_pcap` port replaying a capture we
//! write (IPv4 UDP frames with known IPIDs and 5-tuples, plus ARP frames
//! that must be flagged non-IPv4) to a `net_null` sink. The trace must show
//! the capture's IPID order inside every batch, the 5-tuples on the port
//! configured for them, the ARP frames flagged, and tx batches that are the
//! same packets in the same order.
//!
//! Skips (with a message, passing) when DPDK, dpdk-testpmd or make is
//! missing: the default build needs no DPDK. `scripts/test-dpdk` runs it
//! after installing them; MICROSCOPE_SKIP_DPDK_TESTS=1 skips it inside a
//! workspace-wide `cargo test` that is followed by `scripts/test-dpdk`.

use collector::FiveTuple;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tracefile::{read_trace, ReadMode};

const FRAMES: usize = 500;

fn have(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Frame i of the capture: ARP when i % 50 == 7, else IPv4/UDP.
fn frame(i: usize) -> (Vec<u8>, Option<(u16, FiveTuple)>) {
    let mut f = vec![2u8, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    if i % 50 == 7 {
        f.extend_from_slice(&[0x08, 0x06]);
        f.extend_from_slice(&[0u8; 46]);
        return (f, None);
    }
    let ipid = (i as u16).wrapping_mul(3).wrapping_add(1);
    let t = FiveTuple {
        src_ip: 0x0a00_0000 | i as u32,
        dst_ip: 0xc0a8_0100 | (i % 7) as u32,
        src_port: 1000 + i as u16,
        dst_port: 53,
        proto: 17,
    };
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 50]);
    f.extend_from_slice(&ipid.to_be_bytes());
    f.extend_from_slice(&[0, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&t.src_ip.to_be_bytes());
    f.extend_from_slice(&t.dst_ip.to_be_bytes());
    f.extend_from_slice(&t.src_port.to_be_bytes());
    f.extend_from_slice(&t.dst_port.to_be_bytes());
    f.extend_from_slice(&[0, 30, 0, 0]);
    f.extend_from_slice(&[0u8; 22]);
    (f, Some((ipid, t)))
}

fn write_pcap(path: &Path) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for i in 0..FRAMES {
        let (f, _) = frame(i);
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&f);
    }
    std::fs::write(path, out).unwrap();
}

fn sigint(pid: u32) {
    let _ = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
}

fn wait_timeout(c: &mut std::process::Child, d: Duration) -> Option<std::process::ExitStatus> {
    let t = Instant::now();
    while t.elapsed() < d {
        if let Ok(Some(s)) = c.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    c.wait().ok()
}

#[test]
fn dpdk_testpmd_ld_preload_produces_a_valid_trace() {
    if std::env::var("MICROSCOPE_SKIP_DPDK_TESTS").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED dpdk_testpmd: MICROSCOPE_SKIP_DPDK_TESTS=1");
        return;
    }
    if !have("pkg-config", &["--atleast-version=22.11", "libdpdk"])
        || !have("sh", &["-c", "command -v dpdk-testpmd"])
        || !have("make", &["--version"])
    {
        eprintln!(
            "SKIPPED dpdk_testpmd: needs DPDK >= 22.11 (apt-get install dpdk libdpdk-dev \
             pkg-config make); run scripts/test-dpdk"
        );
        return;
    }
    let root = repo();
    let build = root.join("target").join("shim-c-test");
    let st = Command::new("make")
        .arg("-C")
        .arg(root.join("shim-c"))
        .arg(format!("BUILD={}", build.display()))
        .arg("-s")
        .status()
        .expect("make runs");
    assert!(st.success(), "make -C shim-c failed");
    let shim = build.join("libmicroscope_shim.so");

    // Rings on tmpfs, as in production (see shim-c/README.md).
    let dir = tempfile::Builder::new()
        .prefix("msc-testpmd")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let rings = dir.path().join("rings");
    let trace = dir.path().join("trace.bin");
    let pcap = dir.path().join("in.pcap");
    write_pcap(&pcap);
    std::fs::create_dir_all(&rings).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&rings, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let ms = env!("CARGO_BIN_EXE_microscope");

    let mut dumper = Command::new(ms)
        .arg("dump")
        .arg("--rings")
        .arg(&rings)
        .arg("--out")
        .arg(&trace)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("microscope dump starts");

    let prefix = format!("msct{}", std::process::id());
    let testpmd = Command::new("dpdk-testpmd")
        .args(["--no-huge", "-m", "1024", "--no-pci", "-l", "0-1"])
        .args(["--file-prefix", &prefix])
        .arg("--vdev")
        .arg(format!(
            "net_pcap0,rx_pcap={},tx_pcap=/dev/null,infinite_rx=1",
            pcap.display()
        ))
        .args(["--vdev", "net_null0,no-rx=1"])
        .args([
            "--",
            "--no-mlockall",
            "--total-num-mbufs=8192",
            "--stats-period",
            "1",
        ])
        .args(["--forward-mode=io"])
        .env("LD_PRELOAD", &shim)
        .env("MICROSCOPE_RING_DIR", &rings)
        .env("MICROSCOPE_NF_NAME", "testpmd")
        .env("MICROSCOPE_TUPLE_PORTS", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut testpmd = testpmd.expect("dpdk-testpmd starts");
    std::thread::sleep(Duration::from_secs(2));
    sigint(testpmd.id());
    let _ = wait_timeout(&mut testpmd, Duration::from_secs(10));
    let out = testpmd.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{prefix}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("microscope-shim: port 0: 1 rx + 1 tx queue(s) recorded, with 5-tuples"),
        "shim did not attach:\n{err}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::thread::sleep(Duration::from_millis(500));
    sigint(dumper.id());
    let status = wait_timeout(&mut dumper, Duration::from_secs(30)).expect("dumper exits");
    let mut derr = String::new();
    if let Some(mut e) = dumper.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut derr);
    }
    assert!(status.success(), "dumper failed: {status}\n{derr}");

    let t = read_trace(&trace, ReadMode::Strict).expect("valid trace");
    let find = |port: u16, rx: bool| {
        t.streams
            .iter()
            .find(|s| {
                s.info.as_ref().is_some_and(|i| {
                    i.nf == "testpmd"
                        && i.port == port
                        && (i.direction == collector::Direction::Rx) == rx
                })
            })
            .unwrap_or_else(|| panic!("no testpmd stream port {port} rx={rx}"))
    };
    let rx0 = find(0, true);
    let tx1 = find(1, false);
    let info = rx0.info.as_ref().unwrap();
    assert!(info.carries_tuples);
    assert!(!tx1.info.as_ref().unwrap().carries_tuples);
    assert_eq!(info.nf_type, "dpdk-testpmd");

    // The capture's order, by frame index: what follows frame i is i+1.
    let expected: Vec<_> = (0..FRAMES).map(|i| frame(i).1).collect();
    let by_ipid: std::collections::HashMap<u16, usize> = expected
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.map(|(id, _)| (id, i)))
        .collect();
    let index_of = |ipid: u16| by_ipid.get(&ipid).copied();
    let mut rx_packets = 0usize;
    let mut checked_pairs = 0usize;
    for b in &rx0.batches {
        assert!(!b.is_empty() && b.len() <= b.requested as usize);
        let tuples = b.tuples.as_ref().expect("port 0 carries tuples");
        assert_eq!(tuples.len(), b.len());
        let mut prev: Option<usize> = None;
        for (k, &ipid) in b.ipids.iter().enumerate() {
            let non = b.non_ipv4.contains(&(k as u16));
            match (prev, non) {
                // An ARP frame is identified by its predecessor.
                (Some(p), true) => {
                    let i = (p + 1) % FRAMES;
                    assert!(
                        expected[i].is_none(),
                        "frame {i} flagged non-IPv4 but is IPv4"
                    );
                    prev = Some(i);
                }
                _ => {
                    let i = if non { None } else { index_of(ipid) };
                    if let (Some(p), Some(i)) = (prev, i) {
                        assert_eq!(i, (p + 1) % FRAMES, "capture order broken in a batch");
                        checked_pairs += 1;
                    }
                    if let Some(i) = i {
                        assert_eq!(tuples[k], expected[i].unwrap().1, "5-tuple of frame {i}");
                    } else {
                        assert!(non, "IPID {ipid} is not in the capture");
                    }
                    prev = i;
                }
            }
        }
        rx_packets += b.len();
    }
    assert!(rx_packets > 10_000, "only {rx_packets} rx packets recorded");
    assert!(checked_pairs > 5_000);
    // Every ARP (1 in 50) is flagged.
    let flagged: usize = rx0.batches.iter().map(|b| b.non_ipv4.len()).sum();
    let ratio = flagged as f64 / rx_packets as f64;
    assert!((ratio - 0.02).abs() < 0.005, "non-IPv4 ratio {ratio}");

    // tx on the null port: the same packets, forwarded in order, no tuples.
    let tx_packets: usize = tx1.batches.iter().map(|b| b.len()).sum();
    assert!(tx_packets > 10_000);
    for b in &tx1.batches {
        assert!(b.tuples.is_none());
        let idx: Vec<Option<usize>> = b
            .ipids
            .iter()
            .enumerate()
            .map(|(k, &id)| {
                if b.non_ipv4.contains(&(k as u16)) {
                    None
                } else {
                    index_of(id)
                }
            })
            .collect();
        for w in idx.windows(2) {
            if let (Some(a), Some(c)) = (w[0], w[1]) {
                assert_eq!(c, (a + 1) % FRAMES, "tx order broken");
            }
        }
    }
    // Losses (if the dumper fell behind) are accounted, never hidden: the
    // records read plus those counted lost cover every sequence number.
    for s in [rx0, tx1] {
        let last = s
            .batches
            .iter()
            .map(|b| b.seq)
            .chain(s.anchors.iter().map(|a| a.seq))
            .max()
            .unwrap();
        let read = (s.batches.len() + s.anchors.len()) as u64;
        assert!(
            read + s.loss.total() > last,
            "stream gap not accounted: read {read}, lost {:?}, last seq {last}",
            s.loss
        );
    }
    // Anchors pair TSC and CLOCK_MONOTONIC consistently: one line fits all
    // of them to within 50 µs.
    assert!(rx0.anchors.len() >= 2);
    let c = collector::Calibration::fit(&rx0.anchors, 2.6e9);
    assert_eq!(c.source, collector::clock::CalibrationSource::Anchors);
    for a in &rx0.anchors {
        let err = (c.to_ns(a.tsc) - a.mono_ns as f64).abs();
        assert!(err < 50_000.0, "anchor off the fitted line by {err} ns");
    }

    let out = Command::new(ms)
        .arg("inspect")
        .arg(&trace)
        .output()
        .unwrap();
    assert!(out.status.success(), "inspect failed");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("testpmd"), "{text}");
}
