//! End to end: write a trace with the writer, run `microscope inspect`.

use collector::{
    BatchRecord, ClockAnchor, Direction, Edge, LossCounters, NfSpec, Record, Role, StreamInfo,
    Topology, TraceMeta,
};
use std::process::Command;
use tracefile::TraceWriter;

fn info(id: u32, nf: &str, direction: Direction) -> StreamInfo {
    StreamInfo {
        id,
        nf: nf.into(),
        nf_type: "firewall".into(),
        role: Role::Nf,
        port: 0,
        queue: 0,
        direction,
        host: "h".into(),
        carries_tuples: false,
    }
}

/// Stream 0: seq 0..=99 except 40..=49 (lost), 1 GHz clock, anchors at
/// seq 0 and 99; one batch of 32 packets every microsecond.
fn write_trace(path: &std::path::Path, topology: bool) {
    let meta = TraceMeta {
        producer: "inspect test".into(),
        topology: topology.then(|| Topology {
            nfs: vec![NfSpec {
                name: "fw1".into(),
                nf_type: "firewall".into(),
                role: Role::Nf,
                peak_rate_pps: None,
            }],
            edges: vec![Edge {
                from: "src".into(),
                to: "fw1".into(),
            }],
        }),
        tsc_hz_hint: Some(2e9), // wrong on purpose: anchors say 1 GHz
    };
    let mut w = TraceWriter::create(path, &meta).unwrap();
    w.declare_stream(&info(0, "fw1", Direction::Rx)).unwrap();
    let loss = LossCounters {
        lost_full: 10,
        ..Default::default()
    };
    for seq in (0..100u64).filter(|s| !(40..50).contains(s)) {
        let tsc = 5_000 + seq * 1_000;
        let r = if seq == 0 || seq == 99 {
            Record::Anchor(ClockAnchor {
                seq,
                tsc,
                mono_ns: 1_000_000 + seq * 1_000,
            })
        } else {
            Record::Batch(BatchRecord {
                seq,
                tsc,
                requested: 32,
                ipids: (0..32).collect(),
                ..Default::default()
            })
        };
        w.push(0, r, &loss).unwrap();
    }
    w.finish().unwrap();
}

fn inspect(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_microscope"))
        .arg("inspect")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn inspect_reports_streams_losses_span_and_dag() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.bin");
    write_trace(&path, true);
    let p = path.to_str().unwrap();
    let (code, text) = inspect(&[p]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("records:    90 (2816 packets) in 1 streams of 1 NFs"),
        "{text}"
    );
    // 99 µs between the first and last record, calibrated from anchors.
    assert!(text.contains("time span:  0.000099 s"), "{text}");
    assert!(
        text.contains("10 records lost on stream 0 between +0.000039 s and +0.000050 s"),
        "{text}"
    );
    assert!(text.contains("footer present"), "{text}");
    assert!(
        text.contains("DAG: from trace metadata") && text.contains("src -> fw1"),
        "{text}"
    );

    let (code, json) = inspect(&[p, "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["packets"], 2816);
    assert_eq!(v["losses"][0]["records"], 10);
    assert_eq!(v["streams"][0]["nf"], "fw1");

    // No topology; then a torn tail: strict fails naming the file, salvage
    // reports the skipped bytes and exits 1.
    write_trace(&path, false);
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let (code, text) = inspect(&[p]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains(p) && text.contains("truncated at offset"),
        "{text}"
    );
    let (code, text) = inspect(&[p, "--salvage"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("DAG: no topology in metadata"), "{text}");
    assert!(text.contains("footer absent"), "{text}");
    assert!(text.contains("truncated chunk"), "{text}");
}
