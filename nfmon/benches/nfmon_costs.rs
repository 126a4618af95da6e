//! What monitoring costs: time per sampler interval (all tiers, this
//! process), per model application, per forest training. Prints a table.
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
