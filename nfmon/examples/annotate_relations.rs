//! Annotate the NF-local culprits of a saved diagnosis
//! (`microscope diagnose trace.bin --relations rels.jsonl`) with the anomaly
//! detector's verdicts — what `diagnose --nf-samples DIR --nf-model FILE`
//! prints once wired:
//! `cargo run --release -p nfmon --example annotate_relations -- rels.jsonl SAMPLES MODEL`.
use nfmon::annotate::Annotator;
use std::io::BufRead;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() != 3 {
        eprintln!("usage: annotate_relations RELATIONS.jsonl SAMPLES MODEL");
        std::process::exit(2);
    }
    let ann = match Annotator::open(a[1].as_ref(), a[2].as_ref()) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let f = match std::fs::File::open(&a[0]) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {}: {e}", a[0]);
            std::process::exit(1);
        }
    };
    // (nf, first_ns, last_ns, score) of relations whose culprit is an NF.
    let mut culprits: Vec<(String, i64, i64, f64)> = Vec::new();
    let (mut total, mut sources) = (0usize, 0usize);
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let Ok(line) = line else { break };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            eprintln!("{}: line {}: not a JSON relation", a[0], i + 1);
            std::process::exit(1);
        };
        total += 1;
        match v["culprit"]["nf"].as_str() {
            Some(nf) => culprits.push((
                nf.to_string(),
                v["culprit_first_ns"].as_i64().unwrap_or(-1),
                v["culprit_last_ns"].as_i64().unwrap_or(-1),
                v["score"].as_f64().unwrap_or(0.0),
            )),
            None => sources += 1,
        }
    }
    let origin = culprits.iter().map(|c| c.1).min().unwrap_or(0);
    println!(
        "{total} relations: {} with an NF-local culprit, {sources} with a source culprit; times in ms from the first culprit event",
        culprits.len()
    );
    for l in ann.describe_culprits(
        culprits.iter().map(|c| (c.0.as_str(), c.1, c.2, c.3)),
        origin,
    ) {
        println!("  {l}");
    }
}
