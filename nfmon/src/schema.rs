//! The one output schema of every nfmon collector and importer.
//!
//! A [`Row`] is one measurement interval of one NF (or one imported series):
//! its end time, its length, an optional label, and a map from metric name to
//! value. **A missing value is `None` (JSON `null`), never 0**: a counter that
//! perf could not schedule (`<not counted>`), an event the machine does not
//! support, a file the kernel does not expose, a first interval with no
//! previous reading to difference against — all are `None`.
//!
//! Metric names are `<tier>.<name>`; the prefix says which feature tier the
//! value comes from ([`Tier`]), so no figure computed from one tier can be
//! presented as another's:
//!
//! | prefix  | tier                   | examples                                   | unit            |
//! |---------|------------------------|--------------------------------------------|-----------------|
//! | `hw.`   | hardware PMU counters  | `hw.cycles`, `hw.branch-misses`            | events / second |
//! | `sw.`   | kernel software events | `sw.task-clock`, `sw.context-switches`     | events / second; `*-clock` in CPUs (s/s) |
//! | `proc.` | per-process `/proc`    | `proc.cpu_user`, `proc.run_share`, `proc.rss_bytes` | shares, /s, bytes |
//! | `cg.`   | cgroup v1/v2           | `cg.cpu_usage`, `cg.memory_bytes`          | shares, bytes, bytes/s |
//! | `host.` | host pressure (PSI)    | `host.psi_cpu_some`                        | share of time   |
//! | `shim.` | Microscope shim rings  | `shim.polls`, `shim.busy_share`            | /s, share       |
//!
//! Counters are always turned into per-second rates over the row's interval,
//! so rows taken at different intervals are comparable.
//!
//! Live-sampled rows also carry `mono_ns`, the `CLOCK_MONOTONIC` time of the
//! interval's end, so they can be aligned with trace and ground-truth times
//! ([`crate::clock`]). The field was added later: files without it still load.

use crate::error::{NfmonError, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;

/// A feature tier: where a metric comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Hardware performance counters (PMU) via perf_event_open.
    Hardware,
    /// Kernel software events via perf_event_open (task-clock, faults, switches).
    Software,
    /// Per-process/thread `/proc` files (stat, schedstat, io, status).
    Process,
    /// cgroup v1/v2 CPU, memory and I/O accounting.
    Cgroup,
    /// Host pressure-stall information (`/proc/pressure/*`).
    Host,
    /// Poll / empty-poll counters from the Microscope shim's ring headers.
    Shim,
}

impl Tier {
    /// All tiers in display order.
    pub const ALL: [Tier; 6] = [
        Tier::Hardware,
        Tier::Software,
        Tier::Process,
        Tier::Cgroup,
        Tier::Host,
        Tier::Shim,
    ];

    /// The metric-name prefix of this tier (without the dot).
    pub fn prefix(self) -> &'static str {
        match self {
            Tier::Hardware => "hw",
            Tier::Software => "sw",
            Tier::Process => "proc",
            Tier::Cgroup => "cg",
            Tier::Host => "host",
            Tier::Shim => "shim",
        }
    }

    /// Human name, as printed in every result line.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Hardware => "hardware",
            Tier::Software => "software",
            Tier::Process => "process",
            Tier::Cgroup => "cgroup",
            Tier::Host => "host",
            Tier::Shim => "shim",
        }
    }

    /// The tier of a metric name, from its prefix.
    pub fn of_metric(name: &str) -> Option<Tier> {
        let p = name.split('.').next()?;
        Tier::ALL.into_iter().find(|t| t.prefix() == p)
    }

    /// Parse a tier from its name or prefix.
    pub fn parse(s: &str) -> Option<Tier> {
        Tier::ALL
            .into_iter()
            .find(|t| t.name() == s || t.prefix() == s)
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The sorted, de-duplicated set of tiers a list of metric names uses.
pub fn tiers_of<'a>(names: impl IntoIterator<Item = &'a String>) -> Vec<Tier> {
    let mut v: Vec<Tier> = names
        .into_iter()
        .filter_map(|n| Tier::of_metric(n))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Render a tier set as `hardware+software`.
pub fn tiers_label(tiers: &[Tier]) -> String {
    if tiers.is_empty() {
        return "none".into();
    }
    tiers.iter().map(|t| t.name()).collect::<Vec<_>>().join("+")
}

/// One measurement interval of one NF or imported series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Which NF / process / imported file this row belongs to.
    pub source: String,
    /// End of the interval, seconds since the series started.
    pub t_s: f64,
    /// Interval length in seconds, when known.
    pub interval_s: Option<f64>,
    /// `CLOCK_MONOTONIC` nanoseconds at the end of the interval (the clock of
    /// trace times and testbed ground truth, see [`crate::clock`]), when the
    /// row was sampled live; absent in imported rows and older files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mono_ns: Option<u64>,
    /// Optional label (load level, fault type, …) attached by the importer or
    /// the campaign runner. Never used as a feature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Metric name (`<tier>.<name>`) → value; `None` = missing.
    pub values: BTreeMap<String, Option<f64>>,
}

