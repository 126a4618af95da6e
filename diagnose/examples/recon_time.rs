//! Times reconstruction + diagnosis of a trace file (for profiling):
//! `cargo run --release -p diagnose --example recon_time -- trace.bin`.
fn main() {
    let p = std::env::args().nth(1).expect("trace path");
    let t = std::time::Instant::now();
    let trace =
        tracefile::read_trace(std::path::Path::new(&p), tracefile::ReadMode::Strict).unwrap();
    eprintln!("load {:.2}s", t.elapsed().as_secs_f64());
    let cfg = diagnose::Config::default();
    let t = std::time::Instant::now();
    let rec = diagnose::reconstruct(&trace, &cfg).unwrap();
    eprintln!("reconstruct {:.2}s", t.elapsed().as_secs_f64());
    let t = std::time::Instant::now();
    let d = diagnose::diagnose_reconstructed(&rec, &cfg, &|_, _, _| {}).unwrap();
    eprintln!(
        "diagnose {:.2}s, {} victims",
        t.elapsed().as_secs_f64(),
        d.victims.len()
    );
}
