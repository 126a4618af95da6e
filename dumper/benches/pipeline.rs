//! Bench binary: records/s and packets/s through ring → dumper → file, and
//! the bytes per packet the file ends up with. Prints a table.
//!
//! `cargo bench -p dumper --bench pipeline` (add `-- --quick` for a short
//! run). Producers run flat out on their own threads; if the dumper cannot
//! keep up the ring drops and the loss column says how much.

use collector::ring::{BatchView, Producer, RingConfig, RingIdentity};
use collector::{Direction, FiveTuple, Role};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Row {
    name: String,
    rings: usize,
    records: u64,
    packets: u64,
    lost: u64,
    secs: f64,
    bytes: u64,
}

fn identity(i: usize, tuples: bool) -> RingIdentity {
    RingIdentity {
        nf: format!("nf{i}"),
        nf_type: "bench".into(),
        role: Role::Nf,
        port: 0,
        queue: i as u16,
        direction: Direction::Rx,
        host: "bench".into(),
        carries_tuples: tuples,
        pid: std::process::id(),
        created_ns: 0,
        tsc_hz_hint: None,
    }
}

fn producer(rdir: &std::path::Path, i: usize, tuples: bool, data_size: u64) -> Producer {
    let cfg = RingConfig {
        identity: identity(i, tuples),
        data_size,
        max_record_size: None,
        group: None,
    };
    Producer::create(&rdir.join(format!("r{i}.ring")), &cfg).unwrap()
}

/// A batch source: 32 packets whose IPIDs advance like per-flow counters
/// interleaved across flows, an anchor every 1000 records.
struct Source {
    ipids: [u16; 32],
    tuples: Vec<FiveTuple>,
    tsc: u64,
    i: u64,
}

impl Source {
    fn new(r: usize) -> Source {
        Source {
            ipids: [0; 32],
            tuples: (0..32)
                .map(|k| FiveTuple {
                    src_ip: 0x0a00_0000 + k,
                    dst_ip: 0xc0a8_0001,
                    src_port: 1000 + k as u16,
                    dst_port: 80,
                    proto: 6,
                })
                .collect(),
            tsc: 1_000_000 * r as u64,
            i: 0,
        }
    }

    /// Offers the next record; true if written.
    fn put(&mut self, p: &mut Producer, tuples: bool) -> bool {
        let i = self.i;
        self.i += 1;
        for (k, id) in self.ipids.iter_mut().enumerate() {
            *id = (i as u16).wrapping_mul(3).wrapping_add(k as u16 * 977);
        }
        self.tsc += 1664; // 32 packets at 50 Mpps (52 ticks of 2.6 GHz each)
        let o = if i % 1000 == 0 {
            p.put_anchor(self.tsc, self.tsc * 10 / 26)
        } else {
            p.put_batch(&BatchView {
                tsc: self.tsc,
                requested: 32,
                ipids: &self.ipids,
                non_ipv4: &[],
                tuples: tuples.then_some(&self.tuples[..]),
            })
            .unwrap()
        };
        o.is_written()
    }
}

fn start_dumper(
    rdir: &std::path::Path,
    out: &std::path::Path,
) -> (
    Arc<AtomicBool>,
    std::thread::JoinHandle<Result<dumper::DumpSummary, dumper::DumpError>>,
) {
    let mut cfg = dumper::Config::new(rdir, out);
    cfg.scan_interval = Duration::from_millis(5);
    cfg.sync_interval = Duration::from_millis(10);
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    (stop, std::thread::spawn(move || dumper::run(&cfg, s2)))
}

