//! End-to-end tests of `microscope nf …` and `microscope top` through the
//! binary, on deterministic synthetic rows and (when present) the VPP data.

use nfmon::schema::{write_jsonl, Row};
use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_microscope"))
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run microscope");
    assert!(
        out.status.success(),
        "{:?} failed: {}\n{}",
        cmd,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Deterministic campaign-like rows: 6 runs, each normal → fault → normal.
fn synthetic_campaign(path: &Path) {
    let mut rows = Vec::new();
    for run in 0..6 {
        let fault = ["cpu", "disk", "memory"][run % 3];
        for i in 0..30usize {
            let on = (10..20).contains(&i);
            let w = ((i * 7 + run * 3) % 5) as f64 * 0.01;
            let mut r = Row::new(format!("run{run}-{fault}"), i as f64 * 0.5, Some(0.5));
            r.set(
                "proc.wait_share",
                Some(if on && fault == "cpu" { 0.7 } else { 0.1 } + w),
            );
            r.set(
                "host.psi_io_some",
                Some(if on && fault == "disk" { 0.5 } else { 0.01 } + w),
            );
            r.set(
                "host.mem_available_bytes",
                Some(if on && fault == "memory" { 2e9 } else { 3e9 } + w * 1e8),
            );
            r.set("hw.cycles", None);
            r.label = Some(if on { fault.into() } else { "normal".into() });
            rows.push(r);
        }
    }
    write_jsonl(path, &rows).unwrap();
}

#[test]
fn nf_probe_names_every_tier() {
    let out = run_ok(bin().args(["nf", "probe", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let tiers = v["tiers"].as_array().unwrap();
    assert_eq!(tiers.len(), 6);
    let get = |name: &str| tiers.iter().find(|t| t["tier"] == name).unwrap();
    assert_eq!(get("process")["available"], true);
    let hw = get("hardware");
    assert!(!hw["detail"].as_str().unwrap().is_empty());
    let text = run_ok(bin().args(["nf", "probe"]));
    assert!(text.contains("hardware") && text.contains("software"));
}

#[test]
fn nf_eval_campaign_reports_auc_per_fault() {
    let dir = tempfile::tempdir().unwrap();
    let rows = dir.path().join("rows.jsonl");
    synthetic_campaign(&rows);
    let out = run_ok(
        bin()
            .args(["nf", "eval", "--json", "--folds", "3", "--campaign"])
            .arg(&rows),
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        v["tiers"], "process+host",
        "the absent hardware tier is not used"
    );
    let scores = v["scores"].as_array().unwrap();
    let tasks: Vec<&str> = scores.iter().map(|s| s["task"].as_str().unwrap()).collect();
    assert_eq!(tasks, vec!["any-fault", "cpu", "disk", "memory"]);
    for s in scores {
        assert!(s["roc_auc"].as_f64().unwrap() > 0.9, "{s}");
        assert!(s["pr_auc"].as_f64().unwrap() > 0.8, "{s}");
    }
    // Train a saved model and detect with it.
    let model = dir.path().join("anomaly.json");
    run_ok(
        bin()
            .args(["nf", "train", "--kind", "anomaly", "--rows"])
            .arg(&rows)
            .arg("-o")
            .arg(&model),
    );
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model).unwrap()).unwrap();
    assert_eq!(m["format"], "microscope-nfmon-model/1");
    assert_eq!(m["model"]["kind"], "anomaly");
    let det = run_ok(
        bin()
            .args(["nf", "detect", "--json", "--model"])
            .arg(&model)
            .arg("--rows")
            .arg(&rows),
    );
    let lines: Vec<serde_json::Value> = det
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 180);
    let cpu_fault = &lines[15]; // run0 (cpu), inside the injection
    assert_eq!(cpu_fault["output"]["likely"], "cpu");
    assert!(cpu_fault["output"]["score"].as_f64().unwrap() > 0.5);
    assert!(lines[2]["output"]["score"].as_f64().unwrap() < 0.5);
}

#[test]
fn nf_import_writes_rows_with_missing_as_null() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("perf.csv");
    std::fs::write(
        &csv,
        "# started on today\n\n     0.100,1000,,cycles,100,50.00,,\n     0.100,<not counted>,,instructions,0,0.00,,\n     0.200,2000,,cycles,100,50.00,,\n     0.200,7,,instructions,1,1.00,,\n",
    )
    .unwrap();
    let out_rows = dir.path().join("rows.jsonl");
    let text = run_ok(
        bin()
            .args(["nf", "import", "--label", "x"])
            .arg(&csv)
            .arg("-o")
            .arg(&out_rows),
    );
    assert!(
        text.contains("2 rows") && text.contains("1 missing"),
        "{text}"
    );
    let first = std::fs::read_to_string(&out_rows).unwrap();
    assert!(first
        .lines()
        .next()
        .unwrap()
        .contains("\"hw.instructions\":null"));
    // A malformed file is an error naming file and line.
    std::fs::write(&csv, "0.1,1,,cycles,1,1,,\n0.2,oops,,cycles,1,1,,\n").unwrap();
    let out = bin().args(["nf", "import"]).arg(&csv).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("perf.csv") && err.contains("line 2"), "{err}");
}

