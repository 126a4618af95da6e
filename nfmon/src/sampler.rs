//! Periodic sampling of one process into schema [`Row`]s.
//!
//! [`Sampler::new`] opens what exists (software and, where a PMU exists,
//! hardware perf groups per thread; `/proc`; the process's cgroup; host PSI
//! and `/proc/stat`) and takes a first snapshot. Each [`Sampler::sample`]
//! takes another and emits the differences as per-second rates (gauges as
//! their current value). A tier that is absent yields its metric names with
//! `None` values, so every row of a run has the same columns.
//!
//! Every row carries `mono_ns`, the `CLOCK_MONOTONIC` reading taken with
//! the interval's end snapshot (the clock of trace times, [`crate::clock`]).
//!
//! Threads created after the sampler started are picked up at the next
//! sample and contribute from the interval after that; counts of a thread
//! that exits during an interval are lost for that interval.

use crate::error::{NfmonError, Result};
use crate::host::{self, CgroupPaths, CgroupSnapshot, Pressure};
use crate::perf::{self, Group};
use crate::procfs::{self, ProcSnapshot};
use crate::schema::Row;
use crate::standin;
use collector::ring::{layout, Observer, RingCounters, TrustPolicy, RING_SUFFIX};
use collector::Direction;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What to collect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SamplerConfig {
    /// Open software perf events.
    pub software: bool,
    /// Try hardware perf events.
    pub hardware: bool,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            software: true,
            hardware: true,
        }
    }
}

struct Snap {
    at: Instant,
    mono_ns: u64,
    proc: ProcSnapshot,
    sw: BTreeMap<u32, Vec<Option<f64>>>,
    hw: BTreeMap<u32, Vec<Option<f64>>>,
    cg: Option<CgroupSnapshot>,
    psi: Pressure,
    stat: Option<[f64; 6]>,
    mem_avail: Option<f64>,
    shim: Option<standin::Counters>,
    rings: BTreeMap<PathBuf, (Direction, RingCounters)>,
}

// Anchors and batch records share the fixed size, so every record's fixed
// part is `BATCH_FIXED_SIZE` bytes of `head` (see [`ring_metrics`]).
const _: () = assert!(layout::ANCHOR_SIZE == layout::BATCH_FIXED_SIZE);

/// The `shim.` metrics of one NF from its rings' header counters at the
/// start and end of an interval of `dt` seconds: `(direction, before,
/// after)` per ring present at both ends. Sets, per second:
/// `shim.rx_batches` / `shim.tx_batches` (records committed, anchors
/// included), `shim.rx_pkt_slots` / `shim.tx_pkt_slots` (packet slots
/// written: a batch record is 32 bytes plus 2 bytes per packet rounded up
/// to 8 bytes, so (Δhead − 32·Δrecords) / 2 counts packets rounded up to a
/// multiple of 4 per batch), `shim.polls`, `shim.empty_polls`,
/// `shim.records_lost`; and the ratios `shim.busy_share` (non-empty polls),
/// `shim.tx_per_rx` (tx records per rx record) and `shim.tx_per_rx_pkt`
/// (tx packet slots per rx packet slot: packets an NF drops are missing on
/// its tx side). With no ring pair every value is missing.
pub fn ring_metrics(pairs: &[(Direction, RingCounters, RingCounters)], dt: f64, row: &mut Row) {
    let (mut rx, mut tx, mut rxp, mut txp, mut polls, mut empty, mut lost) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let d = |x: u64, y: u64| y.saturating_sub(x) as f64;
    for (dir, a, b) in pairs {
        let recs = d(a.next_seq, b.next_seq);
        let slots = ((d(a.head, b.head) - recs * layout::BATCH_FIXED_SIZE as f64) / 2.0).max(0.0);
        match dir {
            Direction::Rx => {
                rx += recs;
                rxp += slots;
            }
            Direction::Tx => {
                tx += recs;
                txp += slots;
            }
        }
        polls += d(a.polls, b.polls);
        empty += d(a.empty_polls, b.empty_polls);
        lost += d(a.lost_full, b.lost_full) + d(a.lost_too_big, b.lost_too_big);
    }
    let any = !pairs.is_empty() && dt > 0.0;
    let v = |x: f64| any.then(|| x / dt);
    row.set("shim.rx_batches", v(rx));
    row.set("shim.tx_batches", v(tx));
    row.set("shim.rx_pkt_slots", v(rxp));
    row.set("shim.tx_pkt_slots", v(txp));
    row.set("shim.polls", v(polls));
    row.set("shim.empty_polls", v(empty));
    row.set("shim.records_lost", v(lost));
    row.set(
        "shim.busy_share",
        (any && polls > 0.0).then(|| 1.0 - empty / polls),
    );
    row.set("shim.tx_per_rx", (any && rx > 0.0).then(|| tx / rx));
    row.set("shim.tx_per_rx_pkt", (any && rxp > 0.0).then(|| txp / rxp));
}

