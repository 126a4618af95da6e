//! `microscope top` — a live per-NF view: CPU and host metrics from `/proc`
//! (and perf where available), ring-header counters from the shim's rings
//! (batches/s, polls/s, busy share = 1 − empty polls / polls, records lost),
//! and the verdicts of saved nfmon models (utilization, ON/OFF, anomaly).
//!
//! NFs come from a ring directory (`--ring-dir`, every `*.ring`, grouped by
//! the NF name and producer pid in the ring header) and/or `--pid PID[=NAME]`.
//! Rings are only opened to read their header counters; nothing is consumed.

use anyhow::{bail, Context};
use collector::ring::{Observer, RingCounters, TrustPolicy, RING_SUFFIX};
use nfmon::model::{ModelFile, Output};
use nfmon::sampler::{Sampler, SamplerConfig};
use nfmon::schema::Row;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// Directory of shim rings (`*.ring`).
    #[arg(long)]
    ring_dir: Option<PathBuf>,
    /// Processes to watch, `PID` or `PID=NAME` (repeatable).
    #[arg(long)]
    pid: Vec<String>,
    /// Refresh interval, ms.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Print one refresh and exit (for scripts).
    #[arg(long)]
    once: bool,
    /// Stop after this many refreshes.
    #[arg(long)]
    count: Option<usize>,
    /// JSON lines instead of a table (one object per NF per refresh).
    #[arg(long)]
    json: bool,
    /// Utilization model (nfmon model file).
    #[arg(long)]
    util_model: Option<PathBuf>,
    /// ON/OFF model.
    #[arg(long)]
    onoff_model: Option<PathBuf>,
    /// Anomaly model.
    #[arg(long)]
    anomaly_model: Option<PathBuf>,
}

struct Nf {
    name: String,
    pid: Option<u32>,
    sampler: Option<Sampler>,
    rings: Vec<(PathBuf, Observer)>,
    last: Option<(Instant, Vec<RingCounters>)>,
    note: Option<String>,
    history: Vec<Row>,
}

fn scan_rings(dir: &Path, nfs: &mut BTreeMap<String, Nf>) -> anyhow::Result<()> {
    let trust = TrustPolicy::current_user();
    let rd = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for e in rd.flatten() {
        let p = e.path();
        if !p.to_string_lossy().ends_with(RING_SUFFIX) {
            continue;
        }
        if nfs.values().any(|n| n.rings.iter().any(|(q, _)| q == &p)) {
            continue;
        }
        match Observer::open(&p, &trust) {
            Ok(c) => {
                let id = c.identity().clone();
                let key = format!("{}#{}", id.nf, id.pid);
                let nf = nfs.entry(key).or_insert_with(|| Nf {
                    name: id.nf.clone(),
                    pid: Some(id.pid),
                    sampler: None,
                    rings: Vec::new(),
                    last: None,
                    note: None,
                    history: Vec::new(),
                });
                nf.rings.push((p, c));
            }
            Err(e) => eprintln!("microscope top: skipping ring: {e}"),
        }
    }
    Ok(())
}

fn ring_metrics(nf: &mut Nf, row: &mut Row) {
    if nf.rings.is_empty() {
        return;
    }
    let now = Instant::now();
    // Observer reads the shared header without taking the consumer lock, so
    // `top` never stalls a running dumper. A ring that turned invalid simply
    // shows no ring metrics this refresh.
    let Ok(cur) = nf
        .rings
        .iter()
        .map(|(_, c)| c.counters())
        .collect::<Result<Vec<RingCounters>, _>>()
    else {
        return;
    };
    if let Some((t0, prev)) = &nf.last {
        let dt = now.duration_since(*t0).as_secs_f64().max(1e-9);
        let pairs: Vec<_> = nf
            .rings
            .iter()
            .zip(prev.iter().zip(&cur))
            .map(|((_, c), (a, b))| (c.identity().direction, *a, *b))
            .collect();
        // The same definitions as `nf sample` (models use them as inputs).
        nfmon::sampler::ring_metrics(&pairs, dt, row);
    }
    nf.last = Some((now, cur));
}

