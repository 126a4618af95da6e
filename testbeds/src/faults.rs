//! Injection planning (paper §6.2): which problems happen when, where, with
//! which flows — all drawn from RNG streams private to each injection, so a
//! plan never disturbs the background — and the background stall schedule.

use crate::rng::{purpose, stream};
use crate::scenario::{parse_ipv4, FaultKind, Scenario};
use crate::topology::Graph;
use crate::traffic::Source;
use collector::FiveTuple;
use rand::Rng;
use std::collections::BTreeMap;

/// Flow ids of injected flows carry this bit.
pub const INJECTED_FLOW: u32 = 0x8000_0000;

/// One planned injection.
#[derive(Clone, Debug)]
pub struct PlannedFault {
    pub id: u32,
    pub kind: FaultKind,
    pub inst: Option<usize>,
    /// Injected flow ids (with [`INJECTED_FLOW`] set).
    pub flows: Vec<u32>,
    pub start_ns: u64,
    pub end_ns: u64,
    pub injected_packets: u64,
    pub params: BTreeMap<String, serde_json::Value>,
}

/// An injected packet, before it is given a packet id.
#[derive(Clone, Copy, Debug)]
pub struct InjPacket {
    pub t_ns: u64,
    pub flow: u32,
    pub ipid: u16,
    pub fault: u16,
}

/// A buggy instance: triggering flows and their per-packet service time.
#[derive(Clone, Debug)]
pub struct Bug {
    pub inst: usize,
    pub flows: Vec<u32>,
    pub service_ns: f64,
}

/// All injections of a run.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub faults: Vec<PlannedFault>,
    /// Tuples of injected flows, indexed by `flow & !INJECTED_FLOW`.
    pub flows: Vec<FiveTuple>,
    /// Sorted by time.
    pub packets: Vec<InjPacket>,
    /// (instance, start, end) of injected interrupts.
    pub stalls: Vec<(usize, u64, u64)>,
    pub bugs: Vec<Bug>,
    /// Steered flows (`faults.bug.steer`): source tuple → instance, to
    /// apply with [`Graph::pin`] before simulating.
    pub pins: Vec<(FiveTuple, usize)>,
}

