//! Classifies reconstruction errors against simulator truth:
//! `cargo run --release -p diagnose --example recon_errors -- [SCENARIO] [DURATION]`.
use diagnose::{reconstruct, Config};
use testbeds::scenario::Scenario;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let mut sc = Scenario::by_name_or_path(a.first().map_or("paper-moderate", |s| s)).unwrap();
    sc.set("duration", a.get(1).map_or("0.4s", |s| s)).unwrap();
    let out = testbeds::sim::simulate(&sc).unwrap();
    let rec = reconstruct(&out.trace, &Config::default()).unwrap();
    println!("{:?}", rec.stats());
    let names: Vec<String> = out
        .trace
        .streams
        .iter()
        .map(|s| {
            let i = s.info.as_ref().unwrap();
            format!("{}:{:?}", i.nf, i.direction)
        })
        .collect();
    let (mut none, mut wrong_stream, mut wrong_pos, mut n) = (0, 0, 0, 0);
    let mut shown = 0;
    let mut hist = std::collections::BTreeMap::new();
    for (rx, up) in out.truth.true_upstream_pairs() {
        n += 1;
        let got = rec.upstream(&rx);
        if got == Some(up) {
            continue;
        }
        match got {
            None => none += 1,
            Some(g) if g.stream != up.stream => wrong_stream += 1,
            Some(_) => wrong_pos += 1,
        }
        if got.is_none() {
            let d = rec.time_ns(&rx).unwrap() - rec.time_ns(&up).unwrap();
            *hist.entry((d / 1_000_000).min(20)).or_insert(0u32) += 1;
        }
        if shown < 15 {
            shown += 1;
            let t_rx = rec.time_ns(&rx).unwrap();
            let t_up = rec.time_ns(&up).unwrap();
            println!(
                "rx {} {:?} t={} true up {} {:?} t={} (delay {}) got {:?}",
                names[rx.stream as usize],
                rx,
                t_rx,
                names[up.stream as usize],
                up,
                t_up,
                t_rx - t_up,
                got.map(|g| (names[g.stream as usize].clone(), g, rec.time_ns(&g)))
            );
        }
    }
    println!("unmatched by true delay (ms): {hist:?}");
    println!(
        "pairs {n}: unmatched {none}, wrong stream {wrong_stream}, wrong position {wrong_pos}"
    );
}
