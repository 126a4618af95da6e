//! Recording NF samples next to a trace, for diagnosis annotation
//! (`microscope nf record`).
//!
//! The NFs are found the way `microscope top` finds them: every `*.ring` of
//! a shim ring directory names its NF and producer pid in its header (and
//! more NFs can be given by pid). Each NF process gets a [`Sampler`] with
//! its rings' header counters (shim tier); every interval one row per NF is
//! appended to `OUT/<nf>.jsonl` (flushed, so a recording cut short keeps
//! what it took). Rows carry `CLOCK_MONOTONIC` end times (`mono_ns`), so
//! [`crate::annotate::Annotator::open`] on `OUT` aligns them with the
//! trace the dumper records from the same rings.
//!
//! The ring directory is rescanned every interval (NFs start late and
//! restart); an NF whose process exited stops being sampled. Recording
//! ends after `count` intervals, or — with `until_gone` — once every NF
//! seen has exited.

use crate::error::{NfmonError, Result};
use crate::sampler::{Sampler, SamplerConfig};
use collector::ring::{Observer, TrustPolicy, RING_SUFFIX};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to record.
#[derive(Debug, Clone)]
pub struct RecordConfig {
    /// Shim ring directory to find NFs in (and read ring counters from).
    pub ring_dir: Option<PathBuf>,
    /// More NFs: (pid, name).
    pub pids: Vec<(u32, String)>,
    /// Output directory: one `<nf>.jsonl` per NF.
    pub out_dir: PathBuf,
    /// Sampling interval.
    pub interval: Duration,
    /// Stop after this many intervals.
    pub count: Option<usize>,
    /// Stop once every NF seen has exited.
    pub until_gone: bool,
}

/// What was recorded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordSummary {
    /// Rows written per NF name.
    pub rows: BTreeMap<String, usize>,
    /// Intervals run.
    pub intervals: usize,
}

struct Target {
    name: String,
    sampler: Option<Sampler>,
    file: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
}

/// The (NF name, producer pid) of every readable ring in `dir`.
pub fn ring_nfs(dir: &Path) -> Vec<(String, u32)> {
    let trust = TrustPolicy::current_user();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<(String, u32)> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(RING_SUFFIX))
        .filter_map(|p| {
            let o = Observer::open(&p, &trust).ok()?;
            Some((o.identity().nf.clone(), o.identity().pid))
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// A file name for an NF name: `/` and NUL are not allowed in names.
fn file_name(nf: &str) -> String {
    let s: String = nf
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    format!("{s}.jsonl")
}

/// Record until `count` intervals or (with `until_gone`) every NF exited;
/// `progress` gets a line when an NF is found or lost.
///
/// Errors: the output directory or a sample file cannot be written; neither
/// a ring directory nor a pid given.
pub fn run(cfg: &RecordConfig, mut progress: impl FnMut(&str)) -> Result<RecordSummary> {
    if cfg.ring_dir.is_none() && cfg.pids.is_empty() {
        return Err(NfmonError::Data(
            "record: give a ring directory and/or NF pids".into(),
        ));
    }
    std::fs::create_dir_all(&cfg.out_dir).map_err(|e| NfmonError::io(&cfg.out_dir, e))?;
    let mut targets: BTreeMap<u32, Target> = BTreeMap::new();
    let mut summary = RecordSummary::default();
    let interval = cfg.interval.max(Duration::from_millis(50));
    let mut next = Instant::now() + interval;
    loop {
        let mut found: Vec<(String, u32)> = cfg.pids.iter().map(|(p, n)| (n.clone(), *p)).collect();
        if let Some(d) = &cfg.ring_dir {
            found.extend(ring_nfs(d));
        }
        for (name, pid) in found {
            if targets.contains_key(&pid) {
                continue;
            }
            let Ok(mut s) = Sampler::new(pid, name.clone(), SamplerConfig::default()) else {
                continue; // already gone
            };
            if let Some(d) = &cfg.ring_dir {
                s = s.with_rings(d.clone());
            }
            let path = cfg.out_dir.join(file_name(&name));
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| NfmonError::io(&path, e))?;
            progress(&format!(
                "recording {name} (pid {pid}) → {}",
                path.display()
            ));
            targets.insert(
                pid,
                Target {
                    name,
                    sampler: Some(s),
                    file: std::io::BufWriter::new(f),
                    path,
                },
            );
        }
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        next += interval;
        for (pid, t) in targets.iter_mut() {
            let Some(s) = t.sampler.as_mut() else {
                continue;
            };
            match s.sample() {
                Ok(r) => {
                    let line = serde_json::to_string(&r).map_err(|e| NfmonError::Json {
                        path: t.path.clone(),
                        source: e,
                    })?;
                    writeln!(t.file, "{line}")
                        .and_then(|_| t.file.flush())
                        .map_err(|e| NfmonError::io(&t.path, e))?;
                    *summary.rows.entry(t.name.clone()).or_insert(0) += 1;
                }
                Err(_) => {
                    progress(&format!("{} (pid {pid}) exited", t.name));
                    t.sampler = None;
                }
            }
        }
        summary.intervals += 1;
        if cfg.count.is_some_and(|c| summary.intervals >= c) {
            break;
        }
        if cfg.until_gone && !targets.is_empty() && targets.values().all(|t| t.sampler.is_none()) {
            break;
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_a_pid_with_monotonic_times_until_it_exits() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("0.6")
            .spawn()
            .unwrap();
        let cfg = RecordConfig {
            ring_dir: None,
            pids: vec![(child.id(), "fw/1".into())],
            out_dir: dir.path().to_path_buf(),
            interval: Duration::from_millis(100),
            count: Some(50),
            until_gone: true,
        };
        let mut lines = Vec::new();
        // Reap the child once it exits so its pid disappears.
        let reaper = std::thread::spawn(move || child.wait());
        let s = run(&cfg, |l| lines.push(l.to_string())).unwrap();
        reaper.join().unwrap().unwrap();
        assert!(s.intervals < 50, "stopped when the NF exited: {s:?}");
        let n = s.rows["fw/1"];
        assert!(n >= 3, "{s:?}");
        let rows = crate::schema::read_jsonl(&dir.path().join("fw_1.jsonl")).unwrap();
        assert_eq!(rows.len(), n);
        assert!(rows.windows(2).all(|w| w[0].mono_ns < w[1].mono_ns));
        assert!(rows.iter().all(|r| r.source == "fw/1"));
        assert!(lines.iter().any(|l| l.contains("exited")), "{lines:?}");
        assert!(run(
            &RecordConfig {
                pids: vec![],
                ..cfg
            },
            |_| {}
        )
        .is_err());
    }
}
