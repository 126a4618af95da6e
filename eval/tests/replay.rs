//! The replay regression suite (issue 6): a CAIDA-style capture generated
//! at test time is replayed through the simulated NF chain with injected
//! bursts, interrupts and bugs; Microscope must name the injected culprits
//! at least as often as the floors in `eval::thresholds::REPLAY` say, and
//! beat the NetMedic baseline. Reduced scale (see `docs/evaluation.md`);
//! release-only, as the README test command runs it.

use eval::run::{evaluate, Options};
use eval::thresholds::REPLAY;
use testbeds::scenario::{Scenario, SimDuration};

/// The replay scenario: the small chain with the injection schedule
/// compressed so every kind is injected in a short run.
fn replay_scenario(pcap: &std::path::Path) -> Scenario {
    let mut sc = Scenario::small_chain();
    sc.duration = SimDuration::parse("600ms").unwrap();
    for (k, v) in [
        ("faults.first_at_ns", "20_000_000"),
        ("faults.spacing_ns", "45_000_000"),
        ("faults.start_jitter_ns", "5_000_000"),
        ("victims.settle_ns", "20_000_000"),
    ] {
        sc.set(k, v).unwrap();
    }
    eval::replay::use_pcap(&mut sc, pcap);
    sc
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "release-only (cargo test --release): full pipeline"
)]
fn issue6_replayed_caida_style_pcap_meets_accuracy_floors() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("caida-style.pcap");
    // 100 ms of the synthetic model at the scenario's rate, looped by the
    // replay to fill the run.
    let gen = Scenario::small_chain();
    let n = eval::replay::write_caida_style_pcap(&gen, 100_000_000, &pcap).unwrap();
    assert!(n > 10_000, "capture too small: {n} packets");

    let sc = replay_scenario(&pcap);
    // NetMedic as the paper configured it (traffic rates only); the floors'
    // margin is over that baseline.
    let mut opts = Options::default();
    opts.netmedic.nf_variables = netmedic::NfVariables::Rates;
    let r = evaluate(&sc, &opts).unwrap();
    eprint!("{}", eval::report::render_text(&r));
    let v = REPLAY.violations(&r);
    assert!(v.is_empty(), "accuracy below the floors: {v:#?}");
}

#[test]
fn generated_capture_round_trips_through_the_pcap_reader() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("c.pcap");
    let gen = Scenario::small_chain();
    let n = eval::replay::write_caida_style_pcap(&gen, 5_000_000, &pcap).unwrap();
    let cap = testbeds::pcap::read_pcap(&pcap).unwrap();
    assert_eq!(cap.packets.len(), n);
    // ~0.4 Mpps for 5 ms.
    assert!((1_500..2_500).contains(&n), "{n}");
    let flows: std::collections::HashSet<_> = cap.packets.iter().map(|p| p.tuple).collect();
    assert!(
        flows.len() > 50,
        "CAIDA-style traffic has many flows: {}",
        flows.len()
    );
    assert!(cap.packets.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
    // A non-synthetic scenario cannot be a generator.
    let mut sc = Scenario::small_chain();
    eval::replay::use_pcap(&mut sc, &pcap);
    assert!(eval::replay::write_caida_style_pcap(&sc, 1_000, &pcap).is_err());
}
