//! Fault injection for the real chain, and the ground truth it produces.
//!
//! `--inject` syntax, times relative to the start of traffic:
//! - `burst:at=3s,packets=2000,flows=5` — the generator sends `packets`
//!   extra packets of `flows` new flows back to back.
//! - `stall:nf=nat1,at=5s,for=800us` — the NF stops polling for `for`.
//! - `bug:nf=fw1,at=2s,for=1s,flows=3,cycles=40000` — a firewall spends
//!   `cycles` extra TSC cycles on each packet of `flows` existing flows
//!   (ranks 2.. of the traffic's popularity) while active.
//! - `loss:nf=nat1,at=2s,for=1s,p=0.2` — the NF drops that fraction of the
//!   packets it receives while active (before processing them). Which
//!   packets is decided by a ChaCha8 stream seeded from the traffic seed and
//!   the injection's index: the same run drops the same positions of the
//!   NF's input sequence. `p` is a fraction in [0, 1].
//! - `delay:nf=vpn1,at=2s,for=1s,per_packet=5us` — the NF busy-waits
//!   `per_packet` (on the TSC) before processing each packet while active:
//!   added per-packet latency, and a lower peak rate.
//!
//! Stall, bug, loss and delay apply to NFs (not the generator or the sink).
//! In the truth file the kinds are `burst`, `interrupt` (a stall), `bug`,
//! `loss` and `delay`; an NF reports when it really armed each window and
//! how many packets it dropped or delayed, and the orchestrator puts those
//! into the fault (`start_ns`/`end_ns`, `params.packets`).
//!
//! Times take `ns`, `us`, `ms` or `s`. The truth file (`truth.json`) lists
//! each injection as a fault with absolute `CLOCK_MONOTONIC` nanoseconds —
//! the clock the shim's anchors pair with the TSC, so a trace's calibrated
//! times and the truth's times are directly comparable.

use crate::topology::{Kind, Topology};
use crate::traffic;
use collector::FiveTuple;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Parses `500us`, `3s`, `1.5ms`, `200ns` into nanoseconds.
pub fn parse_duration_ns(s: &str) -> Result<u64, String> {
    collector::units::parse_duration_ns(s, collector::units::BareNumber::Reject)
}

/// One injection, times relative to the start of traffic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Injection {
    Burst {
        at_ns: u64,
        packets: u64,
        flows: u32,
    },
    Stall {
        nf: String,
        at_ns: u64,
        for_ns: u64,
    },
    Bug {
        nf: String,
        at_ns: u64,
        for_ns: u64,
        flows: u32,
        cycles: u64,
    },
    Loss {
        nf: String,
        at_ns: u64,
        for_ns: u64,
        /// Fraction of the NF's input packets dropped, in [0, 1].
        p: f64,
    },
    Delay {
        nf: String,
        at_ns: u64,
        for_ns: u64,
        per_packet_ns: u64,
    },
}

