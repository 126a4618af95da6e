//! Fault-injection campaigns for training and evaluating the anomaly
//! detector (after the hypervisor-data anomaly-detection paper: CPU hog,
//! memory leak, disk I/O storm, at medium and high intensity).
//!
//! A campaign is a list of **runs**. Each run samples the target NF process
//! (a busy-polling stand-in spawned per run, or an existing PID) through
//! a baseline phase, an injection of one fault at one intensity, and a
//! recovery phase. Rows of the baseline and recovery are labelled `normal`,
//! rows of the injection with the fault name; the one interval straddling
//! each phase boundary is dropped. The row `source` is the run id, so
//! evaluations split **by run**.
//!
//! Injectors: `stress-ng` when installed (`--cpu N --cpu-load L`,
//! `--vm 1 --vm-bytes B --vm-keep`, `--hdd N --hdd-bytes B`), otherwise
//! built-in threads doing the same (duty-cycled spinning; a growing,
//! touched, never-freed-until-the-end allocation; write+fsync loops). The
//! injector used is recorded in the campaign metadata (`campaign.json`).

use crate::error::{NfmonError, Result};
use crate::sampler::{Sampler, SamplerConfig};
use crate::schema::{write_jsonl, Row};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A fault type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// CPU hog competing for the NF's cores.
    Cpu,
    /// Memory leak (growing resident memory elsewhere on the host).
    Memory,
    /// Disk I/O storm.
    Disk,
}

impl Fault {
    /// All faults.
    pub const ALL: [Fault; 3] = [Fault::Cpu, Fault::Memory, Fault::Disk];

    /// Name used as the row label.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Cpu => "cpu",
            Fault::Memory => "memory",
            Fault::Disk => "disk",
        }
    }

    /// Parse a name.
    pub fn parse(s: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == s)
    }
}

/// Injection intensity (the paper's two levels, scaled to this machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Intensity {
    /// CPU 70% load per hog, 512 MiB leak, 1 disk writer.
    Medium,
    /// CPU 97% load per hog, 1 GiB leak, 2 disk writers.
    High,
}

impl Intensity {
    /// Name.
    pub fn name(self) -> &'static str {
        match self {
            Intensity::Medium => "medium",
            Intensity::High => "high",
        }
    }
}

/// Campaign configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignConfig {
    /// Output directory (rows.jsonl, campaign.json).
    pub out_dir: PathBuf,
    /// Faults to inject.
    pub faults: Vec<Fault>,
    /// Intensities.
    pub intensities: Vec<Intensity>,
    /// Runs per (fault, intensity).
    pub repeats: usize,
    /// Baseline seconds.
    pub baseline_s: f64,
    /// Injection seconds.
    pub inject_s: f64,
    /// Recovery seconds.
    pub recovery_s: f64,
    /// Sampling interval, ms.
    pub interval_ms: u64,
    /// Command that starts the stand-in NF (program and arguments); its
    /// counters file path is appended as `--counters PATH`.
    pub standin_cmd: Vec<String>,
    /// Or an existing process to observe instead of a stand-in.
    pub pid: Option<u32>,
    /// CPU hogs (threads/workers).
    pub cpu_workers: usize,
    /// Prefer stress-ng when installed.
    pub use_stress_ng: bool,
}

/// What a finished campaign wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignSummary {
    /// Configuration.
    pub config: CampaignConfig,
    /// `stress-ng` or `built-in`.
    pub injector: String,
    /// Runs: (run id, fault, intensity, rows).
    pub runs: Vec<(String, Fault, Intensity, usize)>,
    /// Rows written.
    pub rows: usize,
    /// rows.jsonl path.
    pub rows_path: PathBuf,
}

/// True when `stress-ng` can be run.
pub fn stress_ng_available() -> bool {
    Command::new("stress-ng")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

enum Injection {
    Process(Child),
    Threads(Arc<AtomicBool>, Vec<std::thread::JoinHandle<()>>),
}

impl Injection {
    fn stop(self) {
        match self {
            Injection::Process(mut c) => {
                // SIGTERM lets stress-ng reap its workers; then wait.
                let pid = c.id() as libc::pid_t;
                terminate(pid);
                let deadline = Instant::now() + Duration::from_secs(5);
                loop {
                    match c.try_wait() {
                        Ok(Some(_)) => break,
                        Ok(None) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(50))
                        }
                        _ => {
                            let _ = c.kill();
                            let _ = c.wait();
                            break;
                        }
                    }
                }
            }
            Injection::Threads(stop, hs) => {
                stop.store(true, Ordering::Relaxed);
                for h in hs {
                    let _ = h.join();
                }
            }
        }
    }
}