impl Row {
    /// An empty row.
    pub fn new(source: impl Into<String>, t_s: f64, interval_s: Option<f64>) -> Row {
        Row {
            source: source.into(),
            t_s,
            interval_s,
            mono_ns: None,
            label: None,
            values: BTreeMap::new(),
        }
    }

    /// The value of a metric, `None` when absent or missing.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values.get(name).copied().flatten()
    }

    /// Set a metric; non-finite values are stored as missing.
    pub fn set(&mut self, name: impl Into<String>, v: Option<f64>) {
        self.values.insert(name.into(), v.filter(|x| x.is_finite()));
    }
}

/// Write rows as JSON Lines (one row per line).
pub fn write_jsonl(path: &Path, rows: &[Row]) -> Result<()> {
    let f = std::fs::File::create(path).map_err(|e| NfmonError::io(path, e))?;
    let mut w = std::io::BufWriter::new(f);
    for r in rows {
        serde_json::to_writer(&mut w, r).map_err(|e| NfmonError::Json {
            path: path.into(),
            source: e,
        })?;
        w.write_all(b"\n").map_err(|e| NfmonError::io(path, e))?;
    }
    w.flush().map_err(|e| NfmonError::io(path, e))
}

/// Read rows from a JSON Lines file written by [`write_jsonl`].
pub fn read_jsonl(path: &Path) -> Result<Vec<Row>> {
    let f = std::fs::File::open(path).map_err(|e| NfmonError::io(path, e))?;
    let mut rows = Vec::new();
    let mut offset = 0usize;
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| NfmonError::io(path, e))?;
        let len = line.len() + 1;
        if !line.trim().is_empty() {
            let row: Row = serde_json::from_str(&line).map_err(|e| {
                NfmonError::parse(path, i + 1, offset, format!("a JSON row ({e})"), &line)
            })?;
            rows.push(row);
        }
        offset += len;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_from_prefix() {
        assert_eq!(Tier::of_metric("hw.cycles"), Some(Tier::Hardware));
        assert_eq!(Tier::of_metric("sw.task-clock"), Some(Tier::Software));
        assert_eq!(Tier::of_metric("shim.busy_share"), Some(Tier::Shim));
        assert_eq!(Tier::of_metric("cycles"), None);
        let names = vec!["sw.a".to_string(), "hw.b".into(), "hw.c".into()];
        assert_eq!(tiers_label(&tiers_of(&names)), "hardware+software");
    }

    #[test]
    fn missing_is_null_not_zero() {
        let mut r = Row::new("x", 1.0, Some(0.1));
        r.set("hw.cycles", None);
        r.set("sw.page-faults", Some(0.0));
        r.set("hw.bad", Some(f64::NAN));
        let s = serde_json::to_string(&r).unwrap();
        assert!(s.contains("\"hw.cycles\":null"), "{s}");
        assert!(s.contains("\"sw.page-faults\":0.0"), "{s}");
        assert!(s.contains("\"hw.bad\":null"), "{s}");
        let back: Row = serde_json::from_str(&s).unwrap();
        assert_eq!(back.get("hw.cycles"), None);
        assert_eq!(back.get("sw.page-faults"), Some(0.0));
    }
}