/// Plans the scenario's injections (empty when `faults.enabled` is false).
///
/// Errors: no instance is eligible, or no triggering flow reaches the buggy
/// instance within 10 000 port pairs.
pub fn plan(sc: &Scenario, g: &Graph, src: &Source) -> Result<Plan, String> {
    let mut p = Plan::default();
    let f = &sc.faults;
    if !f.enabled {
        return Ok(p);
    }
    let dur = sc.duration.ns();
    let margin = (dur / 20).min(50_000_000);
    let mut i: u64 = 0;
    loop {
        if f.count != 0 && i >= f.count as u64 {
            break;
        }
        let mut rng = stream(sc.seed, purpose::INJECT, i);
        let jitter = if f.start_jitter_ns > 0 {
            rng.gen_range(0..=f.start_jitter_ns)
        } else {
            0
        };
        let start = f.first_at_ns + i * f.spacing_ns + jitter;
        if start + margin >= dur {
            break;
        }
        let kind = f.kinds[(i % f.kinds.len() as u64) as usize];
        let id = i as u32;
        let mut params = BTreeMap::new();
        let fault = match kind {
            FaultKind::Burst => {
                let b = &f.burst;
                let gap = 1e9 / b.rate.pps();
                let mut flows = Vec::new();
                let mut sizes = Vec::new();
                let mut end = start;
                for j in 0..b.flows {
                    let tuple = src.sample_tuple(&mut rng);
                    let n = rng.gen_range(b.min_packets..=b.max_packets);
                    let fid = INJECTED_FLOW | p.flows.len() as u32;
                    p.flows.push(tuple);
                    let mut ipid: u16 = rng.gen();
                    let t0 = start + j as u64 * 10_000;
                    for k in 0..n {
                        let t = t0 + (k as f64 * gap).round() as u64;
                        end = end.max(t);
                        p.packets.push(InjPacket {
                            t_ns: t,
                            flow: fid,
                            ipid,
                            fault: id as u16,
                        });
                        ipid = ipid.wrapping_add(1);
                    }
                    flows.push(fid);
                    sizes.push(n);
                }
                params.insert("packets_per_flow".into(), serde_json::json!(sizes));
                params.insert("rate_pps_per_flow".into(), serde_json::json!(b.rate.pps()));
                PlannedFault {
                    id,
                    kind,
                    inst: None,
                    flows,
                    start_ns: start,
                    end_ns: end,
                    injected_packets: sizes.iter().map(|s| *s as u64).sum(),
                    params,
                }
            }
            FaultKind::Interrupt => {
                let eligible: Vec<usize> = if f.interrupt.nf_types.is_empty() {
                    (0..g.instances.len()).collect()
                } else {
                    f.interrupt
                        .nf_types
                        .iter()
                        .flat_map(|t| g.instances_of(t))
                        .collect()
                };
                if eligible.is_empty() {
                    return Err("faults.interrupt: no eligible instance".into());
                }
                let inst = eligible[rng.gen_range(0..eligible.len())];
                let d = rng.gen_range(f.interrupt.min_ns..=f.interrupt.max_ns);
                p.stalls.push((inst, start, start + d));
                params.insert("duration_ns".into(), serde_json::json!(d));
                PlannedFault {
                    id,
                    kind,
                    inst: Some(inst),
                    flows: vec![],
                    start_ns: start,
                    end_ns: start + d,
                    injected_packets: 0,
                    params,
                }
            }
            FaultKind::Bug => {
                let b = &f.bug;
                let range = g.instances_of(&b.nf_type);
                if range.is_empty() {
                    return Err(format!(
                        "faults.bug.nf_type `{}` has no instance",
                        b.nf_type
                    ));
                }
                let inst = match &b.instance {
                    Some(name) => range
                        .clone()
                        .find(|&i| g.instances[i].name == *name)
                        .ok_or_else(|| {
                            format!(
                                "faults.bug.instance `{name}` is not an instance of `{}`",
                                b.nf_type
                            )
                        })?,
                    None => rng.gen_range(range),
                };
                let src_ip = parse_ipv4(&b.src).map_err(|e| format!("faults.bug.src: {e}"))?;
                let dst_ip = parse_ipv4(&b.dst).map_err(|e| format!("faults.bug.dst: {e}"))?;
                let mut flows = Vec::new();
                let mut sizes = Vec::new();
                let mut tries = 0u32;
                let gap = 1e9 / b.flow_rate.pps();
                let mut end = start;
                while flows.len() < b.flows as usize {
                    if tries >= 10_000 {
                        return Err(format!(
                            "faults.bug: no flow from {} to {} reaches {} in 10000 port pairs",
                            b.src, b.dst, g.instances[inst].name
                        ));
                    }
                    let tuple = if b.steer {
                        // Flow j: base + j → base + j, steered to `inst`.
                        let j = flows.len() as u16;
                        let t = FiveTuple {
                            src_ip,
                            dst_ip,
                            src_port: b.src_port_base.wrapping_add(j),
                            dst_port: b.dst_port_base.wrapping_add(j),
                            proto: 6,
                        };
                        match p.pins.iter().find(|x| x.0 == t) {
                            None => p.pins.push((t, inst)),
                            Some(&(_, other)) if other != inst => {
                                return Err(format!(
                                    "faults.bug.steer: flow {}:{} is steered to {} and {}; \
                                     set faults.bug.instance",
                                    t.src_port,
                                    t.dst_port,
                                    g.instances[other].name,
                                    g.instances[inst].name
                                ));
                            }
                            Some(_) => {}
                        }
                        t
                    } else {
                        FiveTuple {
                            src_ip,
                            dst_ip,
                            src_port: b.src_port_base.wrapping_add((tries % 100) as u16),
                            dst_port: b.dst_port_base.wrapping_add((tries / 100) as u16),
                            proto: 6,
                        }
                    };
                    tries += 1;
                    if !b.steer && !g.path(&tuple).0.contains(&inst) {
                        continue;
                    }
                    let j = flows.len();
                    let n = rng.gen_range(b.min_packets..=b.max_packets);
                    let fid = INJECTED_FLOW | p.flows.len() as u32;
                    p.flows.push(tuple);
                    let mut ipid: u16 = rng.gen();
                    let t0 = start + (j as f64 * gap / b.flows as f64).round() as u64;
                    for k in 0..n {
                        let t = t0 + (k as f64 * gap).round() as u64;
                        end = end.max(t);
                        p.packets.push(InjPacket {
                            t_ns: t,
                            flow: fid,
                            ipid,
                            fault: id as u16,
                        });
                        ipid = ipid.wrapping_add(1);
                    }
                    flows.push(fid);
                    sizes.push(n);
                }
                p.bugs.push(Bug {
                    inst,
                    flows: flows.clone(),
                    service_ns: 1e9 / b.rate.pps(),
                });
                params.insert("packets_per_flow".into(), serde_json::json!(sizes));
                params.insert("bug_rate_pps".into(), serde_json::json!(b.rate.pps()));
                params.insert("flow_rate_pps".into(), serde_json::json!(b.flow_rate.pps()));
                PlannedFault {
                    id,
                    kind,
                    inst: Some(inst),
                    flows,
                    start_ns: start,
                    end_ns: end,
                    injected_packets: sizes.iter().map(|s| *s as u64).sum(),
                    params,
                }
            }
        };
        p.faults.push(fault);
        i += 1;
    }
    p.packets.retain(|x| x.t_ns < dur);
    p.packets.sort_by_key(|x| (x.t_ns, x.fault, x.flow));
    Ok(p)
}