/// Send SIGTERM to one process we started.
fn terminate(pid: libc::pid_t) {
    #[allow(unsafe_code)]
    // SAFETY: kill(2) with a pid of a child this module spawned and still
    // owns (not yet reaped), and a valid signal number; no memory is shared.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
}

fn spawn_stress(fault: Fault, level: Intensity, cfg: &CampaignConfig, tmp: &Path) -> Result<Child> {
    let mut c = Command::new("stress-ng");
    let secs = format!("{}", (cfg.inject_s.ceil() as u64) + 5);
    match (fault, level) {
        (Fault::Cpu, l) => {
            c.args(["--cpu", &cfg.cpu_workers.to_string(), "--cpu-load"]);
            c.arg(if l == Intensity::High { "97" } else { "70" });
        }
        (Fault::Memory, l) => {
            c.args(["--vm", "1", "--vm-keep", "--vm-bytes"]);
            c.arg(if l == Intensity::High { "1G" } else { "512M" });
        }
        (Fault::Disk, l) => {
            c.args(["--hdd", if l == Intensity::High { "2" } else { "1" }]);
            c.args(["--hdd-bytes", "128M", "--temp-path"]);
            c.arg(tmp);
        }
    }
    c.args(["--timeout", &secs, "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| NfmonError::Sys {
            what: "spawn stress-ng".into(),
            source: e,
        })
}

fn spawn_builtin(fault: Fault, level: Intensity, cfg: &CampaignConfig, tmp: &Path) -> Injection {
    let stop = Arc::new(AtomicBool::new(false));
    let mut hs = Vec::new();
    match fault {
        Fault::Cpu => {
            let duty = if level == Intensity::High { 0.97 } else { 0.70 };
            for _ in 0..cfg.cpu_workers.max(1) {
                let stop = stop.clone();
                hs.push(std::thread::spawn(move || {
                    let period = Duration::from_millis(10);
                    let mut x = 1u64;
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        while t.elapsed() < period.mul_f64(duty) {
                            x = std::hint::black_box(
                                x.wrapping_mul(6364136223846793005).wrapping_add(1),
                            );
                        }
                        std::thread::sleep(period.mul_f64(1.0 - duty));
                    }
                }));
            }
        }
        Fault::Memory => {
            let cap: usize = if level == Intensity::High {
                1 << 30
            } else {
                512 << 20
            };
            let stop = stop.clone();
            hs.push(std::thread::spawn(move || {
                let mut leak: Vec<Vec<u8>> = Vec::new();
                let mut held = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    if held < cap {
                        let chunk = vec![1u8; 16 << 20]; // touched: vec! writes every byte
                        held += chunk.len();
                        leak.push(chunk);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                drop(leak);
            }));
        }
        Fault::Disk => {
            let writers = if level == Intensity::High { 2 } else { 1 };
            for w in 0..writers {
                let stop = stop.clone();
                let path = tmp.join(format!("nfmon-disk-{w}.bin"));
                hs.push(std::thread::spawn(move || {
                    let buf = vec![0x5au8; 4 << 20];
                    let Ok(mut f) = std::fs::File::create(&path) else {
                        return;
                    };
                    let mut written = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        if f.write_all(&buf).is_err() || f.sync_data().is_err() {
                            break;
                        }
                        written += buf.len();
                        if written >= 128 << 20 {
                            written = 0;
                            let _ = f.set_len(0);
                            use std::io::Seek;
                            let _ = f.seek(std::io::SeekFrom::Start(0));
                        }
                    }
                    let _ = std::fs::remove_file(&path);
                }));
            }
        }
    }
    Injection::Threads(stop, hs)
}

