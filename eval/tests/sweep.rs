//! The NetMedic window sweep (paper Fig. 13): NetMedic re-run with other
//! windows on one simulation and one Microscope diagnosis.

use eval::run::{evaluate_windows, Options, Sweep, NETMEDIC_WINDOWS_MS};
use testbeds::scenario::{Scenario, SimDuration};

#[test]
fn netmedic_window_sweep_parses() {
    assert_eq!(
        "netmedic-window".parse::<Sweep>(),
        Ok(Sweep::NetmedicWindow)
    );
    assert!(NETMEDIC_WINDOWS_MS.contains(&10), "the paper's default");
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "release-only (cargo test --release): full pipeline"
)]
fn each_window_is_scored_on_the_same_victims_and_the_default_matches() {
    let mut sc = Scenario::small_chain();
    sc.duration = SimDuration::parse("200ms").unwrap();
    for (k, v) in [
        ("faults.first_at_ns", "20_000_000"),
        ("faults.spacing_ns", "45_000_000"),
        ("victims.settle_ns", "20_000_000"),
    ] {
        sc.set(k, v).unwrap();
    }
    let opts = Options::default();
    let default_w = opts.netmedic.window_ns;
    let ws = [1_000_000, default_w, 100_000_000];
    let (r, per) = evaluate_windows(&sc, &opts, &ws).unwrap();
    assert_eq!(per.len(), ws.len());
    assert!(
        r.microscope.overall.victims > 100,
        "{:?}",
        r.microscope.overall
    );
    for a in &per {
        // Same labelled victims for every window: only the ranks differ.
        assert_eq!(a.overall.victims, r.netmedic.overall.victims);
    }
    // The default window re-run reproduces the main NetMedic result.
    assert_eq!(per[1], r.netmedic);
    // A 100x longer window blurs the correlation: its accuracy differs.
    assert_ne!(per[0], per[2]);
}
