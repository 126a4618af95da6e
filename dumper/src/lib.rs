//! # dumper — drains Microscope's shared-memory rings into a trace file
//!
//! `microscope dump --rings DIR --out trace.bin` runs [`run`]: the main
//! thread scans `DIR` for `*.ring` files (new ones are picked up while
//! running; removed ones are drained and dropped), opens each with the
//! collector's validating [`collector::ring::Consumer`] — refusing files it
//! does not trust by owner and mode — and hands it to one of the crossbeam
//! worker threads. Workers drain their rings and send the records to the
//! main thread, which owns the [`tracefile::TraceWriter`]: it gathers records
//! per stream into chunks, and every sync interval writes them, fsyncs, and
//! only then commits each ring's tail. On SIGINT/SIGTERM
//! ([`install_signal_handlers`]) the workers drain one last time, everything
//! is written, synced and committed, and the footer is written.
//!
//! Invariants:
//! - **Nothing committed is lost, nothing is written twice.** A ring's tail
//!   moves only past records that are durable in the file or counted lost.
//!   After `kill -9`, a restart with the same arguments continues the same
//!   file ([`tracefile::TraceWriter::open_append`] cuts the torn tail); each
//!   ring remembers (in its consumer-owned header fields) which trace and
//!   stream id it was written to, so it continues its stream, and records
//!   re-delivered from the last committed tail are skipped by sequence
//!   number.
//! - **Disk errors never leave a half chunk the reader would accept.** Each
//!   chunk is one write; a failed write (ENOSPC, EIO, a short write) is
//!   rolled back to the last chunk boundary and its records stay gathered,
//!   their ring uncommitted, for another attempt at the next sync. After
//!   `write_attempts` failures in a row they are dropped and counted in
//!   `lost_write` (stored in the ring, so it survives restarts, and in the
//!   next chunk's loss counters) so the ring can move on. An fsync failure
//!   stops the dumper without committing, so a restart rewrites what may not
//!   be durable; a failed footer is reported (readers never need it).
//! - Known limit: the trace format has no loss-only chunk, so a loss counted
//!   after a stream's last record reaches the file only with a later record
//!   (it is always in the ring header and the exit summary).
//! - **A bad ring never stops the dumper.** Refused or corrupt rings are
//!   reported (stderr and [`DumpSummary::ring_errors`]) and skipped.
//! - Fault injection is shipped code ([`sink::FaultyFile`]): tests run the
//!   real dumper against a disk that fills up or fails.
#![deny(unsafe_code)]

pub mod sink;

mod engine;

pub use engine::{run, Config, DumpError, DumpSummary, StreamSummary};

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Makes SIGINT and SIGTERM set `stop` (a clean shutdown: final drain,
/// write, fsync, commit, footer). A second signal while stopping exits the
/// process at once with status 130.
///
/// Errors: the `sigaction` failure, if any.
pub fn install_signal_handlers(stop: &Arc<AtomicBool>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    Ok(())
}

/// Reads a topology file: the collector's [`collector::Topology`] as JSON
/// (`{"nfs": [{"name", "nf_type", "role", "peak_rate_pps"}], "edges":
/// [{"from", "to"}]}`, what `microscope testbed dpdk` writes as
/// `topology.json`), for [`Config::topology`]. Checked: NF names are unique,
/// every edge joins two declared NFs, peak rates are positive and finite.
///
/// Errors: [`DumpError::Topology`] naming the file and, for malformed JSON,
/// the line and column of the problem; [`DumpError::Config`] when it cannot
/// be read.
pub fn read_topology(path: &std::path::Path) -> Result<collector::Topology, DumpError> {
    let bad = |reason: String| DumpError::Topology {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read(path).map_err(|e| DumpError::Config {
        path: path.to_path_buf(),
        reason: format!("cannot read the topology file: {e}"),
    })?;
    let t: collector::Topology = serde_json::from_slice(&text).map_err(|e| {
        bad(format!(
            "line {}, column {}: {e} (expected the collector's Topology as JSON)",
            e.line(),
            e.column()
        ))
    })?;
    let mut seen = std::collections::HashSet::new();
    for (i, nf) in t.nfs.iter().enumerate() {
        if !seen.insert(nf.name.as_str()) {
            return Err(bad(format!(
                "nfs[{i}]: NF name \"{}\" appears twice",
                nf.name
            )));
        }
        if let Some(r) = nf.peak_rate_pps {
            if !(r.is_finite() && r > 0.0) {
                return Err(bad(format!(
                    "nfs[{i}] ({}): peak_rate_pps must be a positive number, got {r}",
                    nf.name
                )));
            }
        }
    }
    for (i, e) in t.edges.iter().enumerate() {
        for end in [&e.from, &e.to] {
            if !seen.contains(end.as_str()) {
                return Err(bad(format!("edges[{i}]: no NF named \"{end}\" in nfs")));
            }
        }
    }
    Ok(t)
}

/// Parses a duration like `200ms`, `1.5s`, `2m`, `500us` or a plain number
/// of seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    collector::units::parse_duration_ns(s, collector::units::BareNumber::Seconds)
        .map(std::time::Duration::from_nanos)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 parsecs").is_err());
    }
}
