//! Inspects Microscope's diagnosis of chosen labelled victims (a debugging
//! aid for the failure analysis of docs/evaluation.md):
//! `cargo run --release -p eval --example probe -- SCENARIO SEED DURATION VICTIMS_JSON KIND NF_PREFIX [N]`
//! where VICTIMS_JSON is an `EVAL_VICTIMS_OUT` dump of the same run; prints,
//! for up to N (default 5) victims of KIND at NFs named NF_PREFIX* that
//! Microscope missed, the truth label, the queuing period and the ranking
//! with each culprit's share of fault flows.

use diagnose::{diagnose_slots, reconstruct, Location, PacketSlot};
use std::collections::HashSet;
use testbeds::scenario::{Scenario, SimDuration};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 6 {
        return Err("usage: SCENARIO SEED DURATION VICTIMS_JSON KIND NF_PREFIX [N]".into());
    }
    let mut sc = Scenario::by_name_or_path(&a[0])?;
    sc.seed = a[1].parse()?;
    sc.duration = SimDuration::parse(&a[2])?;
    let victims: Vec<eval::VictimOutcome> = serde_json::from_slice(&std::fs::read(&a[3])?)?;
    let kind = a[4].as_str();
    let prefix = a[5].as_str();
    let n: usize = a.get(6).map(|s| s.parse()).transpose()?.unwrap_or(5);
    let out = testbeds::sim::simulate(&sc)?;
    let cfg = diagnose::Config {
        require_abnormal: false,
        ..Default::default()
    };
    let rec = reconstruct(&out.trace, &cfg)?;
    let picked: Vec<&eval::VictimOutcome> = victims
        .iter()
        .filter(|v| {
            format!("{:?}", v.kind).eq_ignore_ascii_case(kind)
                && v.nf.starts_with(prefix)
                && v.microscope.rank != Some(1)
        })
        .collect();
    if std::env::var("PROBE_SUMMARY").is_ok() {
        // Classify every picked victim by its queuing period at the labelled NF.
        let slots: Vec<PacketSlot> = picked.iter().map(|v| v.slot).collect();
        let ds = diagnose_slots(&rec, &cfg, &slots)?;
        let mut hist: std::collections::BTreeMap<String, u32> = Default::default();
        for d in &ds {
            let top = d.ranked.first().map(|c| match &c.location {
                Location::Nf(x) => {
                    if *x == d.nf {
                        "local"
                    } else {
                        "other-nf"
                    }
                }
                Location::Source(_) => "source",
            });
            let class = if d.n_i == 0 {
                "n_i=0".to_string()
            } else if d.period_ns > 5_000_000 {
                format!("T>5ms top={top:?}")
            } else if d.period_ns > 1_000_000 {
                format!("T 1-5ms top={top:?}")
            } else {
                format!("T<1ms top={top:?} si>sp={}", d.s_i > d.s_p)
            };
            *hist.entry(class).or_default() += 1;
        }
        for (k, c) in hist {
            println!("{c:7} {k}");
        }
        return Ok(());
    }
    let picked: Vec<&eval::VictimOutcome> = picked.into_iter().step_by(7).take(n).collect();
    for v in picked {
        let f = &out.truth.faults[v.fault_id as usize];
        let fflows: HashSet<_> = f.flows.iter().chain(f.flows_at_sink.iter()).collect();
        let lv = out.truth.victims.iter().find(|l| {
            l.slot.stream == v.slot.stream && l.slot.seq == v.slot.seq && l.slot.idx == v.slot.idx
        });
        println!(
            "=== fault {} {:?} nf={:?} [{}..{}] victim at {} hops {:?} rank {:?} top {:?}",
            f.id, f.kind, f.nf, f.start_ns, f.end_ns, v.nf, v.hops, v.microscope.rank, v.ms_top
        );
        if let Some(l) = lv {
            println!(
                "  truth: latency {} wait {} baseline {:?} pkt {}",
                l.latency_ns, l.wait_ns, l.baseline_latency_ns, l.packet
            );
            let slots: Vec<PacketSlot> = out.truth.journey(l.packet).to_vec();
            let ds = diagnose_slots(&rec, &cfg, &slots)?;
            for d in &ds {
                let mark = if d.slot.stream == v.slot.stream {
                    "*"
                } else {
                    " "
                };
                print!(
                    " {mark}{:6} arr {} delay {:.0} T {} n_i {} n_p {} S_i {:.1} S_p {:.1} unattr {:.1} |",
                    d.nf, d.arrival_ns, d.local_delay_ns, d.period_ns, d.n_i, d.n_p, d.s_i, d.s_p, d.unattributed
                );
                for c in d.ranked.iter().take(4) {
                    let loc = match &c.location {
                        Location::Nf(x) => x.clone(),
                        Location::Source(x) => format!("src:{x}"),
                    };
                    let tot: f64 = c.flows.iter().map(|x| x.1).sum();
                    let ff: f64 = c
                        .flows
                        .iter()
                        .filter(|x| fflows.contains(&x.0))
                        .map(|x| x.1)
                        .sum();
                    print!(
                        " {loc}={:.1}(d{} pk{} ff{:.0}%)",
                        c.score,
                        c.depth,
                        c.packets,
                        if tot > 0.0 { 100.0 * ff / tot } else { 0.0 }
                    );
                }
                println!();
            }
        }
    }
    Ok(())
}
