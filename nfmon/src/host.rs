//! Host-wide and cgroup readers: pressure-stall information
//! (`/proc/pressure/{cpu,memory,io}`), `/proc/stat` CPU shares,
//! `/proc/meminfo`, and the process's cgroup (v2 unified, or v1 controllers
//! `cpuacct`, `cpu`, `memory`, `blkio`). All values are cumulative or gauges;
//! missing files give `None`, never 0.

use std::path::{Path, PathBuf};

/// Cumulative PSI totals (µs): (some, full) for cpu, memory, io.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Pressure {
    /// cpu some/full totals.
    pub cpu: Option<(f64, Option<f64>)>,
    /// memory some/full totals.
    pub memory: Option<(f64, Option<f64>)>,
    /// io some/full totals.
    pub io: Option<(f64, Option<f64>)>,
}

/// Parse one PSI file: `some avg10=… total=N` / `full … total=N`.
pub fn parse_psi(text: &str) -> Option<(f64, Option<f64>)> {
    let total = |prefix: &str| -> Option<f64> {
        let line = text.lines().find(|l| l.starts_with(prefix))?;
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix("total="))?
            .parse()
            .ok()
    };
    Some((total("some")?, total("full")))
}

/// Read `/proc/pressure/*`.
pub fn pressure() -> Pressure {
    let r = |n: &str| {
        std::fs::read_to_string(format!("/proc/pressure/{n}"))
            .ok()
            .and_then(|t| parse_psi(&t))
    };
    Pressure {
        cpu: r("cpu"),
        memory: r("memory"),
        io: r("io"),
    }
}

/// `/proc/stat` aggregate CPU times in ticks: (user+nice, system+irq+softirq,
/// iowait, idle, steal, total).
pub fn proc_stat_cpu() -> Option<[f64; 6]> {
    let t = std::fs::read_to_string("/proc/stat").ok()?;
    parse_proc_stat_cpu(&t)
}

/// Parse the `cpu ` line of `/proc/stat`.
pub fn parse_proc_stat_cpu(t: &str) -> Option<[f64; 6]> {
    let line = t.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|s| s.parse().ok())
        .collect();
    if v.len() < 8 {
        return None;
    }
    let total: f64 = v.iter().take(8).sum();
    Some([v[0] + v[1], v[2] + v[5] + v[6], v[4], v[3], v[7], total])
}

/// `MemAvailable` in bytes.
pub fn mem_available() -> Option<f64> {
    let t = std::fs::read_to_string("/proc/meminfo").ok()?;
    crate::procfs::kv_value(&t, "MemAvailable").map(|v| v as f64)
}

/// Which cgroup hierarchy a process's accounting comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupPaths {
    /// cgroup v2: the unified directory.
    V2(PathBuf),
    /// cgroup v1: per-controller directories (any may be absent).
    V1 {
        /// cpuacct directory.
        cpuacct: Option<PathBuf>,
        /// cpu directory (throttling).
        cpu: Option<PathBuf>,
        /// memory directory.
        memory: Option<PathBuf>,
        /// blkio directory.
        blkio: Option<PathBuf>,
    },
}

/// Locate a process's cgroup directories from `/proc/PID/cgroup`. v1
/// controllers are preferred when mounted (hybrid hosts keep accounting
/// there); otherwise the v2 unified path.
pub fn cgroup_paths(pid: u32) -> Option<CgroupPaths> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    cgroup_paths_from(&text, Path::new("/sys/fs/cgroup"))
}

/// [`cgroup_paths`] on given `/proc/PID/cgroup` text and cgroup mount root.
pub fn cgroup_paths_from(text: &str, root: &Path) -> Option<CgroupPaths> {
    let mut v1: Vec<(String, String)> = Vec::new();
    let mut v2: Option<String> = None;
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (_id, ctrls, path) = (it.next()?, it.next()?, it.next()?);
        if ctrls.is_empty() {
            v2 = Some(path.to_string());
        } else {
            for c in ctrls.split(',') {
                v1.push((c.to_string(), path.to_string()));
            }
        }
    }
    let dir = |ctrl: &str| -> Option<PathBuf> {
        let (_, p) = v1.iter().find(|(c, _)| c == ctrl)?;
        // Controllers may be co-mounted (cpu,cpuacct).
        for mount in [ctrl.to_string(), "cpu,cpuacct".into(), "cpuacct,cpu".into()] {
            let d = root.join(mount).join(p.trim_start_matches('/'));
            if d.is_dir() {
                return Some(d);
            }
        }
        None
    };
    let (cpuacct, cpu, memory, blkio) = (dir("cpuacct"), dir("cpu"), dir("memory"), dir("blkio"));
    if cpuacct.is_some() || memory.is_some() || blkio.is_some() {
        return Some(CgroupPaths::V1 {
            cpuacct,
            cpu,
            memory,
            blkio,
        });
    }
    let p = v2?;
    for base in [root.to_path_buf(), root.join("unified")] {
        let d = base.join(p.trim_start_matches('/'));
        if d.join("cpu.stat").is_file() || d.join("memory.current").is_file() {
            return Some(CgroupPaths::V2(d));
        }
    }
    None
}

