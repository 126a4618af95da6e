//! Fault-injection campaigns on the real DPDK NF chain (`ms-testbed`):
//! packet loss and added per-packet latency injected **inside an NF**, at
//! medium and high intensity, while every NF process of the chain is
//! sampled (all tiers, plus the shim tier from the NF's own ring headers).
//!
//! One **run** = one `ms-testbed` invocation with one injection
//! (`loss:nf=NF,at=…,for=…,p=P` or `delay:nf=NF,at=…,for=…,per_packet=D`).
//! The target NF rotates over `targets` with the repeat index, so every
//! target gets faults. The driver finds the chain's NF processes as the
//! children of the testbed whose environment says `MICROSCOPE_NF_ROLE=nf`
//! (generator and sink are not sampled), names their rows `RUN@NF`, and
//! samples them every `interval_ms` until the testbed exits.
//!
//! **Labels come from the run's `truth.json`**, never from the plan: the
//! testbed records when each NF really armed and disarmed the fault
//! (`CLOCK_MONOTONIC` ns) and rows carry [`Row::mono_ns`] on the same clock.
//! A row covers `(mono_ns − interval, mono_ns]`; rows not wholly inside the
//! traffic period are dropped (start-up, shutdown); a row of the faulty NF
//! wholly inside the fault window is labelled with the fault kind (`loss`,
//! `delay`); one straddling the window's edge is dropped; every other row
//! (other NFs, and the faulty NF outside the window) is `normal`.
//!
//! A run whose faulty NF reports that it handled no packet (a chain link
//! that never came up) injected nothing; it is retried once and otherwise
//! left out, and listed in `chain-campaign.json` (`invalid`).
//!
//! Evaluation splits by run: `RUN@NF` sources of one run share the run
//! ([`crate::dataset::Dataset::run_ids`]), so no NF of a test run is seen in
//! training.

use crate::annotate::nf_of_source;
use crate::campaign::Intensity;
use crate::error::{NfmonError, Result};
use crate::procfs;
use crate::sampler::{Sampler, SamplerConfig};
use crate::schema::{write_jsonl, Row};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A fault injected inside a chain NF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChainFault {
    /// The NF drops a fraction of the packets it receives.
    Loss,
    /// The NF busy-waits a fixed time before processing each packet.
    Delay,
}

impl ChainFault {
    /// Both faults.
    pub const ALL: [ChainFault; 2] = [ChainFault::Loss, ChainFault::Delay];

    /// Name, as in the testbed's `--inject` and `truth.json`.
    pub fn name(self) -> &'static str {
        match self {
            ChainFault::Loss => "loss",
            ChainFault::Delay => "delay",
        }
    }

    /// Parse a name.
    pub fn parse(s: &str) -> Option<ChainFault> {
        ChainFault::ALL.into_iter().find(|f| f.name() == s)
    }
}

/// Chain campaign configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainCampaignConfig {
    /// Output directory (`rows.jsonl`, `chain-campaign.json`, `runs/RUN/`).
    pub out_dir: PathBuf,
    /// The `ms-testbed` command (program and any leading arguments).
    pub testbed_cmd: Vec<String>,
    /// Topology (`small` or a TOML file).
    pub topology: String,
    /// Faults to inject.
    pub faults: Vec<ChainFault>,
    /// Intensities.
    pub intensities: Vec<Intensity>,
    /// NFs to inject into, rotated over repeats.
    pub targets: Vec<String>,
    /// Runs per (fault, intensity).
    pub repeats: usize,
    /// Seconds of traffic before the injection.
    pub baseline_s: f64,
    /// Injection seconds.
    pub inject_s: f64,
    /// Seconds of traffic after it.
    pub recovery_s: f64,
    /// Generator rate, packets/s.
    pub rate_pps: f64,
    /// Sampling interval, ms.
    pub interval_ms: u64,
    /// Loss fraction at (medium, high) intensity.
    pub loss_p: (f64, f64),
    /// Per-packet delay at (medium, high) intensity, ns.
    pub delay_ns: (u64, u64),
    /// Record each run's trace too (`runs/RUN/trace.bin`) with this
    /// `microscope` binary as the dumper; `None` runs without a dumper
    /// (`--no-dump`: less CPU, the rings are only watched).
    #[serde(default)]
    pub dump_with: Option<PathBuf>,
}

