//! A small Random Forest (CART trees, Gini impurity, bootstrap samples,
//! √d features tried per split) with probability scores, and the
//! per-fault-type evaluation of the anomaly detector (after "Anomaly
//! detection of VNFs from hypervisor data": 10 trees, ROC AUC and PR AUC).
//!
//! Deterministic: every tree has its own ChaCha8 stream derived from the
//! forest seed. Trees are stored as flat node arrays so a model serialises
//! to plain JSON.

use crate::error::{NfmonError, Result};
use crate::stats::{average_precision, roc_auc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Forest hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ForestParams {
    /// Number of trees (the paper's best: 10).
    pub trees: usize,
    /// Maximum depth of a tree.
    pub max_depth: usize,
    /// Minimum rows in a leaf.
    pub min_leaf: usize,
    /// Seed.
    pub seed: u64,
}

impl Default for ForestParams {
    fn default() -> Self {
        ForestParams {
            trees: 10,
            max_depth: 12,
            min_leaf: 2,
            seed: 7,
        }
    }
}

/// One tree node: a split or a leaf with class probabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
pub enum Node {
    /// `x[feature] <= threshold` goes left.
    Split {
        /// Feature index.
        feature: usize,
        /// Threshold.
        threshold: f64,
        /// Left child index.
        left: usize,
        /// Right child index.
        right: usize,
    },
    /// Class probability vector.
    Leaf {
        /// Probability per class.
        p: Vec<f64>,
    },
}

/// A decision tree (node 0 is the root).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// Nodes.
    pub nodes: Vec<Node>,
}

impl Tree {
    fn predict(&self, x: &[f64]) -> &[f64] {
        let mut i = 0;
        loop {
            match &self.nodes[i] {
                Node::Leaf { p } => return p,
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    i = if x[*feature] <= *threshold {
                        *left
                    } else {
                        *right
                    }
                }
            }
        }
    }
}

/// A Random Forest classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forest {
    /// Number of classes.
    pub classes: usize,
    /// Number of features.
    pub features: usize,
    /// The trees.
    pub trees: Vec<Tree>,
    /// Parameters used.
    pub params: ForestParams,
}

struct Builder<'a> {
    x: &'a [Vec<f64>],
    y: &'a [usize],
    k: usize,
    params: ForestParams,
    mtry: usize,
    nodes: Vec<Node>,
}

fn gini(counts: &[usize], n: usize) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let n = n as f64;
    1.0 - counts.iter().map(|&c| (c as f64 / n).powi(2)).sum::<f64>()
}

impl Builder<'_> {
    fn leaf(&mut self, idx: &[usize]) -> usize {
        let mut p = vec![0.0; self.k];
        for &i in idx {
            p[self.y[i]] += 1.0;
        }
        let n = idx.len().max(1) as f64;
        p.iter_mut().for_each(|v| *v /= n);
        self.nodes.push(Node::Leaf { p });
        self.nodes.len() - 1
    }

    fn build(&mut self, idx: &mut [usize], depth: usize, rng: &mut ChaCha8Rng) -> usize {
        let mut counts = vec![0usize; self.k];
        for &i in idx.iter() {
            counts[self.y[i]] += 1;
        }
        let pure = counts.iter().filter(|&&c| c > 0).count() <= 1;
        if pure || depth >= self.params.max_depth || idx.len() < 2 * self.params.min_leaf {
            return self.leaf(idx);
        }
        let d = self.x[0].len();
        // Choose mtry distinct features.
        let mut feats: Vec<usize> = (0..d).collect();
        for i in 0..self.mtry.min(d) {
            let j = rng.gen_range(i..d);
            feats.swap(i, j);
        }
        let parent = gini(&counts, idx.len());
        let mut best: Option<(f64, usize, f64)> = None; // (impurity, feature, threshold)
        let mut order: Vec<usize> = idx.to_vec();
        for &f in &feats[..self.mtry.min(d)] {
            order.sort_by(|&a, &b| self.x[a][f].total_cmp(&self.x[b][f]));
            let mut left = vec![0usize; self.k];
            let n = order.len();
            for pos in 0..n - 1 {
                left[self.y[order[pos]]] += 1;
                let nl = pos + 1;
                let (a, b) = (self.x[order[pos]][f], self.x[order[pos + 1]][f]);
                if a == b || nl < self.params.min_leaf || n - nl < self.params.min_leaf {
                    continue;
                }
                let right: Vec<usize> = counts.iter().zip(&left).map(|(c, l)| c - l).collect();
                let imp = (nl as f64 * gini(&left, nl) + (n - nl) as f64 * gini(&right, n - nl))
                    / n as f64;
                if best.is_none_or(|(bi, _, _)| imp < bi - 1e-15) {
                    best = Some((imp, f, a + (b - a) / 2.0));
                }
            }
        }
        let Some((imp, f, thr)) = best else {
            return self.leaf(idx);
        };
        if imp >= parent - 1e-12 {
            return self.leaf(idx);
        }
        // Partition in place.
        let mut split = 0;
        for i in 0..idx.len() {
            if self.x[idx[i]][f] <= thr {
                idx.swap(i, split);
                split += 1;
            }
        }
        let me = self.nodes.len();
        self.nodes.push(Node::Leaf { p: vec![] }); // placeholder
        let (l, r) = idx.split_at_mut(split);
        let left = self.build(l, depth + 1, rng);
        let right = self.build(r, depth + 1, rng);
        self.nodes[me] = Node::Split {
            feature: f,
            threshold: thr,
            left,
            right,
        };
        me
    }
}