/// The Microscope shim's rings of one process, watched through their
/// headers only (read-only [`Observer`]s: nothing is consumed).
struct RingWatch {
    dir: PathBuf,
    open: Vec<Observer>,
    trust: TrustPolicy,
}

/// Samples one process.
pub struct Sampler {
    pid: u32,
    name: String,
    cfg: SamplerConfig,
    start: Instant,
    sw: BTreeMap<u32, Group>,
    hw: BTreeMap<u32, Group>,
    /// Why hardware counters are absent (None when present or not asked).
    pub hw_absent: Option<String>,
    /// Why software counters are absent.
    pub sw_absent: Option<String>,
    cg: Option<CgroupPaths>,
    shim_path: Option<PathBuf>,
    rings: Option<RingWatch>,
    last: Snap,
}

fn delta(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(b? - a?).filter(|d| *d >= 0.0)
}

impl Sampler {
    /// Start sampling `pid`, naming its rows `name`.
    pub fn new(pid: u32, name: impl Into<String>, cfg: SamplerConfig) -> Result<Sampler> {
        let mut s = Sampler {
            pid,
            name: name.into(),
            cfg,
            start: Instant::now(),
            sw: BTreeMap::new(),
            hw: BTreeMap::new(),
            hw_absent: (!cfg.hardware).then(|| "not requested".to_string()),
            sw_absent: (!cfg.software).then(|| "not requested".to_string()),
            cg: host::cgroup_paths(pid),
            shim_path: None,
            rings: None,
            last: Snap {
                at: Instant::now(),
                mono_ns: 0,
                proc: ProcSnapshot::default(),
                sw: BTreeMap::new(),
                hw: BTreeMap::new(),
                cg: None,
                psi: Pressure::default(),
                stat: None,
                mem_avail: None,
                shim: None,
                rings: BTreeMap::new(),
            },
        };
        s.last = s.snap()?;
        Ok(s)
    }

    /// Also read poll counters published by a busy-polling NF (the
    /// [`standin`] format: `polls empty packets drops`) into the `shim.` tier.
    pub fn with_poll_counters(mut self, path: PathBuf) -> Sampler {
        self.last.shim = standin::read_counters(&path).ok();
        self.shim_path = Some(path);
        self
    }

    /// Also read the shim's ring headers in `dir` (every `*.ring` whose
    /// producer is this process, rescanned at every sample) into the `shim.`
    /// tier ([`ring_metrics`]).
    pub fn with_rings(mut self, dir: PathBuf) -> Sampler {
        self.rings = Some(RingWatch {
            dir,
            open: Vec::new(),
            trust: TrustPolicy::current_user(),
        });
        self.last.rings = self.ring_counters();
        self
    }

