//! `microscope` — the thin command-line front end. Parsing and wiring only;
//! each subcommand lives in `cmd/` and calls into the library crates.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cmd;

#[derive(Parser)]
#[command(
    name = "microscope",
    version,
    about = "Queue-based performance diagnosis for chains of DPDK network functions"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate the paper's scenario, diagnose it and print the report.
    Demo(cmd::demo::Args),
    /// Diagnose a trace and print ranked causal patterns.
    Diagnose(cmd::diagnose::Args),
    /// Drain shared-memory rings into a trace file.
    Dump(cmd::dump::Args),
    /// Summarize a trace: streams, NFs, records, losses, the DAG.
    Inspect(cmd::inspect::Args),
    /// Run the deterministic NF-DAG simulator and write a trace + ground truth.
    Simulate(cmd::simulate::Args),
    /// Evaluate diagnosis accuracy against injected ground truth (vs NetMedic).
    Eval(cmd::eval::Args),
    /// Aggregate saved causal relations into the operator's report.
    Report(cmd::report::Args),
    /// Run a real DPDK NF chain on this machine and trace it.
    Testbed(cmd::testbed::Args),
    /// Live per-NF view: rates, batch fill, busy share, utilization, anomalies.
    Top(cmd::top::Args),
    /// Black-box NF estimators from CPU/host metrics: probe, train, eval, detect.
    Nf(cmd::nf::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(a) => cmd::demo::run(a),
        Command::Diagnose(a) => cmd::diagnose::run(a),
        Command::Dump(a) => cmd::dump::run(a),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Simulate(a) => cmd::simulate::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Report(a) => cmd::report::run(a),
        Command::Testbed(a) => cmd::testbed::run(a),
        Command::Top(a) => cmd::top::run(a),
        Command::Nf(a) => cmd::nf::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("microscope: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A closed stdout (e.g. `| head`) is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
