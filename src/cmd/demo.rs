//! `microscope demo`: the whole pipeline on an embedded default — a short
//! paper-moderate simulation with injected faults (trace + ground truth),
//! then `microscope diagnose` on the trace, so the ranked causal patterns can
//! be read next to the faults that were really injected.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Simulated traffic time.
    #[arg(long, default_value = "1s")]
    pub duration: String,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Aggregation threshold of the report (fraction of the total score).
    #[arg(long, default_value = "2%")]
    pub threshold: String,
    /// Keep the output here instead of a temporary directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let sc = super::simulate::build_scenario(
        "paper-moderate",
        Some(&args.duration),
        None,
        Some(args.seed),
        false,
        &[],
    )?;
    let (dir, temp) = match args.out {
        Some(d) => (d, false),
        None => (
            std::env::temp_dir().join(format!("microscope-demo-{}", std::process::id())),
            true,
        ),
    };
    println!("Microscope demo: simulating the paper's 16-NF chain (Fig. 10) with injected bursts, interrupts and a firewall bug\n");
    let t0 = std::time::Instant::now();
    let sum = testbeds::simulate_to_dir(&sc, &dir)?;
    super::simulate::print_summary(&sc, &sum, &dir, t0.elapsed().as_secs_f64());

    println!(
        "\n== microscope diagnose {} --threshold {}\n",
        dir.join("trace.bin").display(),
        args.threshold
    );
    let trace = dir.join("trace.bin");
    let diag = DiagnoseCli::try_parse_from([
        std::ffi::OsStr::new("diagnose"),
        trace.as_os_str(),
        std::ffi::OsStr::new("--threshold"),
        std::ffi::OsStr::new(&args.threshold),
    ])?;
    let t1 = std::time::Instant::now();
    let code = super::diagnose::run(diag.args);
    println!("\n(diagnosis took {:.1} s)", t1.elapsed().as_secs_f64());
    if temp {
        std::fs::remove_dir_all(&dir).ok();
        println!("(temporary output removed; pass --out DIR to keep it)");
    } else {
        println!(
            "next: microscope inspect {}",
            dir.join("trace.bin").display()
        );
    }
    code
}

/// Parses the diagnose arguments exactly as the command line would, so the
/// demo runs the same code path an operator does.
#[derive(Parser)]
struct DiagnoseCli {
    #[command(flatten)]
    args: super::diagnose::Args,
}
