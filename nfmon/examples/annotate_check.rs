//! The annotator on real chain runs: for every run of a chain campaign,
//! train an anomaly model on the *other* runs, then ask
//! `Annotator::verdict` for the injected NF over the truth's fault window
//! and over a fault-free window of the same NF before it, and for another
//! NF over the fault window. Prints one line per run and the totals.
//!
//! `cargo run --release -p nfmon --example annotate_check -- CAMPAIGN_DIR [SMOOTH] [BASELINE]`
use nfmon::annotate::{Annotator, Outcome};
use nfmon::chain_campaign::read_truth;
use nfmon::schema::read_jsonl;
use nfmon::train::{prepare_rows, series_from_rows, train, Kind, TrainOpts};
use std::path::PathBuf;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = a.first().map(PathBuf::from) else {
        eprintln!("usage: annotate_check CAMPAIGN_DIR [SMOOTH] [BASELINE]");
        std::process::exit(2);
    };
    let smooth: Option<usize> = a.get(1).and_then(|s| s.parse().ok()).filter(|&k| k > 0);
    let base: Option<usize> = a.get(2).and_then(|s| s.parse().ok()).filter(|&k| k > 0);
    if let Err(e) = check(&dir, smooth, base) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn check(dir: &std::path::Path, smooth: Option<usize>, base: Option<usize>) -> nfmon::Result<()> {
    let rows = read_jsonl(&dir.join("rows.jsonl"))?;
    let run_of = |s: &str| s.split('@').next().unwrap_or("").to_string();
    let mut runs: Vec<String> = rows.iter().map(|r| run_of(&r.source)).collect();
    runs.dedup();
    let (mut hit, mut quiet, mut other_quiet, mut n) = (0, 0, 0, 0);
    let valid_run = |run: &str| {
        read_truth(&dir.join("runs").join(run).join("truth.json"))
            .map(|t| t.faults.iter().all(|f| f.packets != Some(0)))
            .unwrap_or(false)
    };
    runs.retain(|r| {
        let ok = valid_run(r);
        if !ok {
            // The chain carried no traffic, nothing was injected: the
            // campaign driver leaves such runs out.
            println!("{r}: left out (no truth, or the faulty NF handled no packet)");
        }
        ok
    });
    for run in &runs {
        let train_rows: Vec<_> = rows
            .iter()
            .filter(|r| {
                let rr = run_of(&r.source);
                &rr != run && runs.contains(&rr)
            })
            .cloned()
            .collect();
        let series = series_from_rows(&prepare_rows(&train_rows, smooth, base))?;
        let opts = TrainOpts {
            smooth_window: smooth,
            baseline_window: base,
            trained_on: format!("chain campaign without {run}"),
            ..TrainOpts::default()
        };
        let model = train(Kind::Anomaly, &series, &opts)?;
        // The held-out run's samples, without labels (as recorded live).
        let test: Vec<_> = rows
            .iter()
            .filter(|r| &run_of(&r.source) == run)
            .cloned()
            .map(|mut r| {
                r.label = None;
                r
            })
            .collect();
        let ann = Annotator::from_rows(test, vec![("loo".into(), model)])?;
        let truth = read_truth(&dir.join("runs").join(run).join("truth.json"))?;
        let Some(f) = truth.faults.first() else {
            continue;
        };
        let nf = f.nf.clone().unwrap_or_default();
        let fault = ann.verdict(&nf, f.start_ns, f.end_ns);
        let before = ann.verdict(
            &nf,
            truth.traffic_start_ns + 1_000_000_000,
            f.start_ns - 500_000_000,
        );
        let other = ["fw1", "nat1", "vpn1", "mon1"]
            .into_iter()
            .find(|o| *o != nf)
            .unwrap_or("mon1");
        let other_v = ann.verdict(other, f.start_ns, f.end_ns);
        let is = |v: &Option<nfmon::annotate::Verdict>, kind: &str| matches!(v.as_ref().map(|v| &v.outcome), Some(Outcome::Anomaly { fault, .. }) if fault == kind);
        let normal = |v: &Option<nfmon::annotate::Verdict>| {
            matches!(v.as_ref().map(|v| &v.outcome), Some(Outcome::Normal { .. }))
        };
        n += 1;
        hit += is(&fault, &f.kind) as usize;
        quiet += normal(&before) as usize;
        other_quiet += normal(&other_v) as usize;
        let show = |v: &Option<nfmon::annotate::Verdict>| {
            v.as_ref().map_or("no samples".into(), |v| v.to_string())
        };
        println!(
            "{run}\n  {nf} fault window: {}\n  {nf} before:       {}\n  {other} fault window: {}",
            show(&fault),
            show(&before),
            show(&other_v)
        );
    }
    println!(
        "{n} runs | fault window → injected fault named: {hit}/{n} | same NF before the fault → no anomaly: {quiet}/{n} | another NF during the fault → no anomaly: {other_quiet}/{n} | smooth {smooth:?} baseline {base:?}"
    );
    Ok(())
}
