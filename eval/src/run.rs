//! The end-to-end pipeline: scenario → simulation (trace + ground truth) →
//! Microscope and NetMedic → per-victim ranks; multi-seed runs and the
//! §6.3 sweeps.

use crate::matching::{Candidate, Kind, Loc};
use crate::stats::{MethodAccuracy, RankRecord};
use crate::{score_victims, EvalError, EvalResult, FaultInfo, Slot, VictimInfo};
use serde::Serialize;
use std::collections::HashMap;
use testbeds::scenario::{FaultKind, Scenario};

/// Both diagnosers' configurations.
#[derive(Clone, Debug)]
pub struct Options {
    pub diagnose: diagnose::Config,
    pub netmedic: netmedic::Config,
    /// Select Microscope's victims with the ground truth's latency threshold
    /// (`Truth::threshold_ns`, the p99 of the run without injections) plus
    /// losses, instead of `diagnose.victims` (default true). The engine's
    /// own p99 is taken over the injected run, which labels a different
    /// set; the evaluation scores the truth's victims, so the engine is
    /// asked about the same packets.
    pub victims_from_truth: bool,
    /// A second NetMedic configuration scored on the same run (e.g. the
    /// paper's rates-only variables), reported as `EvalResult::netmedic_alt`.
    pub netmedic_alt: Option<netmedic::Config>,
}

impl Default for Options {
    /// The engine diagnoses every victim at every NF on its path
    /// (`require_abnormal = false`), so each labelled victim has a diagnosis
    /// at the NF the truth labels it at.
    fn default() -> Self {
        Options {
            diagnose: diagnose::Config {
                require_abnormal: false,
                ..diagnose::Config::default()
            },
            netmedic: netmedic::Config::default(),
            victims_from_truth: true,
            netmedic_alt: None,
        }
    }
}

fn kind(k: FaultKind) -> Kind {
    match k {
        FaultKind::Burst => Kind::Burst,
        FaultKind::Interrupt => Kind::Interrupt,
        FaultKind::Bug => Kind::Bug,
    }
}

/// Converts the engine's output to rankings keyed by victim slot. When the
/// engine diagnoses one slot more than once (it should not), the first is
/// kept.
pub fn microscope_rankings(d: &diagnose::Diagnosis) -> HashMap<Slot, Vec<Candidate>> {
    let mut m = HashMap::new();
    for v in &d.victims {
        let slot = v.slot;
        let ranking: Vec<Candidate> = v
            .ranked
            .iter()
            .map(|c| Candidate {
                loc: match &c.location {
                    diagnose::Location::Nf(n) => Loc::Nf(n.clone()),
                    diagnose::Location::Source(s) => Loc::Source(s.clone()),
                },
                score: c.score,
                flows: c.flows.clone(),
            })
            .collect();
        m.entry(slot).or_insert(ranking);
    }
    m
}

/// Converts the simulator's ground truth.
pub fn truth_inputs(t: &testbeds::truth::Truth) -> (Vec<FaultInfo>, Vec<VictimInfo>) {
    let faults = t
        .faults
        .iter()
        .map(|f| FaultInfo {
            id: f.id as u64,
            kind: kind(f.kind),
            nf: f.nf.clone(),
            // Bugs: both forms (as sent, and after the NATs), since an NF
            // culprit's flows may be named either way; bursts are matched
            // against source culprits, which see the flows as sent.
            flows: match f.kind {
                FaultKind::Bug => f
                    .flows
                    .iter()
                    .chain(f.flows_at_sink.iter())
                    .copied()
                    .collect(),
                _ => f.flows.clone(),
            },
            start_ns: f.start_ns,
            end_ns: f.end_ns,
        })
        .collect();
    let victims = t
        .victims
        .iter()
        .map(|v| VictimInfo {
            fault_id: v.fault_id as u64,
            slot: v.slot,
            nf: v.nf.clone(),
            lost: v.lost,
        })
        .collect();
    (faults, victims)
}

/// Simulates `sc`, diagnoses with both methods, scores every labelled
/// victim. Errors: invalid scenario, simulator or engine failure.
pub fn evaluate(sc: &Scenario, opts: &Options) -> Result<EvalResult, EvalError> {
    Ok(evaluate_windows(sc, opts, &[])?.0)
}

/// [`evaluate`], plus NetMedic re-run on the same simulation and the same
/// Microscope diagnosis with each of `windows_ns` as its window (the other
/// NetMedic settings from `opts.netmedic`); returns NetMedic's accuracy per
/// window, in order.
pub fn evaluate_windows(
    sc: &Scenario,
    opts: &Options,
    windows_ns: &[u64],
) -> Result<(EvalResult, Vec<MethodAccuracy>), EvalError> {
    let t0 = std::time::Instant::now();
    let out = testbeds::sim::simulate(sc).map_err(|e| EvalError::Sim(e.to_string()))?;
    let simulate_s = t0.elapsed().as_secs_f64();
    let t1 = std::time::Instant::now();
    let mut dcfg = opts.diagnose.clone();
    if opts.victims_from_truth && out.truth.threshold_ns > 0 {
        dcfg.victims = vec![
            diagnose::VictimRule::LatencyAbove(out.truth.threshold_ns as f64),
            diagnose::VictimRule::Lost,
        ];
    }
    let diag = diagnose::run(&out.trace, &dcfg).map_err(|e| EvalError::Diagnose(e.to_string()))?;
    let ms = microscope_rankings(&diag);
    let microscope_s = t1.elapsed().as_secs_f64();
    let (faults, victims) = truth_inputs(&out.truth);
    let mut r = score_victims(
        &sc.name,
        sc.seed,
        &out.trace,
        &faults,
        &victims,
        &ms,
        &opts.netmedic,
    )?;
    if let Some(alt) = &opts.netmedic_alt {
        let a = score_victims(&sc.name, sc.seed, &out.trace, &faults, &victims, &ms, alt)?;
        r.netmedic_alt = Some(a.netmedic);
    }
    let mut per_window = Vec::with_capacity(windows_ns.len());
    for &w in windows_ns {
        let cfg = netmedic::Config {
            window_ns: w,
            ..opts.netmedic.clone()
        };
        let a = score_victims(&sc.name, sc.seed, &out.trace, &faults, &victims, &ms, &cfg)?;
        per_window.push(a.netmedic);
    }
    r.timings.simulate_s = simulate_s;
    r.timings.microscope_s = microscope_s;
    Ok((r, per_window))
}

