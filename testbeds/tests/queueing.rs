//! Queueing-theory sanity checks of the NF model on a single instance with
//! Poisson input and deterministic service (no jitter, no background).

use testbeds::scenario::{Behavior, FaultKind, NfTypeConfig, Rate, Scenario, SimDuration};
use testbeds::{simulate, SimOutput};

const LINK_NS: f64 = 500.0;

fn single(lambda: f64, mu: f64, dur_ms: u64) -> Scenario {
    let mut s = Scenario::small_chain();
    s.nf = vec![NfTypeConfig {
        name: "nf".into(),
        prefix: None,
        instances: 1,
        peak_rate: Rate(mu),
        behavior: Behavior::Forward,
        next: "sink".into(),
        rule: vec![],
        queue_capacity: None,
        burst: None,
    }];
    s.traffic.rate = Rate(lambda);
    s.traffic.source_batch_ns = 0;
    s.nf_defaults.service_jitter = 0.0;
    s.nf_defaults.rate_jitter = 0.0;
    s.nf_defaults.link_delay_ns = LINK_NS as u64;
    s.background.enabled = false;
    s.faults.enabled = false;
    s.duration = SimDuration(dur_ms * 1_000_000);
    s.validate().unwrap();
    s
}

/// Per packet: (arrival at the NF, dequeue time, index in its rx batch).
fn arrivals_and_dequeues(out: &SimOutput) -> Vec<(f64, f64, usize)> {
    let t = &out.truth;
    let rx = &out.trace.streams[1];
    let slots = t.journeys.streams.iter().find(|s| s.stream == 1).unwrap();
    let mut v = vec![(f64::NAN, f64::NAN, 0usize); t.journeys.packets.len()];
    for (b, rec) in rx.batches.iter().enumerate() {
        let start = slots.starts[b] as usize;
        for k in 0..rec.ipids.len() {
            let pid = slots.pids[start + k] as usize;
            let p = t.journeys.packets[pid];
            assert_eq!(p.ipid, rec.ipids[k]);
            v[pid] = (p.sent_ns as f64 + LINK_NS, rec.tsc as f64 / 2.6, k);
        }
    }
    v
}

#[test]
fn md1_mean_wait_and_queue_length_match_analytic() {
    let (lambda, mu) = (0.7e6, 1.0e6);
    let out = simulate(&single(lambda, mu, 300)).unwrap();
    assert_eq!(out.truth.stats.lost, 0);
    let s = 1e9 / mu;
    let v = arrivals_and_dequeues(&out);
    // Waiting time until service starts (the batch dequeue plus the service
    // of the packets ahead of it in the batch), skipping a 10 ms warm-up.
    let waits: Vec<f64> = v
        .iter()
        .filter(|x| x.0 > 10e6)
        .map(|(a, d, k)| d + *k as f64 * s - a)
        .collect();
    assert!(
        waits.iter().all(|w| *w > -1.0),
        "no packet served before it arrives"
    );
    let wq = waits.iter().sum::<f64>() / waits.len() as f64;
    let rho = lambda / mu;
    let wq_md1 = rho * s / (2.0 * (1.0 - rho));
    let lq = lambda * wq / 1e9;
    let lq_md1 = rho * rho / (2.0 * (1.0 - rho));
    assert!(
        (wq - wq_md1).abs() / wq_md1 < 0.07,
        "mean wait {wq:.1} ns vs M/D/1 {wq_md1:.1} ns"
    );
    assert!(
        (lq - lq_md1).abs() / lq_md1 < 0.07,
        "Lq {lq:.3} vs {lq_md1:.3}"
    );
    // Batches: never more than requested; many batches empty the queue.
    let rx = &out.trace.streams[1];
    assert!(rx.batches.iter().all(|b| b.ipids.len() <= 32));
    let emptied = rx.batches.iter().filter(|b| b.emptied_queue()).count();
    assert!(emptied as f64 > 0.9 * rx.batches.len() as f64);
}

#[test]
fn overload_loses_one_minus_mu_over_lambda() {
    let (lambda, mu) = (1.25e6, 1.0e6);
    let out = simulate(&single(lambda, mu, 200)).unwrap();
    let st = &out.truth.stats;
    let loss = st.lost as f64 / st.packets as f64;
    let expect = 1.0 - mu / lambda;
    assert!(
        (loss - expect).abs() < 0.01,
        "loss {loss:.4} vs {expect:.4}"
    );
    assert_eq!(st.nfs[0].dropped, st.lost);
    // The queue sits at its capacity: batches are full.
    let rx = &out.trace.streams[1];
    let full = rx.batches.iter().filter(|b| b.ipids.len() == 32).count();
    assert!(full as f64 > 0.95 * rx.batches.len() as f64);
}

#[test]
fn stall_of_d_builds_lambda_d_packets() {
    let lambda = 0.5e6;
    let mut sc = single(lambda, 1.0e6, 100);
    sc.faults.enabled = true;
    sc.faults.kinds = vec![FaultKind::Interrupt];
    sc.faults.count = 1;
    sc.faults.first_at_ns = 50_000_000;
    sc.faults.start_jitter_ns = 0;
    sc.faults.interrupt.min_ns = 800_000;
    sc.faults.interrupt.max_ns = 800_000;
    let out = simulate(&sc).unwrap();
    let f = &out.truth.faults[0];
    assert_eq!(
        (f.nf.as_deref(), f.start_ns, f.end_ns),
        (Some("nf1"), 50_000_000, 50_800_000)
    );
    let v = arrivals_and_dequeues(&out);
    let end = f.end_ns as f64;
    let q = v.iter().filter(|(a, d, _)| *a <= end && *d >= end).count() as f64;
    let expect = lambda * 800e-6;
    assert!(
        (q - expect).abs() / expect < 0.15,
        "queue at stall end {q} vs λ·D {expect}"
    );
    // Nothing is dequeued during the stall, and the first batch after it is full.
    assert!(!v
        .iter()
        .any(|(_, d, _)| *d > f.start_ns as f64 + 1.0 && *d < end - 1.0));
    let rx = &out.trace.streams[1];
    let first_after = rx
        .batches
        .iter()
        .find(|b| b.tsc as f64 / 2.6 >= end - 1.0)
        .unwrap();
    assert_eq!(first_after.ipids.len(), 32);
    // The victims are the packets the stall delayed.
    assert!(out.truth.victims.len() as f64 > 0.5 * expect);
    assert!(out.truth.victims.iter().all(|x| x.nf == "nf1" && !x.lost));
    // The longest wait is about the stall: packets that arrived at its start.
    let max_wait = out.truth.victims.iter().map(|x| x.wait_ns).max().unwrap();
    assert!((780_000..=801_000).contains(&max_wait), "{max_wait}");
}