impl Forest {
    /// Train on rows `x` with class labels `y` in `0..classes`.
    pub fn fit(
        x: &[Vec<f64>],
        y: &[usize],
        classes: usize,
        params: ForestParams,
    ) -> Result<Forest> {
        if x.is_empty() || x.len() != y.len() {
            return Err(NfmonError::Data(
                "forest: empty or mismatched training set".into(),
            ));
        }
        let d = x[0].len();
        if d == 0
            || x.iter()
                .any(|r| r.len() != d || r.iter().any(|v| !v.is_finite()))
        {
            return Err(NfmonError::Data(
                "forest: rows must have equal length and finite values".into(),
            ));
        }
        if let Some(bad) = y.iter().find(|&&c| c >= classes) {
            return Err(NfmonError::Data(format!(
                "forest: label {bad} ≥ {classes} classes"
            )));
        }
        let mtry = ((d as f64).sqrt().round() as usize).max(1);
        let params = ForestParams {
            min_leaf: params.min_leaf.max(1),
            trees: params.trees.max(1),
            ..params
        };
        let mut trees = Vec::with_capacity(params.trees);
        for t in 0..params.trees {
            let mut rng = ChaCha8Rng::seed_from_u64(
                params.seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(t as u64 + 1)),
            );
            let mut idx: Vec<usize> = (0..x.len()).map(|_| rng.gen_range(0..x.len())).collect();
            let mut b = Builder {
                x,
                y,
                k: classes,
                params,
                mtry,
                nodes: Vec::new(),
            };
            b.build(&mut idx, 0, &mut rng);
            trees.push(Tree { nodes: b.nodes });
        }
        Ok(Forest {
            classes,
            features: d,
            trees,
            params,
        })
    }

    /// Mean class-probability vector over the trees.
    pub fn predict_proba(&self, x: &[f64]) -> Vec<f64> {
        let mut p = vec![0.0; self.classes];
        for t in &self.trees {
            for (a, b) in p.iter_mut().zip(t.predict(x)) {
                *a += b;
            }
        }
        let n = self.trees.len().max(1) as f64;
        p.iter_mut().for_each(|v| *v /= n);
        p
    }
}

/// ROC AUC and PR AUC (average precision) of one detection task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionScore {
    /// Task name (`any-fault`, `cpu`, `memory`, …).
    pub task: String,
    /// ROC AUC.
    pub roc_auc: Option<f64>,
    /// PR AUC (average precision).
    pub pr_auc: Option<f64>,
    /// Positive test rows.
    pub positives: usize,
    /// Test rows.
    pub n_test: usize,
}

