//! `microscope simulate` end to end: files written, deterministic, errors
//! named.

use std::process::Command;

fn microscope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_microscope"))
}

#[test]
fn simulate_writes_trace_truth_and_journeys_deterministically() {
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    for d in [&d1, &d2] {
        let out = microscope()
            .args([
                "simulate",
                "--scenario",
                "small-chain",
                "--duration",
                "80ms",
                "--seed",
                "3",
            ])
            .args(["--set", "faults.burst.flows=1", "--out"])
            .arg(d.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("faults injected"), "{text}");
    }
    for f in ["trace.bin", "truth.json", "journeys.bin"] {
        let a = std::fs::read(d1.path().join(f)).unwrap();
        assert!(!a.is_empty());
        assert_eq!(a, std::fs::read(d2.path().join(f)).unwrap(), "{f} differs");
    }
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d1.path().join("truth.json")).unwrap()).unwrap();
    assert_eq!(truth["seed"], 3);
    let faults = truth["faults"].as_array().unwrap();
    assert!(!faults.is_empty());
    let burst = faults.iter().find(|f| f["kind"] == "burst").unwrap();
    assert_eq!(burst["flows"].as_array().unwrap().len(), 1);
}

#[test]
fn simulate_rejects_unknown_scenario_and_bad_override() {
    let d = tempfile::tempdir().unwrap();
    let out = microscope()
        .args(["simulate", "--scenario", "no-such-scenario", "--out"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-scenario"));
    let out = microscope()
        .args([
            "simulate",
            "--scenario",
            "small-chain",
            "--set",
            "faults.burst.nope=1",
            "--out",
        ])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}
