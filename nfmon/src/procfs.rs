//! Per-process and per-thread `/proc` readers: `task/*/stat`,
//! `task/*/schedstat`, `task/*/status`, and `io`. Cumulative values are
//! returned as-is; [`crate::sampler`] differences them into rates.
//!
//! Parsers take the text and the path (for errors) so they are testable on
//! fixed strings; readers wrap them with the file system.

use crate::error::{NfmonError, Result};
use std::path::{Path, PathBuf};

/// Clock ticks per second of `/proc/*/stat` times (sysconf(_SC_CLK_TCK)).
/// Linux fixes USER_HZ at 100 for every architecture nfmon builds for.
pub const CLK_TCK: f64 = 100.0;

/// Fields of `/proc/PID/task/TID/stat` nfmon uses.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TaskStat {
    /// Scheduling state letter (R, S, D, …).
    pub state: char,
    /// Minor faults.
    pub minflt: u64,
    /// Major faults.
    pub majflt: u64,
    /// User time, ticks.
    pub utime: u64,
    /// System time, ticks.
    pub stime: u64,
    /// Last CPU the task ran on.
    pub processor: i64,
}

/// Parse a `stat` line. The command name may contain spaces and parentheses,
/// so fields are counted after the **last** `)`.
pub fn parse_stat(text: &str, path: &Path) -> Result<TaskStat> {
    let close = text
        .rfind(')')
        .ok_or_else(|| NfmonError::parse(path, 1, 0, "pid (comm) state …", text))?;
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let field = |i: usize, what: &str| -> Result<u64> {
        rest.get(i)
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| {
                NfmonError::parse(path, 1, close + 1, format!("numeric field {what}"), text)
            })
    };
    Ok(TaskStat {
        state: rest
            .first()
            .and_then(|s| s.chars().next())
            .ok_or_else(|| NfmonError::parse(path, 1, close + 1, "a state letter", text))?,
        minflt: field(7, "minflt (10)")?,
        majflt: field(9, "majflt (12)")?,
        utime: field(11, "utime (14)")?,
        stime: field(12, "stime (15)")?,
        processor: rest.get(36).and_then(|s| s.parse().ok()).unwrap_or(-1),
    })
}

/// `schedstat`: (ns on CPU, ns waiting on a run queue, timeslices).
pub fn parse_schedstat(text: &str, path: &Path) -> Result<(u64, u64, u64)> {
    let v: Vec<u64> = text
        .split_whitespace()
        .map(|s| s.parse::<u64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| NfmonError::parse(path, 1, 0, "three integers", text))?;
    match v.as_slice() {
        [a, b, c, ..] => Ok((*a, *b, *c)),
        _ => Err(NfmonError::parse(path, 1, 0, "three integers", text)),
    }
}

/// A `key: value` file (status, io) → the integer value of `key`, with an
/// optional ` kB` suffix turned into bytes.
pub fn kv_value(text: &str, key: &str) -> Option<u64> {
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(key) {
            if let Some(v) = rest.strip_prefix(':') {
                let v = v.trim();
                if let Some(kb) = v.strip_suffix(" kB") {
                    return kb.trim().parse::<u64>().ok().map(|x| x * 1024);
                }
                return v.parse().ok();
            }
        }
    }
    None
}

/// Cumulative per-process figures (summed over threads) at one instant.
/// A field is `None` when its file could not be read (e.g. `io` without
/// ptrace permission, `schedstat` without CONFIG_SCHEDSTATS).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProcSnapshot {
    /// Threads seen.
    pub threads: usize,
    /// Σ utime, seconds.
    pub utime_s: Option<f64>,
    /// Σ stime, seconds.
    pub stime_s: Option<f64>,
    /// Σ minor faults.
    pub minflt: Option<f64>,
    /// Σ major faults.
    pub majflt: Option<f64>,
    /// Σ ns on CPU (schedstat).
    pub run_ns: Option<f64>,
    /// Σ ns waiting for a CPU (schedstat).
    pub wait_ns: Option<f64>,
    /// Σ timeslices.
    pub slices: Option<f64>,
    /// Σ voluntary context switches.
    pub vol_cs: Option<f64>,
    /// Σ involuntary context switches.
    pub nonvol_cs: Option<f64>,
    /// Resident set, bytes (gauge).
    pub rss_bytes: Option<f64>,
    /// `io`: rchar, wchar, syscr, syscw, read_bytes, write_bytes.
    pub io: Option<[f64; 6]>,
    /// Threads in state R.
    pub running: usize,
    /// Per thread id, the cumulative counters in [`TASK_COUNTERS`] order.
    pub tasks: std::collections::BTreeMap<u32, [Option<f64>; 9]>,
}

