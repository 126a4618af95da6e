//! Periodic sampling of one process into schema [`Row`]s.
//!
//! [`Sampler::new`] opens what exists (software and, where a PMU exists,
//! hardware perf groups per thread; `/proc`; the process's cgroup; host PSI
//! and `/proc/stat`) and takes a first snapshot. Each [`Sampler::sample`]
//! takes another and emits the differences as per-second rates (gauges as
//! their current value). A tier that is absent yields its metric names with
//! `None` values, so every row of a run has the same columns.
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
    proc: ProcSnapshot,
    sw: BTreeMap<u32, Vec<Option<f64>>>,
    hw: BTreeMap<u32, Vec<Option<f64>>>,
    cg: Option<CgroupSnapshot>,
    psi: Pressure,
    stat: Option<[f64; 6]>,
    mem_avail: Option<f64>,
    shim: Option<standin::Counters>,
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
            last: Snap {
                at: Instant::now(),
                proc: ProcSnapshot::default(),
                sw: BTreeMap::new(),
                hw: BTreeMap::new(),
                cg: None,
                psi: Pressure::default(),
                stat: None,
                mem_avail: None,
                shim: None,
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
        Ok(Snap {
            at: Instant::now(),
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
        row.set("proc.cpu_user", rate(p.utime_s, q.utime_s));
        row.set("proc.cpu_system", rate(p.stime_s, q.stime_s));
        row.set("proc.run_share", rate(p.run_ns, q.run_ns).map(|v| v / 1e9));
        row.set(
            "proc.wait_share",
            rate(p.wait_ns, q.wait_ns).map(|v| v / 1e9),
        );
        row.set("proc.timeslices", rate(p.slices, q.slices));
        row.set("proc.minflt", rate(p.minflt, q.minflt));
        row.set("proc.majflt", rate(p.majflt, q.majflt));
        row.set("proc.vol_cs", rate(p.vol_cs, q.vol_cs));
        row.set("proc.nonvol_cs", rate(p.nonvol_cs, q.nonvol_cs));
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

    #[test]
    fn samples_self_with_stable_columns() {
        let mut s = Sampler::new(std::process::id(), "self", SamplerConfig::default()).unwrap();
        let spin = std::thread::spawn(|| {
            let t = Instant::now();
            let mut x = 1u64;
            while t.elapsed() < Duration::from_millis(150) {
                x = x.wrapping_mul(3).wrapping_add(1);
            }
            x
        });
        std::thread::sleep(Duration::from_millis(200));
        std::hint::black_box(spin.join().unwrap());
        let r1 = s.sample().unwrap();
        let r2 = s.sample().unwrap();
        assert_eq!(
            r1.values.keys().collect::<Vec<_>>(),
            r2.values.keys().collect::<Vec<_>>()
        );
        assert!(r1.interval_s.unwrap() > 0.15);
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