impl Injection {
    /// Parses the `--inject` syntax (module docs).
    pub fn parse(s: &str) -> Result<Injection, String> {
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("--inject \"{s}\": expected KIND:key=value,..."))?;
        let mut kv = std::collections::HashMap::new();
        for part in rest.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("--inject \"{s}\": \"{part}\" is not key=value"))?;
            kv.insert(k.trim(), v.trim());
        }
        let get = |k: &str| {
            kv.get(k)
                .copied()
                .ok_or_else(|| format!("--inject \"{s}\": missing {k}="))
        };
        let num = |k: &str| -> Result<u64, String> {
            get(k)?
                .parse()
                .map_err(|_| format!("--inject \"{s}\": {k} must be a whole number"))
        };
        let dur =
            |k: &str| parse_duration_ns(get(k)?).map_err(|e| format!("--inject \"{s}\": {e}"));
        let inj = match kind {
            "burst" => Injection::Burst {
                at_ns: dur("at")?,
                packets: num("packets")?,
                flows: num("flows")? as u32,
            },
            "stall" => Injection::Stall {
                nf: get("nf")?.to_string(),
                at_ns: dur("at")?,
                for_ns: dur("for")?,
            },
            "bug" => Injection::Bug {
                nf: get("nf")?.to_string(),
                at_ns: dur("at")?,
                for_ns: dur("for")?,
                flows: num("flows")? as u32,
                cycles: num("cycles")?,
            },
            "loss" => Injection::Loss {
                nf: get("nf")?.to_string(),
                at_ns: dur("at")?,
                for_ns: dur("for")?,
                p: match get("p")?.parse::<f64>() {
                    Ok(p) if (0.0..=1.0).contains(&p) => p,
                    _ => {
                        return Err(format!(
                            "--inject \"{s}\": p must be a fraction between 0 and 1"
                        ))
                    }
                },
            },
            "delay" => Injection::Delay {
                nf: get("nf")?.to_string(),
                at_ns: dur("at")?,
                for_ns: dur("for")?,
                per_packet_ns: dur("per_packet")?,
            },
            other => {
                return Err(format!(
                    "--inject \"{s}\": unknown kind \"{other}\" (burst, stall, bug, loss or delay)"
                ))
            }
        };
        let allowed: &[&str] = match kind {
            "burst" => &["at", "packets", "flows"],
            "stall" => &["nf", "at", "for"],
            "loss" => &["nf", "at", "for", "p"],
            "delay" => &["nf", "at", "for", "per_packet"],
            _ => &["nf", "at", "for", "flows", "cycles"],
        };
        if let Some(k) = kv.keys().find(|k| !allowed.contains(k)) {
            return Err(format!("--inject \"{s}\": unknown key \"{k}\""));
        }
        if let Injection::Burst { flows: 0, .. } | Injection::Bug { flows: 0, .. } = inj {
            return Err(format!("--inject \"{s}\": flows must be at least 1"));
        }
        Ok(inj)
    }

    /// The NF an injection acts in (`None` for bursts: the generator).
    pub fn nf(&self) -> Option<&str> {
        match self {
            Injection::Burst { .. } => None,
            Injection::Stall { nf, .. }
            | Injection::Bug { nf, .. }
            | Injection::Loss { nf, .. }
            | Injection::Delay { nf, .. } => Some(nf),
        }
    }

    /// Checks the injection against the topology (NF exists and is not the
    /// generator or the sink, bugs only on firewalls).
    pub fn check(&self, topo: &Topology) -> Result<(), String> {
        match self {
            Injection::Burst { .. } => Ok(()),
            Injection::Stall { nf, .. }
            | Injection::Loss { nf, .. }
            | Injection::Delay { nf, .. } => {
                let what = match self {
                    Injection::Stall { .. } => "stall",
                    Injection::Loss { .. } => "loss",
                    _ => "delay",
                };
                match topo.node(nf) {
                    Some(n) if n.kind != Kind::Gen && n.kind != Kind::Sink => Ok(()),
                    Some(_) => Err(format!(
                        "{what}: {nf} is not an NF (not the generator or the sink)"
                    )),
                    None => Err(format!("{what}: no NF named {nf}")),
                }
            }
            Injection::Bug { nf, .. } => match topo.node(nf) {
                Some(n) if n.kind == Kind::Firewall => Ok(()),
                Some(_) => Err(format!("bug: {nf} is not a firewall")),
                None => Err(format!("bug: no NF named {nf}")),
            },
        }
    }
}

/// Number of scheduled packets in the generator's synthetic mix (both the
/// generator and the orchestrator derive flows from it).
pub const SCHEDULE_LEN: usize = 1 << 16;

/// The flows a burst injection sends: new flows (source addresses in
/// 172.16.0.0/12, outside the base mix), derived from the traffic seed and
/// the injection's index.
pub fn burst_flows(seed: u64, index: usize, flows: u32) -> Vec<FiveTuple> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xb0b0_0000 ^ index as u64);
    (0..flows)
        .map(|i| {
            let mut t = traffic::random_tuple(&mut rng, 50_000 + i);
            t.src_ip = 0xac10_0000 | (t.src_ip & 0x000f_ffff);
            t
        })
        .collect()
}