/// The per-thread cumulative counters of [`ProcSnapshot::tasks`], in order
/// (times in seconds / ns as in the summed fields).
pub const TASK_COUNTERS: [&str; 9] = [
    "utime_s",
    "stime_s",
    "minflt",
    "majflt",
    "run_ns",
    "wait_ns",
    "slices",
    "vol_cs",
    "nonvol_cs",
];

impl ProcSnapshot {
    /// Per counter, the sum over threads present in both snapshots of
    /// `later − self`. Threads that started or exited in between do not
    /// count (a sum over live threads would drop when a thread exits);
    /// `None` when no common thread had the counter.
    pub fn thread_delta(&self, later: &ProcSnapshot) -> [Option<f64>; 9] {
        let mut out = [None; 9];
        for (tid, b) in &later.tasks {
            let Some(a) = self.tasks.get(tid) else {
                continue;
            };
            for i in 0..9 {
                if let (Some(x), Some(y)) = (a[i], b[i]) {
                    if y >= x {
                        out[i] = Some(out[i].unwrap_or(0.0) + (y - x));
                    }
                }
            }
        }
        out
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| NfmonError::io(path, e))
}

fn add(acc: &mut Option<f64>, v: Option<f64>, first: bool) {
    *acc = match (first, *acc, v) {
        (true, _, v) => v,
        (false, Some(a), Some(b)) => Some(a + b),
        _ => None,
    };
}

/// The thread ids of a process.
pub fn threads(pid: u32) -> Result<Vec<u32>> {
    let dir = PathBuf::from(format!("/proc/{pid}/task"));
    let mut v: Vec<u32> = std::fs::read_dir(&dir)
        .map_err(|e| NfmonError::io(&dir, e))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    Ok(v)
}

/// Read a process snapshot. Errors only if the process is gone; a thread
/// that exits mid-read is skipped.
pub fn snapshot(pid: u32) -> Result<ProcSnapshot> {
    let tids = threads(pid)?;
    let mut s = ProcSnapshot::default();
    let mut first = true;
    for tid in tids {
        let base = PathBuf::from(format!("/proc/{pid}/task/{tid}"));
        let stat_path = base.join("stat");
        let Ok(text) = std::fs::read_to_string(&stat_path) else {
            continue; // thread exited
        };
        let st = parse_stat(&text, &stat_path)?;
        let sched = std::fs::read_to_string(base.join("schedstat"))
            .ok()
            .and_then(|t| parse_schedstat(&t, &base.join("schedstat")).ok());
        let status = std::fs::read_to_string(base.join("status")).ok();
        let kv = |k: &str| {
            status
                .as_deref()
                .and_then(|t| kv_value(t, k))
                .map(|v| v as f64)
        };
        add(&mut s.utime_s, Some(st.utime as f64 / CLK_TCK), first);
        add(&mut s.stime_s, Some(st.stime as f64 / CLK_TCK), first);
        add(&mut s.minflt, Some(st.minflt as f64), first);
        add(&mut s.majflt, Some(st.majflt as f64), first);
        add(&mut s.run_ns, sched.map(|x| x.0 as f64), first);
        add(&mut s.wait_ns, sched.map(|x| x.1 as f64), first);
        add(&mut s.slices, sched.map(|x| x.2 as f64), first);
        add(&mut s.vol_cs, kv("voluntary_ctxt_switches"), first);
        add(&mut s.nonvol_cs, kv("nonvoluntary_ctxt_switches"), first);
        s.tasks.insert(
            tid,
            [
                Some(st.utime as f64 / CLK_TCK),
                Some(st.stime as f64 / CLK_TCK),
                Some(st.minflt as f64),
                Some(st.majflt as f64),
                sched.map(|x| x.0 as f64),
                sched.map(|x| x.1 as f64),
                sched.map(|x| x.2 as f64),
                kv("voluntary_ctxt_switches"),
                kv("nonvoluntary_ctxt_switches"),
            ],
        );
        if st.state == 'R' {
            s.running += 1;
        }
        s.threads += 1;
        first = false;
    }
    if s.threads == 0 {
        return Err(NfmonError::Data(format!(
            "process {pid} has no readable thread"
        )));
    }
    let status_path = PathBuf::from(format!("/proc/{pid}/status"));
    s.rss_bytes = read(&status_path)
        .ok()
        .and_then(|t| kv_value(&t, "VmRSS"))
        .map(|v| v as f64);
    let io_path = PathBuf::from(format!("/proc/{pid}/io"));
    s.io = read(&io_path).ok().and_then(|t| {
        let keys = [
            "rchar",
            "wchar",
            "syscr",
            "syscw",
            "read_bytes",
            "write_bytes",
        ];
        let mut out = [0.0; 6];
        for (o, k) in out.iter_mut().zip(keys) {
            *o = kv_value(&t, k)? as f64;
        }
        Some(out)
    });
    Ok(s)
}

