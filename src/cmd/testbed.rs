//! `microscope testbed dpdk`: run the real DPDK NF chain of `testbeds/dpdk`
//! and trace it.
//!
//! The DPDK code lives in the `dpdk-testbed` package (binaries `ms-testbed`
//! and `ms-nf`), so that this binary never links DPDK. This command checks
//! the options, then runs `ms-testbed` from the same directory as itself,
//! telling it to use this binary for `microscope dump`.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    which: Which,
}

#[derive(clap::Subcommand)]
enum Which {
    /// Real DPDK NFs (firewall, monitor, NAT, VPN) between a generator and a
    /// sink over memif, no NICs or hugepages needed; writes trace.bin,
    /// truth.json, topology.json and logs/ into --out.
    Dpdk(DpdkArgs),
}

#[derive(clap::Args)]
struct DpdkArgs {
    /// `small` (gen → fw1 → {mon1 →} nat1 → vpn1 → sink) or a TOML topology file.
    #[arg(long, default_value = "small")]
    topology: String,
    /// How long traffic runs, e.g. `10s`.
    #[arg(long, default_value = "10s")]
    duration: String,
    /// Injection (repeatable): `burst:at=3s,packets=2000,flows=5`,
    /// `stall:nf=nat1,at=5s,for=800us`,
    /// `bug:nf=fw1,at=2s,for=1s,flows=3,cycles=40000`.
    #[arg(long)]
    inject: Vec<String>,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Generator rate, packets per second.
    #[arg(long, default_value_t = 200_000.0)]
    rate: f64,
    /// Synthetic traffic: number of flows.
    #[arg(long, default_value_t = 1000)]
    flows: usize,
    /// Seed of the traffic and of the injected flows.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Replay this pcap (Ethernet, classic format) instead of synthetic traffic.
    #[arg(long)]
    pcap: Option<PathBuf>,
    /// Run without the shim (no trace; overhead baseline).
    #[arg(long)]
    no_shim: bool,
    /// Cooperative yield after N empty polls (0 = pure busy polling).
    #[arg(long = "yield", default_value_t = 64)]
    yield_after: u32,
    /// Cores to spread the NF processes over (default: all).
    #[arg(long)]
    cores: Option<u32>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Which::Dpdk(a) = args.which;
    let me = std::env::current_exe()?;
    let dir = me
        .parent()
        .ok_or_else(|| anyhow::anyhow!("cannot locate the directory of {}", me.display()))?;
    let bin = dir.join("ms-testbed");
    if !bin.exists() {
        anyhow::bail!(
            "{} not found: build the DPDK testbed with `cargo build --release -p dpdk-testbed` \
             (needs: apt-get install dpdk libdpdk-dev pkg-config clang libclang-dev)",
            bin.display()
        );
    }
    let mut cmd = Command::new(&bin);
    cmd.args(["--topology", &a.topology])
        .args(["--duration", &a.duration])
        .arg("--out")
        .arg(&a.out)
        .args(["--rate", &a.rate.to_string()])
        .args(["--flows", &a.flows.to_string()])
        .args(["--seed", &a.seed.to_string()])
        .args(["--yield", &a.yield_after.to_string()])
        .arg("--microscope")
        .arg(&me);
    for i in &a.inject {
        cmd.args(["--inject", i]);
    }
    if let Some(p) = &a.pcap {
        cmd.arg("--pcap").arg(p);
    }
    if a.no_shim {
        cmd.arg("--no-shim");
    }
    if let Some(c) = a.cores {
        cmd.args(["--cores", &c.to_string()]);
    }
    let status = cmd
        .status()
        .map_err(|e| anyhow::anyhow!("running {}: {e}", bin.display()))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(c.clamp(1, 255) as u8),
        None => ExitCode::from(1),
    })
}
