//! `microscope eval`: simulate, diagnose with Microscope and NetMedic, and
//! report the rank of the injected culprit per labelled victim.

use anyhow::Context;
use eval::report;
use eval::run::{self, Options, Sweep};
use eval::stats::summarize_seeds;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use testbeds::scenario::{Scenario, SimDuration, TrafficKind};

#[derive(clap::Args)]
pub struct Args {
    /// `paper-moderate`, `paper-high`, `small-chain` or a scenario file.
    #[arg(long, default_value = "paper-moderate")]
    pub scenario: String,
    /// Seed of the (first) run; default: the scenario's.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run this many seeds (seed, seed+1, ...) and report mean and minimum.
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// Simulated traffic duration, e.g. `5s`, `500ms`.
    #[arg(long)]
    pub duration: Option<String>,
    /// Print the accuracy figures as JSON.
    #[arg(long)]
    pub json: bool,
    /// Sweep one parameter (paper §6.3): burst-size, interrupt-length, hops,
    /// netmedic-window (NetMedic window 1/5/10/50/100 ms, paper Fig. 13).
    #[arg(long)]
    pub sweep: Option<String>,
    /// Replay this pcap as the traffic (instead of the synthetic model).
    #[arg(long)]
    pub pcap: Option<PathBuf>,
    /// Scenario overrides, `key=value` (e.g. `faults.burst.flows=3`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// NetMedic window, e.g. `10ms`.
    #[arg(long, default_value = "10ms")]
    pub netmedic_window: String,
    /// NetMedic's NF state variables: `all` (input, rx, tx, queue, full
    /// share, loss) or `rates` (input, rx, tx: the paper's setting).
    #[arg(long, default_value = "all")]
    pub netmedic_variables: String,
    /// Diagnose victims only at NFs where their queuing delay is abnormal
    /// (the engine's default); without it the engine diagnoses every
    /// labelled victim at every NF on its path, so each one is scored.
    #[arg(long)]
    pub abnormal_only: bool,
    /// Worker threads for the Microscope engine.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also write every victim's outcome (ranks, what ranked first) as JSON.
    #[arg(long)]
    pub victims_out: Option<PathBuf>,
}

fn scenario(args: &Args) -> anyhow::Result<Scenario> {
    let mut sc = Scenario::by_name_or_path(&args.scenario)?;
    if let Some(s) = args.seed {
        sc.seed = s;
    }
    if let Some(d) = &args.duration {
        sc.duration = SimDuration::parse(d).map_err(anyhow::Error::msg)?;
    }
    if let Some(p) = &args.pcap {
        sc.traffic.kind = TrafficKind::Pcap;
        sc.traffic.pcap = Some(p.clone());
    }
    for kv in &args.set {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--set {kv:?}: expected KEY=VALUE"))?;
        sc.set(k.trim(), v.trim())?;
    }
    Ok(sc)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let sc = scenario(&args)?;
    let mut opts = Options::default();
    opts.netmedic.window_ns = SimDuration::parse(&args.netmedic_window)
        .map_err(anyhow::Error::msg)?
        .ns();
    opts.diagnose.threads = args.threads;
    opts.diagnose.require_abnormal = args.abnormal_only;
    opts.netmedic.nf_variables = match args.netmedic_variables.as_str() {
        "all" => netmedic::NfVariables::All,
        "rates" => netmedic::NfVariables::Rates,
        other => anyhow::bail!("--netmedic-variables {other:?}: expected all or rates"),
    };
    let mut out = std::io::stdout().lock();

    if let Some(sw) = &args.sweep {
        let sweep: Sweep = sw.parse().map_err(anyhow::Error::msg)?;
        let points = run::sweep(&sc, sweep, &opts)?;
        if args.json {
            writeln!(out, "{}", serde_json::to_string_pretty(&points)?)?;
        } else {
            write!(out, "{}", report::sweep_table(sweep, &points))?;
        }
        return Ok(ExitCode::SUCCESS);
    }

    if args.seeds == 0 {
        anyhow::bail!("--seeds must be at least 1");
    }
    let seeds: Vec<u64> = (0..args.seeds).map(|k| sc.seed + k).collect();
    let mut results = Vec::new();
    for &seed in &seeds {
        let mut s = sc.clone();
        s.seed = seed;
        let r = run::evaluate(&s, &opts).with_context(|| format!("seed {seed}"))?;
        if !args.json {
            writeln!(out, "{}", report::render_text(&r))?;
        }
        results.push(r);
    }
    if let Some(p) = &args.victims_out {
        let all: Vec<_> = results.iter().map(|r| (&r.seed, &r.victims)).collect();
        std::fs::write(p, serde_json::to_vec(&all)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if results.len() == 1 {
        if args.json {
            let r = &results[0];
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&report::to_json(&r.microscope, &r.netmedic))?
            )?;
        }
    } else {
        let ms: Vec<_> = results.iter().map(|r| r.microscope).collect();
        let nm: Vec<_> = results.iter().map(|r| r.netmedic).collect();
        let (ms_s, nm_s) = (summarize_seeds(&ms), summarize_seeds(&nm));
        if args.json {
            let per_seed: Vec<_> = results
                .iter()
                .map(|r| {
                    serde_json::json!({"seed": r.seed, "result": report::to_json(&r.microscope, &r.netmedic)})
                })
                .collect();
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "seeds": per_seed,
                    "summary": {"microscope": ms_s, "netmedic": nm_s},
                }))?
            )?;
        } else {
            writeln!(out, "over {} seeds {:?}:", seeds.len(), seeds)?;
            write!(out, "{}", report::seeds_table(&ms_s, &nm_s))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
