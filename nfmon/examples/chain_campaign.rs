//! Run the DPDK-chain fault campaign with its defaults (the same as
//! `microscope nf chain-campaign`), without building the whole CLI:
//! `cargo run --release -p nfmon --example chain_campaign -- OUT_DIR PATH/TO/ms-testbed [REPEATS] [MICROSCOPE [FAULTS [TARGETS]]]`
//! (MICROSCOPE: also record each run's trace with that binary as dumper;
//! FAULTS e.g. `delay`, TARGETS e.g. `nat1`).
use nfmon::chain_campaign::{run, ChainCampaignConfig};

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 2 {
        eprintln!("usage: chain_campaign OUT_DIR MS_TESTBED [REPEATS]");
        std::process::exit(2);
    }
    let mut cfg = ChainCampaignConfig::new(a[0].clone().into(), vec![a[1].clone()]);
    if let Some(r) = a.get(2).and_then(|s| s.parse().ok()) {
        cfg.repeats = r;
    }
    cfg.dump_with = a.get(3).map(Into::into);
    if let Some(f) = a.get(4) {
        cfg.faults = f
            .split(',')
            .filter_map(nfmon::chain_campaign::ChainFault::parse)
            .collect();
    }
    if let Some(t) = a.get(5) {
        cfg.targets = t.split(',').map(String::from).collect();
    }
    match run(&cfg, |l| eprintln!("{l}")) {
        Ok(s) => println!(
            "{} runs, {} rows → {}",
            s.runs.len(),
            s.rows,
            s.rows_path.display()
        ),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
