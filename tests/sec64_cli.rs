//! The paper's §6.4 experiment end to end, at reduced duration:
//! `microscope simulate --scenario testbeds/scenarios/sec64.toml` (nine TCP
//! flows 100.0.0.1:2000+j → 32.0.0.1:6000+j trigger a bug at one firewall
//! instance, over 1.2 Mpps of CAIDA-style background), then
//! `microscope diagnose trace.bin --threshold 1% --format json`. The report's
//! top pattern must name those flows — as one aggregate, not nine — and the
//! buggy instance recorded in `truth.json`.

use serde_json::Value;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

fn microscope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_microscope"))
}

/// `a.b.c.d/n` → (network, length).
fn prefix(v: &Value) -> (u32, u8) {
    let s = v.as_str().expect("prefix is a string");
    let (a, n) = s.split_once('/').expect("prefix has a length");
    (
        u32::from(a.parse::<Ipv4Addr>().expect("prefix address")),
        n.parse().expect("prefix length"),
    )
}

fn prefix_holds(v: &Value, ip: u32) -> bool {
    let (net, len) = prefix(v);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    ip & mask == net
}

fn range(v: &Value) -> (u64, u64) {
    (v["lo"].as_u64().unwrap(), v["hi"].as_u64().unwrap())
}

/// The culprit side names the bug flows: tight prefixes (≥ /24) holding
/// both addresses, TCP, port ranges covering `sports`/`dports` and no wider
/// than a 16-port block.
fn names_bug_flows(
    side: &Value,
    src: u32,
    dst: u32,
    sports: (u64, u64),
    dports: (u64, u64),
) -> bool {
    let tight = |v: &Value, ip: u32| prefix(v).1 >= 24 && prefix_holds(v, ip);
    let covers = |v: &Value, want: (u64, u64)| {
        let (lo, hi) = range(v);
        lo <= want.0 && want.1 <= hi && hi - lo < 16
    };
    tight(&side["src"], src)
        && tight(&side["dst"], dst)
        && side["proto"].as_u64() == Some(6)
        && covers(&side["sport"], sports)
        && covers(&side["dport"], dports)
}

fn instance(side: &Value) -> Option<&str> {
    side["location"]["instance"].as_str()
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("microscope runs");
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn section_6_4_bug_flows_and_firewall_top_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("testbeds/scenarios/sec64.toml");
    // 0.5 s holds one injection (at 100-150 ms; the next starts ≥ 400 ms).
    run(microscope()
        .args(["simulate", "--scenario"])
        .arg(&scenario)
        .args(["--duration", "0.5s", "--out"])
        .arg(dir.path()));

    // Ground truth: which instance has the bug, which flows trigger it.
    let truth: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("truth.json")).unwrap()).unwrap();
    let bugs: Vec<&Value> = truth["faults"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "bug")
        .collect();
    assert!(!bugs.is_empty(), "no bug injected");
    let nf = bugs[0]["nf"].as_str().unwrap().to_string();
    let (mut src, mut dst) = (None, None);
    let (mut sports, mut dports) = ((u64::MAX, 0), (u64::MAX, 0));
    for b in &bugs {
        assert_eq!(b["nf"].as_str(), Some(nf.as_str()), "one buggy instance");
        let flows = b["flows"].as_array().unwrap();
        assert_eq!(flows.len(), 9);
        for f in flows {
            let (s, d) = (f["src_ip"].as_u64().unwrap(), f["dst_ip"].as_u64().unwrap());
            assert_eq!(*src.get_or_insert(s), s);
            assert_eq!(*dst.get_or_insert(d), d);
            let (sp, dp) = (
                f["src_port"].as_u64().unwrap(),
                f["dst_port"].as_u64().unwrap(),
            );
            sports = (sports.0.min(sp), sports.1.max(sp));
            dports = (dports.0.min(dp), dports.1.max(dp));
        }
    }
    let (src, dst) = (src.unwrap() as u32, dst.unwrap() as u32);
    assert_eq!(Ipv4Addr::from(src), Ipv4Addr::new(100, 0, 0, 1));
    assert_eq!(Ipv4Addr::from(dst), Ipv4Addr::new(32, 0, 0, 1));
    assert_eq!((sports, dports), ((2000, 2008), (6000, 6008)));

    let report_path = dir.path().join("report.json");
    let out = run(microscope()
        .arg("diagnose")
        .arg(dir.path().join("trace.bin"))
        .args(["--threshold", "1%", "--format", "json", "--out"])
        .arg(&report_path));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let patterns = report["patterns"].as_array().unwrap();
    assert!(!patterns.is_empty());
    assert!(patterns.len() <= 100, "{} patterns", patterns.len());
    for (i, p) in patterns.iter().take(10).enumerate() {
        eprintln!(
            "#{} {:.2}% {} => {}",
            i + 1,
            p["share"].as_f64().unwrap() * 100.0,
            p["culprit"],
            p["victim"]
        );
    }

    // The top pattern: the bug flows as one aggregate, at the buggy firewall.
    let top = &patterns[0];
    assert!(
        names_bug_flows(&top["culprit"], src, dst, sports, dports),
        "top pattern does not name the bug flows: {top}"
    );
    assert_eq!(instance(&top["culprit"]), Some(nf.as_str()), "{top}");

    // Every pattern blaming the bug flows blames them at the buggy instance
    // and names them as the aggregate, and together those patterns hold a
    // large part of the score (measured: 48 %).
    let is_bug_culprit = |p: &Value| {
        let c = &p["culprit"];
        prefix(&c["src"]).1 >= 24 && prefix_holds(&c["src"], src)
    };
    let mut bug_share = 0.0;
    for p in patterns.iter().filter(|p| is_bug_culprit(p)) {
        assert_eq!(instance(&p["culprit"]), Some(nf.as_str()), "{p}");
        assert!(
            names_bug_flows(&p["culprit"], src, dst, sports, dports),
            "{p}"
        );
        bug_share += p["share"].as_f64().unwrap();
    }
    assert!(bug_share >= 0.25, "bug patterns hold {bug_share}");
}
