//! A busy-polling stand-in NF for campaigns on machines without a DPDK NF:
//! one thread polls a synthetic input queue in bursts of up to 32, processes
//! each packet (reads and hashes 64 bytes at a pseudo-random place in a
//! 4 MiB buffer pool, writes one byte back), and counts polls, empty polls,
//! packets and drops — the same counters the Microscope shim keeps in ring
//! headers. Arrivals follow a rate schedule (packets per second over time);
//! a backlog above 1024 packets is dropped and counted.
//!
//! Counters are published every 100 ms to a small text file
//! (`polls empty packets drops`, one line, replaced atomically), which
//! [`read_counters`] reads and the sampler turns into the `shim.` tier.

use crate::error::{NfmonError, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Stand-in configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct StandinConfig {
    /// `(from_second, packets_per_second)` steps, sorted by time.
    pub schedule: Vec<(f64, f64)>,
    /// Where to publish counters.
    pub counters: Option<PathBuf>,
    /// Stop after this long (None = run until killed).
    pub duration: Option<Duration>,
}

/// Cumulative stand-in counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Polls.
    pub polls: u64,
    /// Polls that found no packet.
    pub empty: u64,
    /// Packets processed.
    pub packets: u64,
    /// Packets dropped (backlog full).
    pub drops: u64,
}

/// Parse a schedule `"0:0,10:500000,20:0"` (seconds:pps steps).
pub fn parse_schedule(s: &str) -> Result<Vec<(f64, f64)>> {
    let mut v = Vec::new();
    for (i, part) in s.split(',').enumerate() {
        let (t, r) = part
            .split_once(':')
            .ok_or_else(|| NfmonError::parse("<schedule>", 1, 0, "seconds:pps steps", part))?;
        let t: f64 = t
            .trim()
            .parse()
            .map_err(|_| NfmonError::parse("<schedule>", 1, i, "a time in seconds", part))?;
        let r: f64 = r
            .trim()
            .parse()
            .map_err(|_| NfmonError::parse("<schedule>", 1, i, "a rate in packets/s", part))?;
        v.push((t, r.max(0.0)));
    }
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(v)
}

fn rate_at(s: &[(f64, f64)], t: f64) -> f64 {
    s.iter()
        .rev()
        .find(|(from, _)| *from <= t)
        .map_or(0.0, |x| x.1)
}

fn publish(path: &Path, c: &Counters) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        format!("{} {} {} {}\n", c.polls, c.empty, c.packets, c.drops),
    )
    .map_err(|e| NfmonError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| NfmonError::io(path, e))
}

/// Read published counters.
pub fn read_counters(path: &Path) -> Result<Counters> {
    let t = std::fs::read_to_string(path).map_err(|e| NfmonError::io(path, e))?;
    let v: Vec<u64> = t
        .split_whitespace()
        .map(|x| x.parse())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| NfmonError::parse(path, 1, 0, "four integers", &t))?;
    match v.as_slice() {
        [p, e, k, d] => Ok(Counters {
            polls: *p,
            empty: *e,
            packets: *k,
            drops: *d,
        }),
        _ => Err(NfmonError::parse(path, 1, 0, "four integers", &t)),
    }
}

/// Run the stand-in poller in the calling thread.
pub fn run(cfg: &StandinConfig) -> Result<Counters> {
    const POOL: usize = 4 << 20;
    const BURST: u64 = 32;
    const BACKLOG: u64 = 1024;
    let mut pool = vec![0u8; POOL];
    let mut c = Counters::default();
    let start = Instant::now();
    let mut last = start;
    let mut last_pub = start;
    let mut arrived = 0.0f64;
    let mut consumed = 0u64;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    loop {
        let now = Instant::now();
        let t = now.duration_since(start).as_secs_f64();
        arrived += rate_at(&cfg.schedule, t) * now.duration_since(last).as_secs_f64();
        last = now;
        let mut backlog = (arrived as u64).saturating_sub(consumed);
        if backlog > BACKLOG {
            let d = backlog - BACKLOG;
            c.drops += d;
            consumed += d;
            backlog = BACKLOG;
        }
        let batch = backlog.min(BURST);
        c.polls += 1;
        if batch == 0 {
            c.empty += 1;
        } else {
            for _ in 0..batch {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let off = (x as usize) % (POOL - 64);
                let mut h = 0xcbf2_9ce4_8422_2325u64;
                for b in &pool[off..off + 64] {
                    h = (h ^ *b as u64).wrapping_mul(0x100_0000_01b3);
                }
                pool[off] = h as u8;
            }
            consumed += batch;
            c.packets += batch;
        }
        if now.duration_since(last_pub) >= Duration::from_millis(100) {
            last_pub = now;
            if let Some(p) = &cfg.counters {
                publish(p, &c)?;
            }
            if cfg.duration.is_some_and(|d| now.duration_since(start) >= d) {
                return Ok(c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_and_counters() {
        let s = parse_schedule("10:5,0:0").unwrap();
        assert_eq!(s, vec![(0.0, 0.0), (10.0, 5.0)]);
        assert_eq!(rate_at(&s, 3.0), 0.0);
        assert_eq!(rate_at(&s, 12.0), 5.0);
        assert!(parse_schedule("x").is_err());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c");
        let cfg = StandinConfig {
            schedule: vec![(0.0, 200_000.0)],
            counters: Some(p.clone()),
            duration: Some(Duration::from_millis(250)),
        };
        let c = run(&cfg).unwrap();
        assert!(c.polls > c.empty && c.packets > 10_000, "{c:?}");
        let r = read_counters(&p).unwrap();
        assert!(r.polls > 0 && r.polls <= c.polls);
        let idle = run(&StandinConfig {
            schedule: vec![(0.0, 0.0)],
            counters: None,
            duration: Some(Duration::from_millis(120)),
        })
        .unwrap();
        assert_eq!((idle.packets, idle.empty), (0, idle.polls));
    }
}
