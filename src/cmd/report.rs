//! `microscope report relations.jsonl [--threshold 1%] [--format table|json|csv]`:
//! aggregate causal relations saved by `microscope diagnose --relations`
//! (JSON lines or the binary form, recognised by its magic).

use super::diagnose::{emit_report, Format};
use anyhow::Context;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Relations file (JSON lines or binary).
    pub relations: PathBuf,
    /// Aggregation threshold: fraction of the total score (0.01 or 1%).
    #[arg(long, default_value = "1%")]
    pub threshold: String,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write the report here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let name = args.relations.display().to_string();
    let mut f =
        std::fs::File::open(&args.relations).with_context(|| format!("cannot open {name}"))?;
    let mut head = [0u8; 8];
    let n = f
        .read(&mut head)
        .with_context(|| format!("cannot read {name}"))?;
    drop(f);
    let file =
        std::fs::File::open(&args.relations).with_context(|| format!("cannot open {name}"))?;
    let rels = if n == 8 && &head == diagnose::output::BIN_MAGIC {
        diagnose::read_bin(file, &name)?
    } else {
        diagnose::read_jsonl(std::io::BufReader::new(file), &name)?
    };
    eprintln!("{name}: {} causal relations", rels.len());
    emit_report(rels, &args.threshold, args.format, args.out.as_ref())?;
    Ok(ExitCode::SUCCESS)
}