/// The §6.3 sweeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sweep {
    /// Bursts only, burst size 200–5000 packets.
    BurstSize,
    /// Interrupts only, 300–1500 µs.
    InterruptLength,
    /// All kinds; victims grouped by DAG hops from culprit to victim NF.
    Hops,
    /// NetMedic's window (paper Fig. 13), [`NETMEDIC_WINDOWS_MS`]; one
    /// simulation and one Microscope diagnosis, NetMedic re-run per window.
    NetmedicWindow,
}

impl std::str::FromStr for Sweep {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "burst-size" => Ok(Sweep::BurstSize),
            "interrupt-length" => Ok(Sweep::InterruptLength),
            "hops" => Ok(Sweep::Hops),
            "netmedic-window" => Ok(Sweep::NetmedicWindow),
            _ => Err(format!(
                "unknown sweep {s:?}: expected burst-size, interrupt-length, hops or netmedic-window"
            )),
        }
    }
}

/// Burst sizes of the sweep: `faults.burst.min_packets = max_packets`
/// (the simulator's burst size, see docs/evaluation.md).
pub const BURST_SIZES: [u32; 5] = [200, 500, 1000, 2500, 5000];
/// Interrupt lengths of the sweep, µs.
pub const INTERRUPT_US: [u64; 5] = [300, 500, 750, 1000, 1500];
/// NetMedic windows of the sweep, ms (paper Fig. 13).
pub const NETMEDIC_WINDOWS_MS: [u64; 5] = [1, 5, 10, 50, 100];

/// One point of a sweep.
#[derive(Clone, Debug, Serialize)]
pub struct SweepPoint {
    pub label: String,
    pub microscope: MethodAccuracy,
    pub netmedic: MethodAccuracy,
}

fn set(sc: &mut Scenario, k: &str, v: &str) -> Result<(), EvalError> {
    sc.set(k, v).map_err(EvalError::Scenario)
}

/// Runs a sweep on top of `base` (its seed, duration and traffic).
pub fn sweep(base: &Scenario, which: Sweep, opts: &Options) -> Result<Vec<SweepPoint>, EvalError> {
    let mut points = Vec::new();
    match which {
        Sweep::BurstSize => {
            for n in BURST_SIZES {
                let mut sc = base.clone();
                set(&mut sc, "faults.kinds", "[\"burst\"]")?;
                // Widen first so min ≤ max holds after each single change.
                set(&mut sc, "faults.burst.max_packets", &u32::MAX.to_string())?;
                set(&mut sc, "faults.burst.min_packets", &n.to_string())?;
                set(&mut sc, "faults.burst.max_packets", &n.to_string())?;
                let r = evaluate(&sc, opts)?;
                points.push(SweepPoint {
                    label: format!("burst {n} pkts"),
                    microscope: r.microscope,
                    netmedic: r.netmedic,
                });
            }
        }
        Sweep::InterruptLength => {
            for us in INTERRUPT_US {
                let mut sc = base.clone();
                set(&mut sc, "faults.kinds", "[\"interrupt\"]")?;
                set(&mut sc, "faults.interrupt.max_ns", &u32::MAX.to_string())?;
                set(&mut sc, "faults.interrupt.min_ns", &(us * 1000).to_string())?;
                set(&mut sc, "faults.interrupt.max_ns", &(us * 1000).to_string())?;
                let r = evaluate(&sc, opts)?;
                points.push(SweepPoint {
                    label: format!("interrupt {us} us"),
                    microscope: r.microscope,
                    netmedic: r.netmedic,
                });
            }
        }
        Sweep::NetmedicWindow => {
            let ws: Vec<u64> = NETMEDIC_WINDOWS_MS
                .iter()
                .map(|ms| ms * 1_000_000)
                .collect();
            let (r, nm) = evaluate_windows(base, opts, &ws)?;
            for (ms, a) in NETMEDIC_WINDOWS_MS.iter().zip(nm) {
                points.push(SweepPoint {
                    label: format!("window {ms} ms"),
                    microscope: r.microscope,
                    netmedic: a,
                });
            }
        }
        Sweep::Hops => {
            let r = evaluate(base, opts)?;
            let mut by: std::collections::BTreeMap<
                Option<usize>,
                (Vec<RankRecord>, Vec<RankRecord>),
            > = Default::default();
            for v in &r.victims {
                let e = by.entry(v.hops).or_default();
                e.0.push(v.microscope.clone());
                e.1.push(v.netmedic.clone());
            }
            for (h, (ms, nm)) in by {
                points.push(SweepPoint {
                    label: match h {
                        Some(h) => format!("{h} hops"),
                        None => "unreachable".into(),
                    },
                    microscope: MethodAccuracy::from_records(&ms),
                    netmedic: MethodAccuracy::from_records(&nm),
                });
            }
        }
    }
    Ok(points)
}