/// Background stalls of every instance: a Poisson process per instance
/// (its own RNG stream), durations uniform in `[stall_min_ns, stall_max_ns]`.
pub fn background_stalls(sc: &Scenario, n_inst: usize) -> Vec<Vec<(u64, u64)>> {
    let b = &sc.background;
    let dur = sc.duration.ns();
    (0..n_inst)
        .map(|i| {
            let mut v = Vec::new();
            if !b.enabled || b.stall_rate_hz <= 0.0 {
                return v;
            }
            let mut rng = stream(sc.seed, purpose::STALLS, i as u64);
            let mean_gap = 1e9 / b.stall_rate_hz;
            let mut t = 0.0f64;
            loop {
                let u: f64 = rng.gen();
                t += -(1.0 - u).ln() * mean_gap;
                if t >= dur as f64 {
                    break;
                }
                let d = rng.gen_range(b.stall_min_ns..=b.stall_max_ns);
                v.push((t as u64, t as u64 + d));
            }
            v
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_plan_follows_section_6_2() {
        let sc = Scenario::paper_moderate();
        let g = Graph::new(&sc);
        let src = Source::new(&sc).unwrap();
        let p = plan(&sc, &g, &src).unwrap();
        // 5 s, first at 100 ms, every 300 ms: 17 injections cycling kinds.
        assert_eq!(p.faults.len(), 17);
        for (i, f) in p.faults.iter().enumerate() {
            assert_eq!(f.kind, sc.faults.kinds[i % 3]);
            if let Some(next) = p.faults.get(i + 1) {
                assert!(
                    f.end_ns + 100_000_000 < next.start_ns,
                    "injections are separated in time"
                );
            }
            match f.kind {
                FaultKind::Burst => {
                    assert_eq!(f.flows.len(), 5);
                    assert!((2500..=12500).contains(&f.injected_packets));
                }
                FaultKind::Interrupt => {
                    assert!((500_000..=1_000_000).contains(&(f.end_ns - f.start_ns)));
                }
                FaultKind::Bug => {
                    let inst = f.inst.unwrap();
                    assert!(g.instances[inst].name.starts_with("fw"));
                    for fl in &f.flows {
                        let t = p.flows[(fl & !INJECTED_FLOW) as usize];
                        assert!(
                            g.path(&t).0.contains(&inst),
                            "triggering flow reaches the buggy firewall"
                        );
                    }
                    assert!((100..=300).contains(&f.injected_packets));
                }
            }
        }
        assert!(p.packets.windows(2).all(|w| w[0].t_ns <= w[1].t_ns));
        // Planning is deterministic and independent of the background.
        let again = plan(&sc, &g, &Source::new(&sc).unwrap()).unwrap();
        assert_eq!(again.packets.len(), p.packets.len());
        assert_eq!(again.stalls, p.stalls);
    }

    #[test]
    fn steered_bug_flows_are_paired_ports_and_reach_the_named_instance() {
        let mut sc = Scenario::paper_moderate();
        sc.faults.kinds = vec![FaultKind::Bug];
        sc.faults.bug.flows = 9;
        sc.faults.bug.instance = Some("fw2".into());
        sc.faults.bug.steer = true;
        sc.validate().unwrap();
        let mut g = Graph::new(&sc);
        let p = plan(&sc, &g, &Source::new(&sc).unwrap()).unwrap();
        let fw2 = g.instances.iter().position(|i| i.name == "fw2").unwrap();
        assert_eq!(p.pins.len(), 9, "the same nine flows every injection");
        // The hash alone spreads them over the five firewalls.
        let hashed = p.pins.iter().filter(|(t, _)| g.path(t).0.contains(&fw2));
        assert!(hashed.count() < 9);
        for (t, i) in &p.pins {
            g.pin(t, *i).unwrap();
        }
        for f in &p.faults {
            assert_eq!(f.inst, Some(fw2));
            for (j, fl) in f.flows.iter().enumerate() {
                let t = p.flows[(fl & !INJECTED_FLOW) as usize];
                assert_eq!((t.src_port, t.dst_port), (2000 + j as u16, 6000 + j as u16));
                assert!(g.path(&t).0.contains(&fw2), "steered to fw2");
            }
        }
        sc.faults.bug.instance = Some("vpn1".into());
        assert!(sc.validate().is_err(), "not a firewall");
    }

    #[test]
    fn disabled_faults_plan_nothing_and_background_stalls_are_poisson() {
        let sc = Scenario::paper_moderate().without_faults();
        let g = Graph::new(&sc);
        let p = plan(&sc, &g, &Source::new(&sc).unwrap()).unwrap();
        assert!(p.faults.is_empty() && p.packets.is_empty());
        let st = background_stalls(&sc, 16);
        let n: usize = st.iter().map(|v| v.len()).sum();
        // 2/s × 16 instances × 5 s = 160 expected.
        assert!((110..=210).contains(&n), "{n}");
        for v in &st {
            assert!(v.windows(2).all(|w| w[0].0 <= w[1].0));
            assert!(v.iter().all(|s| (20_000..=150_000).contains(&(s.1 - s.0))));
        }
    }
}
