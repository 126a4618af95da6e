//! Overhead of the Microscope shim on real DPDK NFs (a benchmark that prints
//! a table; not a test).
//!
//! `cargo bench -p dpdk-testbed --bench overhead [-- --pairs N --secs S]`
//!
//! 1. VPN NF (`ms-nf --kind vpn`, AES-128-GCM per packet) on core 1,
//!    input a `net_pcap` port replaying 64-byte frames forever, output a
//!    `net_null` sink: its peak throughput with the shim (statically linked,
//!    attached, drained by the dumper on core 0) and without (`--no-shim`),
//!    alternated in ABBA order over N pairs; the ratio of medians, per
//!    wall-clock second and per CPU-second of the NF's polling thread (the
//!    latter is not lowered when other processes take the core — on a
//!    loaded machine the dumper's thread pushes other work onto the NF's).
//! 2. Worst case: Debian's `dpdk-testpmd` in io forwarding between two
//!    `net_null` ports (touches no packet data: the shim's IPID reads are
//!    its only per-packet memory accesses), with and without the
//!    `LD_PRELOAD` shim; cycles per packet added.
//! 3. The dumper's ceiling: records and packets per second it drained
//!    during the testpmd runs (where the shim produces far more than it can
//!    take), and the loss the shim counted.
//! 4. The shim's hot path in instructions per packet (rx hook, tx wrapper),
//!    counted by callgrind on `shim-c/tests/bench_shim.c` — repeatable on a
//!    loaded machine, unlike the throughput ratios — when valgrind is
//!    installed, and its cycles per packet (rdtsc, 3 rounds), alone and with
//!    a consumer thread draining its rings from core 0 (`bench_shim live`).

use dpdk_testbed::packet::{build_frame, FRAME_LEN};
use dpdk_testbed::traffic;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn pin_to(core: usize) {
    // SAFETY: builds a cpu_set_t on the stack and applies it to the calling
    // thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// A dumper draining `rings` into `out` on core 0 until stopped.
struct Dumper {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Option<dumper::DumpSummary>>,
}

impl Dumper {
    fn start(rings: &Path, out: &Path) -> Dumper {
        let stop = Arc::new(AtomicBool::new(false));
        let mut cfg = dumper::Config::new(rings, out);
        cfg.overwrite = true;
        cfg.workers = 1;
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            pin_to(0);
            match dumper::run(&cfg, s) {
                Ok(sum) => Some(sum),
                Err(e) => {
                    eprintln!("dumper: {e}");
                    None
                }
            }
        });
        Dumper { stop, handle }
    }

    fn finish(self) -> Option<dumper::DumpSummary> {
        std::thread::sleep(Duration::from_millis(300));
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().ok().flatten()
    }
}

