//! Load sweeps on the busy-polling stand-in: our own machine's labelled data
//! for the state and utilization estimators when no DPDK NF (and, on VMs, no
//! PMU) is available.
//!
//! One stand-in process runs a deterministic schedule of offered-load steps
//! (idle included, order shuffled with a seeded ChaCha8 per repeat). It is
//! sampled with its poll counters, so every row carries the `shim.` tier —
//! including `shim.busy_share`, the share of non-empty polls, which is the
//! measured utilization label — next to the software, process, cgroup and
//! host tiers. Rows are labelled `idle` or `<rate>pps`, their source is the
//! repeat (`sweep-rep<k>`, so evaluations can hold out whole repeats); an
//! interval that straddles a step boundary is dropped.

use crate::error::{NfmonError, Result};
use crate::sampler::{Sampler, SamplerConfig};
use crate::schema::{write_jsonl, Row};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Sweep configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepConfig {
    /// Output rows file.
    pub out: PathBuf,
    /// Offered loads, packets/s (0 = idle).
    pub rates: Vec<f64>,
    /// Seconds per step.
    pub step_s: f64,
    /// Repeats of the whole rate list (each shuffled).
    pub repeats: usize,
    /// Sampling interval, ms.
    pub interval_ms: u64,
    /// Stand-in command (program, args); `--schedule S --counters P` appended.
    pub standin_cmd: Vec<String>,
    /// Seed of the step order.
    pub seed: u64,
}

/// The label of a rate.
pub fn rate_label(r: f64) -> String {
    if r <= 0.0 {
        "idle".into()
    } else {
        format!("{}pps", r.round() as u64)
    }
}

/// Run the sweep; returns the rows (also written to `cfg.out`).
pub fn run(cfg: &SweepConfig) -> Result<Vec<Row>> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut steps: Vec<f64> = Vec::new();
    for _ in 0..cfg.repeats {
        let mut r = cfg.rates.clone();
        r.shuffle(&mut rng);
        steps.extend(r);
    }
    if steps.is_empty() {
        return Err(NfmonError::Data("sweep: no rates".into()));
    }
    // The stand-in starts its clock at spawn; add a 1 s settling step.
    let settle = 1.0;
    let mut sched = vec![format!("0:{}", steps[0])];
    for (i, r) in steps.iter().enumerate() {
        sched.push(format!("{}:{}", settle + i as f64 * cfg.step_s, r));
    }
    let dir = cfg
        .out
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| PathBuf::from("."));
    let counters = dir.join(format!("sweep-{}.counters", std::process::id()));
    let (prog, args) = cfg
        .standin_cmd
        .split_first()
        .ok_or_else(|| NfmonError::Data("sweep: empty stand-in command".into()))?;
    let mut child = Command::new(prog)
        .args(args)
        .arg("--schedule")
        .arg(sched.join(","))
        .arg("--counters")
        .arg(&counters)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| NfmonError::Sys {
            what: format!("spawn stand-in {prog}"),
            source: e,
        })?;
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_millis(200));
    let result = (|| -> Result<Vec<Row>> {
        let mut s = Sampler::new(child.id(), "standin", SamplerConfig::default())?
            .with_poll_counters(counters.clone());
        let end = settle + steps.len() as f64 * cfg.step_s;
        let interval = Duration::from_millis(cfg.interval_ms.max(50));
        let mut rows = Vec::new();
        let mut next = Instant::now() + interval;
        let step_of = |t: f64| -> Option<usize> {
            (t >= settle).then(|| ((t - settle) / cfg.step_s) as usize)
        };
        while t0.elapsed().as_secs_f64() < end {
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
            next += interval;
            let mut r = s.sample()?;
            let t1 = t0.elapsed().as_secs_f64();
            let ta = t1 - r.interval_s.unwrap_or(0.0);
            match (step_of(ta), step_of(t1)) {
                (Some(a), Some(b)) if a == b && a < steps.len() => {
                    r.label = Some(rate_label(steps[a]));
                    r.source = format!("sweep-rep{}", a / cfg.rates.len().max(1));
                    r.t_s = t1;
                    rows.push(r);
                }
                _ => {}
            }
        }
        Ok(rows)
    })();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&counters);
    let rows = result?;
    write_jsonl(&cfg.out, &rows)?;
    Ok(rows)
}

/// Results of the state and utilization estimators on sweep rows.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SweepReport {
    /// Number of repeats (= folds; each fold holds out one repeat).
    pub folds: usize,
    /// Mean shim busy share (%) per class, in class order.
    pub busy_by_class: Vec<(String, f64, usize)>,
    /// (tier set, features, classification, ON/OFF) per tier set.
    pub state: Vec<(
        String,
        usize,
        crate::state::ClassEval,
        crate::state::OnOffEval,
    )>,
    /// Utilization (label = shim busy share %) per tier set: (tiers, results).
    pub utilization: Vec<(String, Vec<crate::utilization::SearchResult>)>,
    /// Accuracy of the plain shim rule "ON iff any poll was non-empty".
    pub shim_rule_accuracy: f64,
}

