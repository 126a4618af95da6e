//! Compare anomaly-detection feature transforms on a campaign's rows, folds
//! by run: `cargo run --release -p nfmon --example anomaly_features -- ROWS.jsonl [FOLDS] [SEEDS]`.
//! Prints ROC AUC / PR AUC per task for each transform (every variant tried
//! is printed, so the choice is visible), averaged over SEEDS forest seeds
//! (default 1: the seed `nf eval` uses).
use nfmon::forest::ForestParams;
use nfmon::schema::{read_jsonl, tiers_label, tiers_of};
use nfmon::train::{eval_anomaly, prepare_rows, series_from_rows};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: anomaly_features ROWS.jsonl [FOLDS]");
        std::process::exit(2);
    };
    let folds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(3);
    let seeds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1).max(1);
    let rows = match read_jsonl(std::path::Path::new(&path)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let variants: [(Option<usize>, Option<usize>); 8] = [
        (None, None),
        (None, Some(20)),
        (None, Some(40)),
        (Some(2), None),
        (Some(3), None),
        (Some(2), Some(40)),
        (Some(3), Some(40)),
        (Some(4), Some(40)),
    ];
    for (smooth, base) in variants {
        let prepared = prepare_rows(&rows, smooth, base);
        let series = match series_from_rows(&prepared) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        };
        let mut acc: Vec<(String, f64, f64)> = Vec::new();
        let mut feats = Vec::new();
        for k in 0..seeds {
            let params = ForestParams {
                seed: ForestParams::default().seed.wrapping_add(1000 * k),
                ..ForestParams::default()
            };
            match eval_anomaly(&series, &[], "normal", folds, params) {
                Ok((scores, f)) => {
                    feats = f;
                    for s in scores {
                        let (roc, pr) =
                            (s.roc_auc.unwrap_or(f64::NAN), s.pr_auc.unwrap_or(f64::NAN));
                        match acc.iter_mut().find(|a| a.0 == s.task) {
                            Some(a) => {
                                a.1 += roc;
                                a.2 += pr;
                            }
                            None => acc.push((s.task, roc, pr)),
                        }
                    }
                }
                Err(e) => {
                    println!("smooth {smooth:?} baseline {base:?}: {e}");
                    break;
                }
            }
        }
        let n = seeds as f64;
        let cells: Vec<String> = acc
            .iter()
            .map(|(t, roc, pr)| format!("{t} {:.3}/{:.3}", roc / n, pr / n))
            .collect();
        println!(
            "smooth {:>2} baseline {:>2} | {} features ({}) | {}",
            smooth.map_or("-".into(), |k| k.to_string()),
            base.map_or("-".into(), |k| k.to_string()),
            feats.len(),
            tiers_label(&tiers_of(&feats)),
            cells.join(" | ")
        );
    }
}
