//! `microscope demo`: a short paper-moderate simulation with injected
//! faults, summarized. (Diagnosis of the result is added by later work.)

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Simulated traffic time.
    #[arg(long, default_value = "1s")]
    pub duration: String,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
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
    if temp {
        std::fs::remove_dir_all(&dir).ok();
        println!("(temporary output removed; pass --out DIR to keep it)");
    } else {
        println!(
            "next: microscope inspect {}",
            dir.join("trace.bin").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
