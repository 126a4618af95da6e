//! `microscope diagnose trace.bin [--victims p99,lost] [--relations out.jsonl]
//! [--threshold 1%] [--format table|json|csv] [--out FILE]`: reconstruct,
//! diagnose every victim, aggregate the causal relations.

use anyhow::{bail, Context};
use diagnose::progress::TtyProgress;
use diagnose::{parse_duration_ns, parse_victims, Config, DagOrigin, Diagnosis, RateOrigin};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use tracefile::ReadMode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

#[derive(clap::Args)]
pub struct Args {
    /// Trace file (from `microscope dump` or `microscope simulate`).
    pub trace: PathBuf,
    /// Victim rules, comma- or |-separated: p99, p99.9, latency>300us,
    /// throughput<1000pps@10ms, lost.
    #[arg(long, default_value = "p99,lost")]
    pub victims: String,
    /// Diagnose victims at every NF on their path, not only where their
    /// queuing delay is abnormal (beyond one std dev of recent history).
    #[arg(long)]
    pub all_nfs: bool,
    /// Standard deviations above the recent mean that count as abnormal.
    #[arg(long, default_value_t = 1.0)]
    pub sigma: f64,
    /// Save the causal relations: JSON lines, or the compact binary form
    /// when the name ends in `.bin`.
    #[arg(long)]
    pub relations: Option<PathBuf>,
    /// Aggregation threshold: fraction of the total score (0.01 or 1%).
    #[arg(long, default_value = "1%")]
    pub threshold: String,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write the report here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Largest upstream→downstream delay considered when matching packets.
    #[arg(long, default_value = "20ms")]
    pub window: String,
    /// Peak rate override, NAME=PPS (NF instance or type); repeatable.
    #[arg(long = "peak-rate", value_name = "NAME=PPS")]
    pub peak_rates: Vec<String>,
    /// Infer the DAG from IPIDs even when the trace has a topology.
    #[arg(long)]
    pub infer_dag: bool,
    /// Recursion depth cap.
    #[arg(long, default_value_t = 8)]
    pub max_depth: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Read a damaged trace's valid chunks (exit status 1 if any skipped).
    #[arg(long)]
    pub salvage: bool,
    /// Recorded NF samples (`microscope nf record --ring-dir RINGS --out DIR`
    /// next to the dumper; a .jsonl file or a directory): annotate NF-local
    /// culprits with the nfmon anomaly verdict.
    #[arg(long, requires = "nf_model")]
    pub nf_samples: Option<PathBuf>,
    /// Anomaly model (`microscope nf train --kind anomaly`), or a directory
    /// of per-NF models.
    #[arg(long, requires = "nf_samples")]
    pub nf_model: Option<PathBuf>,
}

pub(crate) fn config_from(args: &Args) -> anyhow::Result<Config> {
    let mut cfg = Config {
        victims: parse_victims(&args.victims).map_err(anyhow::Error::msg)?,
        require_abnormal: !args.all_nfs,
        abnormal_sigma: args.sigma,
        match_window_ns: parse_duration_ns(&args.window).map_err(anyhow::Error::msg)?,
        infer_dag: args.infer_dag,
        max_depth: args.max_depth,
        threads: args.threads,
        ..Config::default()
    };
    for p in &args.peak_rates {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("--peak-rate {p:?}: expected NAME=PPS"))?;
        let r = diagnose::config::parse_rate_pps(v).map_err(anyhow::Error::msg)?;
        cfg.peak_rates.push((k.to_string(), r));
    }
    Ok(cfg)
}

/// Human summary of reconstruction, rates and victims (stderr).
pub(crate) fn summary(d: &Diagnosis) -> String {
    let mut s = String::new();
    let r = &d.reconstruction;
    let origin = match &d.dag.origin {
        DagOrigin::Topology => "trace topology".to_string(),
        DagOrigin::Inferred { .. } => "inferred from IPIDs".to_string(),
    };
    s += &format!(
        "DAG: {} nodes, {} edges ({origin})\n",
        d.dag.nodes.len(),
        d.dag.edges.len()
    );
    if matches!(d.dag.origin, DagOrigin::Inferred { .. }) {
        for e in &d.dag.edges {
            s += &format!(
                "  {} -> {}  confidence {:.2} (matched {:.1}%)\n",
                d.dag.nodes[e.from].name,
                d.dag.nodes[e.to].name,
                e.confidence,
                e.matched_fraction * 100.0
            );
        }
    }
    let l = &r.links;
    s += &format!(
        "reconstruction: {} observations, {} packets ({} from a source, {} with a 5-tuple), {} paths\n",
        r.observations, r.packets, r.from_source, r.with_tuple, r.paths
    );
    s += &format!(
        "  links: {} rx mapped of {} ({} anchors, {} resolved by order, {} ambiguous, {} out-of-order anchors, {} unmatched), max delay {:.1} us\n",
        l.down - l.unmatched_down,
        l.down,
        l.anchors,
        l.resolved_by_order,
        l.ambiguous,
        l.anchors_out_of_order,
        l.unmatched_down,
        l.max_delay_ns as f64 / 1e3
    );
    s += &format!(
        "  inside NFs: {} tx mapped of {} ({} unmatched), conflicts {}\n",
        r.inside.down - r.inside.unmatched_down,
        r.inside.down,
        r.inside.unmatched_down,
        r.conflicts
    );
    for p in &d.peak_rates {
        match &p.origin {
            RateOrigin::Estimated { nf_type, samples } => {
                s += &format!(
                    "  r_f {}: {:.3} Mpps estimated (type {nf_type}, {samples} full-batch gaps)\n",
                    p.node,
                    p.pps / 1e6
                )
            }
            RateOrigin::Fallback => {
                s += &format!(
                    "  r_f {}: {:.3} Mpps (no full-batch run: busiest 1 ms, a lower bound)\n",
                    p.node,
                    p.pps / 1e6
                )
            }
            _ => {}
        }
    }
    let v = &d.victim_stats;
    s += &format!(
        "victims: {} slow (threshold {}), {} lost, {} unobserved; {} (victim, NF) diagnosed, {} skipped as locally normal\n",
        v.slow_packets,
        v.latency_threshold_ns
            .map_or("-".to_string(), |t| format!("{:.1} us", t / 1e3)),
        v.lost_packets,
        v.unobserved,
        v.targets,
        v.skipped_normal
    );
    s += &format!(
        "relations: {}; recursion cap {} reached by {} victims; deepest culprit at depth {}\n",
        d.relations.len(),
        d.engine.max_depth,
        d.engine.truncated_victims,
        d.engine.deepest_culprit
    );
    s
}