/// Initial IPIDs of a burst's flows: random per flow (seeded like
/// [`burst_flows`]), as hosts pick them, so that burst packets do not all
/// share the low IPIDs — IPIDs are how the engine tells packets apart.
pub fn burst_ipid_starts(seed: u64, index: usize, flows: u32) -> Vec<u16> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x1d1d_0000 ^ index as u64);
    (0..flows).map(|_| rand::Rng::gen(&mut rng)).collect()
}

/// The flows a bug injection slows: popularity ranks 2.. of the synthetic
/// mix (rank 0 and 1 would slow most of the traffic).
pub fn bug_flows(traffic_flows: usize, seed: u64, flows: u32) -> Vec<FiveTuple> {
    let t = traffic::synthetic(traffic_flows, 1, seed);
    t.frames
        .iter()
        .skip(2)
        .take(flows as usize)
        .filter_map(|f| crate::packet::parse(f).map(|p| p.tuple))
        .collect()
}

/// The seed of a loss injection's drop decisions (traffic seed, injection
/// index): `ms-nf` seeds a ChaCha8 stream with it.
pub fn loss_seed(seed: u64, index: usize) -> u64 {
    seed ^ 0x1055_0000_0000 ^ index as u64
}

/// A loss fraction as a threshold on a uniform `u32`: a packet is dropped
/// when its draw is below it (`p = 1` drops every packet).
pub fn loss_threshold(p: f64) -> u64 {
    (p.clamp(0.0, 1.0) * (1u64 << 32) as f64) as u64
}

/// One injected fault with absolute times (ground truth).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    pub id: u32,
    /// `burst`, `interrupt` or `bug` (the simulator's vocabulary), `loss` or
    /// `delay`.
    pub kind: String,
    /// The NF at fault (`None` for bursts, whose culprit is the source).
    pub nf: Option<String>,
    pub flows: Vec<FiveTuple>,
    /// CLOCK_MONOTONIC nanoseconds.
    pub start_ns: u64,
    pub end_ns: u64,
    pub params: serde_json::Value,
}

/// `truth.json` of a testbed run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    /// Always `CLOCK_MONOTONIC` (see module docs).
    pub clock: String,
    /// When traffic started (CLOCK_MONOTONIC ns).
    pub traffic_start_ns: u64,
    pub duration_ns: u64,
    pub faults: Vec<Fault>,
    /// A real run has no counterfactual: victims are left to the analysis.
    pub victims: Vec<serde_json::Value>,
    pub topology: collector::Topology,
}

