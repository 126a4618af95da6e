//! `microscope nf …` — black-box NF estimators from CPU and host metrics
//! (the `nfmon` crate): probe, sample, import, train, eval, detect, campaign,
//! chain-campaign (DPDK testbed faults), annotate (verdict for an NF and time).

use anyhow::{bail, Context};
use nfmon::annotate::Annotator;
use nfmon::campaign::{self, CampaignConfig, Fault, Intensity};
use nfmon::chain_campaign::{self, ChainCampaignConfig, ChainFault};
use nfmon::dataset::{self, Series, VppProfile};
use nfmon::model::ModelFile;
use nfmon::sampler::{Sampler, SamplerConfig};
use nfmon::schema::{read_jsonl, tiers_label, tiers_of, write_jsonl, Row, Tier};
use nfmon::train::{self, Kind, TrainOpts};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Report which feature tiers exist for a process, and why others do not.
    Probe {
        /// Process to probe (default: this process).
        #[arg(long)]
        pid: Option<u32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sample a process into schema rows (JSON Lines).
    Sample {
        /// Process id.
        #[arg(long)]
        pid: u32,
        /// Name for the rows' `source`.
        #[arg(long)]
        name: Option<String>,
        /// Interval, ms.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// Number of rows.
        #[arg(long, default_value_t = 10)]
        count: usize,
        /// Label to attach to every row.
        #[arg(long)]
        label: Option<String>,
        /// Poll-counter file of a busy-polling NF (shim tier).
        #[arg(long)]
        poll_counters: Option<PathBuf>,
        /// Shim ring directory: the process's rings' header counters (shim tier).
        #[arg(long)]
        ring_dir: Option<PathBuf>,
        /// Output file (default: stdout).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Import `perf stat -x, [-I ms]` CSV or the VPP dataset layout into rows.
    Import {
        /// Input files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Label to attach to every row.
        #[arg(long)]
        label: Option<String>,
        /// Output JSON Lines (default: print a summary only).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Train a model and save it as a JSON model file.
    Train {
        /// utilization | classifier | onoff | regime | anomaly
        #[arg(long)]
        kind: String,
        /// Train on the VPP dataset directory (`--vpp` alone: the shared-data default).
        #[arg(long, num_args = 0..=1, default_missing_value = "auto")]
        vpp: Option<PathBuf>,
        /// VPP campaign: out | nm.
        #[arg(long, default_value = "nm")]
        profile: String,
        /// Or train on labelled rows (JSON Lines; label = class, or a number
        /// for utilization).
        #[arg(long)]
        rows: Vec<PathBuf>,
        /// Restrict features to these tiers (hardware,software,process,cgroup,host,shim).
        #[arg(long, value_delimiter = ',')]
        tiers: Vec<String>,
        /// Explicit feature list.
        #[arg(long, value_delimiter = ',')]
        features: Vec<String>,
        /// Events per utilization estimator (1–3).
        #[arg(long, default_value_t = 2)]
        events: usize,
        /// OFF class (onoff).
        #[arg(long, default_value = "idle")]
        off_class: String,
        /// Regime classes (regime).
        #[arg(long, value_delimiter = ',')]
        regime: Vec<String>,
        /// Normal class (anomaly).
        #[arg(long, default_value = "normal")]
        normal_class: String,
        /// NF name recorded in the model.
        #[arg(long)]
        nf: Option<String>,
        /// Add deviations from the median of the previous N rows of the same
        /// run as features (`<metric>~dev`; recorded in the model).
        #[arg(long)]
        baseline_window: Option<usize>,
        /// Add each metric's mean over the last N rows of the same run as
        /// features (`<metric>~avg`; before deviations; recorded in the model).
        #[arg(long)]
        smooth: Option<usize>,
        /// Output model file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Evaluate estimators: the full VPP evaluation, or anomaly detection on
    /// a campaign's rows (folds by run).
    Eval {
        /// VPP dataset directory (`--vpp` alone: the shared-data default).
        #[arg(long, num_args = 0..=1, default_missing_value = "auto")]
        vpp: Option<PathBuf>,
        /// Campaign rows (rows.jsonl) for anomaly detection.
        #[arg(long)]
        campaign: Option<PathBuf>,
        /// Load-sweep rows (from `nf sweep`) for state and utilization.
        #[arg(long)]
        sweep: Option<PathBuf>,
        /// Tiers for the anomaly features (default: all present).
        #[arg(long, value_delimiter = ',')]
        tiers: Vec<String>,
        /// Folds (by run) for anomaly evaluation.
        #[arg(long, default_value_t = 4)]
        folds: usize,
        /// Add each metric's deviation from the median of the previous N rows
        /// of the same run (`<metric>~dev`) to the anomaly features.
        #[arg(long)]
        baseline_window: Option<usize>,
        /// Add each metric's mean over the last N rows of the same run
        /// (`<metric>~avg`, before deviations) to the anomaly features.
        #[arg(long)]
        smooth: Option<usize>,
        /// Sampled 3-event subsets (VPP utilization).
        #[arg(long, default_value_t = 500)]
        sample3: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Apply a model to rows (a file, or live samples of a process).
    Detect {
        /// Model file.
        #[arg(long)]
        model: PathBuf,
        /// Rows to score (JSON Lines, or a perf/VPP CSV).
        #[arg(long)]
        rows: Option<PathBuf>,
        /// Or sample this process live.
        #[arg(long)]
        pid: Option<u32>,
        /// Live interval, ms.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// Live samples.
        #[arg(long, default_value_t = 5)]
        count: usize,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Run a fault-injection campaign (CPU hog, memory leak, disk storm)
    /// against a busy-polling stand-in NF (or --pid) and write labelled rows.
    Campaign {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Faults (cpu,memory,disk).
        #[arg(long, value_delimiter = ',', default_value = "cpu,memory,disk")]
        faults: Vec<String>,
        /// Intensities (medium,high).
        #[arg(long, value_delimiter = ',', default_value = "medium,high")]
        intensities: Vec<String>,
        /// Runs per fault × intensity.
        #[arg(long, default_value_t = 2)]
        repeats: usize,
        /// Baseline seconds.
        #[arg(long, default_value_t = 8.0)]
        baseline: f64,
        /// Injection seconds.
        #[arg(long, default_value_t = 8.0)]
        inject: f64,
        /// Recovery seconds.
        #[arg(long, default_value_t = 4.0)]
        recovery: f64,
        /// Sampling interval, ms.
        #[arg(long, default_value_t = 500)]
        interval_ms: u64,
        /// Stand-in offered load, packets/s.
        #[arg(long, default_value_t = 500_000.0)]
        rate_pps: f64,
        /// Observe this process instead of spawning the stand-in.
        #[arg(long)]
        pid: Option<u32>,
        /// CPU hog workers.
        #[arg(long, default_value_t = 2)]
        cpu_workers: usize,
        /// Use built-in injectors even when stress-ng is installed.
        #[arg(long)]
        builtin: bool,
    },
    /// Fault campaign on the real DPDK chain (`ms-testbed`): packet loss and
    /// added per-packet latency injected inside an NF, every chain NF
    /// sampled (incl. its shim rings); labels from the run's truth.json.
    ChainCampaign {
        /// Output directory (rows.jsonl, chain-campaign.json, runs/).
        #[arg(long)]
        out: PathBuf,
        /// The ms-testbed binary (default: next to this one).
        #[arg(long)]
        testbed: Option<PathBuf>,
        /// Topology (`small` or a TOML file).
        #[arg(long, default_value = "small")]
        topology: String,
        /// Faults (loss,delay).
        #[arg(long, value_delimiter = ',', default_value = "loss,delay")]
        faults: Vec<String>,
        /// Intensities (medium,high).
        #[arg(long, value_delimiter = ',', default_value = "medium,high")]
        intensities: Vec<String>,
        /// NFs to inject into (rotated over runs).
        #[arg(long, value_delimiter = ',', default_value = "fw1,nat1,vpn1")]
        targets: Vec<String>,
        /// Runs per fault × intensity.
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Seconds of traffic before the injection.
        #[arg(long, default_value_t = 5.0)]
        baseline: f64,
        /// Injection seconds.
        #[arg(long, default_value_t = 5.0)]
        inject: f64,
        /// Seconds of traffic after it.
        #[arg(long, default_value_t = 3.0)]
        recovery: f64,
        /// Generator rate, packets/s.
        #[arg(long, default_value_t = 50_000.0)]
        rate_pps: f64,
        /// Sampling interval, ms.
        #[arg(long, default_value_t = 500)]
        interval_ms: u64,
        /// Loss fraction at medium,high intensity.
        #[arg(long, value_delimiter = ',', default_value = "0.2,0.6")]
        loss_p: Vec<f64>,
        /// Per-packet delay at medium,high intensity (e.g. 2us,10us).
        #[arg(long, value_delimiter = ',', default_value = "2us,10us")]
        delay: Vec<String>,
        /// Also record each run's trace (runs/RUN/trace.bin; this binary is
        /// the dumper). Costs CPU; off by default.
        #[arg(long)]
        dump: bool,
    },
    /// Record samples of every NF of a shim ring directory (and/or given
    /// pids) into OUT/<nf>.jsonl while a trace is recorded, for `nf
    /// annotate` / `diagnose --nf-samples`.
    Record {
        /// Shim ring directory (the NFs' MICROSCOPE_RING_DIR).
        #[arg(long)]
        ring_dir: Option<PathBuf>,
        /// More NFs: PID=NAME (repeatable).
        #[arg(long)]
        pid: Vec<String>,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Interval, ms.
        #[arg(long, default_value_t = 500)]
        interval_ms: u64,
        /// Stop after this many intervals (default: when every NF exited).
        #[arg(long)]
        count: Option<usize>,
    },
    /// The anomaly detector's verdict for one NF over a time window
    /// (CLOCK_MONOTONIC ns, the clock of trace times), from recorded samples.
    Annotate {
        /// Sample rows: a .jsonl file or a directory of them.
        #[arg(long)]
        samples: PathBuf,
        /// Anomaly model file, or a directory of them.
        #[arg(long)]
        model: PathBuf,
        /// NF instance name.
        #[arg(long)]
        nf: String,
        /// Window start, CLOCK_MONOTONIC ns.
        #[arg(long)]
        from_ns: u64,
        /// Window end, CLOCK_MONOTONIC ns.
        #[arg(long)]
        to_ns: u64,
        /// Print the verdict as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sweep offered load (idle included) through the busy-polling stand-in,
    /// sampling every tier including its poll counters (shim tier).
    Sweep {
        /// Output rows (JSON Lines).
        #[arg(short, long)]
        output: PathBuf,
        /// Offered loads, packets/s (0 = idle).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "0,50000,100000,200000,400000"
        )]
        rates: Vec<f64>,
        /// Seconds per step.
        #[arg(long, default_value_t = 6.0)]
        step: f64,
        /// Repeats (shuffled order each).
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Sampling interval, ms.
        #[arg(long, default_value_t = 500)]
        interval_ms: u64,
    },
    /// The busy-polling stand-in NF used by campaigns (runs until killed).
    #[command(hide = true)]
    Standin {
        /// Schedule `sec:pps,…` (e.g. `0:0,10:500000`).
        #[arg(long, default_value = "0:500000")]
        schedule: String,
        /// Counter file.
        #[arg(long)]
        counters: Option<PathBuf>,
        /// Stop after seconds.
        #[arg(long)]
        seconds: Option<f64>,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.cmd {
        Cmd::Probe { pid, json } => {
            let r = nfmon::probe::probe(pid.unwrap_or_else(std::process::id));
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", r.render());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Sample {
            pid,
            name,
            interval_ms,
            count,
            label,
            poll_counters,
            ring_dir,
            output,
        } => {
            let name = name
                .or_else(|| nfmon::procfs::comm(pid))
                .unwrap_or_else(|| pid.to_string());
            let mut s = Sampler::new(pid, name, SamplerConfig::default())
                .with_context(|| format!("sampling pid {pid}"))?;
            if let Some(p) = poll_counters {
                s = s.with_poll_counters(p);
            }
            if let Some(d) = ring_dir {
                s = s.with_rings(d);
            }
            if let Some(why) = &s.hw_absent {
                eprintln!("hardware tier absent: {why}");
            }
            let stdout = std::io::stdout();
            let mut err = None;
            let mut rows = s.run(Duration::from_millis(interval_ms), count, |r| {
                if output.is_none() {
                    let mut r = r.clone();
                    r.label = label.clone();
                    let mut out = stdout.lock();
                    if let Err(e) = serde_json::to_writer(&mut out, &r)
                        .map_err(std::io::Error::from)
                        .and_then(|_| writeln!(out))
                    {
                        err = Some(e);
                        return false;
                    }
                }
                true
            })?;
            if let Some(e) = err {
                return Err(e.into());
            }
            if let Some(o) = output {
                rows.iter_mut().for_each(|r| r.label = label.clone());
                write_jsonl(&o, &rows)?;
                eprintln!("{} rows → {}", rows.len(), o.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Import {
            files,
            label,
            output,
        } => {
            let mut all = Vec::new();
            for f in &files {
                let mut rows = nfmon::import::import_file(f)?;
                let names: Vec<String> = rows
                    .iter()
                    .flat_map(|r| r.values.keys().cloned())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let missing: usize = rows
                    .iter()
                    .map(|r| r.values.values().filter(|v| v.is_none()).count())
                    .sum();
                println!(
                    "{}: {} rows, {} metrics (tiers: {}), {} missing values",
                    f.display(),
                    rows.len(),
                    names.len(),
                    tiers_label(&tiers_of(&names)),
                    missing
                );
                if label.is_some() {
                    rows.iter_mut().for_each(|r| r.label = label.clone());
                }
                all.extend(rows);
            }
            if let Some(o) = output {
                write_jsonl(&o, &all)?;
                println!("{} rows → {}", all.len(), o.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Train {
            kind,
            vpp,
            profile,
            rows,
            tiers,
            features,
            events,
            off_class,
            regime,
            normal_class,
            nf,
            baseline_window,
            smooth,
            output,
        } => {
            let k = Kind::parse(&kind).with_context(|| {
                format!("unknown kind {kind:?} (utilization|classifier|onoff|regime|anomaly)")
            })?;
            let (series, trained_on, label) =
                load_training(vpp, &profile, &rows, k, smooth, baseline_window)?;
            let opts = TrainOpts {
                nf,
                features: (!features.is_empty()).then_some(features),
                tiers: parse_tiers(&tiers)?,
                events,
                off_class,
                regime_classes: regime,
                normal_class,
                label,
                trained_on,
                baseline_window,
                smooth_window: smooth,
                ..TrainOpts::default()
            };
            let m = train::train(k, &series, &opts)?;
            m.save(&output)?;
            println!(
                "{kind} model → {} | tier: {} | features: {}",
                output.display(),
                m.tiers,
                m.features.join(", ")
            );
            println!("label: {}", m.label);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Eval {
            vpp,
            campaign,
            sweep,
            tiers,
            folds,
            baseline_window,
            smooth,
            sample3,
            json,
        } => {
            if vpp.is_none() && campaign.is_none() && sweep.is_none() {
                bail!("give --vpp [DIR], --campaign ROWS.jsonl and/or --sweep ROWS.jsonl");
            }
            if let Some(sw) = sweep {
                let rows = read_jsonl(&sw)?;
                let r = nfmon::sweep::evaluate(&rows, sample3)?;
                if json {
                    println!("{}", serde_json::to_string(&r)?);
                } else {
                    println!("data: {}", sw.display());
                    print!("{}", r.render());
                }
            }
            if let Some(v) = vpp {
                let dir = vpp_dir(v)?;
                let cfg = nfmon::vpp::VppEvalConfig {
                    sample3,
                    ..Default::default()
                };
                let r = nfmon::vpp::evaluate(&dir, cfg)?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&r)?);
                } else {
                    println!("data: {}", dir.display());
                    print!("{}", r.render());
                }
            }
            if let Some(c) = campaign {
                let rows = train::prepare_rows(&read_jsonl(&c)?, smooth, baseline_window);
                let series = train::series_from_rows(&rows)?;
                let tiers = parse_tiers(&tiers)?;
                let (scores, feats) = train::eval_anomaly(
                    &series,
                    &tiers,
                    "normal",
                    folds,
                    nfmon::forest::ForestParams::default(),
                )?;
                let tier = tiers_label(&tiers_of(&feats));
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"data": c, "tiers": tier, "features": feats, "scores": scores})
                    );
                } else {
                    println!(
                        "anomaly detection: Random Forest, 10 trees, {folds} folds by run | data: {} | tier: {tier} | {} features",
                        c.display(),
                        feats.len()
                    );
                    println!(
                        "  {:<10} {:>8} {:>8} {:>9} {:>7}",
                        "task", "ROC AUC", "PR AUC", "positives", "rows"
                    );
                    for s in &scores {
                        println!(
                            "  {:<10} {:>8} {:>8} {:>9} {:>7}",
                            s.task,
                            s.roc_auc.map_or("n/a".into(), |v| format!("{v:.3}")),
                            s.pr_auc.map_or("n/a".into(), |v| format!("{v:.3}")),
                            s.positives,
                            s.n_test
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Detect {
            model,
            rows,
            pid,
            interval_ms,
            count,
            json,
        } => {
            let m = ModelFile::load(&model)?;
            eprintln!(
                "model {} | tier: {} | label: {}",
                model.display(),
                m.tiers,
                m.label
            );
            let mut unscored = 0usize;
            let mut emit = |r: &Row| -> anyhow::Result<()> {
                let out = m.apply(r);
                if out.is_none() {
                    unscored += 1;
                }
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"source": r.source, "t_s": r.t_s, "label": r.label, "tier": m.tiers, "output": out})
                    );
                } else {
                    println!(
                        "{} t={:.3}{} → {}",
                        r.source,
                        r.t_s,
                        r.label
                            .as_ref()
                            .map_or(String::new(), |l| format!(" [{l}]")),
                        out.map_or("missing input".to_string(), |o| o.to_string())
                    );
                }
                Ok(())
            };
            match (rows, pid) {
                (Some(f), None) => {
                    let mut rows = if f.extension().is_some_and(|e| e == "jsonl") {
                        read_jsonl(&f)?
                    } else {
                        nfmon::import::import_file(&f)?
                    };
                    rows = m.prepare(&rows);
                    for r in &rows {
                        emit(r)?;
                    }
                }
                (None, Some(p)) => {
                    let name = nfmon::procfs::comm(p).unwrap_or_else(|| p.to_string());
                    let mut s = Sampler::new(p, name, SamplerConfig::default())?;
                    let mut res = Ok(());
                    let mut history: Vec<Row> = Vec::new();
                    s.run(Duration::from_millis(interval_ms), count, |r| {
                        // Models with derived inputs need the recent history.
                        history.push(r.clone());
                        if history.len() > m.history_rows() {
                            history.remove(0);
                        }
                        let p = m.prepare(&history);
                        res = emit(&p[p.len() - 1]);
                        res.is_ok()
                    })?;
                    res?;
                }
                _ => bail!("give exactly one of --rows FILE or --pid PID"),
            }
            if unscored > 0 {
                eprintln!(
                    "{unscored} row(s) lacked an input the model needs (tier {}); not scored",
                    m.tiers
                );
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Campaign {
            out,
            faults,
            intensities,
            repeats,
            baseline,
            inject,
            recovery,
            interval_ms,
            rate_pps,
            pid,
            cpu_workers,
            builtin,
        } => {
            let faults = faults
                .iter()
                .map(|f| Fault::parse(f).with_context(|| format!("unknown fault {f:?}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let intensities = parse_intensities(&intensities)?;
            let exe = std::env::current_exe()?;
            let cfg = CampaignConfig {
                out_dir: out.clone(),
                faults,
                intensities,
                repeats,
                baseline_s: baseline,
                inject_s: inject,
                recovery_s: recovery,
                interval_ms,
                standin_cmd: vec![
                    exe.to_string_lossy().into_owned(),
                    "nf".into(),
                    "standin".into(),
                    "--schedule".into(),
                    format!("0:{rate_pps}"),
                ],
                pid,
                cpu_workers,
                use_stress_ng: !builtin,
            };
            let s = campaign::run(&cfg, |line| eprintln!("{line}"))?;
            println!(
                "campaign: {} runs, {} rows, injector {} → {}",
                s.runs.len(),
                s.rows,
                s.injector,
                s.rows_path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::ChainCampaign {
            out,
            testbed,
            topology,
            faults,
            intensities,
            targets,
            repeats,
            baseline,
            inject,
            recovery,
            rate_pps,
            interval_ms,
            loss_p,
            delay,
            dump,
        } => {
            let faults = faults
                .iter()
                .map(|f| {
                    ChainFault::parse(f)
                        .with_context(|| format!("unknown fault {f:?} (loss, delay)"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let intensities = parse_intensities(&intensities)?;
            let testbed = match testbed {
                Some(t) => t,
                None => std::env::current_exe()?.with_file_name("ms-testbed"),
            };
            if !testbed.exists() {
                bail!(
                    "{} not found: build it (cargo build --release -p dpdk-testbed) or pass --testbed",
                    testbed.display()
                );
            }
            let [lm, lh] = loss_p[..] else {
                bail!("--loss-p takes two fractions: medium,high");
            };
            let [dm, dh] = &delay[..] else {
                bail!("--delay takes two durations: medium,high");
            };
            let dur = |s: &str| {
                collector::units::parse_duration_ns(s, collector::units::BareNumber::Reject)
                    .map_err(anyhow::Error::msg)
            };
            let mut cfg =
                ChainCampaignConfig::new(out, vec![testbed.to_string_lossy().into_owned()]);
            cfg.topology = topology;
            cfg.faults = faults;
            cfg.intensities = intensities;
            cfg.targets = targets;
            cfg.repeats = repeats;
            cfg.baseline_s = baseline;
            cfg.inject_s = inject;
            cfg.recovery_s = recovery;
            cfg.rate_pps = rate_pps;
            cfg.interval_ms = interval_ms;
            cfg.loss_p = (lm, lh);
            cfg.delay_ns = (dur(dm)?, dur(dh)?);
            if dump {
                cfg.dump_with = Some(std::env::current_exe()?);
            }
            let s = chain_campaign::run(&cfg, |line| eprintln!("{line}"))?;
            println!(
                "chain campaign: {} runs, {} rows → {}",
                s.runs.len(),
                s.rows,
                s.rows_path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Record {
            ring_dir,
            pid,
            out,
            interval_ms,
            count,
        } => {
            let pids = pid
                .iter()
                .map(|s| {
                    let (p, n) = s.split_once('=').unwrap_or((s.as_str(), s.as_str()));
                    let p: u32 = p
                        .parse()
                        .with_context(|| format!("--pid {s:?}: expected PID=NAME"))?;
                    Ok((p, n.to_string()))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let cfg = nfmon::record::RecordConfig {
                ring_dir,
                pids,
                out_dir: out.clone(),
                interval: Duration::from_millis(interval_ms),
                count,
                until_gone: count.is_none(),
            };
            let s = nfmon::record::run(&cfg, |l| eprintln!("{l}"))?;
            let total: usize = s.rows.values().sum();
            println!(
                "recorded {total} rows of {} NF(s) over {} intervals → {}",
                s.rows.len(),
                s.intervals,
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Annotate {
            samples,
            model,
            nf,
            from_ns,
            to_ns,
            json,
        } => {
            let a = Annotator::open(&samples, &model)?;
            if a.unaligned > 0 {
                eprintln!(
                    "{} sample row(s) have no CLOCK_MONOTONIC time (mono_ns) and were not used",
                    a.unaligned
                );
            }
            let v = a.verdict(&nf, from_ns, to_ns);
            if json {
                println!(
                    "{}",
                    serde_json::json!({"nf": nf, "from_ns": from_ns, "to_ns": to_ns, "verdict": v})
                );
            } else {
                println!("{nf}: {}", a.describe(&nf, from_ns, to_ns));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Sweep {
            output,
            rates,
            step,
            repeats,
            interval_ms,
        } => {
            let exe = std::env::current_exe()?;
            let cfg = nfmon::sweep::SweepConfig {
                out: output.clone(),
                rates,
                step_s: step,
                repeats,
                interval_ms,
                standin_cmd: vec![
                    exe.to_string_lossy().into_owned(),
                    "nf".into(),
                    "standin".into(),
                ],
                seed: 2026,
            };
            let rows = nfmon::sweep::run(&cfg)?;
            println!("sweep: {} rows → {}", rows.len(), output.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Standin {
            schedule,
            counters,
            seconds,
        } => {
            let cfg = nfmon::standin::StandinConfig {
                schedule: nfmon::standin::parse_schedule(&schedule)?,
                counters,
                duration: seconds.map(Duration::from_secs_f64),
            };
            let c = nfmon::standin::run(&cfg)?;
            eprintln!(
                "stand-in: {} polls, {} empty, {} packets, {} drops",
                c.polls, c.empty, c.packets, c.drops
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn parse_intensities(v: &[String]) -> anyhow::Result<Vec<Intensity>> {
    v.iter()
        .map(|i| match i.as_str() {
            "medium" => Ok(Intensity::Medium),
            "high" => Ok(Intensity::High),
            _ => bail!("unknown intensity {i:?} (medium, high)"),
        })
        .collect()
}

fn parse_tiers(t: &[String]) -> anyhow::Result<Vec<Tier>> {
    t.iter()
        .map(|s| Tier::parse(s).with_context(|| format!("unknown tier {s:?}")))
        .collect()
}

fn vpp_dir(v: PathBuf) -> anyhow::Result<PathBuf> {
    if v.as_os_str() == "auto" {
        dataset::vpp_dir().context(
            "VPP data not found: set MICROSCOPE_SHARED_DATA or pass --vpp DIR (shared/data/vpp-perf-counters)",
        )
    } else {
        Ok(v)
    }
}

fn load_training(
    vpp: Option<PathBuf>,
    profile: &str,
    rows: &[PathBuf],
    kind: Kind,
    smooth: Option<usize>,
    baseline_window: Option<usize>,
) -> anyhow::Result<(Vec<Series>, String, String)> {
    if let Some(v) = vpp {
        if baseline_window.is_some() || smooth.is_some() {
            bail!("--baseline-window and --smooth apply to --rows training only");
        }
        let dir = vpp_dir(v)?;
        let p = match profile {
            "out" => VppProfile::Out,
            "nm" => VppProfile::Nm,
            _ => bail!("--profile must be out or nm"),
        };
        let s = dataset::load_vpp(&dir, p)?;
        let label = match kind {
            Kind::Utilization => dataset::VPP_LABEL_DEFINITION.to_string(),
            _ => format!(
                "classes idle/500mbps/1000mbps/5000mbps/9000mbps; {}",
                dataset::VPP_ONSET_DEFINITION
            ),
        };
        return Ok((
            s,
            format!("VPP {}_* files in {}", p.name(), dir.display()),
            label,
        ));
    }
    if rows.is_empty() {
        bail!("give --vpp [DIR] or --rows FILE...");
    }
    let mut all = Vec::new();
    for f in rows {
        all.extend(read_jsonl(f)?);
    }
    let all = train::prepare_rows(&all, smooth, baseline_window);
    let names: Vec<String> = rows.iter().map(|p| p.display().to_string()).collect();
    let label = match kind {
        Kind::Utilization => "the rows' numeric labels".to_string(),
        Kind::Anomaly => "row labels: normal or the injected fault type".to_string(),
        _ => "the rows' labels".to_string(),
    };
    Ok((train::series_from_rows(&all)?, names.join(", "), label))
}