impl ChainCampaignConfig {
    /// Defaults for `out_dir` and `testbed_cmd`: faults loss and delay,
    /// medium and high, targets fw1/nat1/vpn1 of the `small` chain, 3
    /// repeats, 5 s + 5 s + 3 s at 50 kpps, 500 ms rows, loss 20%/60%,
    /// delay 2 µs/10 µs per packet.
    pub fn new(out_dir: PathBuf, testbed_cmd: Vec<String>) -> ChainCampaignConfig {
        ChainCampaignConfig {
            out_dir,
            testbed_cmd,
            topology: "small".into(),
            faults: ChainFault::ALL.to_vec(),
            intensities: vec![Intensity::Medium, Intensity::High],
            targets: vec!["fw1".into(), "nat1".into(), "vpn1".into()],
            repeats: 3,
            baseline_s: 5.0,
            inject_s: 5.0,
            recovery_s: 3.0,
            rate_pps: 50_000.0,
            interval_ms: 500,
            loss_p: (0.2, 0.6),
            delay_ns: (2_000, 10_000),
            dump_with: None,
        }
    }

    /// The runs, in order: (repeat, fault, intensity, target NF). The
    /// target rotates with the repeat *and* the position in the plan, so
    /// with `repeats` a multiple of the number of targets every (fault,
    /// intensity) is injected into every target equally often.
    pub fn plan(&self) -> Vec<(usize, ChainFault, Intensity, String)> {
        let mut plan = Vec::new();
        if self.targets.is_empty() {
            return plan;
        }
        for rep in 0..self.repeats {
            for &f in &self.faults {
                for &l in &self.intensities {
                    let i = plan.len();
                    let nf = self.targets[(rep + i) % self.targets.len()].clone();
                    plan.push((rep, f, l, nf));
                }
            }
        }
        plan
    }

    /// The testbed `--inject` argument of one run.
    pub fn inject_arg(&self, fault: ChainFault, level: Intensity, nf: &str) -> String {
        let at = (self.baseline_s * 1000.0).round() as u64;
        let dur = (self.inject_s * 1000.0).round() as u64;
        let high = level == Intensity::High;
        match fault {
            ChainFault::Loss => format!(
                "loss:nf={nf},at={at}ms,for={dur}ms,p={}",
                if high { self.loss_p.1 } else { self.loss_p.0 }
            ),
            ChainFault::Delay => format!(
                "delay:nf={nf},at={at}ms,for={dur}ms,per_packet={}ns",
                if high {
                    self.delay_ns.1
                } else {
                    self.delay_ns.0
                }
            ),
        }
    }
}

/// One run of a finished campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainRun {
    /// Run id (row sources are `ID@NF`).
    pub id: String,
    /// Fault.
    pub fault: ChainFault,
    /// Intensity.
    pub intensity: Intensity,
    /// NF injected into.
    pub nf: String,
    /// The `--inject` argument.
    pub inject: String,
    /// NFs sampled.
    pub sampled: Vec<String>,
    /// Rows kept (labelled), and of those labelled with the fault.
    pub rows: usize,
    /// Fault rows.
    pub fault_rows: usize,
    /// Fault window from `truth.json` (CLOCK_MONOTONIC ns).
    pub fault_ns: (u64, u64),
    /// Packets the NF dropped or delayed (`params.packets`), if reported.
    pub packets: Option<u64>,
}

/// What a finished chain campaign wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainCampaignSummary {
    /// Configuration.
    pub config: ChainCampaignConfig,
    /// Runs.
    pub runs: Vec<ChainRun>,
    /// Runs left out (and why), e.g. no packet reached the faulty NF.
    #[serde(default)]
    pub invalid: Vec<String>,
    /// Rows written.
    pub rows: usize,
    /// `rows.jsonl` path.
    pub rows_path: PathBuf,
}

