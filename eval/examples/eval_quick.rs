//! Runs one evaluation and prints the text report:
//! `cargo run --release -p eval --example eval_quick -- SCENARIO [SEED] [DURATION] [KEY=VALUE ...]`
//! (the `microscope eval` command is the full front end; this example needs
//! only the eval crate's dependencies).

use testbeds::scenario::{Scenario, SimDuration};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut sc =
        Scenario::by_name_or_path(args.first().map(String::as_str).unwrap_or("small-chain"))?;
    if let Some(s) = args.get(1) {
        sc.seed = s.parse()?;
    }
    if let Some(d) = args.get(2) {
        sc.duration = SimDuration::parse(d)?;
    }
    for kv in args.iter().skip(3) {
        let (k, v) = kv.split_once('=').ok_or("overrides are KEY=VALUE")?;
        sc.set(k, v)?;
    }
    let t = std::time::Instant::now();
    let mut opts = eval::run::Options::default();
    if std::env::var("EVAL_ABNORMAL_ONLY").is_ok() {
        opts.diagnose.require_abnormal = true;
    }
    if std::env::var("EVAL_NM_RATES").is_ok() {
        opts.netmedic.nf_variables = netmedic::NfVariables::Rates;
    }
    if std::env::var("EVAL_NM_ALT_RATES").is_ok() {
        opts.netmedic_alt = Some(netmedic::Config {
            nf_variables: netmedic::NfVariables::Rates,
            ..Default::default()
        });
    }
    if let Ok(sw) = std::env::var("EVAL_SWEEP") {
        let which: eval::run::Sweep = sw.parse()?;
        let points = eval::run::sweep(&sc, which, &opts)?;
        print!("{}", eval::report::sweep_table(which, &points));
        println!("elapsed {:.1}s", t.elapsed().as_secs_f64());
        return Ok(());
    }
    if let Ok(json) = std::env::var("EVAL_JSON_OUT") {
        let r = eval::run::evaluate(&sc, &opts)?;
        print!("{}", eval::report::render_text(&r));
        let mut doc = eval::report::to_json(&r.microscope, &r.netmedic);
        doc["netmedic_rates"] = serde_json::to_value(r.netmedic_alt)?;
        std::fs::write(&json, serde_json::to_vec_pretty(&doc)?)?;
        if let Ok(p) = std::env::var("EVAL_VICTIMS_OUT") {
            std::fs::write(p, serde_json::to_vec(&r.victims)?)?;
        }
        return Ok(());
    }
    let r = eval::run::evaluate(&sc, &opts)?;
    print!("{}", eval::report::render_text(&r));
    println!("elapsed {:.1}s", t.elapsed().as_secs_f64());
    if let Ok(p) = std::env::var("EVAL_VICTIMS_OUT") {
        std::fs::write(p, serde_json::to_vec(&r.victims)?)?;
    }
    Ok(())
}