/// Builds the ground truth of a run's injections.
pub fn truth(
    injections: &[Injection],
    start_ns: u64,
    duration_ns: u64,
    rate_pps: f64,
    traffic_flows: usize,
    seed: u64,
    topo: &Topology,
) -> Truth {
    let faults = injections
        .iter()
        .enumerate()
        .map(|(i, inj)| match inj {
            Injection::Burst {
                at_ns,
                packets,
                flows,
            } => Fault {
                id: i as u32,
                kind: "burst".into(),
                nf: None,
                flows: burst_flows(seed, i, *flows),
                start_ns: start_ns + at_ns,
                // Sent back to back: bounded by the base rate's schedule at
                // worst; the generator reports the real end in its log.
                end_ns: start_ns + at_ns + (*packets as f64 / rate_pps.max(1.0) * 1e9) as u64,
                params: serde_json::json!({ "packets": packets, "source": "gen" }),
            },
            Injection::Stall { nf, at_ns, for_ns } => Fault {
                id: i as u32,
                kind: "interrupt".into(),
                nf: Some(nf.clone()),
                flows: vec![],
                start_ns: start_ns + at_ns,
                end_ns: start_ns + at_ns + for_ns,
                params: serde_json::json!({ "stall_ns": for_ns }),
            },
            Injection::Bug {
                nf,
                at_ns,
                for_ns,
                flows,
                cycles,
            } => Fault {
                id: i as u32,
                kind: "bug".into(),
                nf: Some(nf.clone()),
                flows: bug_flows(traffic_flows, seed, *flows),
                start_ns: start_ns + at_ns,
                end_ns: start_ns + at_ns + for_ns,
                params: serde_json::json!({ "extra_cycles_per_packet": cycles }),
            },
            Injection::Loss {
                nf,
                at_ns,
                for_ns,
                p,
            } => Fault {
                id: i as u32,
                kind: "loss".into(),
                nf: Some(nf.clone()),
                flows: vec![],
                start_ns: start_ns + at_ns,
                end_ns: start_ns + at_ns + for_ns,
                params: serde_json::json!({ "p": p, "seed": loss_seed(seed, i) }),
            },
            Injection::Delay {
                nf,
                at_ns,
                for_ns,
                per_packet_ns,
            } => Fault {
                id: i as u32,
                kind: "delay".into(),
                nf: Some(nf.clone()),
                flows: vec![],
                start_ns: start_ns + at_ns,
                end_ns: start_ns + at_ns + for_ns,
                params: serde_json::json!({ "per_packet_ns": per_packet_ns }),
            },
        })
        .collect();
    Truth {
        clock: "CLOCK_MONOTONIC".into(),
        traffic_start_ns: start_ns,
        duration_ns,
        faults,
        victims: vec![],
        topology: topo.to_collector(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ns("800us").unwrap(), 800_000);
        assert_eq!(parse_duration_ns("1.5ms").unwrap(), 1_500_000);
        assert_eq!(parse_duration_ns("10s").unwrap(), 10_000_000_000);
        assert!(parse_duration_ns("10").is_err());
        assert!(parse_duration_ns("x s").is_err());
    }

    #[test]
    fn inject_syntax() {
        assert_eq!(
            Injection::parse("stall:nf=nat1,at=5s,for=800us").unwrap(),
            Injection::Stall {
                nf: "nat1".into(),
                at_ns: 5_000_000_000,
                for_ns: 800_000
            }
        );
        assert!(matches!(
            Injection::parse("burst:at=3s,packets=2000,flows=5").unwrap(),
            Injection::Burst {
                packets: 2000,
                flows: 5,
                ..
            }
        ));
        assert!(Injection::parse("burst:at=3s,packets=2000").is_err());
        assert!(Injection::parse("burst:at=3s,packets=2000,flows=5,x=1").is_err());
        assert!(Injection::parse("boom:at=1s").is_err());
        let t = Topology::small();
        assert!(
            Injection::parse("bug:nf=nat1,at=1s,for=1s,flows=2,cycles=9")
                .unwrap()
                .check(&t)
                .is_err()
        );
        assert!(Injection::parse("bug:nf=fw1,at=1s,for=1s,flows=2,cycles=9")
            .unwrap()
            .check(&t)
            .is_ok());
    }

    #[test]
    fn loss_and_delay_syntax() {
        assert_eq!(
            Injection::parse("loss:nf=nat1,at=2s,for=1s,p=0.25").unwrap(),
            Injection::Loss {
                nf: "nat1".into(),
                at_ns: 2_000_000_000,
                for_ns: 1_000_000_000,
                p: 0.25
            }
        );
        assert_eq!(
            Injection::parse("delay:nf=vpn1,at=1s,for=500ms,per_packet=5us").unwrap(),
            Injection::Delay {
                nf: "vpn1".into(),
                at_ns: 1_000_000_000,
                for_ns: 500_000_000,
                per_packet_ns: 5_000
            }
        );
        assert!(Injection::parse("loss:nf=nat1,at=2s,for=1s,p=1.5").is_err());
        assert!(Injection::parse("loss:nf=nat1,at=2s,for=1s,p=-0.1").is_err());
        assert!(Injection::parse("loss:nf=nat1,at=2s,for=1s").is_err());
        assert!(Injection::parse("loss:nf=nat1,at=2s,for=1s,p=0.1,cycles=3").is_err());
        assert!(Injection::parse("delay:nf=vpn1,at=1s,for=1s,per_packet=5").is_err());
        let t = Topology::small();
        let ok = Injection::parse("loss:nf=vpn1,at=1s,for=1s,p=0.1").unwrap();
        assert!(ok.check(&t).is_ok());
        assert_eq!(ok.nf(), Some("vpn1"));
        for bad in [
            "loss:nf=gen,at=1s,for=1s,p=0.1",
            "delay:nf=sink,at=1s,for=1s,per_packet=1us",
            "delay:nf=nope,at=1s,for=1s,per_packet=1us",
        ] {
            assert!(Injection::parse(bad).unwrap().check(&t).is_err(), "{bad}");
        }
        assert_eq!(loss_threshold(0.0), 0);
        assert_eq!(loss_threshold(1.0), 1 << 32);
        assert_eq!(loss_threshold(0.5), 1 << 31);
    }

    #[test]
    fn truth_has_absolute_times_and_flows() {
        let t = Topology::small();
        let inj = vec![
            Injection::parse("burst:at=1s,packets=1000,flows=5").unwrap(),
            Injection::parse("stall:nf=nat1,at=2s,for=1ms").unwrap(),
            Injection::parse("bug:nf=fw1,at=3s,for=1s,flows=3,cycles=1000").unwrap(),
            Injection::parse("loss:nf=nat1,at=4s,for=100ms,p=0.5").unwrap(),
            Injection::parse("delay:nf=vpn1,at=4s,for=100ms,per_packet=2us").unwrap(),
        ];
        let tr = truth(&inj, 1_000, 5_000_000_000, 100_000.0, 200, 7, &t);
        assert_eq!(tr.faults.len(), 5);
        assert_eq!(tr.faults[3].kind, "loss");
        assert_eq!(tr.faults[3].nf.as_deref(), Some("nat1"));
        assert_eq!(tr.faults[3].start_ns, 4_000_001_000);
        assert_eq!(tr.faults[3].end_ns, 4_100_001_000);
        assert_eq!(tr.faults[3].params["p"], 0.5);
        assert_eq!(tr.faults[3].params["seed"], loss_seed(7, 3));
        assert_eq!(tr.faults[4].kind, "delay");
        assert_eq!(tr.faults[4].params["per_packet_ns"], 2_000);
        assert_eq!(tr.faults[0].flows.len(), 5);
        assert!(tr.faults[0].flows.iter().all(|f| f.src_ip >> 20 == 0xac1));
        let starts = burst_ipid_starts(7, 0, 5);
        assert_eq!(starts, burst_ipid_starts(7, 0, 5));
        assert_ne!(starts, burst_ipid_starts(7, 1, 5));
        assert!(
            starts
                .iter()
                .collect::<std::collections::HashSet<_>>()
                .len()
                > 1
        );
        assert_eq!(tr.faults[1].kind, "interrupt");
        assert_eq!(tr.faults[1].start_ns, 2_000_001_000);
        assert_eq!(tr.faults[1].end_ns, 2_001_001_000);
        assert_eq!(tr.faults[2].flows, bug_flows(200, 7, 3));
        // Bug flows are real flows of the mix.
        let mix = traffic::synthetic(200, 1, 7);
        let tuples: Vec<_> = mix
            .frames
            .iter()
            .map(|f| crate::packet::parse(f).unwrap().tuple)
            .collect();
        assert!(tr.faults[2].flows.iter().all(|f| tuples.contains(f)));
        let json = serde_json::to_string(&tr).unwrap();
        let back: Truth = serde_json::from_str(&json).unwrap();
        assert_eq!(back, tr);
    }
}
