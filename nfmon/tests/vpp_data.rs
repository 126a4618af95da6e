//! The estimators on the real VPP counter data (shared/data/vpp-perf-counters).
//! Skips, saying so, when the shared data directory is absent. Runs at reduced
//! scale (every 4th interval, 20 sampled 3-event subsets) to stay quick; the
//! full-scale figures come from `microscope nf eval --vpp` (docs/nfmon.md).

use nfmon::dataset::{self, Dataset, VppProfile};
use nfmon::import::import_file;
use nfmon::vpp::{evaluate, VppEvalConfig};

fn data() -> Option<std::path::PathBuf> {
    let d = dataset::vpp_dir();
    if d.is_none() {
        eprintln!(
            "SKIP: VPP data not found (expected ../shared/data/vpp-perf-counters next to the \
             workspace, or MICROSCOPE_SHARED_DATA); not testing on real data"
        );
    }
    d
}

#[test]
fn raw_perf_stat_output_imports() {
    let Some(dir) = data() else { return };
    let rows = import_file(&dir.join("traf_1000mbps.csv")).unwrap();
    assert_eq!(rows.len(), 584);
    let r = &rows[10];
    assert!(
        (r.interval_s.unwrap() - 0.1).abs() < 0.01,
        "{:?}",
        r.interval_s
    );
    assert_eq!(r.values.len(), 21);
    // 223 million L1-dcache-loads per 100 ms → ~2.2e9 per second.
    let l1 = rows[0].get("hw.L1-dcache-loads").unwrap();
    assert!((l1 - 223_208_062.0 / 0.101147717).abs() < 1.0, "{l1}");
    assert!(rows[0].values.contains_key("sw.page-faults"));
}

#[test]
fn onset_split_and_not_counted_cells() {
    let Some(dir) = data() else { return };
    let s = dataset::load_vpp(&dir, VppProfile::Out).unwrap();
    assert_eq!(s.len(), 8);
    for pair in s.chunks(2) {
        let (idle, busy) = (&pair[0], &pair[1]);
        assert_eq!(idle.class, "idle");
        // Traffic starts 20–30 s into every file (README: idle first).
        let onset = busy.rows[0].t_s;
        assert!(
            (20.0..35.0).contains(&onset),
            "{}: onset {onset}",
            busy.name
        );
        assert!(idle
            .rows
            .iter()
            .all(|r| !r.values.contains_key(dataset::VPP_ONSET_EVENT)));
    }
    let ds = Dataset::build(&s, None, &|_| true).unwrap();
    assert!(ds.imputed > 0, "out_* files contain <not counted> cells");
}

#[test]
fn estimators_on_real_data_beat_the_papers_bars() {
    let Some(dir) = data() else { return };
    let cfg = VppEvalConfig {
        stride: 4,
        sample3: 20,
        ..Default::default()
    };
    let r = evaluate(&dir, cfg).unwrap();
    let nm = r
        .classification
        .iter()
        .find(|c| c.data == "vpp nm_*")
        .unwrap();
    assert_eq!(nm.tiers, "hardware");
    assert_eq!(nm.eval.classes.len(), 5);
    assert!(
        nm.eval.accuracy > 0.8,
        "nm classification {}",
        nm.eval.accuracy
    );
    // Idle, 500 and 1000 Mbps are almost never confused with anything.
    for c in 0..3 {
        let row = &nm.eval.confusion[c];
        let total: usize = row.iter().sum();
        assert!(row[c] as f64 > 0.95 * total as f64, "class {c}: {row:?}");
    }
    for o in r.onoff.iter().filter(|o| o.tiers != "software") {
        assert!(o.eval.accuracy > 0.95, "{}: {}", o.data, o.eval.accuracy);
        assert!(
            o.eval.accuracy > o.eval.naive_accuracy.unwrap(),
            "{}",
            o.data
        );
    }
    // The software tier of a busy poller carries no traffic signal.
    let sw = r.onoff.iter().find(|o| o.tiers == "software").unwrap();
    assert!(
        sw.eval.accuracy < 0.8,
        "software-only ON/OFF {}",
        sw.eval.accuracy
    );
    for u in &r.utilization {
        let best2 = &u.results[1];
        assert_eq!(best2.size, 2);
        assert!(best2.best.rmse < 20.0, "{}: {}", u.scope, best2.best.rmse);
        assert!(best2.best.rmse < best2.median_rmse);
    }
    assert!(r.render().contains(dataset::VPP_LABEL_DEFINITION));
}
