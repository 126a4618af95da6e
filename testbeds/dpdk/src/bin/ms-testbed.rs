//! `ms-testbed` — runs a real DPDK NF chain with fault injection and writes
//! `trace.bin` + `truth.json`. `microscope testbed dpdk ...` runs this with
//! the same arguments (plus `--microscope` pointing at itself for `dump`):
//! the options below are the only definition of that command's options.

use anyhow::{Context, Result};
use clap::Parser;
use dpdk_testbed::inject::{parse_duration_ns, Injection};
use dpdk_testbed::orchestrate::{self, RunConfig};
use dpdk_testbed::topology::Topology;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "ms-testbed",
    bin_name = "microscope testbed dpdk",
    about = "Run a real DPDK NF chain (memif, --no-huge) traced by the Microscope shim"
)]
struct Opts {
    /// `small` (gen → fw1 → {mon1 →} nat1 → vpn1 → sink) or a TOML file.
    #[arg(long, default_value = "small")]
    topology: String,
    /// How long traffic runs, e.g. `10s`.
    #[arg(long, default_value = "10s")]
    duration: String,
    /// Injection (repeatable): `burst:at=3s,packets=2000,flows=5`,
    /// `stall:nf=nat1,at=5s,for=800us`, `bug:nf=fw1,at=2s,for=1s,flows=3,cycles=40000`,
    /// `loss:nf=nat1,at=2s,for=1s,p=0.2` (drop that fraction, seeded),
    /// `delay:nf=vpn1,at=2s,for=1s,per_packet=5us` (busy-wait per packet).
    /// Times from traffic start; see docs/dpdk.md.
    #[arg(long = "inject")]
    inject: Vec<String>,
    /// Output directory (trace.bin, truth.json, topology.json, logs/).
    #[arg(long)]
    out: PathBuf,
    /// Generator rate in packets per second.
    #[arg(long, default_value_t = 200_000.0)]
    rate: f64,
    /// Synthetic traffic: number of flows.
    #[arg(long, default_value_t = 1000)]
    flows: usize,
    /// Seed of the synthetic traffic and injected flows.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Replay this pcap (Ethernet, classic format) instead.
    #[arg(long)]
    pcap: Option<PathBuf>,
    /// The `microscope` binary used for `dump` (default: next to this one).
    #[arg(long)]
    microscope: Option<PathBuf>,
    /// Do not run a dumper; leave the rings in OUT/rings.
    #[arg(long)]
    no_dump: bool,
    /// Run without the shim (no trace; for overhead baselines).
    #[arg(long)]
    no_shim: bool,
    /// Cooperative yield after N empty polls (0 = busy-poll; the NFs share
    /// this machine's cores, so the default yields).
    #[arg(long = "yield", default_value_t = 64)]
    yield_after: u32,
    /// Sleep this many µs after `--yield` empty polls instead of yielding
    /// (0 = only yield). Sleeping NFs leave shared cores to the others and
    /// are woken promptly, which keeps scheduling delay far below busy
    /// polling (p99 end-to-end latency of the small chain on a loaded
    /// 2-core VM: 12 ms busy-polling with yields, about 2 ms sleeping).
    #[arg(long, default_value_t = 50)]
    idle_sleep_us: u64,
    /// Nice value of the NF processes, e.g. -10 so that they win their cores
    /// over other work on a busy machine (negative values need root).
    #[arg(long, allow_hyphen_values = true)]
    nice: Option<i32>,
    /// Run the NF processes under SCHED_FIFO (priority 1): on a machine busy
    /// with other work they are woken at once instead of after others' time
    /// slices (milliseconds). Needs root; the kernel's real-time throttling
    /// keeps ≥ 5 % of each core for everything else.
    #[arg(long)]
    realtime: bool,
    /// Cores to spread processes over (default: all online).
    #[arg(long)]
    cores: Option<u32>,
}

fn main() -> ExitCode {
    match real_main() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ms-testbed: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> Result<ExitCode> {
    let o = Opts::parse();
    let topology = Topology::by_name_or_path(&o.topology)?;
    let duration_ns = parse_duration_ns(&o.duration).map_err(anyhow::Error::msg)?;
    let injections = o
        .inject
        .iter()
        .map(|s| Injection::parse(s).map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()?;
    let here = std::env::current_exe().context("locating ms-testbed")?;
    let dir = here.parent().map(PathBuf::from).unwrap_or_default();
    let microscope = if o.no_dump || o.no_shim {
        None
    } else {
        Some(
            o.microscope
                .clone()
                .unwrap_or_else(|| dir.join("microscope")),
        )
    };
    if let Some(m) = &microscope {
        anyhow::ensure!(
            m.exists(),
            "{} not found (build it: cargo build --release; or pass --microscope PATH / --no-dump)",
            m.display()
        );
    }
    if !dpdk_testbed::HAS_DPDK {
        eprintln!("ms-testbed: note: this build has no DPDK; ms-nf will refuse to run");
    }
    let cores = o.cores.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1)
    });
    let cfg = RunConfig {
        topology,
        duration_ns,
        injections,
        out: o.out.clone(),
        rate_pps: o.rate,
        flows: o.flows,
        seed: o.seed,
        pcap: o.pcap.clone(),
        nf_bin: dir.join("ms-nf"),
        microscope,
        yield_after: o.yield_after,
        idle_sleep_us: o.idle_sleep_us,
        nice: o.nice,
        realtime: o.realtime,
        shim: !o.no_shim,
        cores,
    };
    let s = orchestrate::run(&cfg)?;
    for (name, st) in &s.nf_stats {
        match st {
            Some(v) => eprintln!("ms-testbed: {name}: {v}"),
            None => eprintln!("ms-testbed: {name}: no statistics (see logs/{name}.log)"),
        }
    }
    if let Some(c) = s.dumper_status {
        eprintln!("ms-testbed: dumper exited with status {c}");
    }
    for l in &s.leftovers {
        eprintln!("ms-testbed: could not clean up {l}");
    }
    eprintln!(
        "ms-testbed: wrote {}",
        ["trace.bin", "truth.json", "topology.json", "logs/"]
            .iter()
            .map(|f| o.out.join(f).display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(
        if s.leftovers.is_empty() && s.dumper_status.is_none_or(|c| c == 0) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}