fn fmt_opt(v: Option<f64>, scale: f64, prec: usize) -> String {
    v.map_or("-".into(), |x| format!("{:.*}", prec, x * scale))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let load = |p: &Option<PathBuf>| -> anyhow::Result<Option<ModelFile>> {
        p.as_ref()
            .map(|p| ModelFile::load(p).with_context(|| format!("model {}", p.display())))
            .transpose()
    };
    let util = load(&args.util_model)?;
    let onoff = load(&args.onoff_model)?;
    let anomaly = load(&args.anomaly_model)?;
    let mut nfs: BTreeMap<String, Nf> = BTreeMap::new();
    for spec in &args.pid {
        let (pid, name) = match spec.split_once('=') {
            Some((p, n)) => (p, Some(n.to_string())),
            None => (spec.as_str(), None),
        };
        let pid: u32 = pid
            .parse()
            .with_context(|| format!("--pid {spec:?}: not a PID"))?;
        let name = name
            .or_else(|| nfmon::procfs::comm(pid))
            .unwrap_or_else(|| pid.to_string());
        nfs.insert(
            format!("{name}#{pid}"),
            Nf {
                name,
                pid: Some(pid),
                sampler: None,
                rings: Vec::new(),
                last: None,
                note: None,
                history: Vec::new(),
            },
        );
    }
    if let Some(d) = &args.ring_dir {
        scan_rings(d, &mut nfs)?;
    }
    if nfs.is_empty() {
        bail!("nothing to watch: give --ring-dir DIR (shim rings) and/or --pid PID");
    }
    for nf in nfs.values_mut() {
        if let Some(pid) = nf.pid {
            match Sampler::new(pid, nf.name.clone(), SamplerConfig::default()) {
                Ok(s) => nf.sampler = Some(s),
                Err(e) => nf.note = Some(format!("no /proc sampling: {e}")),
            }
        }
        let mut scratch = Row::new(&nf.name, 0.0, None);
        ring_metrics(nf, &mut scratch); // prime the ring counters
    }
    // Models with derived inputs (rolling-baseline deviations, smoothing)
    // need each NF's recent history.
    let keep = [&util, &onoff, &anomaly]
        .iter()
        .filter_map(|m| m.as_ref().map(|m| m.history_rows()))
        .max()
        .unwrap_or(1);
    let interval = Duration::from_millis(args.interval_ms.max(100));
    let refreshes = if args.once {
        1
    } else {
        args.count.unwrap_or(usize::MAX)
    };
    let start = Instant::now();
    let stdout = std::io::stdout();
    for i in 0..refreshes {
        std::thread::sleep(interval);
        if let Some(d) = &args.ring_dir {
            scan_rings(d, &mut nfs)?;
        }
        let mut lines = Vec::new();
        for nf in nfs.values_mut() {
            let mut row = match nf.sampler.as_mut().map(|s| s.sample()) {
                Some(Ok(r)) => r,
                Some(Err(e)) => {
                    nf.note = Some(format!("process gone? {e}"));
                    nf.sampler = None;
                    Row::new(&nf.name, start.elapsed().as_secs_f64(), None)
                }
                None => Row::new(&nf.name, start.elapsed().as_secs_f64(), None),
            };
            ring_metrics(nf, &mut row);
            nf.history.push(row.clone());
            if nf.history.len() > keep {
                nf.history.remove(0);
            }
            let history = &nf.history;
            let score = |m: &ModelFile| m.prepare(history).last().and_then(|r| m.apply(r));
            let u = util.as_ref().and_then(score);
            let o = onoff.as_ref().and_then(score);
            let a = anomaly.as_ref().and_then(score);
            lines.push((
                nf.name.clone(),
                nf.pid,
                nf.rings.len(),
                row,
                u,
                o,
                a,
                nf.note.clone(),
            ));
        }
        let mut out = stdout.lock();
        if args.json {
            for (name, pid, rings, row, u, o, a, note) in &lines {
                let v = serde_json::json!({
                    "refresh": i, "t_s": row.t_s, "nf": name, "pid": pid, "rings": rings,
                    "metrics": row.values,
                    "utilization": u, "utilization_tier": util.as_ref().map(|m| m.tiers.clone()),
                    "onoff": o, "onoff_tier": onoff.as_ref().map(|m| m.tiers.clone()),
                    "anomaly": a, "anomaly_tier": anomaly.as_ref().map(|m| m.tiers.clone()),
                    "note": note,
                });
                writeln!(out, "{v}")?;
            }
        } else {
            if !args.once {
                write!(out, "\x1b[2J\x1b[H")?;
            }
            writeln!(
                out,
                "microscope top — {:.0}s, refresh {} ms{}",
                start.elapsed().as_secs_f64(),
                args.interval_ms,
                if util.is_none() && onoff.is_none() && anomaly.is_none() {
                    " (no models: --util-model/--onoff-model/--anomaly-model)"
                } else {
                    ""
                }
            )?;
            writeln!(
                out,
                "{:<16} {:>7} {:>6} {:>6} {:>8} {:>9} {:>9} {:>6} {:>6} {:>5} {:>7}",
                "NF",
                "PID",
                "CPU%",
                "WAIT%",
                "RSS MB",
                "RX b/s",
                "TX b/s",
                "BUSY%",
                "UTIL",
                "STATE",
                "ANOMALY"
            )?;
            for (name, pid, _rings, row, u, o, a, note) in &lines {
                let cpu = row
                    .get("proc.run_share")
                    .or_else(|| Some(row.get("proc.cpu_user")? + row.get("proc.cpu_system")?));
                let util_s = match u {
                    Some(Output::Utilization { value }) => format!("{value:.0}"),
                    _ => "-".into(),
                };
                let state = match o {
                    Some(Output::OnOff { on, .. }) => if *on { "ON" } else { "OFF" }.to_string(),
                    _ => "-".into(),
                };
                let anom = match a {
                    Some(Output::Anomaly { score, likely, .. }) => {
                        if *score >= 0.5 {
                            format!("{score:.2} {likely}")
                        } else {
                            format!("{score:.2}")
                        }
                    }
                    _ => "-".into(),
                };
                writeln!(
                    out,
                    "{:<16} {:>7} {:>6} {:>6} {:>8} {:>9} {:>9} {:>6} {:>6} {:>5} {:>7}{}",
                    name,
                    pid.map_or("-".into(), |p| p.to_string()),
                    fmt_opt(cpu, 100.0, 0),
                    fmt_opt(row.get("proc.wait_share"), 100.0, 0),
                    fmt_opt(row.get("proc.rss_bytes"), 1.0 / (1 << 20) as f64, 0),
                    fmt_opt(row.get("shim.rx_batches"), 1.0, 0),
                    fmt_opt(row.get("shim.tx_batches"), 1.0, 0),
                    fmt_opt(row.get("shim.busy_share"), 100.0, 0),
                    util_s,
                    state,
                    anom,
                    note.as_ref().map_or(String::new(), |n| format!("  ({n})"))
                )?;
            }
            writeln!(
                out,
                "tiers: CPU/WAIT/RSS = process (/proc); RX/TX batches, BUSY = shim ring headers; model tiers: util {}, state {}, anomaly {}",
                util.as_ref().map_or("-", |m| m.tiers.as_str()),
                onoff.as_ref().map_or("-", |m| m.tiers.as_str()),
                anomaly.as_ref().map_or("-", |m| m.tiers.as_str()),
            )?;
        }
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}
