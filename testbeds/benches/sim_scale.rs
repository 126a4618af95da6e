//! Simulator scale benchmark: the paper's scale by default (16 NFs,
//! 1.2 Mpps, 5 s of traffic, about 6 M packets), written to a temporary
//! directory. Prints packets simulated per second, wall time, peak RSS
//! (VmHWM) and the written trace's bytes per packet per hook.
//!
//! `cargo bench -p testbeds --bench sim_scale -- [--scenario S] [--duration 5s]
//!  [--rate 1.2Mpps] [--in-memory]`
//! `--in-memory` measures `simulate()` (the in-memory `Trace`) + `write_output`
//! instead of the streaming `simulate_to_dir()`.

use std::time::Instant;
use testbeds::scenario::{Rate, Scenario, SimDuration};

fn vm_hwm_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// User + system CPU seconds of this process (all threads), from /proc.
fn cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ut: f64 = f.get(11)?.parse().ok()?;
            let st: f64 = f.get(12)?.parse().ok()?;
            Some((ut + st) / 100.0)
        })
        .unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let in_memory = args.iter().any(|a| a == "--in-memory");
    let name = get("--scenario").unwrap_or_else(|| "paper-moderate".into());
    let mut sc = Scenario::by_name_or_path(&name).expect("scenario");
    if let Some(d) = get("--duration") {
        sc.duration = SimDuration::parse(&d).expect("duration");
    }
    if let Some(r) = get("--rate") {
        sc.traffic.rate = Rate::parse(&r).expect("rate");
    }
    let dir = std::env::temp_dir().join(format!("testbeds-bench-{}", std::process::id()));
    let t0 = Instant::now();
    let (packets, faults, victims, bytes, obs, streams) = if in_memory {
        let out = testbeds::simulate(&sc).expect("simulate");
        let sim_s = t0.elapsed().as_secs_f64();
        testbeds::write_output(&out, &dir).expect("write");
        eprintln!(
            "simulate() {sim_s:.2} s, + write_output {:.2} s",
            t0.elapsed().as_secs_f64() - sim_s
        );
        let obs: u64 = out
            .trace
            .streams
            .iter()
            .flat_map(|s| s.batches.iter().map(|b| b.ipids.len() as u64))
            .sum();
        let bytes = std::fs::metadata(dir.join("trace.bin"))
            .map(|m| m.len())
            .unwrap_or(0);
        (
            out.truth.stats.packets,
            out.truth.faults.len(),
            out.truth.victims.len(),
            bytes,
            obs,
            out.trace.streams.len(),
        )
    } else {
        let s = testbeds::simulate_to_dir(&sc, &dir).expect("simulate_to_dir");
        (
            s.truth.stats.packets,
            s.truth.faults.len(),
            s.truth.victims.len(),
            s.trace_bytes,
            s.observations,
            s.streams,
        )
    };
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs();
    let rss = vm_hwm_mb();
    let truth_bytes: u64 = ["truth.json", "journeys.bin"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok().map(|m| m.len()))
        .sum();
    std::fs::remove_dir_all(&dir).ok();
    println!("| scenario | mode | duration | rate | packets | streams | faults | victims | wall s | cpu s | packets/s | peak RSS MB | trace MB | bytes/packet/hook | truth MB |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.0} | {:.0} | {:.1} | {:.2} | {:.1} |",
        sc.name,
        if in_memory { "simulate+write_output" } else { "simulate_to_dir" },
        sc.duration,
        sc.traffic.rate,
        packets,
        streams,
        faults,
        victims,
        wall,
        cpu,
        packets as f64 / wall,
        rss,
        bytes as f64 / 1e6,
        bytes as f64 / obs.max(1) as f64,
        truth_bytes as f64 / 1e6
    );
    println!("(wall time covers the injected run, its no-injection baseline on a second thread, and writing; cpu s sums all threads; load average now: {})",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" "));
}