#[test]
fn top_once_json_for_a_process() {
    let mut child = Command::new("sleep").arg("5").spawn().unwrap();
    let out = run_ok(
        bin()
            .args(["top", "--once", "--json", "--interval-ms", "200", "--pid"])
            .arg(format!("{}=sleeper", child.id())),
    );
    let _ = child.kill();
    let _ = child.wait();
    let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(v["nf"], "sleeper");
    assert!(v["metrics"]["proc.rss_bytes"].as_f64().unwrap() > 0.0);
    assert!(v["metrics"]["hw.cycles"].is_null() || v["metrics"]["hw.cycles"].is_number());
    let e = bin().args(["top", "--once"]).output().unwrap();
    assert!(!e.status.success(), "top with nothing to watch must fail");
}

fn vpp() -> Option<PathBuf> {
    let d = std::env::var_os("MICROSCOPE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
        .join("vpp-perf-counters");
    if d.join("README.md").is_file() {
        Some(d)
    } else {
        eprintln!("SKIP: ../shared/data/vpp-perf-counters absent; VPP CLI test not run");
        None
    }
}

#[test]
fn nf_train_onoff_on_vpp_and_detect_raw_perf_output() {
    let Some(dir) = vpp() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("onoff.json");
    let out = run_ok(
        bin()
            .args(["nf", "train", "--kind", "onoff", "--profile", "nm", "--vpp"])
            .arg(&dir)
            .arg("-o")
            .arg(&model),
    );
    assert!(out.contains("tier: hardware"), "{out}");
    // traf_1000mbps.csv is another recording (raw perf stat output) with a
    // different event list: the model's inputs are missing there, and
    // detect says so instead of guessing.
    let o = bin()
        .args(["nf", "detect", "--model"])
        .arg(&model)
        .arg("--rows")
        .arg(dir.join("traf_1000mbps.csv"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("lacked an input"), "{stderr}");
    // On a VPP file of the same campaign: the idle start is OFF, the end ON.
    let d = run_ok(
        bin()
            .args(["nf", "detect", "--json", "--model"])
            .arg(&model)
            .arg("--rows")
            .arg(dir.join("nm_1000mbps.csv")),
    );
    let v: Vec<serde_json::Value> = d
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(v[5]["output"]["on"], false);
    assert_eq!(v[v.len() - 5]["output"]["on"], true);
}

/// A 64 KiB rx ring of NF `nf` (queue 0), owned by process `pid`, as the
/// shim would create it.
fn rx_ring(path: &Path, nf: &str, nf_type: &str, pid: u32) -> collector::ring::Producer {
    use collector::ring::{Producer, RingConfig, RingIdentity};
    use collector::{Direction, Role};
    let identity = RingIdentity {
        nf: nf.into(),
        nf_type: nf_type.into(),
        role: Role::Nf,
        port: 0,
        queue: 0,
        direction: Direction::Rx,
        host: "test".into(),
        carries_tuples: false,
        pid,
        created_ns: 1,
        tsc_hz_hint: None,
    };
    let mut cfg = RingConfig::new(identity);
    cfg.data_size = 1 << 16;
    Producer::create(path, &cfg).unwrap()
}

#[test]
fn top_reads_poll_counters_from_ring_headers() {
    let dir = tempfile::tempdir().unwrap();
    let mut nf = Command::new("sleep").arg("10").spawn().unwrap();
    let mut p = rx_ring(&dir.path().join("fw1-rx0.ring"), "fw1", "firewall", nf.id());
    let top = Command::new(env!("CARGO_BIN_EXE_microscope"))
        .args([
            "top",
            "--once",
            "--json",
            "--interval-ms",
            "1500",
            "--ring-dir",
        ])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Poll while top watches: every other poll is empty.
    let t = std::time::Instant::now();
    let mut i = 0u32;
    while t.elapsed() < std::time::Duration::from_millis(2500) {
        p.note_poll(if i.is_multiple_of(2) { 0 } else { 32 });
        i += 1;
        if i.is_multiple_of(1000) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    let out = top.wait_with_output().unwrap();
    let _ = nf.kill();
    let _ = nf.wait();
    assert!(out.status.success());
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(v["nf"], "fw1");
    assert_eq!(v["rings"], 1);
    let busy = v["metrics"]["shim.busy_share"].as_f64().unwrap();
    assert!((busy - 0.5).abs() < 0.01, "busy share {busy}");
    assert!(v["metrics"]["shim.polls"].as_f64().unwrap() > 100.0);
}

/// Issue #8: "Microscope's diagnosis can annotate an NF-local culprit with
/// the anomaly detector's verdict for that NF and time".
#[test]
fn nf_annotate_gives_the_verdict_for_an_nf_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let rows = dir.path().join("rows.jsonl");
    synthetic_campaign(&rows);
    let model = dir.path().join("anomaly.json");
    run_ok(
        bin()
            .args(["nf", "train", "--kind", "anomaly", "--smooth", "2"])
            .args(["--baseline-window", "5", "--rows"])
            .arg(&rows)
            .arg("-o")
            .arg(&model),
    );
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model).unwrap()).unwrap();
    assert_eq!(
        (m["smooth_window"].as_u64(), m["baseline_window"].as_u64()),
        (Some(2), Some(5))
    );
    // Recorded samples of NF fw2 with CLOCK_MONOTONIC times: 500 ms rows
    // ending at T0 + i·500 ms, CPU contention in rows 10..20.
    let samples = dir.path().join("samples");
    std::fs::create_dir(&samples).unwrap();
    let t0: u64 = 7_000_000_000_000;
    let step: u64 = 500_000_000;
    let nf_rows: Vec<Row> = (0..30u64)
        .map(|i| {
            let on = (10..20).contains(&i);
            let w = ((i * 7) % 5) as f64 * 0.01;
            let mut r = Row::new("fw2", i as f64 * 0.5, Some(0.5));
            r.mono_ns = Some(t0 + i * step);
            r.set("proc.wait_share", Some(if on { 0.7 } else { 0.1 } + w));
            r.set("host.psi_io_some", Some(0.01 + w));
            r.set("host.mem_available_bytes", Some(3e9 + w * 1e8));
            r
        })
        .collect();
    write_jsonl(&samples.join("fw2.jsonl"), &nf_rows).unwrap();
    let ask = |nf: &str, from: u64, to: u64| {
        run_ok(
            bin()
                .args(["nf", "annotate", "--samples"])
                .arg(&samples)
                .arg("--model")
                .arg(&model)
                .args([
                    "--nf",
                    nf,
                    "--from-ns",
                    &from.to_string(),
                    "--to-ns",
                    &to.to_string(),
                ]),
        )
    };
    // A culprit window inside row 15 (the fault).
    let out = ask(
        "fw2",
        t0 + 14 * step + 100_000_000,
        t0 + 14 * step + 300_000_000,
    );
    assert!(out.starts_with("fw2: CPU contention detected"), "{out}");
    assert!(out.contains("tier process+host"), "{out}");
    // Inside row 5 (normal).
    let out = ask(
        "fw2",
        t0 + 4 * step + 100_000_000,
        t0 + 4 * step + 300_000_000,
    );
    assert!(out.starts_with("fw2: no anomaly detected"), "{out}");
    // Missing is missing: another NF, or before the samples.
    let out = ask("nat1", t0 + 14 * step, t0 + 15 * step);
    assert!(out.contains("no NF samples for nat1"), "{out}");
    let out = ask("fw2", t0 - 10 * step, t0 - 9 * step);
    assert!(out.contains("no NF samples"), "{out}");
}

