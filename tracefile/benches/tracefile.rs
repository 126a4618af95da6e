//! Trace file throughput and size: write and read records/s and packets/s,
//! bytes per packet per hook point, at 32-packet batches.
//!
//! `cargo bench -p tracefile --bench tracefile [-- RECORDS]` (default 400 000
//! records per workload). Set `TRACEFILE_BENCH_KEEP=DIR` to keep the files
//! (e.g. to compare with a general-purpose compressor).

use collector::{BatchRecord, ClockAnchor, Direction, LossCounters, Record, Role, StreamInfo};
use std::time::Instant;
use tracefile::{read_trace, ReadMode, TraceWriter};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// IPID patterns: `random` (incompressible), `flows64` (64 sources each
/// incrementing its own counter, packets interleaved at random), `single`
/// (one source, consecutive IPIDs).
fn workload(name: &str, n: u64) -> Vec<Record> {
    let mut rng = Rng(0x5eed);
    let mut counters = [0u16; 64];
    for c in counters.iter_mut() {
        *c = rng.next() as u16;
    }
    let mut single = 0u16;
    let mut tsc = 1u64 << 40;
    let mut out = Vec::with_capacity(n as usize);
    for seq in 0..n {
        // ~8 µs per 32-packet batch at 2.6 GHz, with jitter.
        tsc += 20_000 + rng.next() % 2_000;
        if seq.is_multiple_of(1024) {
            out.push(Record::Anchor(ClockAnchor {
                seq,
                tsc,
                mono_ns: (tsc as f64 / 2.6) as u64,
            }));
            continue;
        }
        let ipids = (0..32)
            .map(|_| match name {
                "random" => rng.next() as u16,
                "flows64" => {
                    let c = &mut counters[(rng.next() % 64) as usize];
                    *c = c.wrapping_add(1);
                    *c
                }
                _ => {
                    single = single.wrapping_add(1);
                    single
                }
            })
            .collect();
        out.push(Record::Batch(BatchRecord {
            seq,
            tsc,
            requested: 32,
            ipids,
            ..Default::default()
        }));
    }
    out
}

fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(400_000);
    let keep = std::env::var_os("TRACEFILE_BENCH_KEEP").map(std::path::PathBuf::from);
    let dir = tempfile::tempdir().expect("temp dir");
    let info = StreamInfo {
        id: 0,
        nf: "fw1".into(),
        nf_type: "firewall".into(),
        role: Role::Nf,
        port: 0,
        queue: 0,
        direction: Direction::Rx,
        host: "h".into(),
        carries_tuples: false,
    };
    println!("tracefile bench: {n} records per workload, 32-packet batches, 1 stream, push() with 4096-record chunks");
    println!(
        "{:<8} {:>12} {:>10} {:>14} {:>14} {:>14} {:>14}",
        "ipids", "packets", "B/packet", "write rec/s", "write pkt/s", "read rec/s", "read pkt/s"
    );
    for name in ["random", "flows64", "single"] {
        let recs = workload(name, n);
        let packets: u64 = recs
            .iter()
            .map(|r| match r {
                Record::Batch(b) => b.ipids.len() as u64,
                Record::Anchor(_) => 0,
            })
            .sum();
        let path = match &keep {
            Some(d) => d.join(format!("{name}.bin")),
            None => dir.path().join(format!("{name}.bin")),
        };
        let meta = collector::TraceMeta {
            producer: "tracefile bench".into(),
            ..Default::default()
        };
        let loss = LossCounters::default();
        let t0 = Instant::now();
        let mut w = TraceWriter::create(&path, &meta).expect("create");
        w.declare_stream(&info).expect("declare");
        for r in recs.iter().cloned() {
            w.push(0, r, &loss).expect("push");
        }
        w.finish().expect("finish");
        let wt = t0.elapsed().as_secs_f64();
        let bytes = std::fs::metadata(&path).expect("stat").len();
        let t0 = Instant::now();
        let t = read_trace(&path, ReadMode::Strict).expect("read");
        let rt = t0.elapsed().as_secs_f64();
        assert_eq!(t.packets(), packets, "round trip lost packets");
        println!(
            "{:<8} {:>12} {:>10.3} {:>14.0} {:>14.0} {:>14.0} {:>14.0}",
            name,
            packets,
            bytes as f64 / packets as f64,
            n as f64 / wt,
            packets as f64 / wt,
            n as f64 / rt,
            packets as f64 / rt
        );
    }
}
