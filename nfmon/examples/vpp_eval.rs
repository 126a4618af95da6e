//! Print the full VPP evaluation: `cargo run --release -p nfmon --example vpp_eval [DIR]`.
fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .or_else(nfmon::dataset::vpp_dir);
    let Some(dir) = dir else {
        eprintln!("VPP data not found (set MICROSCOPE_SHARED_DATA or pass the directory)");
        std::process::exit(2);
    };
    match nfmon::vpp::evaluate(&dir, nfmon::vpp::VppEvalConfig::default()) {
        Ok(r) => print!("{}", r.render()),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