/// Run a campaign; writes `rows.jsonl` and `campaign.json` into `out_dir`.
/// `progress` is called with a line per run.
pub fn run(cfg: &CampaignConfig, mut progress: impl FnMut(&str)) -> Result<CampaignSummary> {
    std::fs::create_dir_all(&cfg.out_dir).map_err(|e| NfmonError::io(&cfg.out_dir, e))?;
    let tmp = cfg.out_dir.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| NfmonError::io(&tmp, e))?;
    let stress = cfg.use_stress_ng && stress_ng_available();
    let injector = if stress { "stress-ng" } else { "built-in" }.to_string();
    let mut plan = Vec::new();
    for rep in 0..cfg.repeats {
        for &f in &cfg.faults {
            for &l in &cfg.intensities {
                plan.push((rep, f, l));
            }
        }
    }
    let interval = Duration::from_millis(cfg.interval_ms.max(50));
    let mut all_rows: Vec<Row> = Vec::new();
    let mut runs = Vec::new();
    for (i, (rep, fault, level)) in plan.into_iter().enumerate() {
        let run_id = format!("run{i:02}-{}-{}-r{rep}", fault.name(), level.name());
        let counters = tmp.join(format!("{run_id}.counters"));
        let mut child = None;
        let pid = match cfg.pid {
            Some(p) => p,
            None => {
                let (prog, args) = cfg.standin_cmd.split_first().ok_or_else(|| {
                    NfmonError::Data("campaign: no stand-in command and no --pid".into())
                })?;
                let c = Command::new(prog)
                    .args(args)
                    .arg("--counters")
                    .arg(&counters)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| NfmonError::Sys {
                        what: format!("spawn stand-in {prog}"),
                        source: e,
                    })?;
                let id = c.id();
                child = Some(c);
                std::thread::sleep(Duration::from_millis(300));
                id
            }
        };
        let mut sampler = Sampler::new(pid, run_id.clone(), SamplerConfig::default())?;
        if cfg.pid.is_none() {
            sampler = sampler.with_poll_counters(counters.clone());
        }
        let t_inject = cfg.baseline_s;
        let t_recover = cfg.baseline_s + cfg.inject_s;
        let t_end = t_recover + cfg.recovery_s;
        let start = Instant::now();
        let mut injection: Option<Injection> = None;
        let mut injected = false;
        let mut next = start + interval;
        let mut n_rows = 0usize;
        let mut result = Ok(());
        while start.elapsed().as_secs_f64() < t_end {
            let el = start.elapsed().as_secs_f64();
            if !injected && el >= t_inject {
                injection = Some(if stress {
                    Injection::Process(spawn_stress(fault, level, cfg, &tmp)?)
                } else {
                    spawn_builtin(fault, level, cfg, &tmp)
                });
                injected = true;
            }
            if el >= t_recover {
                if let Some(inj) = injection.take() {
                    inj.stop();
                }
            }
            let now = Instant::now();
            if next > now {
                std::thread::sleep((next - now).min(Duration::from_millis(50)));
                continue;
            }
            next += interval;
            let mut row = match sampler.sample() {
                Ok(r) => r,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            let t1 = start.elapsed().as_secs_f64();
            let t0 = t1 - row.interval_s.unwrap_or(0.0);
            let phase = |t: f64| {
                if t >= t_inject && t < t_recover {
                    fault.name()
                } else {
                    "normal"
                }
            };
            if phase(t0) != phase(t1) {
                continue; // straddles a boundary
            }
            row.label = Some(phase(t1).to_string());
            row.t_s = t1;
            all_rows.push(row);
            n_rows += 1;
        }
        if let Some(inj) = injection.take() {
            inj.stop();
        }
        if let Some(mut c) = child {
            terminate(c.id() as libc::pid_t);
            let _ = c.wait();
        }
        result?;
        progress(&format!("{run_id}: {n_rows} rows ({injector})"));
        runs.push((run_id, fault, level, n_rows));
    }
    let rows_path = cfg.out_dir.join("rows.jsonl");
    write_jsonl(&rows_path, &all_rows)?;
    let summary = CampaignSummary {
        config: cfg.clone(),
        injector,
        runs,
        rows: all_rows.len(),
        rows_path,
    };
    let meta = cfg.out_dir.join("campaign.json");
    std::fs::write(
        &meta,
        serde_json::to_string_pretty(&summary).map_err(|e| NfmonError::Json {
            path: meta.clone(),
            source: e,
        })?,
    )
    .map_err(|e| NfmonError::io(&meta, e))?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(summary)
}