    fn ring_counters(&mut self) -> BTreeMap<PathBuf, (Direction, RingCounters)> {
        let pid = self.pid;
        let Some(w) = self.rings.as_mut() else {
            return BTreeMap::new();
        };
        if let Ok(rd) = std::fs::read_dir(&w.dir) {
            for e in rd.flatten() {
                let p = e.path();
                if !p.to_string_lossy().ends_with(RING_SUFFIX)
                    || w.open.iter().any(|o| o.path() == p)
                {
                    continue;
                }
                // A ring being created or of another process is skipped; a
                // ring of ours that is not yet valid is retried next time.
                if let Ok(o) = Observer::open(&p, &w.trust) {
                    if o.identity().pid == pid {
                        w.open.push(o);
                    }
                }
            }
        }
        w.open
            .iter()
            .filter_map(|o| {
                let c = o.counters().ok()?;
                Some((o.path().to_path_buf(), (o.identity().direction, c)))
            })
            .collect()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    fn open_groups(&mut self) -> Result<()> {
        let tids = procfs::threads(self.pid)?;
        self.sw.retain(|t, _| tids.contains(t));
        self.hw.retain(|t, _| tids.contains(t));
        for tid in tids {
            if self.sw_absent.is_none() && !self.sw.contains_key(&tid) {
                match Group::open(perf::SOFTWARE, tid as i32) {
                    Ok(g) => {
                        self.sw.insert(tid, g);
                    }
                    Err(f) if f.errno == Some(libc::ESRCH) => {}
                    Err(f) => self.sw_absent = Some(f.reason),
                }
            }
            if self.hw_absent.is_none() && !self.hw.contains_key(&tid) {
                match Group::open(perf::HARDWARE, tid as i32) {
                    Ok(g) => {
                        self.hw.insert(tid, g);
                    }
                    Err(f) if f.errno == Some(libc::ESRCH) => {}
                    Err(f) => self.hw_absent = Some(f.reason),
                }
            }
        }
        Ok(())
    }

    fn snap(&mut self) -> Result<Snap> {
        self.open_groups()?;
        let read_all = |m: &mut BTreeMap<u32, Group>| {
            m.iter_mut()
                .filter_map(|(t, g)| Some((*t, g.read().ok()?.counts)))
                .collect::<BTreeMap<_, _>>()
        };
        let sw = read_all(&mut self.sw);
        let hw = read_all(&mut self.hw);
        let proc = procfs::snapshot(self.pid)?;
        let rings = self.ring_counters();
        Ok(Snap {
            at: Instant::now(),
            mono_ns: crate::clock::mono_ns(),
            proc,
            sw,
            hw,
            cg: self.cg.as_ref().map(host::cgroup_snapshot),
            psi: host::pressure(),
            stat: host::proc_stat_cpu(),
            mem_avail: host::mem_available(),
            shim: self
                .shim_path
                .as_ref()
                .and_then(|p| standin::read_counters(p).ok()),
            rings,
        })
    }

    /// Take a sample: the row for the interval since the previous one.
    pub fn sample(&mut self) -> Result<Row> {
        let now = self.snap()?;
        let prev = std::mem::replace(&mut self.last, now);
        let now = &self.last;
        let dt = now.at.duration_since(prev.at).as_secs_f64();
        if dt <= 0.0 {
            return Err(NfmonError::Data("sampling interval of zero length".into()));
        }
        let t = now.at.duration_since(self.start).as_secs_f64();
        let mut row = Row::new(self.name.clone(), t, Some(dt));
        row.mono_ns = Some(now.mono_ns);
        let rate = |a: Option<f64>, b: Option<f64>| delta(a, b).map(|d| d / dt);

        // perf tiers: sum per-thread deltas over threads present in both.
        let mut perf_rows = |prefix: &str,
                             evs: &[perf::EventSpec],
                             a: &BTreeMap<u32, Vec<Option<f64>>>,
                             b: &BTreeMap<u32, Vec<Option<f64>>>,
                             absent: bool| {
            for (i, ev) in evs.iter().enumerate() {
                let mut sum: Option<f64> = None;
                if !absent {
                    for (tid, vb) in b {
                        if let Some(va) = a.get(tid) {
                            if let Some(d) = delta(va[i], vb[i]) {
                                sum = Some(sum.unwrap_or(0.0) + d);
                            }
                        }
                    }
                }
                let v = sum.map(|s| {
                    if ev.name.ends_with("-clock") {
                        s / 1e9 / dt // ns → CPUs
                    } else {
                        s / dt
                    }
                });
                row.set(format!("{prefix}.{}", ev.name), v);
            }
        };
        perf_rows(
            "sw",
            perf::SOFTWARE,
            &prev.sw,
            &now.sw,
            self.sw_absent.is_some(),
        );
        perf_rows(
            "hw",
            perf::HARDWARE,
            &prev.hw,
            &now.hw,
            self.hw_absent.is_some(),
        );

        let (p, q) = (&prev.proc, &now.proc);
        // Per-thread deltas over threads alive at both ends, so a thread
        // exiting mid-run does not make the process's sums go backwards.
        let td = p.thread_delta(q);
        let r = |i: usize| td[i].map(|v| v / dt);
        row.set("proc.cpu_user", r(0));
        row.set("proc.cpu_system", r(1));
        row.set("proc.run_share", r(4).map(|v| v / 1e9));
        row.set("proc.wait_share", r(5).map(|v| v / 1e9));
        row.set("proc.timeslices", r(6));
        row.set("proc.minflt", r(2));
        row.set("proc.majflt", r(3));
        row.set("proc.vol_cs", r(7));
        row.set("proc.nonvol_cs", r(8));
        row.set("proc.rss_bytes", q.rss_bytes);
        row.set("proc.threads", Some(q.threads as f64));
        row.set("proc.running_threads", Some(q.running as f64));
        let io_names = [
            "rchar",
            "wchar",
            "syscr",
            "syscw",
            "read_bytes",
            "write_bytes",
        ];
        for (i, n) in io_names.iter().enumerate() {
            row.set(
                format!("proc.{n}"),
                rate(p.io.map(|x| x[i]), q.io.map(|x| x[i])),
            );
        }

        let (cp, cq) = (prev.cg.unwrap_or_default(), now.cg.unwrap_or_default());
        row.set("cg.cpu_usage", rate(cp.cpu_ns, cq.cpu_ns).map(|v| v / 1e9));
        row.set(
            "cg.throttled_share",
            rate(cp.throttled_ns, cq.throttled_ns).map(|v| v / 1e9),
        );
        row.set("cg.memory_bytes", cq.memory_bytes);
        row.set("cg.io_read_bps", rate(cp.io_read, cq.io_read));
        row.set("cg.io_write_bps", rate(cp.io_write, cq.io_write));

        let psi = |a: Option<(f64, Option<f64>)>, b: Option<(f64, Option<f64>)>| {
            (
                rate(a.map(|x| x.0), b.map(|x| x.0)).map(|v| v / 1e6),
                rate(a.and_then(|x| x.1), b.and_then(|x| x.1)).map(|v| v / 1e6),
            )
        };
        let (cs, _) = psi(prev.psi.cpu, now.psi.cpu);
        let (ms, mf) = psi(prev.psi.memory, now.psi.memory);
        let (is, iff) = psi(prev.psi.io, now.psi.io);
        row.set("host.psi_cpu_some", cs);
        row.set("host.psi_memory_some", ms);
        row.set("host.psi_memory_full", mf);
        row.set("host.psi_io_some", is);
        row.set("host.psi_io_full", iff);
        let share = |i: usize| -> Option<f64> {
            let (a, b) = (prev.stat?, now.stat?);
            let tot = b[5] - a[5];
            (tot > 0.0).then(|| (b[i] - a[i]) / tot)
        };
        row.set("host.cpu_user", share(0));
        row.set("host.cpu_system", share(1));
        row.set("host.cpu_iowait", share(2));
        row.set("host.cpu_idle", share(3));
        row.set("host.cpu_steal", share(4));
        row.set("host.mem_available_bytes", now.mem_avail);
        if self.shim_path.is_some() {
            let d = |f: fn(&standin::Counters) -> u64| -> Option<f64> {
                let (a, b) = (prev.shim?, now.shim?);
                delta(Some(f(&a) as f64), Some(f(&b) as f64))
            };
            let polls = d(|c| c.polls);
            let empty = d(|c| c.empty);
            row.set("shim.polls", polls.map(|v| v / dt));
            row.set("shim.empty_polls", empty.map(|v| v / dt));
            row.set("shim.packets", d(|c| c.packets).map(|v| v / dt));
            row.set("shim.drops", d(|c| c.drops).map(|v| v / dt));
            row.set(
                "shim.busy_share",
                match (polls, empty) {
                    (Some(p), Some(e)) if p > 0.0 => Some(1.0 - e / p),
                    _ => None,
                },
            );
        }
        if self.rings.is_some() {
            // Rings present in both snapshots; a ring that appeared during
            // the interval counts from the next one.
            let pairs: Vec<(Direction, RingCounters, RingCounters)> = now
                .rings
                .iter()
                .filter_map(|(p, (dir, b))| Some((*dir, prev.rings.get(p)?.1, *b)))
                .collect();
            ring_metrics(&pairs, dt, &mut row);
        }
        Ok(row)
    }

    /// Sample `count` rows, one per `interval`, calling `each` after every row
    /// (return `false` from it to stop early).
    pub fn run(
        &mut self,
        interval: Duration,
        count: usize,
        mut each: impl FnMut(&Row) -> bool,
    ) -> Result<Vec<Row>> {
        let mut rows = Vec::with_capacity(count);
        let mut next = Instant::now() + interval;
        for _ in 0..count {
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
            next += interval;
            let r = self.sample()?;
            let go = each(&r);
            rows.push(r);
            if !go {
                break;
            }
        }
        Ok(rows)
    }

    /// The configuration in use.
    pub fn config(&self) -> SamplerConfig {
        self.cfg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(head: u64, seq: u64, polls: u64, empty: u64) -> RingCounters {
        RingCounters {
            head,
            tail: 0,
            next_seq: seq,
            lost_full: 0,
            lost_too_big: 0,
            polls,
            empty_polls: empty,
        }
    }

    #[test]
    fn ring_metrics_count_packet_slots_from_head_bytes() {
        // rx: 10 batches of 16 packets (32 + 32 bytes each); tx: 10 batches
        // of 6 packets (32 + align8(12) = 48 bytes each): 60% dropped.
        let pairs = [
            (
                Direction::Rx,
                counters(1000, 5, 100, 50),
                counters(1000 + 10 * 64, 15, 200, 140),
            ),
            (
                Direction::Tx,
                counters(0, 0, 0, 0),
                counters(10 * 48, 10, 0, 0),
            ),
        ];
        let mut row = Row::new("x", 1.0, Some(0.5));
        ring_metrics(&pairs, 0.5, &mut row);
        assert_eq!(row.get("shim.rx_batches"), Some(20.0));
        assert_eq!(row.get("shim.rx_pkt_slots"), Some(320.0));
        // 6 packets occupy 8 slots (rounded up to a multiple of 4).
        assert_eq!(row.get("shim.tx_pkt_slots"), Some(160.0));
        assert_eq!(row.get("shim.tx_per_rx_pkt"), Some(0.5));
        assert_eq!(row.get("shim.tx_per_rx"), Some(1.0));
        assert!((row.get("shim.busy_share").unwrap() - 0.1).abs() < 1e-12);
        // No ring pair: every shim metric present and missing (never 0).
        let mut empty = Row::new("x", 1.0, Some(0.5));
        ring_metrics(&[], 0.5, &mut empty);
        assert!(empty.values.contains_key("shim.rx_batches"));
        assert_eq!(empty.get("shim.rx_batches"), None);
        assert_eq!(empty.get("shim.busy_share"), None);
    }

    #[test]
    fn samples_self_with_stable_columns() {
        // The spinner exists at both ends of the first interval (per-thread
        // deltas count threads alive at both ends).
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let st = stop.clone();
        let spin = std::thread::spawn(move || {
            let mut x = 1u64;
            while !st.load(std::sync::atomic::Ordering::Relaxed) {
                x = x.wrapping_mul(3).wrapping_add(1);
            }
            x
        });
        std::thread::sleep(Duration::from_millis(20));
        let mut s = Sampler::new(std::process::id(), "self", SamplerConfig::default()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let r1 = s.sample().unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        std::hint::black_box(spin.join().unwrap());
        let r2 = s.sample().unwrap();
        assert_eq!(
            r1.values.keys().collect::<Vec<_>>(),
            r2.values.keys().collect::<Vec<_>>()
        );
        assert!(r1.interval_s.unwrap() > 0.15);
        // CLOCK_MONOTONIC end times, one interval apart.
        let (m1, m2) = (r1.mono_ns.unwrap(), r2.mono_ns.unwrap());
        let gap = (m2 - m1) as f64 / 1e9;
        assert!((gap - r2.interval_s.unwrap()).abs() < 0.005, "{gap}");
        assert!(m2 <= crate::clock::mono_ns());
        // The spinning thread burnt CPU during the first interval.
        let cpu = r1.get("proc.run_share").or(r1.get("proc.cpu_user"));
        assert!(cpu.unwrap_or(0.0) > 0.05, "{:?}", r1.values);
        if s.hw_absent.is_some() {
            assert_eq!(
                r1.get("hw.cycles"),
                None,
                "absent tier must be missing, not 0"
            );
            assert!(r1.values.contains_key("hw.cycles"));
        }
    }
}
