//! `microscope simulate`: run the deterministic NF-DAG simulator and write
//! `DIR/trace.bin`, `DIR/truth.json` and `DIR/journeys.bin`.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use testbeds::scenario::{Rate, Scenario, SimDuration};
use testbeds::sim::DirSummary;

#[derive(clap::Args)]
pub struct Args {
    /// Preset (paper-moderate, paper-high, small-chain) or a scenario TOML file.
    #[arg(long, default_value = "paper-moderate")]
    pub scenario: String,
    /// Simulated traffic time, e.g. 5s, 500ms.
    #[arg(long)]
    pub duration: Option<String>,
    /// Source packet rate, e.g. 1.2Mpps, 800kpps.
    #[arg(long)]
    pub rate: Option<String>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Disable injected faults (background perturbations stay on).
    #[arg(long)]
    pub no_faults: bool,
    /// Override any scenario field: --set faults.burst.flows=3 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
}

/// Loads the scenario and applies the command-line overrides.
pub fn build_scenario(
    scenario: &str,
    duration: Option<&str>,
    rate: Option<&str>,
    seed: Option<u64>,
    no_faults: bool,
    set: &[String],
) -> anyhow::Result<Scenario> {
    let mut sc = Scenario::by_name_or_path(scenario)?;
    if let Some(d) = duration {
        sc.duration = SimDuration::parse(d).map_err(anyhow::Error::msg)?;
    }
    if let Some(r) = rate {
        sc.traffic.rate = Rate::parse(r).map_err(anyhow::Error::msg)?;
    }
    if let Some(s) = seed {
        sc.seed = s;
    }
    if no_faults {
        sc.faults.enabled = false;
    }
    let mut pairs = Vec::with_capacity(set.len());
    for kv in set {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--set `{kv}`: expected KEY=VALUE"))?;
        pairs.push((k.trim(), v.trim()));
    }
    if !pairs.is_empty() {
        sc.set_all(pairs)?;
    }
    sc.validate()?;
    Ok(sc)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let sc = build_scenario(
        &args.scenario,
        args.duration.as_deref(),
        args.rate.as_deref(),
        args.seed,
        args.no_faults,
        &args.set,
    )?;
    let t0 = std::time::Instant::now();
    let sum = testbeds::simulate_to_dir(&sc, &args.out)
        .with_context(|| format!("simulating into {}", args.out.display()))?;
    print_summary(&sc, &sum, &args.out, t0.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

/// A human summary of a finished simulation.
pub fn print_summary(sc: &Scenario, sum: &DirSummary, dir: &Path, secs: f64) {
    let t = &sum.truth;
    let st = &t.stats;
    println!(
        "scenario {} seed {}: {} of traffic at {}, {} NF instances",
        sc.name,
        sc.seed,
        sc.duration,
        sc.traffic.rate,
        st.nfs.len()
    );
    println!(
        "packets: {} sent ({} injected), {} delivered, {} lost; baseline latency p50 {:.1} us, p99 {:.1} us",
        st.packets,
        st.injected_packets,
        st.delivered,
        st.lost,
        st.baseline_latency_p50_ns as f64 / 1e3,
        st.baseline_latency_p99_ns as f64 / 1e3
    );
    println!(
        "trace: {} streams, {} batch records, {} anchors, {} packet observations, {} bytes ({:.2} bytes/packet/hook)",
        sum.streams,
        sum.batches,
        sum.anchors,
        sum.observations,
        sum.trace_bytes,
        sum.trace_bytes as f64 / sum.observations.max(1) as f64
    );
    println!(
        "{:<8} {:>10} {:>8} {:>10} {:>6}",
        "nf", "packets", "dropped", "mean batch", "util"
    );
    for n in &st.nfs {
        println!(
            "{:<8} {:>10} {:>8} {:>10.2} {:>5.0}%",
            n.nf,
            n.packets,
            n.dropped,
            n.mean_batch,
            n.utilization * 100.0
        );
    }
    println!(
        "faults injected: {} (background stalls: {}); victim threshold {} = {:.1} us",
        t.faults.len(),
        t.background.len(),
        t.threshold_rule,
        t.threshold_ns as f64 / 1e3
    );
    for f in &t.faults {
        let what = match (&f.nf, f.flows.len()) {
            (Some(nf), 0) => nf.clone(),
            (Some(nf), n) => format!("{nf}, {n} flows"),
            (None, n) => format!("{n} flows"),
        };
        println!(
            "  #{:<3} {:<9} {:<18} {:>9.3} ms .. {:>9.3} ms  {:>6} victims",
            f.id,
            format!("{:?}", f.kind).to_lowercase(),
            what,
            f.start_ns as f64 / 1e6,
            f.end_ns as f64 / 1e6,
            f.victims
        );
    }
    println!("victims labelled: {}", t.victims.len());
    println!(
        "wrote {}/{{trace.bin, truth.json, journeys.bin}} in {:.1} s",
        dir.display(),
        secs
    );
}
