//! Reconstruction accuracy and diagnosis sanity against the simulator's
//! ground truth (reduced scale; the full 5 s runs are in the bench).

use diagnose::{reconstruct, run, Config, Location, PacketSlot};
use std::collections::HashMap;
use testbeds::scenario::Scenario;
use testbeds::sim::simulate;

fn scenario(name: &str, duration: &str) -> Scenario {
    let mut sc = Scenario::by_name_or_path(name).unwrap();
    sc.set("duration", duration).unwrap();
    sc
}

fn accuracy(sc: &Scenario) -> (usize, usize) {
    let out = simulate(sc).unwrap();
    let rec = reconstruct(&out.trace, &Config::default()).unwrap();
    let truth: HashMap<PacketSlot, PacketSlot> =
        out.truth.true_upstream_pairs().into_iter().collect();
    let mut correct = 0;
    for (rx, up) in &truth {
        if rec.upstream(rx).as_ref() == Some(up) {
            correct += 1;
        }
    }
    (correct, truth.len())
}

#[test]
fn paper_moderate_reconstruction_is_at_least_99_9_percent_correct() {
    let (ok, n) = accuracy(&scenario("paper-moderate", "0.4s"));
    assert!(n > 100_000, "{n} packet-hops");
    let acc = ok as f64 / n as f64;
    assert!(acc >= 0.999, "accuracy {acc:.5} ({ok}/{n})");
}

#[test]
fn diagnosis_on_the_simulator_is_consistent() {
    let sc = scenario("paper-moderate", "0.35s");
    let out = simulate(&sc).unwrap();
    let d = run(&out.trace, &Config::default()).unwrap();
    assert!(!d.victims.is_empty());
    for v in &d.victims {
        let sum: f64 = v.ranked.iter().map(|c| c.score).sum::<f64>() + v.unattributed;
        assert!((sum - v.queue_len() as f64).abs() < 1e-6 * (1.0 + sum));
        assert!(v.ranked.iter().all(|c| c.score >= 0.0));
    }
    // Topology and peak rates come from the trace.
    assert!(matches!(d.dag.origin, diagnose::DagOrigin::Topology));
    assert!(d
        .relations
        .iter()
        .any(|r| matches!(r.culprit, Location::Nf(_))));
}