/// The command name of a process (`/proc/PID/comm`).
pub fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// The parent pid from a `stat` line (field 4, counted after the last `)`).
pub fn parse_ppid(text: &str) -> Option<u32> {
    let close = text.rfind(')')?;
    text[close + 1..].split_whitespace().nth(1)?.parse().ok()
}

/// The processes whose parent is `pid` (a scan of `/proc`; processes that
/// exit during the scan are skipped).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut v: Vec<u32> = rd
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|c| {
            std::fs::read_to_string(format!("/proc/{c}/stat"))
                .ok()
                .and_then(|t| parse_ppid(&t))
                == Some(pid)
        })
        .collect();
    v.sort_unstable();
    v
}

/// One variable of a process's initial environment (`/proc/PID/environ`,
/// readable for processes of the same user). `None` also for a process
/// still inside `execve` (its environment reads empty for a moment): ask
/// again later.
pub fn environ_var(pid: u32, key: &str) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    raw.split(|&b| b == 0).find_map(|kv| {
        let kv = std::str::from_utf8(kv).ok()?;
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_and_environment_of_a_spawned_process() {
        let mut c = std::process::Command::new("sleep")
            .arg("5")
            .env("NFMON_TEST_VAR", "fw 1=x")
            .spawn()
            .unwrap();
        let me = std::process::id();
        let kids = children(me);
        let ok = kids.contains(&c.id());
        // Right after spawn the kernel may still be setting up the new
        // image: environ reads empty for a moment (callers retry).
        let t = std::time::Instant::now();
        let mut var = None;
        while var.is_none() && t.elapsed() < std::time::Duration::from_secs(3) {
            var = environ_var(c.id(), "NFMON_TEST_VAR");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let _ = c.kill();
        let _ = c.wait();
        assert!(ok, "{kids:?} lacks {}", c.id());
        assert_eq!(var.as_deref(), Some("fw 1=x"));
        assert_eq!(environ_var(me, "NFMON_NO_SUCH_VAR_42"), None);
        assert_eq!(parse_ppid("12 (a) b) S 77 1 1"), Some(77));
    }

    #[test]
    fn stat_with_spaces_and_parens_in_comm() {
        let t = "4242 (my (weird) nf) R 1 2 3 4 5 6 100 7 3 8 250 50 0 0 20 0 4 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 3 0 0";
        let s = parse_stat(t, Path::new("stat")).unwrap();
        assert_eq!(s.state, 'R');
        assert_eq!((s.minflt, s.majflt, s.utime, s.stime), (100, 3, 250, 50));
        assert_eq!(s.processor, 3);
        let e = parse_stat("4242 (x) R 1 2", Path::new("/proc/1/stat")).unwrap_err();
        assert!(e.to_string().contains("/proc/1/stat"), "{e}");
    }

    #[test]
    fn schedstat_and_kv() {
        assert_eq!(
            parse_schedstat("10 20 3\n", Path::new("s")).unwrap(),
            (10, 20, 3)
        );
        assert!(parse_schedstat("10 x", Path::new("s")).is_err());
        let st = "VmRSS:\t    1588 kB\nvoluntary_ctxt_switches:\t7\n";
        assert_eq!(kv_value(st, "VmRSS"), Some(1588 * 1024));
        assert_eq!(kv_value(st, "voluntary_ctxt_switches"), Some(7));
        assert_eq!(kv_value(st, "nonvoluntary_ctxt_switches"), None);
    }

    #[test]
    fn snapshot_of_self() {
        let s = snapshot(std::process::id()).unwrap();
        assert!(s.threads >= 1);
        assert!(s.rss_bytes.unwrap() > 0.0);
        assert!(s.utime_s.is_some());
    }
}
