//! Bench binary: the producer's cost per record (Rust and C producers), with
//! a consumer that keeps up and with a stopped consumer (every record
//! dropped: a stopped consumer must not slow the producer down). Prints a
//! table. `cargo bench -p collector --bench ring_producer [-- --quick]`.

use collector::ring::{BatchView, Consumer, Producer, RingConfig, RingIdentity, TrustPolicy};
use collector::{Direction, Role};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

fn cfg(data_size: u64) -> RingConfig {
    RingConfig {
        identity: RingIdentity {
            nf: "bench".into(),
            nf_type: "bench".into(),
            role: Role::Nf,
            port: 0,
            queue: 0,
            direction: Direction::Rx,
            host: "bench".into(),
            carries_tuples: false,
            pid: 0,
            created_ns: 0,
            tsc_hz_hint: None,
        },
        data_size,
        max_record_size: None,
        group: None,
    }
}

/// Something that offers a 32-packet batch and says if it was written.
trait Put: Send + 'static {
    fn put(&mut self, b: &BatchView<'_>) -> bool;
}

impl Put for Producer {
    fn put(&mut self, b: &BatchView<'_>) -> bool {
        self.put_batch(b).unwrap().is_written()
    }
}

#[cfg(ms_ring_c)]
struct C(collector::ring::c_producer::CProducer, bool);

#[cfg(ms_ring_c)]
impl Put for C {
    fn put(&mut self, b: &BatchView<'_>) -> bool {
        self.0.put_batch(b, self.1).unwrap().is_written()
    }
}

/// ns per offered record and the share written, with the consumer
/// draining on another thread (`live`) or never draining.
fn measure<P: Put>(make: impl Fn(&std::path::Path) -> P, n: u64, live: bool) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.ring");
    let mut p = make(&path);
    let mut c = Consumer::open(&path, &TrustPolicy::current_user()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let drainer = std::thread::spawn(move || {
        let mut v = Vec::new();
        while live && !s2.load(Ordering::Relaxed) {
            v.clear();
            c.drain(8192, &mut v).unwrap();
            c.commit();
        }
    });
    let ipids: Vec<u16> = (0..32).collect();
    let mut written = 0u64;
    let t = Instant::now();
    for i in 0..n {
        written += p.put(&BatchView {
            tsc: i,
            requested: 32,
            ipids: &ipids,
            non_ipv4: &[],
            tuples: None,
        }) as u64;
    }
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    stop.store(true, Ordering::Relaxed);
    drainer.join().unwrap();
    (ns, written as f64 / n as f64)
}

/// (producer, (ns/record, share written) live, the same stopped).
type Row = (&'static str, (f64, f64), (f64, f64));

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 200_000 } else { 2_000_000 };
    let size = 1u64 << 24;
    let mut rows: Vec<Row> = Vec::new();
    let rust = |p: &std::path::Path| Producer::create(p, &cfg(size)).unwrap();
    rows.push((
        "rust put_batch",
        measure(rust, n, true),
        measure(rust, n, false),
    ));
    #[cfg(ms_ring_c)]
    {
        use collector::ring::c_producer::CProducer;
        let c = |p: &std::path::Path| C(CProducer::create(p, &cfg(size)).unwrap(), false);
        rows.push((
            "C ms_ring_put_batch",
            measure(c, n, true),
            measure(c, n, false),
        ));
        let z = |p: &std::path::Path| C(CProducer::create(p, &cfg(size)).unwrap(), true);
        rows.push((
            "C reserve+fill+commit",
            measure(z, n, true),
            measure(z, n, false),
        ));
    }
    println!("producer cost per 32-packet batch record ({n} records, 16 MiB ring)");
    println!(
        "{:<24} {:>16} {:>14} {:>18} {:>14}",
        "producer", "ns/rec (live)", "written", "ns/rec (stopped)", "written"
    );
    for (name, live, stopped) in rows {
        println!(
            "{:<24} {:>16.1} {:>13.1}% {:>18.1} {:>13.1}%",
            name,
            live.0,
            live.1 * 100.0,
            stopped.0,
            stopped.1 * 100.0
        );
    }
}
