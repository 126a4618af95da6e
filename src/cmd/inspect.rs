//! `microscope inspect trace.bin [--json] [--salvage]`: summarize a trace.

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use tracefile::{read_trace, summary, ReadMode};

#[derive(clap::Args)]
pub struct Args {
    /// Trace file to summarize.
    pub trace: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Read every complete valid chunk of a damaged file and report what was
    /// skipped (exit status 1 when anything was), instead of failing.
    #[arg(long)]
    pub salvage: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mode = if args.salvage {
        ReadMode::Salvage
    } else {
        ReadMode::Strict
    };
    let trace = read_trace(&args.trace, mode).with_context(|| {
        if args.salvage {
            "cannot read the trace".to_string()
        } else {
            "cannot read the trace (try --salvage for a damaged file)".to_string()
        }
    })?;
    let s = summary::summarize(&trace);
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &s)?;
        writeln_io(&mut out, "")?;
    } else {
        writeln_io(&mut out, &format!("trace:      {}", args.trace.display()))?;
        use std::io::Write;
        out.write_all(s.render_text().as_bytes())?;
        // The DAG `microscope diagnose` would use, and where it comes from
        // (the metadata's topology, or inferred from IPIDs with each edge's
        // confidence).
        match diagnose::dag_of(&trace, &diagnose::Config::default()) {
            Ok(dag) => out.write_all(format!("\n{}", dag.describe()).as_bytes())?,
            Err(e) => writeln_io(&mut out, &format!("\nDAG: cannot be built: {e}"))?,
        }
    }
    let damaged = s
        .skipped
        .iter()
        .any(|k| !k.reason.starts_with("chunk of unknown kind"));
    Ok(if damaged {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn writeln_io(out: &mut impl std::io::Write, s: &str) -> std::io::Result<()> {
    writeln!(out, "{s}")
}
