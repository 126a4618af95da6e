//! Scale benchmark: simulate a scenario (in a child process, so its memory
//! does not count), then load + reconstruct + diagnose every victim and
//! print a table of wall time, packet-hops per second and peak RSS per
//! stage, plus reconstruction accuracy against the simulator's truth.
//!
//! `cargo bench -p diagnose --bench diagnose_scale -- [SCENARIO] [DURATION] [THREADS]`
//! (defaults: paper-moderate, the scenario's duration, 2 threads).
//!
//! The load streams the file into the engine's index
//! ([`diagnose::read_index`], what `microscope diagnose` does); set
//! `MICROSCOPE_BENCH_IN_MEMORY=1` to time the old path instead (read the
//! whole [`tracefile::Trace`], then index it). Besides wall time each stage
//! reports its process CPU time (user + system, from `/proc/self/stat`),
//! which is far less sensitive than wall time to other load on a shared
//! machine; the load average is printed next to the table. Set
//! `MICROSCOPE_BENCH_DIGEST=1` to also print a digest of the whole
//! diagnosis (its JSON), e.g. to compare 1 and 2 threads.

use diagnose::Config;
use std::path::{Path, PathBuf};
use std::time::Instant;
use testbeds::scenario::Scenario;

fn peak_rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Process CPU time (user + system) in seconds.
fn cpu_s() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime, stime are 14, 15.
    let rest = s.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // `rest` starts at field 3 (state): utime is f[11], stime f[12]; the
    // kernel's USER_HZ is 100 on every Linux this runs on.
    (ticks(11) + ticks(12)) / 100.0
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn simulate_child(scenario: &str, duration: Option<&str>, dir: &Path) {
    let mut sc = Scenario::by_name_or_path(scenario).expect("scenario");
    if let Some(d) = duration {
        sc.set("duration", d).expect("duration");
    }
    testbeds::sim::simulate_to_dir(&sc, dir).expect("simulate");
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("--simulate-only") {
        simulate_child(
            &args[1],
            args.get(3).map(String::as_str),
            Path::new(&args[2]),
        );
        return;
    }
    let scenario = args
        .first()
        .cloned()
        .unwrap_or_else(|| "paper-moderate".into());
    let duration = args.get(1).cloned();
    let threads: usize = args.get(2).and_then(|t| t.parse().ok()).unwrap_or(2);
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "microscope-diagnose-bench-{scenario}-{}",
        duration.clone().unwrap_or_else(|| "default".into())
    ));
    if !dir.join("trace.bin").exists() || !dir.join("truth.json").exists() {
        let t = Instant::now();
        let mut cmd = std::process::Command::new(std::env::current_exe().expect("exe"));
        cmd.arg("--simulate-only").arg(&scenario).arg(&dir);
        if let Some(d) = &duration {
            cmd.arg(d);
        }
        let st = cmd.status().expect("spawn simulator");
        assert!(st.success(), "simulation failed");
        eprintln!("simulated {scenario} in {:.1} s", t.elapsed().as_secs_f64());
    }

    let cfg = Config {
        threads: Some(threads),
        ..Config::default()
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    let in_memory = std::env::var_os("MICROSCOPE_BENCH_IN_MEMORY").is_some();
    let load_before = loadavg();
    let path = dir.join("trace.bin");
    let wall = Instant::now();
    let (t, c) = (Instant::now(), cpu_s());
    let loaded = if in_memory {
        let trace = tracefile::read_trace(&path, tracefile::ReadMode::Strict).expect("read trace");
        Err(trace)
    } else {
        Ok(diagnose::read_index(&path, tracefile::ReadMode::Strict)
            .expect("read trace")
            .0)
    };
    let (t_load, c_load) = (t.elapsed().as_secs_f64(), cpu_s() - c);
    let rss_load = peak_rss_mb();
    let (t, c) = (Instant::now(), cpu_s());
    let rec = pool
        .install(|| match loaded {
            Ok(b) => diagnose::reconstruct_built(b, &cfg),
            Err(trace) => diagnose::reconstruct_owned(trace, &cfg),
        })
        .expect("reconstruct");
    let (t_rec, c_rec) = (t.elapsed().as_secs_f64(), cpu_s() - c);
    let rss_rec = peak_rss_mb();
    let (t, c) = (Instant::now(), cpu_s());
    let d = pool
        .install(|| diagnose::diagnose_reconstructed(&rec, &cfg, &|_, _, _| {}))
        .expect("diagnose");
    let (t_diag, c_diag) = (t.elapsed().as_secs_f64(), cpu_s() - c);
    let rss_diag = peak_rss_mb();
    let total = wall.elapsed().as_secs_f64();

    let obs = rec.stats().observations as f64;
    let hops = rec.stats().links.down as f64;
    let pre: u64 = d.victims.iter().map(|v| v.n_i as u64).sum();
    println!(
        "scenario {scenario}, duration {}, {threads} threads, load path {}",
        duration.as_deref().unwrap_or("default"),
        if in_memory {
            "in-memory Trace"
        } else {
            "streaming index"
        }
    );
    println!("load average before: {load_before}, after: {}", loadavg());
    println!(
        "{:<14} {:>9} {:>9} {:>16} {:>12}",
        "stage", "wall s", "CPU s", "packet-hops/s", "peak RSS MB"
    );
    let row = |name: &str, w: f64, c: f64, rate: f64, rss: f64| {
        println!("{name:<14} {w:>9.2} {c:>9.2} {rate:>16.3e} {rss:>12.0}");
    };
    row("load", t_load, c_load, obs / t_load, rss_load);
    row("reconstruct", t_rec, c_rec, obs / t_rec, rss_rec);
    row("diagnose", t_diag, c_diag, pre as f64 / t_diag, rss_diag);
    println!(
        "{:<14} {:>9.2} {:>9.2} {:>16} {:>12.0}",
        "total",
        total,
        c_load + c_rec + c_diag,
        "",
        rss_diag
    );
    println!(
        "observations {obs:.0}, rx packet-hops {hops:.0}, victims diagnosed {} (PreSet packets {pre}), relations {}",
        d.victims.len(),
        d.relations.len()
    );
    println!("(load/reconstruct rate = packet observations per second; diagnose rate = PreSet packets analysed per second at the victim NF)");

    // A digest of the whole diagnosis (after timing), to check that two
    // builds or thread counts give identical results.
    if std::env::var_os("MICROSCOPE_BENCH_DIGEST").is_some() {
        use std::hash::{Hash, Hasher};
        let bytes = serde_json::to_vec(&d).expect("serialize diagnosis");
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut h);
        println!(
            "diagnosis digest {:016x} ({} bytes of JSON)",
            h.finish(),
            bytes.len()
        );
    }

    // Accuracy against ground truth (after timing; not counted).
    let truth = testbeds::truth::Truth::load(&dir).expect("truth");
    let pairs = truth.true_upstream_pairs();
    let ok = pairs
        .iter()
        .filter(|(rx, up)| rec.upstream(rx) == Some(*up))
        .count();
    println!(
        "reconstruction accuracy: {ok}/{} packet-hops = {:.4}%",
        pairs.len(),
        100.0 * ok as f64 / pairs.len().max(1) as f64
    );
}