/// Evaluate detection with folds **by run**: `run[i]` names the run of row
/// `i`; runs are grouped by the fault they inject and dealt to `k` folds
/// round-robin (stratified), so no run is split between train and test. For each
/// task (`any-fault` and one per fault class ≠ `normal_class`), a binary
/// forest is trained per fold and its probability scores on the held-out
/// runs are pooled for ROC AUC and average precision.
pub fn eval_by_run(
    x: &[Vec<f64>],
    fault: &[usize],
    fault_names: &[String],
    normal_class: usize,
    run: &[usize],
    k: usize,
    params: ForestParams,
) -> Result<Vec<DetectionScore>> {
    // Runs in first-seen order, with the fault class each one injects.
    let mut runs: Vec<(usize, usize)> = Vec::new(); // (run, fault class)
    for (i, &r) in run.iter().enumerate() {
        match runs.iter_mut().find(|x| x.0 == r) {
            Some(x) => {
                if x.1 == normal_class {
                    x.1 = fault[i];
                }
            }
            None => runs.push((r, fault[i])),
        }
    }
    if k < 2 || runs.len() < k {
        return Err(NfmonError::Data(format!(
            "{} runs cannot make {k} folds by run (need 2 ≤ folds ≤ runs)",
            runs.len()
        )));
    }
    // Stratify: deal the runs of each fault class round-robin, so every
    // training fold has seen every fault type when there are enough runs.
    runs.sort_by_key(|x| x.1); // stable: first-seen order within a class
    let fold_of = |r: usize| runs.iter().position(|x| x.0 == r).unwrap_or(0) % k;
    type Task = (String, Box<dyn Fn(usize) -> bool>);
    let mut tasks: Vec<Task> = vec![("any-fault".into(), Box::new(move |c| c != normal_class))];
    for (c, name) in fault_names.iter().enumerate() {
        if c != normal_class && fault.contains(&c) {
            tasks.push((name.clone(), Box::new(move |f| f == c)));
        }
    }
    let mut out = Vec::new();
    for (name, is_pos) in &tasks {
        let mut scores = Vec::new();
        let mut labels = Vec::new();
        for f in 0..k {
            let tr: Vec<usize> = (0..x.len()).filter(|&i| fold_of(run[i]) != f).collect();
            let te: Vec<usize> = (0..x.len()).filter(|&i| fold_of(run[i]) == f).collect();
            let xtr: Vec<Vec<f64>> = tr.iter().map(|&i| x[i].clone()).collect();
            let ytr: Vec<usize> = tr.iter().map(|&i| is_pos(fault[i]) as usize).collect();
            let p = ForestParams {
                seed: params.seed.wrapping_add(f as u64),
                ..params
            };
            let m = Forest::fit(&xtr, &ytr, 2, p)?;
            for &i in &te {
                scores.push(m.predict_proba(&x[i])[1]);
                labels.push(is_pos(fault[i]));
            }
        }
        out.push(DetectionScore {
            task: name.clone(),
            roc_auc: roc_auc(&scores, &labels),
            pr_auc: average_precision(&scores, &labels),
            positives: labels.iter().filter(|&&l| l).count(),
            n_test: labels.len(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two informative features, one noise feature; deterministic.
    fn synth(n: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for _ in 0..n {
            let c = rng.gen_range(0..3usize);
            let a = c as f64 * 2.0 + rng.gen_range(-0.8..0.8);
            let b = if c == 2 { 5.0 } else { 0.0 } + rng.gen_range(-1.0..1.0);
            x.push(vec![a, b, rng.gen_range(0.0..10.0)]);
            y.push(c);
        }
        (x, y)
    }

    #[test]
    fn forest_learns_and_is_deterministic() {
        let (x, y) = synth(300, 1);
        let f = Forest::fit(&x, &y, 3, ForestParams::default()).unwrap();
        let (xt, yt) = synth(200, 2);
        let acc = xt
            .iter()
            .zip(&yt)
            .filter(|(r, &c)| {
                let p = f.predict_proba(r);
                let best = (0..3).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
                best == c
            })
            .count() as f64
            / 200.0;
        assert!(acc > 0.9, "accuracy {acc}");
        let f2 = Forest::fit(&x, &y, 3, ForestParams::default()).unwrap();
        assert_eq!(f, f2);
        let p = f.predict_proba(&xt[0]);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        let s = serde_json::to_string(&f).unwrap();
        let back: Forest = serde_json::from_str(&s).unwrap();
        assert_eq!(back.predict_proba(&xt[3]), f.predict_proba(&xt[3]));
    }

    #[test]
    fn eval_by_run_separates_and_rejects_bad_input() {
        let (x, y) = synth(400, 3);
        let run: Vec<usize> = (0..400).map(|i| i / 40).collect();
        let names = vec!["normal".to_string(), "cpu".into(), "disk".into()];
        let s = eval_by_run(&x, &y, &names, 0, &run, 5, ForestParams::default()).unwrap();
        assert_eq!(s.len(), 3);
        for d in &s {
            assert!(d.roc_auc.unwrap() > 0.9, "{d:?}");
        }
        // Pure noise labels → AUC near ½, not near 1.
        let noise: Vec<usize> = (0..400).map(|i| (i * 7919 % 13) % 2).collect();
        let s = eval_by_run(&x, &noise, &names[..2], 0, &run, 5, ForestParams::default()).unwrap();
        assert!(s[0].roc_auc.unwrap() < 0.7, "{:?}", s[0]);
        assert!(Forest::fit(&[vec![f64::NAN]], &[0], 2, ForestParams::default()).is_err());
        assert!(eval_by_run(&x, &y, &names, 0, &run, 50, ForestParams::default()).is_err());
    }
}
