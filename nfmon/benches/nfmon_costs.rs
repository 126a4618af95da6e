//! What monitoring costs: time per sampler interval (all tiers, this
//! process), per model application, per forest training, and the
//! diagnosis annotator (loading samples, annotating many culprits). Prints
//! a table.
//! `cargo bench -p nfmon --bench nfmon_costs`

use nfmon::forest::{Forest, ForestParams};
use nfmon::sampler::{Sampler, SamplerConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

fn time<F: FnMut()>(n: usize, mut f: F) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_secs_f64() / n as f64
}

fn main() {
    let mut rows = Vec::new();
    let pid = std::process::id();
    let mut s = Sampler::new(pid, "bench", SamplerConfig::default()).expect("sampler");
    let per_sample = time(200, || {
        std::hint::black_box(s.sample().expect("sample"));
    });
    rows.push(("sampler: one row, all tiers, 1-thread process", per_sample));

    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x: Vec<Vec<f64>> = (0..660)
        .map(|_| (0..90).map(|_| rng.gen_range(0.0..1.0)).collect())
        .collect();
    let y: Vec<usize> = x
        .iter()
        .map(|r| (r[0] > 0.5) as usize + (r[1] > 0.7) as usize)
        .collect();
    let fit = time(5, || {
        std::hint::black_box(Forest::fit(&x, &y, 3, ForestParams::default()).expect("fit"));
    });
    rows.push(("forest: fit 10 trees, 660 rows x 90 features", fit));
    let f = Forest::fit(&x, &y, 3, ForestParams::default()).expect("fit");
    let pred = time(10_000, || {
        std::hint::black_box(f.predict_proba(&x[7]));
    });
    rows.push(("forest: predict one row", pred));

    // Annotator: 4 NFs × 600 rows (5 min at 500 ms) × 30 metrics, a model
    // with baseline-window-20 deviations, 100 000 NF-local culprits.
    let mut samples = Vec::new();
    for nf in ["fw1", "mon1", "nat1", "vpn1"] {
        for i in 0..600u64 {
            let mut r = nfmon::Row::new(nf, i as f64 * 0.5, Some(0.5));
            r.mono_ns = Some(1_000_000_000_000 + i * 500_000_000);
            let fault = (200..260).contains(&i);
            for m in 0..30 {
                let base = if fault && m < 3 { 5.0 } else { 1.0 };
                r.set(format!("proc.m{m}"), Some(base + rng.gen_range(0.0..0.5)));
            }
            r.label = Some(if fault { "cpu" } else { "normal" }.into());
            samples.push(r);
        }
    }
    let prepared = nfmon::train::prepare_rows(&samples, None, Some(20));
    let series = nfmon::train::series_from_rows(&prepared).expect("series");
    let opts = nfmon::train::TrainOpts {
        baseline_window: Some(20),
        ..Default::default()
    };
    let model = nfmon::train::train(nfmon::train::Kind::Anomaly, &series, &opts).expect("train");
    let open = time(3, || {
        std::hint::black_box(
            nfmon::annotate::Annotator::from_rows(
                samples.clone(),
                vec![("m".into(), model.clone())],
            )
            .expect("annotator"),
        );
    });
    rows.push(("annotate: load 2400 rows (4 NFs), baseline 20", open));
    let ann = nfmon::annotate::Annotator::from_rows(samples.clone(), vec![("m".into(), model)])
        .expect("annotator");
    // Groups of 10 culprits within 1 ms, groups 150 ms apart per NF:
    // 10 000 episodes over the 5 minutes sampled, each with a verdict.
    let culprits: Vec<(&str, i64, i64, f64)> = (0..100_000i64)
        .map(|k| {
            let nf = ["fw1", "mon1", "nat1", "vpn1"][(k % 4) as usize];
            let group = k / 40;
            let t = 1_000_000_000_000 + group * 150_000_000 + (k % 40) * 20_000;
            (nf, t, t + 10_000, 1.0)
        })
        .collect();
    assert_eq!(ann.episodes(culprits.iter().copied()).len(), 10_000);
    let ann_many = time(3, || {
        std::hint::black_box(ann.describe_culprits(culprits.iter().copied(), 0));
    });
    rows.push((
        "annotate: 100k culprits -> 10k episodes + verdicts",
        ann_many,
    ));
    let one = time(10_000, || {
        std::hint::black_box(ann.verdict("nat1", 1_100_000_000_000, 1_100_001_000_000));
    });
    rows.push(("annotate: one verdict (600-row NF)", one));

    println!("{:<50} {:>14}", "operation", "time");
    for (name, secs) in rows {
        let (v, unit) = if secs < 1e-3 {
            (secs * 1e6, "us")
        } else {
            (secs * 1e3, "ms")
        };
        println!("{name:<50} {v:>11.2} {unit}");
    }
}
