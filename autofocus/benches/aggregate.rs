//! Aggregation speed on synthetic §6.4-shaped relations (CAIDA-like
//! background plus nine bug flows at `fw2`).
//!
//! `cargo bench -p autofocus --bench aggregate [-- SIZES...]`, sizes default to
//! `84000 1000000` (the paper's §6.4 count and the 1 M target); the argument
//! `overlap` uses `CountRule::Overlap` instead of the default split rule. Prints one row
//! per size: relations, wall time, process CPU time (user + system, all
//! threads), the process's peak resident set so far (`VmHWM`; it includes
//! the generated input and never decreases, so give one size per run for a
//! per-size figure), and the number of patterns. Targets on the 2-core machine:
//! ≤ 2 s for 84 K relations, ≤ 20 s for 1 M.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use autofocus::{aggregate, Config};
use common::synth::{relations, Shape};

/// CPU seconds used by this process so far (user + system), from
/// `/proc/self/stat`; `None` off Linux.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesized command name; utime and stime are the
    // 14th and 15th fields overall.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Peak resident set size of this process so far, MiB (`VmHWM` in
/// `/proc/self/status`); `None` off Linux.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![84_000, 1_000_000]
    } else {
        sizes
    };
    // `overlap` measures AutoFocus's overlap counting rule instead.
    let cfg = Config {
        rule: if std::env::args().any(|a| a == "overlap") {
            autofocus::CountRule::Overlap
        } else {
            autofocus::CountRule::Split
        },
        ..Config::default()
    };
    println!("rule: {:?}", cfg.rule);
    println!(
        "{:>10}  {:>9}  {:>9}  {:>12}  {:>8}  {:>6}",
        "relations", "wall s", "cpu s", "peak RSS MiB", "patterns", "target"
    );
    for n in sizes {
        let rels = relations(&Shape {
            relations: n,
            ..Shape::default()
        });
        let c0 = cpu_seconds();
        let t0 = Instant::now();
        let report = aggregate(&rels, &cfg);
        let wall = t0.elapsed().as_secs_f64();
        let cpu = match (c0, cpu_seconds()) {
            (Some(a), Some(b)) => format!("{:.2}", b - a),
            _ => "n/a".to_string(),
        };
        let target = if n <= 84_000 {
            "2 s"
        } else if n <= 1_000_000 {
            "20 s"
        } else {
            "-"
        };
        let rss = peak_rss_mib().map_or_else(|| "n/a".to_string(), |m| format!("{m:.0}"));
        println!(
            "{:>10}  {:>9.2}  {:>9}  {:>12}  {:>8}  {:>6}",
            n,
            wall,
            cpu,
            rss,
            report.patterns.len(),
            target
        );
    }
}
