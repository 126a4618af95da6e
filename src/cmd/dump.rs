//! `microscope dump`: drain shared-memory rings into a trace file until
//! SIGINT/SIGTERM, then print throughput, records and per-stream loss.

use collector::ring::TrustPolicy;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Directory holding the NFs' `*.ring` files; polled for new ones.
    #[arg(long)]
    rings: PathBuf,
    /// Trace file to write. An existing trace is continued (e.g. after the
    /// dumper was killed); use --overwrite to start afresh.
    #[arg(long)]
    out: PathBuf,
    /// Start a new trace even if --out already holds one.
    #[arg(long)]
    overwrite: bool,
    /// Show a live progress line on stderr (only on a terminal).
    #[arg(long)]
    progress: bool,
    /// How often to fsync the trace and commit ring tails (e.g. 200ms, 1s).
    #[arg(long, default_value = "200ms", value_parser = dumper::parse_duration)]
    sync_interval: Duration,
    /// How often to look for new or removed rings.
    #[arg(long, default_value = "250ms", value_parser = dumper::parse_duration)]
    scan_interval: Duration,
    /// Worker threads draining rings.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Also trust rings that are group-writable by this group id.
    #[arg(long)]
    ring_group: Option<u32>,
    /// Also trust rings owned by this user id (repeatable); by default only
    /// rings owned by the current user are read.
    #[arg(long)]
    trust_uid: Vec<u32>,
    /// NF graph to store in the trace's metadata (JSON, the collector's
    /// Topology: NFs with types, roles and peak rates, and edges), e.g. the
    /// `topology.json` of `microscope testbed dpdk`. The engine then uses
    /// its DAG and peak rates instead of inferring them. Only used when a
    /// new trace is created.
    #[arg(long)]
    topology: Option<PathBuf>,
    /// Print the exit summary as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Inject disk faults into the output (testing), e.g.
    /// `capacity=100000,refill-after=3,refill=1000000` or `eio-every=50`.
    #[arg(long, hide = true)]
    inject_faults: Option<dumper::sink::FaultPlan>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut trust = TrustPolicy::current_user();
    trust.allowed_uids.extend(&args.trust_uid);
    trust.group = args.ring_group;
    let mut cfg = dumper::Config::new(&args.rings, &args.out);
    cfg.overwrite = args.overwrite;
    cfg.progress = args.progress;
    cfg.sync_interval = args.sync_interval;
    cfg.scan_interval = args.scan_interval;
    cfg.workers = args.workers.max(1);
    cfg.trust = trust;
    cfg.faults = args.inject_faults;
    if let Some(p) = &args.topology {
        cfg.topology = Some(dumper::read_topology(p)?);
    }
    let stop = Arc::new(AtomicBool::new(false));
    dumper::install_signal_handlers(&stop)?;
    let summary = dumper::run(&cfg, stop)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary.to_json())?);
    } else {
        print!("{summary}");
    }
    Ok(if summary.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
