//! Kernel and hardware event counting through `perf_event_open(2)`.
//!
//! This is the one module of nfmon that talks to the kernel through raw
//! system calls, so it alone opts out of `deny(unsafe_code)`; every `unsafe`
//! block carries a `// SAFETY:` line.
//!
//! Counters are opened per thread (`pid = tid`, `cpu = -1`) in **groups**: a
//! leader and members read together with one `read(2)` (`PERF_FORMAT_GROUP`
//! with enabled/running times), so the events of one group are always
//! scheduled together and their ratios are exact. Software events form one
//! group; hardware events another, which on machines without a PMU (most
//! VMs) fails to open with `ENOENT`/`EOPNOTSUPP` — reported by
//! [`open_error_reason`] in words, not as a silent zero.
//!
//! When the kernel multiplexed a group (running < enabled), counts are scaled
//! by enabled/running, as `perf stat` does; a group that never ran yields
//! missing values.
#![allow(unsafe_code)]

use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};

/// `perf_event_attr.type` values used here.
pub const PERF_TYPE_HARDWARE: u32 = 0;
/// Software events.
pub const PERF_TYPE_SOFTWARE: u32 = 1;
/// Hardware cache events.
pub const PERF_TYPE_HW_CACHE: u32 = 3;

const PERF_FORMAT_TOTAL_TIME_ENABLED: u64 = 1;
const PERF_FORMAT_TOTAL_TIME_RUNNING: u64 = 2;
const PERF_FORMAT_GROUP: u64 = 8;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;

/// `struct perf_event_attr`, ABI version 5 (112 bytes).
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
    config2: u64,
    branch_sample_type: u64,
    sample_regs_user: u64,
    sample_stack_user: u32,
    clockid: i32,
    sample_regs_intr: u64,
    aux_watermark: u32,
    sample_max_stack: u16,
    reserved_2: u16,
}
const _: () = assert!(std::mem::size_of::<PerfEventAttr>() == 112);

// flags bits
const FLAG_EXCLUDE_HV: u64 = 1 << 6;

/// One countable event: its perf name (as `perf stat` prints it), type and config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSpec {
    /// perf's name (`cycles`, `task-clock`).
    pub name: &'static str,
    /// `perf_event_attr.type`.
    pub type_: u32,
    /// `perf_event_attr.config`.
    pub config: u64,
}

/// The software events nfmon counts.
pub const SOFTWARE: &[EventSpec] = &[
    EventSpec {
        name: "task-clock",
        type_: PERF_TYPE_SOFTWARE,
        config: 1,
    },
    EventSpec {
        name: "context-switches",
        type_: PERF_TYPE_SOFTWARE,
        config: 3,
    },
    EventSpec {
        name: "cpu-migrations",
        type_: PERF_TYPE_SOFTWARE,
        config: 4,
    },
    EventSpec {
        name: "page-faults",
        type_: PERF_TYPE_SOFTWARE,
        config: 2,
    },
    EventSpec {
        name: "minor-faults",
        type_: PERF_TYPE_SOFTWARE,
        config: 5,
    },
    EventSpec {
        name: "major-faults",
        type_: PERF_TYPE_SOFTWARE,
        config: 6,
    },
];

/// The hardware events nfmon counts when a PMU exists (the generic events
/// the VPP dataset's estimators use most).
pub const HARDWARE: &[EventSpec] = &[
    EventSpec {
        name: "cycles",
        type_: PERF_TYPE_HARDWARE,
        config: 0,
    },
    EventSpec {
        name: "instructions",
        type_: PERF_TYPE_HARDWARE,
        config: 1,
    },
    EventSpec {
        name: "cache-references",
        type_: PERF_TYPE_HARDWARE,
        config: 2,
    },
    EventSpec {
        name: "cache-misses",
        type_: PERF_TYPE_HARDWARE,
        config: 3,
    },
    EventSpec {
        name: "branches",
        type_: PERF_TYPE_HARDWARE,
        config: 4,
    },
    EventSpec {
        name: "branch-misses",
        type_: PERF_TYPE_HARDWARE,
        config: 5,
    },
];

/// Explain an errno from `perf_event_open` in an operator's words.
pub fn open_error_reason(err: &std::io::Error, ev: &EventSpec) -> String {
    let hw = ev.type_ != PERF_TYPE_SOFTWARE;
    match err.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::EOPNOTSUPP) if hw => format!(
            "no hardware PMU exposed to this machine ({err}); typical of VMs — \
             `perf stat` shows <not supported> for {}",
            ev.name
        ),
        Some(libc::ENODEV) if hw => format!("no PMU for this CPU ({err})"),
        Some(libc::EACCES) | Some(libc::EPERM) => format!(
            "not permitted ({err}); check /proc/sys/kernel/perf_event_paranoid \
             or run with CAP_PERFMON"
        ),
        Some(libc::ENOSYS) => format!("kernel without perf events ({err})"),
        Some(libc::ESRCH) => format!("thread does not exist ({err})"),
        _ => format!("perf_event_open failed for {}: {err}", ev.name),
    }
}