/// Rings filled before the dumper starts: how fast the dumper empties them
/// into the file (time until every ring tail is committed).
fn drain_case(name: &str, rings: usize, per_ring: u64, tuples: bool) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let rdir = dir.path().join("rings");
    std::fs::create_dir(&rdir).unwrap();
    let out = dir.path().join("trace.bin");
    let mut ps: Vec<Producer> = (0..rings)
        .map(|i| producer(&rdir, i, tuples, 1 << 27))
        .collect();
    let mut lost = 0;
    for (r, p) in ps.iter_mut().enumerate() {
        let mut src = Source::new(r);
        for _ in 0..per_ring {
            lost += !src.put(p, tuples) as u64;
        }
    }
    let t0 = Instant::now();
    let (stop, h) = start_dumper(&rdir, &out);
    while ps.iter().any(|p| p.used_bytes() > 0) {
        std::thread::sleep(Duration::from_micros(200));
    }
    let secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Release);
    let summary = h.join().unwrap().unwrap();
    Row {
        name: name.into(),
        rings,
        records: summary.records,
        packets: summary.packets,
        lost,
        secs,
        bytes: std::fs::metadata(&out).unwrap().len(),
    }
}

/// Producers offering `rate` batches/s each (paced), the dumper running.
fn live_case(name: &str, rings: usize, rate: f64, secs: f64) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let rdir = dir.path().join("rings");
    std::fs::create_dir(&rdir).unwrap();
    let out = dir.path().join("trace.bin");
    let ps: Vec<Producer> = (0..rings)
        .map(|i| producer(&rdir, i, false, 1 << 22))
        .collect();
    let (stop, h) = start_dumper(&rdir, &out);
    std::thread::sleep(Duration::from_millis(20));
    let t0 = Instant::now();
    let handles: Vec<_> = ps
        .into_iter()
        .enumerate()
        .map(|(r, mut p)| {
            std::thread::spawn(move || {
                let mut src = Source::new(r);
                let mut lost = 0u64;
                let start = Instant::now();
                let total = (rate * secs) as u64;
                let mut sent = 0u64;
                while sent < total {
                    let due = (start.elapsed().as_secs_f64() * rate) as u64;
                    if sent >= due {
                        std::thread::sleep(Duration::from_micros(100));
                        continue;
                    }
                    while sent < due.min(total) {
                        lost += !src.put(&mut p, false) as u64;
                        sent += 1;
                    }
                }
                while p.used_bytes() > 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
                lost
            })
        })
        .collect();
    let lost = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Release);
    let summary = h.join().unwrap().unwrap();
    Row {
        name: name.into(),
        rings,
        records: summary.records,
        packets: summary.packets,
        lost,
        secs,
        bytes: std::fs::metadata(&out).unwrap().len(),
    }
}

fn print(title: &str, rows: &[Row]) {
    println!("\n{title}");
    println!(
        "{:<26} {:>5} {:>10} {:>11} {:>8} {:>8} {:>12} {:>13} {:>9}",
        "case", "rings", "records", "packets", "lost", "secs", "records/s", "packets/s", "B/packet"
    );
    for r in rows {
        println!(
            "{:<26} {:>5} {:>10} {:>11} {:>8} {:>8.3} {:>12.0} {:>13.0} {:>9.3}",
            r.name,
            r.rings,
            r.records,
            r.packets,
            r.lost,
            r.secs,
            r.records as f64 / r.secs,
            r.packets as f64 / r.secs,
            r.bytes as f64 / r.packets.max(1) as f64
        );
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n: u64 = if quick { 100_000 } else { 800_000 };
    print(
        "ring -> dumper -> file, rings filled beforehand (max drain rate)",
        &[
            drain_case("ipids, 1 ring", 1, n, false),
            drain_case("ipids, 4 rings", 4, n / 4, false),
            drain_case("ipids+tuples, 1 ring", 1, n / 4, true),
        ],
    );
    let secs = if quick { 0.3 } else { 1.0 };
    print(
        "live: paced producers at the paper's high rate (1.6 Mpps = 50k batches/s per ring)",
        &[
            live_case("1.6 Mpps x 1 ring", 1, 50_000.0, secs),
            live_case("1.6 Mpps x 4 rings", 4, 50_000.0, secs),
        ],
    );
}