pub(crate) fn write_relations(
    path: &PathBuf,
    rels: &[diagnose::CausalRelation],
) -> anyhow::Result<()> {
    let f =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let w = std::io::BufWriter::new(f);
    if path.extension().is_some_and(|e| e == "bin") {
        diagnose::write_bin(w, rels)
    } else {
        diagnose::write_jsonl(w, rels)
    }
    .with_context(|| format!("cannot write {}", path.display()))
}

/// Aggregates causal relations into the operator's report and writes it.
/// The relation count and the culprit→victim gap percentiles are those of
/// the causal relations (paper §6.4 / Fig. 15), not of the per-flow
/// expansion the aggregation runs on. The causal relations are consumed:
/// they are freed once expanded, before the aggregation allocates its own
/// tables.
pub(crate) fn emit_report(
    rels: Vec<diagnose::CausalRelation>,
    threshold: &str,
    format: Format,
    out: Option<&PathBuf>,
) -> anyhow::Result<()> {
    let th = autofocus::parse_threshold(threshold)?;
    let cfg = autofocus::Config {
        threshold: th,
        ..autofocus::Config::default()
    };
    let count = rels.len();
    let gaps = diagnose::gap_summary(&rels);
    let (locations, flows) = diagnose::output::to_flow_relations(&rels);
    drop(rels);
    let mut report = autofocus::aggregate_flows(&locations, &flows, &cfg);
    drop(flows);
    report.relations = count;
    report.gaps = gaps;
    let text = match format {
        Format::Table => report.render_table(120),
        Format::Json => report.to_json(),
        Format::Csv => report.to_csv(),
    };
    match out {
        Some(p) => std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display())),
        None => {
            let mut o = std::io::stdout().lock();
            o.write_all(text.as_bytes())?;
            if !text.ends_with('\n') {
                o.write_all(b"\n")?;
            }
            o.flush()?;
            Ok(())
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let cfg = config_from(&args)?;
    let mode = if args.salvage {
        ReadMode::Salvage
    } else {
        ReadMode::Strict
    };
    let progress = TtyProgress::new();
    // Streams the file straight into the engine's index: the in-memory
    // trace (a Vec per batch record) is never built.
    let (mut d, report) = diagnose::run_path_with_progress(&args.trace, mode, &cfg, &|s, a, b| {
        progress.update(s, a, b)
    })
    .with_context(|| format!("cannot diagnose {}", args.trace.display()))?;
    if report.streams == 0 {
        progress.finish();
        bail!("{}: the trace has no streams", args.trace.display());
    }
    let skipped = report.skipped.len();
    progress.finish();
    eprint!("{}", summary(&d));
    if let Some(p) = &args.relations {
        write_relations(p, &d.relations)?;
        eprintln!("relations written to {}", p.display());
    }
    // Only the relations are needed from here on: free the reconstruction
    // (GBs at paper scale) before the aggregation allocates its own tables.
    let relations = std::mem::take(&mut d.relations);
    drop(d);
    if let (Some(s), Some(m)) = (&args.nf_samples, &args.nf_model) {
        annotate_culprits(&relations, s, m)?;
    }
    emit_report(relations, &args.threshold, args.format, args.out.as_ref())?;
    if skipped > 0 {
        eprintln!("warning: {skipped} damaged region(s) of the trace were skipped");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints each NF-local culprit episode with what the NF's own anomaly
/// detector said about that time (docs/nfmon.md §5). Samples count only from
/// the same host and run as the trace: both are CLOCK_MONOTONIC.
fn annotate_culprits(
    relations: &[diagnose::CausalRelation],
    samples: &std::path::Path,
    model: &std::path::Path,
) -> anyhow::Result<()> {
    let a = nfmon::annotate::Annotator::open(samples, model)
        .with_context(|| format!("NF annotation: {} / {}", samples.display(), model.display()))?;
    let culprits: Vec<(&str, i64, i64, f64)> = relations
        .iter()
        .filter_map(|r| match &r.culprit {
            diagnose::Location::Nf(n) => {
                Some((n.as_str(), r.culprit_first_ns, r.culprit_last_ns, r.score))
            }
            diagnose::Location::Source(_) => None,
        })
        .collect();
    let origin = culprits.iter().map(|c| c.1).min().unwrap_or(0);
    let lines = a.describe_culprits(culprits, origin);
    eprintln!("NF-local culprits (ms from the first one), with the NF anomaly detector's verdict:");
    for line in lines.iter().take(20) {
        eprintln!("  {line}");
    }
    if lines.len() > 20 {
        eprintln!("  … {} more episodes", lines.len() - 20);
    }
    Ok(())
}