/// Evaluate sweep rows: ON/OFF and load classification per tier (folds hold
/// out whole repeats), and least-squares utilization estimators from the
/// non-shim tiers against the measured shim busy share.
pub fn evaluate(rows: &[Row], sample3: usize) -> Result<SweepReport> {
    use crate::dataset::Dataset;
    use crate::schema::{tiers_label, tiers_of, Tier};
    let rows: Vec<Row> = rows
        .iter()
        .filter(|r| r.get("shim.busy_share").is_some())
        .cloned()
        .collect();
    let series = crate::train::series_from_rows(&rows)?;
    let mut runs: Vec<&str> = rows.iter().map(|r| r.source.as_str()).collect();
    runs.sort();
    runs.dedup();
    let k = runs.len();
    if k < 2 {
        return Err(NfmonError::Data(
            "sweep evaluation needs at least 2 repeats (folds hold out a repeat)".into(),
        ));
    }
    let mut busy: Vec<(String, f64, usize)> = Vec::new();
    for s in &series {
        let i = match busy.iter().position(|b| b.0 == s.class) {
            Some(i) => i,
            None => {
                busy.push((s.class.clone(), 0.0, 0));
                busy.len() - 1
            }
        };
        for r in &s.rows {
            busy[i].1 += r.get("shim.busy_share").unwrap_or(0.0) * 100.0;
            busy[i].2 += 1;
        }
    }
    for b in &mut busy {
        b.1 /= b.2.max(1) as f64;
    }
    let tier_sets: Vec<Vec<Tier>> = vec![
        vec![Tier::Software],
        vec![Tier::Process],
        vec![Tier::Software, Tier::Process, Tier::Cgroup, Tier::Host],
        vec![Tier::Shim],
    ];
    let mut state = Vec::new();
    let mut utilization = Vec::new();
    for ts in &tier_sets {
        let keep = |n: &str| Tier::of_metric(n).is_some_and(|t| ts.contains(&t));
        let mut ds = match Dataset::build(&series, None, &keep) {
            Ok(d) => d,
            Err(_) => continue, // tier absent from these rows
        };
        ds.group_by_run();
        let off = ds.class_names.iter().position(|c| c == "idle").unwrap_or(0);
        let ce = crate::state::eval_centroid(&ds, k, 0)?;
        let oe = crate::state::eval_onoff(&ds, off, None, k, 0)?;
        let label = tiers_label(&tiers_of(&ds.features));
        state.push((label.clone(), ds.features.len(), ce, oe));
        if !ts.contains(&Tier::Shim) {
            ds.target = series
                .iter()
                .flat_map(|s| s.rows.iter())
                .map(|r| r.get("shim.busy_share").unwrap_or(f64::NAN) * 100.0)
                .collect();
            let res = [1usize, 2, 3]
                .iter()
                .filter(|&&n| n <= ds.features.len())
                .map(|&n| crate::utilization::search(&ds, n, k, 0, sample3, 2019))
                .collect::<Result<Vec<_>>>()?;
            utilization.push((label, res));
        }
    }
    let rule_ok = rows
        .iter()
        .filter(|r| {
            let on = r.get("shim.busy_share").unwrap_or(0.0) > 0.0;
            on == (r.label.as_deref() != Some("idle"))
        })
        .count();
    Ok(SweepReport {
        shim_rule_accuracy: rule_ok as f64 / rows.len().max(1) as f64,
        folds: k,
        busy_by_class: busy,
        state,
        utilization,
    })
}

impl SweepReport {
    /// Plain-text rendering.
    pub fn render(&self) -> String {
        let mut s = format!(
            "== stand-in load sweep: folds hold out one of {} repeats ==\nmeasured shim busy share by offered load: {}\n",
            self.folds,
            self.busy_by_class
                .iter()
                .map(|(c, b, n)| format!("{c} {b:.1}% (n={n})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for (tiers, nf, ce, oe) in &self.state {
            s += &format!(
                "-- tier: {tiers} ({nf} features): ON/OFF accuracy {:.4} (confusion {:?}); load class accuracy {:.4} over {} classes\n",
                oe.accuracy, oe.confusion, ce.accuracy, ce.classes.len()
            );
        }
        s += &format!(
            "-- tier: shim, rule ON iff busy share > 0 (no training): ON/OFF accuracy {:.4}\n",
            self.shim_rule_accuracy
        );
        s += "== utilization estimators | label: measured shim busy share (% of non-empty polls) ==\n";
        for (tiers, res) in &self.utilization {
            for r in res {
                s += &format!(
                    "-- tiers available: {tiers}: {} event(s): best RMSE {:.2} pp with [{}] (tier {}); median {:.2} pp over {} subsets\n",
                    r.size,
                    r.best.rmse,
                    r.best.features.join(", "),
                    r.tiers,
                    r.median_rmse,
                    r.evaluated
                );
            }
        }
        s
    }
}