#[test]
fn nf_record_samples_every_nf_of_a_ring_dir_with_monotonic_times() {
    let dir = tempfile::tempdir().unwrap();
    let rings = dir.path().join("rings");
    std::fs::create_dir(&rings).unwrap();
    let mut nf = Command::new("sleep").arg("10").spawn().unwrap();
    let mut p = rx_ring(&rings.join("nat1-rx0.ring"), "nat1", "nat", nf.id());
    let out = dir.path().join("samples");
    let rec = bin()
        .args([
            "nf",
            "record",
            "--count",
            "3",
            "--interval-ms",
            "400",
            "--ring-dir",
        ])
        .arg(&rings)
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Poll while the recorder samples: one poll in four is non-empty.
    let t = std::time::Instant::now();
    let mut i = 0u32;
    while t.elapsed() < std::time::Duration::from_millis(2000) {
        p.note_poll(if i.is_multiple_of(4) { 32 } else { 0 });
        i += 1;
        if i.is_multiple_of(1000) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    let o = rec.wait_with_output().unwrap();
    let _ = nf.kill();
    let _ = nf.wait();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let rows = nfmon::schema::read_jsonl(&out.join("nat1.jsonl")).unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows
        .iter()
        .all(|r| r.source == "nat1" && r.mono_ns.is_some()));
    let busy = rows[1].get("shim.busy_share").unwrap();
    assert!((busy - 0.25).abs() < 0.01, "busy share {busy}");
}

