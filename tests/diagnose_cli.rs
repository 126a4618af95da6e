//! End-to-end: `microscope diagnose` on a simulated trace, then
//! `microscope report` on the saved relations (JSON lines and binary).

use std::process::Command;

fn simulate(dir: &std::path::Path) {
    let mut sc = testbeds::scenario::Scenario::small_chain();
    sc.set("duration", "0.1s").unwrap();
    let out = testbeds::sim::simulate(&sc).unwrap();
    testbeds::sim::write_output(&out, dir).unwrap();
}

#[test]
fn diagnose_then_report() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path());
    let trace = dir.path().join("trace.bin");
    let rel = dir.path().join("rel.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_microscope"))
        .arg("diagnose")
        .arg(&trace)
        .args(["--victims", "p99,lost", "--format", "json", "--relations"])
        .arg(&rel)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("reconstruction:"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report.is_object());
    let rels = diagnose::read_jsonl(
        std::io::BufReader::new(std::fs::File::open(&rel).unwrap()),
        "rel.jsonl",
    )
    .unwrap();
    assert!(!rels.is_empty());
    assert!(rels.iter().all(|r| r.score >= 0.0));

    // Binary form round-trips and aggregates the same way.
    let bin = dir.path().join("rel.bin");
    diagnose::write_bin(std::fs::File::create(&bin).unwrap(), &rels).unwrap();
    let back = diagnose::read_bin(std::fs::File::open(&bin).unwrap(), "rel.bin").unwrap();
    assert_eq!(back, rels);
    let a = Command::new(env!("CARGO_BIN_EXE_microscope"))
        .args(["report", "--format", "csv"])
        .arg(&rel)
        .output()
        .unwrap();
    let b = Command::new(env!("CARGO_BIN_EXE_microscope"))
        .args(["report", "--format", "csv"])
        .arg(&bin)
        .output()
        .unwrap();
    assert!(a.status.success() && b.status.success());
    assert_eq!(a.stdout, b.stdout);
    assert!(!a.stdout.is_empty());
}

#[test]
fn bad_victim_rule_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_microscope"))
        .args(["diagnose", "/nonexistent.bin", "--victims", "fastest"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown victim rule"));
}