fn fresh_dir(base: &Path, name: &str) -> PathBuf {
    let d = base.join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

fn sigint_after(child: &mut std::process::Child, secs: f64) {
    std::thread::sleep(Duration::from_secs_f64(secs));
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
}

/// One VPN run.
fn vpn_run(
    nf: &Path,
    pcap: &Path,
    tmp: &Path,
    shim: bool,
    secs: f64,
    run: usize,
) -> Option<VpnRun> {
    let rings = fresh_dir(tmp, "vpn-rings");
    let dumper = shim.then(|| Dumper::start(&rings, &tmp.join("vpn-trace.bin")));
    let prefix = format!("msbench{}-{run}", std::process::id());
    let mut cmd = Command::new(nf);
    cmd.args(["--no-huge", "-m", "512", "--no-pci", "-l", "1"])
        .args(["--file-prefix", &prefix])
        .arg("--vdev")
        .arg(format!(
            "net_pcap0,rx_pcap={},infinite_rx=1",
            pcap.display()
        ))
        .args(["--vdev", "net_null0"])
        .args(["--", "--kind", "vpn", "--inputs", "net_pcap0"])
        .args(["--outputs", "net_null0"])
        .env("MICROSCOPE_RING_DIR", &rings)
        .env("MICROSCOPE_NF_NAME", "vpn")
        .env("MICROSCOPE_QUIET", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if !shim {
        cmd.arg("--no-shim");
    }
    let mut child = cmd.spawn().ok()?;
    sigint_after(&mut child, secs + 1.0);
    let out = child.wait_with_output().ok()?;
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{prefix}"));
    if let Some(d) = dumper {
        d.finish();
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())?;
    let st = &v["stats"];
    let tx = st["tx"].as_f64()?;
    let span = (st["last_ns"].as_f64()? - st["first_ns"].as_f64()?) / 1e9;
    let cpu = st["cpu_ns"].as_f64()? / 1e9;
    let lost = v["shim"]["lost_full"].as_u64().unwrap_or(0);
    (span > 0.0 && cpu > 0.0).then(|| VpnRun {
        pps: tx / span,
        cpu_pps: tx / cpu,
        lost,
    })
}

/// One VPN run's rates: per wall-clock second, and per CPU-second of the
/// NF's polling thread (not lowered when other processes take its core).
struct VpnRun {
    pps: f64,
    cpu_pps: f64,
    lost: u64,
}

/// One testpmd io run; returns (forwarded packets per second, dumper summary).
fn testpmd_run(
    shim_so: Option<&Path>,
    tmp: &Path,
    secs: f64,
    run: usize,
) -> Option<(f64, Option<dumper::DumpSummary>)> {
    let rings = fresh_dir(tmp, "pmd-rings");
    let dumper = shim_so.map(|_| Dumper::start(&rings, &tmp.join("pmd-trace.bin")));
    let prefix = format!("msbenchp{}-{run}", std::process::id());
    let mut cmd = Command::new("dpdk-testpmd");
    cmd.args(["--no-huge", "-m", "1024", "--no-pci", "-l", "0-1"])
        .args(["--file-prefix", &prefix])
        .args(["--vdev", "net_null0", "--vdev", "net_null1"])
        .args([
            "--",
            "--no-mlockall",
            "--total-num-mbufs=8192",
            "--stats-period",
            "1",
        ])
        .arg("--forward-mode=io")
        .env("MICROSCOPE_RING_DIR", &rings)
        .env("MICROSCOPE_NF_NAME", "testpmd")
        .env("MICROSCOPE_QUIET", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(so) = shim_so {
        cmd.env("LD_PRELOAD", so);
    }
    let mut child = cmd.spawn().ok()?;
    sigint_after(&mut child, secs + 1.0);
    let out = child.wait_with_output().ok()?;
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{prefix}"));
    let sum = dumper.and_then(|d| d.finish());
    // Periodic stats: per port "Rx-pps: N"; sum the two ports per period,
    // skip the first period (start-up) and take the median of the rest.
    let text = String::from_utf8_lossy(&out.stdout);
    let pps: Vec<f64> = text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("Rx-pps:")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse::<f64>().ok())
        })
        .collect();
    let mut periods: Vec<f64> = pps.chunks_exact(2).map(|c| c[0] + c[1]).skip(1).collect();
    if periods.is_empty() {
        return None;
    }
    Some((median(&mut periods), sum))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn tsc_hz() -> f64 {
    // The TSC runs at the nominal frequency on this VM; take it from
    // /proc/cpuinfo ("model name ... @ 2.60GHz") or fall back to "cpu MHz".
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    for l in info.lines() {
        if let Some(at) = l.find(" @ ") {
            if let Some(g) = l[at + 3..].trim().strip_suffix("GHz") {
                if let Ok(v) = g.parse::<f64>() {
                    return v * 1e9;
                }
            }
        }
    }
    info.lines()
        .find_map(|l| l.strip_prefix("cpu MHz"))
        .and_then(|r| r.split(':').nth(1))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(2.6e9, |m| m * 1e6)
}

/// Instructions per packet callgrind attributes to `func` (a `bench_*`
/// function of bench_shim) over `bursts` bursts of 32 packets, 3 rounds.
fn callgrind_per_packet(bench: &Path, func: &str, bursts: u32) -> Option<f64> {
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .args(["--collect-atstart=no", &format!("--toggle-collect={func}*")])
        .arg(bench)
        .arg(bursts.to_string())
        .stdout(Stdio::null())
        .output()
        .ok()?;
    let err = String::from_utf8_lossy(&out.stderr);
    let collected: f64 = err
        .lines()
        .find_map(|l| l.split("Collected :").nth(1))?
        .trim()
        .replace(',', "")
        .parse()
        .ok()?;
    Some(collected / (bursts as f64 * 3.0 * 32.0))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: f64| -> f64 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let pairs = arg("--pairs", 5.0) as usize;
    let secs = arg("--secs", 3.0);
    if !dpdk_testbed::HAS_DPDK || !have("dpdk-testpmd") || !have("make") {
        println!("overhead: skipped (needs DPDK, dpdk-testpmd and make; see scripts/test-dpdk)");
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let nf = PathBuf::from(env!("CARGO_BIN_EXE_ms-nf"));
    let build = root.join("target/shim-c-bench");
    let ok = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(root.join("shim-c"))
        .arg(format!("BUILD={}", build.display()))
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "make -C shim-c failed");
    let so = build.join("libmicroscope_shim.so");
    let bench_bin = build.join("bench_shim");
    let bench_ok = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(root.join("shim-c"))
        .arg(format!("BUILD={}", build.display()))
        .arg(&bench_bin)
        .status()
        .is_ok_and(|s| s.success());
    // On tmpfs: rings on a disk-backed file system fault after writeback.
    let tmp = tempfile::Builder::new()
        .prefix("msc-bench")
        .tempdir_in("/dev/shm")
        .unwrap();
    let pcap = tmp.path().join("mix.pcap");
    let mix = traffic::synthetic(1000, 4096, 3);
    let frames: Vec<Vec<u8>> = mix
        .order
        .iter()
        .enumerate()
        .map(|(i, &f)| {
            let t = dpdk_testbed::packet::parse(&mix.frames[f as usize])
                .unwrap()
                .tuple;
            build_frame(&t, i as u16, FRAME_LEN).unwrap()
        })
        .collect();
    traffic::write_pcap(&pcap, &frames).unwrap();

    println!("# Microscope shim overhead ({pairs} ABBA pairs, {secs} s per run, 2-core VM)");
    println!();
    let (mut with, mut without, mut lost) = (Vec::new(), Vec::new(), 0u64);
    let (mut cwith, mut cwithout) = (Vec::new(), Vec::new());
    for p in 0..pairs {
        let order = if p % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for (k, shim) in order.into_iter().enumerate() {
            match vpn_run(&nf, &pcap, tmp.path(), shim, secs, p * 2 + k) {
                Some(r) => {
                    println!(
                        "vpn  pair {p} {:<8} {:>10.0} pps {:>10.0} pps/CPU-s",
                        if shim { "shim" } else { "no-shim" },
                        r.pps,
                        r.cpu_pps
                    );
                    if shim {
                        with.push(r.pps);
                        cwith.push(r.cpu_pps);
                        lost += r.lost;
                    } else {
                        without.push(r.pps);
                        cwithout.push(r.cpu_pps);
                    }
                }
                None => println!("vpn  pair {p}: run failed"),
            }
        }
    }
    let (mut pw, mut pwo, mut dumps) = (Vec::new(), Vec::new(), Vec::new());
    for p in 0..pairs {
        let order = if p % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for (k, shim) in order.into_iter().enumerate() {
            let r = testpmd_run(shim.then_some(so.as_path()), tmp.path(), secs, p * 2 + k);
            match r {
                Some((pps, sum)) => {
                    println!(
                        "pmd  pair {p} {:<8} {:>12.0} pps",
                        if shim { "shim" } else { "no-shim" },
                        pps
                    );
                    if shim {
                        pw.push(pps);
                        if let Some(s) = sum {
                            dumps.push(s);
                        }
                    } else {
                        pwo.push(pps);
                    }
                }
                None => println!("pmd  pair {p}: run failed"),
            }
        }
    }
    println!();
    let hz = tsc_hz();
    println!("| NF | without shim (median pps) | with shim (median pps) | ratio | drop | cycles/pkt added |");
    println!("|---|---|---|---|---|---|");
    if !with.is_empty() && !without.is_empty() {
        let (a, b) = (median(&mut without), median(&mut with));
        println!(
            "| VPN (ms-nf, static shim) | {a:.0} | {b:.0} | {:.4} | {:.2} % | {:.1} |",
            b / a,
            (1.0 - b / a) * 100.0,
            hz / b - hz / a
        );
    }
    if !cwith.is_empty() && !cwithout.is_empty() {
        let (a, b) = (median(&mut cwithout), median(&mut cwith));
        println!(
            "| VPN, per CPU-second of the NF thread | {a:.0} | {b:.0} | {:.4} | {:.2} % | {:.1} |",
            b / a,
            (1.0 - b / a) * 100.0,
            hz / b - hz / a
        );
    }
    if !pw.is_empty() && !pwo.is_empty() {
        let (a, b) = (median(&mut pwo), median(&mut pw));
        println!(
            "| testpmd io, net_null (LD_PRELOAD) | {a:.0} | {b:.0} | {:.4} | {:.2} % | {:.1} |",
            b / a,
            (1.0 - b / a) * 100.0,
            hz / b - hz / a
        );
    }
    println!();
    println!("shim records lost (ring full) during VPN runs: {lost}");
    if bench_ok {
        println!();
        println!("shim hot path (shim-c/tests/bench_shim.c, 64-byte IPv4, bursts of 32):");
        if let Ok(o) = Command::new(&bench_bin).arg("200000").output() {
            print!("{}", String::from_utf8_lossy(&o.stdout));
        }
        // The same with a consumer draining the rings from core 0, as the
        // dumper does: what the cache lines moving between cores add.
        if let Ok(o) = Command::new(&bench_bin).args(["200000", "live"]).output() {
            print!("{}", String::from_utf8_lossy(&o.stdout));
        }
        if have("valgrind") {
            for (what, f) in [("rx hook", "bench_rx"), ("tx wrapper", "bench_tx")] {
                match callgrind_per_packet(&bench_bin, f, 2000) {
                    Some(i) => println!("callgrind: {what}: {i:.1} instructions/packet"),
                    None => println!("callgrind: {what}: no count (valgrind failed)"),
                }
            }
        } else {
            println!("callgrind: skipped (no valgrind)");
        }
    }
    for (i, s) in dumps.iter().enumerate() {
        let secs = s.elapsed.as_secs_f64().max(1e-9);
        let lost: u64 = s.streams.iter().map(|x| x.loss.lost_full).sum();
        println!(
            "dumper (testpmd run {i}): {:.2} M records/s, {:.2} M packets/s drained; shim lost_full {} records",
            s.records as f64 / secs / 1e6,
            s.packets as f64 / secs / 1e6,
            lost
        );
    }
}