/// Issue #8, through `microscope diagnose`: `--nf-samples DIR --nf-model
/// FILE` prints each NF-local culprit episode with the anomaly verdict of
/// the samples recorded for that NF at that time — contention where the
/// samples say so, "no anomaly" where they do not, and "no NF samples" for
/// an NF nobody recorded.
#[test]
fn diagnose_annotates_nf_local_culprits_with_the_anomaly_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let mut sc = testbeds::scenario::Scenario::small_chain();
    sc.set("duration", "0.1s").unwrap();
    let out = testbeds::sim::simulate(&sc).unwrap();
    testbeds::sim::write_output(&out, dir.path()).unwrap();
    let trace = dir.path().join("trace.bin");
    let rel = dir.path().join("rel.jsonl");
    run_ok(
        bin()
            .arg("diagnose")
            .arg(&trace)
            .args(["--format", "csv", "--relations"])
            .arg(&rel),
    );
    let rels = diagnose::read_jsonl(
        std::io::BufReader::new(std::fs::File::open(&rel).unwrap()),
        "rel.jsonl",
    )
    .unwrap();
    // The NF-local culprits and the span of their times.
    let mut nfs = std::collections::BTreeMap::<String, (i64, i64)>::new();
    for r in &rels {
        if let diagnose::Location::Nf(n) = &r.culprit {
            let e = nfs.entry(n.clone()).or_insert((i64::MAX, i64::MIN));
            e.0 = e.0.min(r.culprit_first_ns);
            e.1 = e.1.max(r.culprit_last_ns);
        }
    }
    assert!(nfs.len() >= 2, "need two NF-local culprits: {nfs:?}");
    let mut names = nfs.keys().cloned();
    let (busy, calm) = (names.next().unwrap(), names.next().unwrap());

    let rows = dir.path().join("rows.jsonl");
    synthetic_campaign(&rows);
    let model = dir.path().join("anomaly.json");
    run_ok(
        bin()
            .args(["nf", "train", "--kind", "anomaly", "--rows"])
            .arg(&rows)
            .arg("-o")
            .arg(&model),
    );
    // 50 ms samples around each of the two NFs' culprit spans: CPU
    // contention throughout at `busy`, normal at `calm`; none elsewhere.
    let samples = dir.path().join("samples");
    std::fs::create_dir(&samples).unwrap();
    for (nf, contention) in [(&busy, true), (&calm, false)] {
        let (first, last) = nfs[nf.as_str()];
        let step = 50_000_000i64;
        let start = first - 4 * step;
        let n = ((last - start) / step + 6) as u64;
        let rows: Vec<Row> = (0..n)
            .map(|i| {
                let w = ((i * 7) % 5) as f64 * 0.01;
                let mut r = Row::new(nf.as_str(), i as f64 * 0.05, Some(0.05));
                r.mono_ns = Some((start + i as i64 * step).max(0) as u64);
                r.set(
                    "proc.wait_share",
                    Some(if contention { 0.7 } else { 0.1 } + w),
                );
                r.set("host.psi_io_some", Some(0.01 + w));
                r.set("host.mem_available_bytes", Some(3e9 + w * 1e8));
                r
            })
            .collect();
        write_jsonl(&samples.join(format!("{nf}.jsonl")), &rows).unwrap();
    }
    let out = bin()
        .arg("diagnose")
        .arg(&trace)
        .args(["--format", "csv", "--nf-samples"])
        .arg(&samples)
        .arg("--nf-model")
        .arg(&model)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .skip_while(|l| !l.starts_with("NF-local culprits"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert!(!lines.is_empty(), "{stderr}");
    let of = |nf: &str| -> Vec<&str> {
        lines
            .iter()
            .copied()
            .filter(|l| l.trim_start().starts_with(&format!("{nf} slow processing")))
            .collect()
    };
    assert!(!of(&busy).is_empty() && !of(&calm).is_empty(), "{stderr}");
    assert!(
        of(&busy)
            .iter()
            .all(|l| l.contains("CPU contention detected")),
        "{stderr}"
    );
    assert!(
        of(&calm).iter().all(|l| l.contains("no anomaly detected")),
        "{stderr}"
    );
    for other in nfs.keys().skip(2) {
        assert!(
            of(other).iter().all(|l| l.contains("no NF samples")),
            "{stderr}"
        );
    }
    // The flags go together.
    let lone = bin()
        .arg("diagnose")
        .arg(&trace)
        .arg("--nf-samples")
        .arg(&samples)
        .output()
        .unwrap();
    assert!(!lone.status.success());
}
