//! `microscope eval` end to end (issue 6): the JSON document has the agreed
//! shape and its figures are consistent; a bad sweep name is a clean error.

use std::process::Command;

fn microscope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_microscope"))
}

#[test]
fn issue6_eval_json_has_the_agreed_shape() {
    let out = microscope()
        .args([
            "eval",
            "--scenario",
            "small-chain",
            "--duration",
            "150ms",
            "--json",
        ])
        .output()
        .expect("run microscope");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let mut victims_by_kind = 0;
    for method in ["microscope", "netmedic"] {
        for key in ["overall", "burst", "interrupt", "bug"] {
            let a = &j[method][key];
            let n = a["victims"]
                .as_u64()
                .unwrap_or_else(|| panic!("{method}.{key}.victims"));
            let (r1, r2, r5) = (
                a["rank1"].as_f64().unwrap(),
                a["rank2"].as_f64().unwrap(),
                a["rank5"].as_f64().unwrap(),
            );
            assert!(
                0.0 <= r1 && r1 <= r2 && r2 <= r5 && r5 <= 1.0,
                "{method}.{key}: {a}"
            );
            if key != "overall" && method == "microscope" {
                victims_by_kind += n;
            }
        }
    }
    let overall = j["microscope"]["overall"]["victims"].as_u64().unwrap();
    assert!(
        overall > 0,
        "the scenario injects faults, so there are victims"
    );
    assert_eq!(overall, victims_by_kind, "kinds partition the victims");
    assert_eq!(
        overall,
        j["netmedic"]["overall"]["victims"].as_u64().unwrap()
    );
}

#[test]
fn issue6_eval_rejects_an_unknown_sweep() {
    let out = microscope()
        .args(["eval", "--scenario", "small-chain", "--sweep", "sideways"])
        .output()
        .expect("run microscope");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("burst-size"), "{err}");
}