/// A fault of `truth.json`, as the labeller needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthFault {
    /// `loss`, `delay`, `interrupt`, `bug`, `burst`.
    pub kind: String,
    /// NF at fault (`None` for a source burst).
    pub nf: Option<String>,
    /// CLOCK_MONOTONIC ns.
    pub start_ns: u64,
    /// CLOCK_MONOTONIC ns.
    pub end_ns: u64,
    /// `params.packets`, when present.
    pub packets: Option<u64>,
}

/// The parts of a testbed `truth.json` the labeller uses.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthTimes {
    /// Traffic start, CLOCK_MONOTONIC ns.
    pub traffic_start_ns: u64,
    /// Traffic duration, ns.
    pub duration_ns: u64,
    /// Faults.
    pub faults: Vec<TruthFault>,
}

/// Read a testbed `truth.json`. Errors name the file and the missing field.
pub fn read_truth(path: &Path) -> Result<TruthTimes> {
    let text = std::fs::read_to_string(path).map_err(|e| NfmonError::io(path, e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| NfmonError::Json {
        path: path.into(),
        source: e,
    })?;
    let bad = |what: &str| NfmonError::Model {
        path: path.into(),
        what: format!("expected {what}"),
    };
    if v["clock"].as_str() != Some("CLOCK_MONOTONIC") {
        return Err(bad("\"clock\": \"CLOCK_MONOTONIC\""));
    }
    let u = |x: &serde_json::Value, k: &str| x[k].as_u64().ok_or_else(|| bad(k));
    let mut faults = Vec::new();
    for (i, f) in v["faults"]
        .as_array()
        .ok_or_else(|| bad("a \"faults\" array"))?
        .iter()
        .enumerate()
    {
        faults.push(TruthFault {
            kind: f["kind"]
                .as_str()
                .ok_or_else(|| bad(&format!("faults[{i}].kind")))?
                .to_string(),
            nf: f["nf"].as_str().map(String::from),
            start_ns: u(f, "start_ns")?,
            end_ns: u(f, "end_ns")?,
            packets: f["params"]["packets"].as_u64(),
        });
    }
    Ok(TruthTimes {
        traffic_start_ns: u(&v, "traffic_start_ns")?,
        duration_ns: u(&v, "duration_ns")?,
        faults,
    })
}

/// Label chain rows from the truth (module docs): keep rows wholly inside
/// the traffic period, label the faulty NF's rows inside a fault window with
/// its kind, drop rows straddling a window edge, the rest `normal`. Rows
/// without `mono_ns` or an interval cannot be placed and are dropped.
pub fn label_rows(rows: Vec<Row>, truth: &TruthTimes) -> Vec<Row> {
    let t0 = truth.traffic_start_ns;
    let t1 = t0 + truth.duration_ns;
    rows.into_iter()
        .filter_map(|mut r| {
            let end = r.mono_ns?;
            let begin = end.checked_sub((r.interval_s? * 1e9) as u64)?;
            if begin < t0 || end > t1 {
                return None;
            }
            let nf = nf_of_source(&r.source).to_string();
            let mut label = "normal".to_string();
            for f in truth.faults.iter().filter(|f| f.nf.as_deref() == Some(&nf)) {
                let inside = begin >= f.start_ns && end <= f.end_ns;
                let apart = end <= f.start_ns || begin >= f.end_ns;
                if inside {
                    label = f.kind.clone();
                } else if !apart {
                    return None; // straddles the fault's start or end
                }
            }
            r.label = Some(label);
            Some(r)
        })
        .collect()
}

/// Run the campaign; writes `rows.jsonl` and `chain-campaign.json` into
/// `out_dir`, and under `runs/RUN/` each run's testbed output (without its
/// rings; with `trace.bin` when `dump_with` is set) and `samples.jsonl`, the
/// run's raw unlabelled samples. `progress` gets a line per run.
pub fn run(
    cfg: &ChainCampaignConfig,
    mut progress: impl FnMut(&str),
) -> Result<ChainCampaignSummary> {
    let (prog, lead) = cfg
        .testbed_cmd
        .split_first()
        .ok_or_else(|| NfmonError::Data("chain campaign: empty testbed command".into()))?;
    if cfg.targets.is_empty() {
        return Err(NfmonError::Data("chain campaign: no target NF".into()));
    }
    std::fs::create_dir_all(&cfg.out_dir).map_err(|e| NfmonError::io(&cfg.out_dir, e))?;
    let interval = Duration::from_millis(cfg.interval_ms.max(100));
    let total_s = cfg.baseline_s + cfg.inject_s + cfg.recovery_s;
    let mut all_rows = Vec::new();
    let mut runs = Vec::new();
    let mut invalid = Vec::new();
    for (i, (rep, fault, level, nf)) in cfg.plan().into_iter().enumerate() {
        for attempt in 0..2 {
            let id = format!(
                "run{i:02}-{}-{}-{nf}-r{rep}{}",
                fault.name(),
                level.name(),
                if attempt > 0 { "-retry" } else { "" }
            );
            let dir = cfg.out_dir.join("runs").join(&id);
            std::fs::create_dir_all(&dir).map_err(|e| NfmonError::io(&dir, e))?;
            let inject = cfg.inject_arg(fault, level, &nf);
            let log = dir.join("testbed.log");
            let logf = std::fs::File::create(&log).map_err(|e| NfmonError::io(&log, e))?;
            let logf2 = logf.try_clone().map_err(|e| NfmonError::io(&log, e))?;
            let mut cmd = Command::new(prog);
            cmd.args(lead);
            match &cfg.dump_with {
                Some(m) => cmd.arg("--microscope").arg(m),
                None => cmd.arg("--no-dump"),
            };
            let mut child = cmd
                .args(["--topology", &cfg.topology])
                .args([
                    "--duration",
                    &format!("{}ms", (total_s * 1000.0).round() as u64),
                ])
                .args(["--rate", &cfg.rate_pps.to_string()])
                .args(["--seed", &(rep as u64 + 1).to_string()])
                .args(["--inject", &inject])
                .arg("--out")
                .arg(&dir)
                .stdin(Stdio::null())
                .stdout(logf)
                .stderr(logf2)
                .spawn()
                .map_err(|e| NfmonError::Sys {
                    what: format!("spawn {prog}"),
                    source: e,
                })?;
            let tb = child.id();
            let mut samplers: Vec<(String, Sampler)> = Vec::new();
            let mut sampled: Vec<String> = Vec::new();
            let mut seen: Vec<u32> = Vec::new();
            let mut rows: Vec<Row> = Vec::new();
            let start = Instant::now();
            // Start-up takes ~2 s + 1.5 s per process; allow generously.
            let deadline = Duration::from_secs_f64(total_s + 120.0);
            let mut next = Instant::now() + interval;
            let status = loop {
                if let Ok(Some(s)) = child.try_wait() {
                    break Some(s);
                }
                if start.elapsed() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                for pid in procfs::children(tb) {
                    if seen.contains(&pid) {
                        continue;
                    }
                    // The environment is set at exec; a child seen before its
                    // exec (still ms-testbed) is retried next time.
                    let Some(name) = procfs::environ_var(pid, "MICROSCOPE_NF_NAME") else {
                        continue;
                    };
                    seen.push(pid);
                    if procfs::environ_var(pid, "MICROSCOPE_NF_ROLE").as_deref() != Some("nf") {
                        continue;
                    }
                    let Ok(mut s) =
                        Sampler::new(pid, format!("{id}@{name}"), SamplerConfig::default())
                    else {
                        continue;
                    };
                    if let Some(rd) = procfs::environ_var(pid, "MICROSCOPE_RING_DIR") {
                        s = s.with_rings(PathBuf::from(rd));
                    }
                    sampled.push(name.clone());
                    samplers.push((name, s));
                }
                let now = Instant::now();
                if next > now {
                    std::thread::sleep((next - now).min(Duration::from_millis(50)));
                    continue;
                }
                next += interval;
                // A sampler whose process exited is dropped.
                samplers.retain_mut(|(_, s)| match s.sample() {
                    Ok(r) => {
                        rows.push(r);
                        true
                    }
                    Err(_) => false,
                });
            };
            let _ = std::fs::remove_dir_all(dir.join("rings"));
            match status {
                Some(s) if s.success() => {}
                other => {
                    return Err(NfmonError::Data(format!(
                        "run {id}: testbed {} (see {})",
                        other.map_or("timed out".into(), |s| format!("failed: {s}")),
                        log.display()
                    )))
                }
            }
            let truth = read_truth(&dir.join("truth.json"))?;
            let tf = truth
                .faults
                .iter()
                .find(|f| f.nf.as_deref() == Some(&nf) && f.kind == fault.name())
                .cloned()
                .ok_or_else(|| {
                    NfmonError::Data(format!(
                        "run {id}: truth.json has no {} fault on {nf}",
                        fault.name()
                    ))
                })?;
            // A run whose faulty NF saw no packet (a chain link that never came
            // up: the generator drops everything) injected nothing: its labels
            // would be wrong. Retried once, then left out and reported.
            if tf.packets == Some(0) {
                let why = format!("{id}: the faulty NF {nf} handled no packet; run left out");
                progress(&why);
                invalid.push(why);
                continue;
            }
            // Without a dumper nothing drains the rings: once one fills, its
            // records (and the head bytes the packet-slot metrics count) stop.
            let lost = rows
                .iter()
                .filter(|r| r.get("shim.records_lost").is_some_and(|v| v > 0.0))
                .count();
            if lost > 0 {
                progress(&format!(
                    "{id}: warning: {lost} rows with shim records lost (a ring filled); shim metrics of those rows undercount"
                ));
            }
            // The raw samples too (unlabelled, every interval), as a
            // recorder would keep them for annotating this run's trace.
            write_jsonl(&dir.join("samples.jsonl"), &rows)?;
            let mut kept = label_rows(rows, &truth);
            // Each source's rows contiguous and in time order.
            kept.sort_by(|a, b| (&a.source, a.mono_ns).cmp(&(&b.source, b.mono_ns)));
            let fault_rows = kept
                .iter()
                .filter(|r| r.label.as_deref() == Some(fault.name()))
                .count();
            sampled.sort();
            progress(&format!(
                "{id}: {} rows, {fault_rows} {} rows on {nf} ({} packets), NFs {}",
                kept.len(),
                fault.name(),
                tf.packets.map_or("?".into(), |p| p.to_string()),
                sampled.join(",")
            ));
            runs.push(ChainRun {
                id,
                fault,
                intensity: level,
                nf,
                inject,
                sampled,
                rows: kept.len(),
                fault_rows,
                fault_ns: (tf.start_ns, tf.end_ns),
                packets: tf.packets,
            });
            all_rows.extend(kept);
            break;
        }
    }
    let rows_path = cfg.out_dir.join("rows.jsonl");
    write_jsonl(&rows_path, &all_rows)?;
    let summary = ChainCampaignSummary {
        config: cfg.clone(),
        runs,
        invalid,
        rows: all_rows.len(),
        rows_path,
    };
    let meta = cfg.out_dir.join("chain-campaign.json");
    let text = serde_json::to_string_pretty(&summary).map_err(|e| NfmonError::Json {
        path: meta.clone(),
        source: e,
    })?;
    std::fs::write(&meta, text).map_err(|e| NfmonError::io(&meta, e))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn row(src: &str, end_s: f64) -> Row {
        let mut r = Row::new(src, end_s, Some(0.5));
        r.mono_ns = Some((end_s * 1e9) as u64);
        r
    }

    fn truth() -> TruthTimes {
        TruthTimes {
            traffic_start_ns: 100 * S,
            duration_ns: 10 * S,
            faults: vec![TruthFault {
                kind: "loss".into(),
                nf: Some("nat1".into()),
                start_ns: 103 * S + S / 4, // 103.25 s
                end_ns: 106 * S + S / 4,   // 106.25 s
                packets: Some(10),
            }],
        }
    }

    #[test]
    fn labels_come_from_truth_times() {
        let mut rows = Vec::new();
        for i in 0..24 {
            let t = 99.0 + i as f64 * 0.5;
            rows.push(row("r1@nat1", t));
            rows.push(row("r1@fw1", t));
        }
        let out = label_rows(rows, &truth());
        let lab = |src: &str, t: f64| {
            out.iter()
                .find(|r| r.source == src && (r.t_s - t).abs() < 1e-9)
                .map(|r| r.label.clone().unwrap())
        };
        // Before traffic / straddling its start: dropped.
        assert_eq!(lab("r1@nat1", 100.0), None);
        assert_eq!(lab("r1@nat1", 100.5), Some("normal".into()));
        // (103.0, 103.5] straddles the fault start at 103.25: dropped.
        assert_eq!(lab("r1@nat1", 103.5), None);
        assert_eq!(lab("r1@nat1", 104.0), Some("loss".into()));
        assert_eq!(lab("r1@nat1", 106.0), Some("loss".into()));
        assert_eq!(lab("r1@nat1", 106.5), None);
        assert_eq!(lab("r1@nat1", 107.0), Some("normal".into()));
        // Another NF of the same run is normal throughout.
        assert_eq!(lab("r1@fw1", 104.0), Some("normal".into()));
        assert_eq!(lab("r1@fw1", 103.5), Some("normal".into()));
        // After traffic ends (110 s): dropped.
        assert_eq!(lab("r1@nat1", 110.0), Some("normal".into()));
        assert_eq!(lab("r1@nat1", 110.5), None);
        let n_loss = out
            .iter()
            .filter(|r| r.label.as_deref() == Some("loss"))
            .count();
        assert_eq!(n_loss, 5); // 104.0 … 106.0
    }

    #[test]
    fn truth_file_is_parsed_and_bad_ones_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("truth.json");
        std::fs::write(
            &p,
            r#"{"clock":"CLOCK_MONOTONIC","traffic_start_ns":5,"duration_ns":7,
               "faults":[{"id":0,"kind":"delay","nf":"vpn1","start_ns":6,"end_ns":9,
               "params":{"per_packet_ns":2000,"packets":42}}],"victims":[]}"#,
        )
        .unwrap();
        let t = read_truth(&p).unwrap();
        assert_eq!(t.traffic_start_ns, 5);
        assert_eq!(t.faults[0].nf.as_deref(), Some("vpn1"));
        assert_eq!(t.faults[0].packets, Some(42));
        std::fs::write(&p, r#"{"clock":"CLOCK_REALTIME","faults":[]}"#).unwrap();
        let e = read_truth(&p).unwrap_err().to_string();
        assert!(
            e.contains("truth.json") && e.contains("CLOCK_MONOTONIC"),
            "{e}"
        );
    }

    #[test]
    fn inject_arguments_and_rotation() {
        let c = ChainCampaignConfig::new("x".into(), vec!["ms-testbed".into()]);
        assert_eq!(
            c.inject_arg(ChainFault::Loss, Intensity::High, "nat1"),
            "loss:nf=nat1,at=5000ms,for=5000ms,p=0.6"
        );
        assert_eq!(
            c.inject_arg(ChainFault::Delay, Intensity::Medium, "fw1"),
            "delay:nf=fw1,at=5000ms,for=5000ms,per_packet=2000ns"
        );
        // 2 faults × 2 intensities × 3 repeats over 3 targets: every
        // (fault, intensity) hits every target exactly once.
        let p = c.plan();
        assert_eq!(p.len(), 12);
        for f in ChainFault::ALL {
            for l in [Intensity::Medium, Intensity::High] {
                let mut t: Vec<&str> = p
                    .iter()
                    .filter(|x| x.1 == f && x.2 == l)
                    .map(|x| x.3.as_str())
                    .collect();
                t.sort();
                assert_eq!(t, ["fw1", "nat1", "vpn1"], "{f:?} {l:?}");
            }
        }
    }
}