fn open_one(ev: &EventSpec, tid: i32, group_fd: i32) -> std::io::Result<OwnedFd> {
    let attr = PerfEventAttr {
        type_: ev.type_,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config: ev.config,
        read_format: PERF_FORMAT_GROUP
            | PERF_FORMAT_TOTAL_TIME_ENABLED
            | PERF_FORMAT_TOTAL_TIME_RUNNING,
        // Enabled from open (not FLAG_DISABLED): counting starts at once and
        // members follow their leader.
        flags: FLAG_EXCLUDE_HV,
        ..Default::default()
    };
    // SAFETY: `attr` is a fully initialised perf_event_attr of the size we
    // declare in `attr.size`; the kernel only reads it during the call. The
    // other arguments are plain integers.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            tid as libc::pid_t,
            -1 as libc::c_int,
            group_fd as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the syscall returned a new, valid file descriptor that nothing
    // else owns; OwnedFd takes sole ownership and closes it on drop.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// An open group of counters on one thread.
pub struct Group {
    events: Vec<EventSpec>,
    leader: File,
    _members: Vec<OwnedFd>,
}

/// Error opening a group: which event failed and why, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenFailure {
    /// The event that failed.
    pub event: &'static str,
    /// The explanation.
    pub reason: String,
    /// The raw errno, if any.
    pub errno: Option<i32>,
}

impl Group {
    /// Open `events` as one group on thread `tid` (0 = the calling thread).
    pub fn open(events: &[EventSpec], tid: i32) -> std::result::Result<Group, OpenFailure> {
        let fail = |ev: &EventSpec, e: std::io::Error| OpenFailure {
            event: ev.name,
            reason: open_error_reason(&e, ev),
            errno: e.raw_os_error(),
        };
        let first = events.first().ok_or(OpenFailure {
            event: "",
            reason: "empty event group".into(),
            errno: None,
        })?;
        let leader_fd = open_one(first, tid, -1).map_err(|e| fail(first, e))?;
        let leader = File::from(leader_fd);
        let mut members = Vec::new();
        {
            use std::os::fd::AsRawFd;
            let lfd = leader.as_raw_fd();
            for ev in &events[1..] {
                members.push(open_one(ev, tid, lfd).map_err(|e| fail(ev, e))?);
            }
        }
        Ok(Group {
            events: events.to_vec(),
            leader,
            _members: members,
        })
    }

    /// The events of this group, in read order.
    pub fn events(&self) -> &[EventSpec] {
        &self.events
    }

    /// Read all counters: cumulative counts scaled by enabled/running time;
    /// `None` for every event if the group was enabled but never got a
    /// hardware slot (multiplexed out the whole time).
    pub fn read(&mut self) -> std::io::Result<GroupReading> {
        let n = self.events.len();
        let mut buf = vec![0u8; 8 * (3 + n)];
        let got = self.leader.read(&mut buf)?;
        if got < buf.len() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("perf group read: {got} of {} bytes", buf.len()),
            ));
        }
        let w = |i: usize| u64::from_ne_bytes(buf[8 * i..8 * i + 8].try_into().unwrap_or([0; 8]));
        let nr = w(0) as usize;
        let enabled = w(1);
        let running = w(2);
        let counts = (0..n.min(nr))
            .map(|i| {
                let raw = w(3 + i) as f64;
                if enabled == 0 {
                    // Not yet scheduled with the counter enabled (a task that
                    // has not run since open): nothing happened to count.
                    Some(raw)
                } else if running == 0 {
                    // Enabled but multiplexed out the whole time: unknown.
                    None
                } else if running < enabled {
                    Some(raw * enabled as f64 / running as f64)
                } else {
                    Some(raw)
                }
            })
            .collect();
        Ok(GroupReading {
            enabled_ns: enabled,
            running_ns: running,
            counts,
        })
    }
}

/// One cumulative reading of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupReading {
    /// Time the group was enabled, ns.
    pub enabled_ns: u64,
    /// Time it actually counted, ns.
    pub running_ns: u64,
    /// Scaled cumulative counts, in event order.
    pub counts: Vec<Option<f64>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_group_counts_on_self() {
        // Software events exist on any Linux with perf events; if the kernel
        // forbids them (paranoid, seccomp), say so instead of failing.
        let mut g = match Group::open(SOFTWARE, 0) {
            Ok(g) => g,
            Err(f) => {
                eprintln!(
                    "skipping: software perf events unavailable here: {}",
                    f.reason
                );
                return;
            }
        };
        let a = g.read().unwrap();
        let mut x = 0u64;
        for i in 0..3_000_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
        std::hint::black_box(x);
        let b = g.read().unwrap();
        let tc = |r: &GroupReading| r.counts[0].unwrap();
        assert!(tc(&b) > tc(&a), "task-clock must advance while we spin");
        assert!(b.enabled_ns >= a.enabled_ns);
    }

    #[test]
    fn hardware_failure_is_explained() {
        match Group::open(HARDWARE, 0) {
            Ok(mut g) => {
                let r = g.read().unwrap();
                assert_eq!(r.counts.len(), HARDWARE.len());
            }
            Err(f) => {
                assert!(!f.reason.is_empty());
                eprintln!("hardware tier absent: {}", f.reason);
            }
        }
    }
}