/// Cumulative cgroup figures: CPU ns, throttled ns, memory bytes (gauge),
/// I/O read and write bytes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CgroupSnapshot {
    /// CPU time, ns.
    pub cpu_ns: Option<f64>,
    /// Throttled time, ns.
    pub throttled_ns: Option<f64>,
    /// Memory in use, bytes.
    pub memory_bytes: Option<f64>,
    /// Bytes read from block devices.
    pub io_read: Option<f64>,
    /// Bytes written to block devices.
    pub io_write: Option<f64>,
}

fn read_num(p: &Path) -> Option<f64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn kv_space(text: &str, key: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next()? == key).then(|| it.next()?.parse().ok())?
    })
}

/// Read a cgroup snapshot.
pub fn cgroup_snapshot(paths: &CgroupPaths) -> CgroupSnapshot {
    match paths {
        CgroupPaths::V2(d) => {
            let cpu = std::fs::read_to_string(d.join("cpu.stat")).ok();
            let io = std::fs::read_to_string(d.join("io.stat")).ok();
            let io_sum = |key: &str| -> Option<f64> {
                let io = io.as_ref()?;
                Some(
                    io.split_whitespace()
                        .filter_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                        .filter_map(|v| v.parse::<f64>().ok())
                        .sum(),
                )
            };
            CgroupSnapshot {
                cpu_ns: cpu
                    .as_deref()
                    .and_then(|t| kv_space(t, "usage_usec"))
                    .map(|v| v * 1e3),
                throttled_ns: cpu
                    .as_deref()
                    .and_then(|t| kv_space(t, "throttled_usec"))
                    .map(|v| v * 1e3),
                memory_bytes: read_num(&d.join("memory.current")),
                io_read: io_sum("rbytes"),
                io_write: io_sum("wbytes"),
            }
        }
        CgroupPaths::V1 {
            cpuacct,
            cpu,
            memory,
            blkio,
        } => {
            let blk = blkio.as_ref().and_then(|d| {
                std::fs::read_to_string(d.join("blkio.throttle.io_service_bytes")).ok()
            });
            let blk_sum = |op: &str| -> Option<f64> {
                let t = blk.as_ref()?;
                Some(
                    t.lines()
                        .filter_map(|l| {
                            let f: Vec<&str> = l.split_whitespace().collect();
                            (f.len() == 3 && f[1] == op).then(|| f[2].parse::<f64>().ok())?
                        })
                        .sum(),
                )
            };
            CgroupSnapshot {
                cpu_ns: cpuacct
                    .as_ref()
                    .and_then(|d| read_num(&d.join("cpuacct.usage"))),
                throttled_ns: cpu.as_ref().and_then(|d| {
                    let t = std::fs::read_to_string(d.join("cpu.stat")).ok()?;
                    kv_space(&t, "throttled_time")
                }),
                memory_bytes: memory
                    .as_ref()
                    .and_then(|d| read_num(&d.join("memory.usage_in_bytes"))),
                io_read: blk_sum("Read"),
                io_write: blk_sum("Write"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_and_proc_stat() {
        let t = "some avg10=1.00 avg60=0.5 avg300=0.1 total=1234\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=99\n";
        assert_eq!(parse_psi(t), Some((1234.0, Some(99.0))));
        assert_eq!(parse_psi("some avg10=1 total=5\n"), Some((5.0, None)));
        assert_eq!(parse_psi("garbage"), None);
        let s = "cpu  10 1 5 100 3 1 1 2 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\n";
        assert_eq!(
            parse_proc_stat_cpu(s),
            Some([11.0, 7.0, 3.0, 100.0, 2.0, 123.0])
        );
    }

    #[test]
    fn cgroup_v1_and_v2_layouts() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("memory/app")).unwrap();
        std::fs::write(
            root.path().join("memory/app/memory.usage_in_bytes"),
            "4096\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.path().join("cpu,cpuacct/app")).unwrap();
        std::fs::write(root.path().join("cpu,cpuacct/app/cpuacct.usage"), "5000\n").unwrap();
        let text = "4:memory:/app\n2:cpu,cpuacct:/app\n0::/\n";
        let p = cgroup_paths_from(text, root.path()).unwrap();
        let s = cgroup_snapshot(&p);
        assert_eq!(s.memory_bytes, Some(4096.0));
        assert_eq!(s.cpu_ns, Some(5000.0));
        assert_eq!(s.io_read, None, "absent blkio is missing, not 0");

        let root2 = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root2.path().join("svc")).unwrap();
        std::fs::write(
            root2.path().join("svc/cpu.stat"),
            "usage_usec 7\nthrottled_usec 2\n",
        )
        .unwrap();
        std::fs::write(
            root2.path().join("svc/io.stat"),
            "8:0 rbytes=10 wbytes=20 rios=1\n8:16 rbytes=5 wbytes=0\n",
        )
        .unwrap();
        let p = cgroup_paths_from("0::/svc\n", root2.path()).unwrap();
        assert_eq!(p, CgroupPaths::V2(root2.path().join("svc")));
        let s = cgroup_snapshot(&p);
        assert_eq!((s.cpu_ns, s.throttled_ns), (Some(7000.0), Some(2000.0)));
        assert_eq!((s.io_read, s.io_write), (Some(15.0), Some(20.0)));
        assert_eq!(s.memory_bytes, None);
    }
}
