//! Which feature tiers exist on this machine for a given process, and why
//! the others do not. Every check is a real attempt (a `perf_event_open`
//! call, a file read), not a guess from the kernel version.

use crate::host;
use crate::perf::{self, Group};
use crate::schema::Tier;
use serde::{Deserialize, Serialize};

/// The status of one tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierStatus {
    /// The tier.
    pub tier: Tier,
    /// Whether at least one metric of the tier can be collected.
    pub available: bool,
    /// What exists, or why not.
    pub detail: String,
    /// Per-source results (event or file → "ok" / reason).
    pub items: Vec<(String, String)>,
}

/// The probe of all tiers for one process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// Process probed.
    pub pid: u32,
    /// One entry per tier.
    pub tiers: Vec<TierStatus>,
}

fn perf_tier(tier: Tier, evs: &[perf::EventSpec], tid: i32) -> TierStatus {
    let mut items = Vec::new();
    let mut first_reason = None;
    for ev in evs {
        match Group::open(std::slice::from_ref(ev), tid) {
            Ok(_) => items.push((ev.name.to_string(), "ok".to_string())),
            Err(f) => {
                first_reason.get_or_insert(f.reason.clone());
                items.push((ev.name.to_string(), f.reason));
            }
        }
    }
    let ok = items.iter().filter(|(_, r)| r == "ok").count();
    let detail = if ok == evs.len() {
        format!("all {ok} events open (per-thread groups)")
    } else if ok > 0 {
        format!(
            "{ok} of {} events open; others: {}",
            evs.len(),
            first_reason.unwrap_or_default()
        )
    } else {
        first_reason.unwrap_or_else(|| "no events".into())
    };
    TierStatus {
        tier,
        available: ok > 0,
        detail,
        items,
    }
}

fn file_item(path: &str) -> (String, String) {
    match std::fs::read_to_string(path) {
        Ok(_) => (path.to_string(), "ok".into()),
        Err(e) => (path.to_string(), e.to_string()),
    }
}

/// Probe every tier for `pid` (perf checks open counters on its main thread).
pub fn probe(pid: u32) -> ProbeReport {
    let mut tiers = vec![
        perf_tier(Tier::Hardware, perf::HARDWARE, pid as i32),
        perf_tier(Tier::Software, perf::SOFTWARE, pid as i32),
    ];
    let proc_items: Vec<(String, String)> = ["stat", "schedstat", "status", "io"]
        .iter()
        .map(|f| {
            let p = if *f == "io" {
                format!("/proc/{pid}/io")
            } else {
                format!("/proc/{pid}/task/{pid}/{f}")
            };
            file_item(&p)
        })
        .collect();
    let ok = proc_items.iter().filter(|(_, r)| r == "ok").count();
    tiers.push(TierStatus {
        tier: Tier::Process,
        available: ok > 0,
        detail: format!(
            "{ok} of {} per-thread /proc files readable",
            proc_items.len()
        ),
        items: proc_items,
    });
    let (cg_ok, cg_detail, cg_items) = match host::cgroup_paths(pid) {
        None => (
            false,
            "no cgroup accounting directory found for the process".to_string(),
            vec![],
        ),
        Some(p) => {
            let s = host::cgroup_snapshot(&p);
            let items = vec![
                (
                    "cpu".to_string(),
                    if s.cpu_ns.is_some() {
                        "ok".into()
                    } else {
                        "missing".into()
                    },
                ),
                (
                    "memory".to_string(),
                    if s.memory_bytes.is_some() {
                        "ok".into()
                    } else {
                        "missing".into()
                    },
                ),
                (
                    "io".to_string(),
                    if s.io_read.is_some() {
                        "ok".into()
                    } else {
                        "missing".into()
                    },
                ),
            ];
            let what = match &p {
                host::CgroupPaths::V2(d) => format!("cgroup v2 at {}", d.display()),
                host::CgroupPaths::V1 {
                    cpuacct, memory, ..
                } => format!(
                    "cgroup v1 (cpuacct {}, memory {})",
                    cpuacct
                        .as_ref()
                        .map_or("absent".into(), |d| d.display().to_string()),
                    memory
                        .as_ref()
                        .map_or("absent".into(), |d| d.display().to_string())
                ),
            };
            (items.iter().any(|(_, r)| r == "ok"), what, items)
        }
    };
    tiers.push(TierStatus {
        tier: Tier::Cgroup,
        available: cg_ok,
        detail: cg_detail,
        items: cg_items,
    });
    let host_items: Vec<(String, String)> = [
        "/proc/pressure/cpu",
        "/proc/pressure/memory",
        "/proc/pressure/io",
        "/proc/stat",
        "/proc/meminfo",
    ]
    .iter()
    .map(|p| file_item(p))
    .collect();
    let psi_ok = host_items[..3].iter().filter(|(_, r)| r == "ok").count();
    tiers.push(TierStatus {
        tier: Tier::Host,
        available: host_items.iter().any(|(_, r)| r == "ok"),
        detail: if psi_ok == 3 {
            "pressure (PSI) cpu/memory/io, /proc/stat, /proc/meminfo".into()
        } else {
            format!("PSI files readable: {psi_ok} of 3 (kernel needs CONFIG_PSI=y, psi=1)")
        },
        items: host_items,
    });
    tiers.push(TierStatus {
        tier: Tier::Shim,
        available: false,
        detail: "not discoverable from a PID: poll/empty-poll counters come from the ring \
                 headers of an NF running with the Microscope shim (`microscope top --ring-dir`) \
                 or a poll-counter file (`microscope nf sample --poll-counters`)"
            .into(),
        items: vec![],
    });
    ProbeReport { pid, tiers }
}

impl ProbeReport {
    /// Human-readable table.
    pub fn render(&self) -> String {
        let mut s = format!("feature tiers for pid {}:\n", self.pid);
        for t in &self.tiers {
            s += &format!(
                "  {:<9} {:<13} {}\n",
                t.tier.name(),
                if t.available {
                    "available"
                } else {
                    "NOT available"
                },
                t.detail
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_self_reports_every_tier() {
        let r = probe(std::process::id());
        assert_eq!(r.tiers.len(), Tier::ALL.len());
        let p = r.tiers.iter().find(|t| t.tier == Tier::Process).unwrap();
        assert!(p.available, "{p:?}");
        let hw = r.tiers.iter().find(|t| t.tier == Tier::Hardware).unwrap();
        assert!(!hw.detail.is_empty());
        if !hw.available {
            assert!(!hw.items.is_empty() && hw.items.iter().all(|(_, why)| why != "ok"));
        }
        assert!(r.render().contains("hardware"));
    }
}
