//! Edge weights from joint history, path impacts, and culprit ranking.

use crate::model::{Component, Model};
use crate::NetMedicError;
use collector::FiveTuple;
use std::collections::HashMap;

/// Flows listed per source culprit (largest shares first; shares are of
/// the whole aggregate, so the listed ones may sum to less than 1).
pub const MAX_CULPRIT_FLOWS: usize = 64;

/// One entry of NetMedic's ranking for an affected component.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RankedCulprit {
    pub component: Component,
    /// `impact × global_impact`; the ranking key (higher is more likely).
    pub score: f64,
    /// I(c→e): the best path weight from the culprit to the effect.
    pub impact: f64,
    /// S(c) = Σ_e I(c→e)·A_e over all components.
    pub global_impact: f64,
    /// The culprit's own abnormality in the window.
    pub abnormality: f64,
    /// For source aggregates: the flows that drove the aggregate above its
    /// usual volume in the window, with their share (excess packets over the
    /// flow's mean per window). Empty for NFs: NetMedic names components,
    /// not flows.
    pub flows: Vec<(FiveTuple, f64)>,
}

/// Everything about one window that every effect in it shares.
#[derive(Clone, Debug)]
pub struct WindowAnalysis {
    pub window: usize,
    /// Abnormality per component index.
    pub abnormality: Vec<f64>,
    /// Weight per edge index.
    pub edge_weight: Vec<f64>,
    /// impact[c][e] = I(c→e).
    pub impact: Vec<Vec<f64>>,
    /// Global impact per component.
    pub global: Vec<f64>,
}

impl Model<'_> {
    /// Weight of edge `k` (S→D) in window `now` (NetMedic §5.3, adapted:
    /// see docs/netmedic.md).
    pub(crate) fn edge_weight(&self, k: usize, now: usize, abn: &[f64]) -> f64 {
        let (s, d) = self.edges[k];
        if abn[s] < self.cfg.abnormal_threshold {
            return self.cfg.normal_edge_weight;
        }
        let history: Vec<usize> = (0..self.windows).filter(|w| *w != now).collect();
        if history.is_empty() {
            return self.cfg.unseen_edge_weight;
        }
        let chunks = self.cfg.chunks.min(history.len());
        let per = history.len().div_ceil(chunks);
        let (mut num, mut den) = (0.0, 0.0);
        for chunk in history.chunks(per) {
            let (t, ds) = chunk
                .iter()
                .map(|t| (*t, self.state_diff(s, *t, now)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .expect("chunks are non-empty");
            if ds > self.cfg.similar_threshold {
                continue;
            }
            let wk = 1.0 - ds;
            num += wk * (1.0 - self.state_diff(d, t, now));
            den += wk;
        }
        if den > 0.0 {
            num / den
        } else {
            self.cfg.unseen_edge_weight
        }
    }

    /// Computes abnormalities, edge weights and all path impacts of window `w`.
    pub fn analyse_window(&self, w: usize) -> Result<WindowAnalysis, NetMedicError> {
        if w >= self.windows {
            return Err(NetMedicError::WindowOutOfRange {
                window: w,
                windows: self.windows,
            });
        }
        let n = self.components.len();
        let abnormality: Vec<f64> = (0..n).map(|c| self.abnormality_idx(c, w)).collect();
        let edge_weight: Vec<f64> = (0..self.edges.len())
            .map(|k| self.edge_weight(k, w, &abnormality))
            .collect();
        // I(c→e): max over simple paths of the geometric mean of edge
        // weights (the dependency graph of an NF chain is a DAG, so every
        // path is simple; a visited set guards against cycles anyway).
        let mut impact = vec![vec![0.0; n]; n];
        for (c, row) in impact.iter_mut().enumerate() {
            row[c] = 1.0;
            let mut on_path = vec![false; n];
            let mut budget = self.cfg.max_paths;
            self.walk(c, 0.0, 0, &edge_weight, row, &mut on_path, &mut budget);
        }
        let global: Vec<f64> = impact
            .iter()
            .map(|row| row.iter().zip(&abnormality).map(|(i, a)| i * a).sum())
            .collect();
        Ok(WindowAnalysis {
            window: w,
            abnormality,
            edge_weight,
            impact,
            global,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn walk(
        &self,
        node: usize,
        log_sum: f64,
        len: usize,
        ew: &[f64],
        best: &mut [f64],
        on_path: &mut [bool],
        budget: &mut usize,
    ) {
        on_path[node] = true;
        for &k in &self.out_edges[node] {
            let next = self.edges[k].1;
            if on_path[next] || *budget == 0 {
                continue;
            }
            *budget -= 1;
            let ls = log_sum + ew[k].max(1e-12).ln();
            let gm = (ls / (len + 1) as f64).exp();
            if gm > best[next] {
                best[next] = gm;
            }
            self.walk(next, ls, len + 1, ew, best, on_path, budget);
        }
        on_path[node] = false;
    }

    /// Ranks every component that can reach NF `effect` by
    /// `I(c→effect) × S(c)`, highest first (ties by component order).
    pub fn rank(
        &self,
        analysis: &WindowAnalysis,
        effect: &str,
    ) -> Result<Vec<RankedCulprit>, NetMedicError> {
        let e = *self
            .index
            .get(&Component::Nf(effect.to_string()))
            .ok_or_else(|| NetMedicError::UnknownNf(effect.to_string()))?;
        let mut out: Vec<RankedCulprit> = (0..self.components.len())
            .filter(|c| analysis.impact[*c][e] > 0.0)
            .map(|c| RankedCulprit {
                component: self.components[c].clone(),
                score: analysis.impact[c][e] * analysis.global[c],
                impact: analysis.impact[c][e],
                global_impact: analysis.global[c],
                abnormality: analysis.abnormality[c],
                flows: Vec::new(),
            })
            .collect();
        out.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.component.cmp(&b.component))
        });
        for c in out.iter_mut() {
            c.flows = self.culprit_flows(&c.component, analysis.window);
        }
        Ok(out)
    }

    /// The flows of a source aggregate that were above their usual volume
    /// in window `w`, with their shares of the aggregate's excess (falls
    /// back to raw packet counts when no flow exceeded its mean); at most
    /// [`MAX_CULPRIT_FLOWS`], largest first. Empty for NFs.
    pub fn culprit_flows(&self, c: &Component, w: usize) -> Vec<(FiveTuple, f64)> {
        let Component::Source { source, bucket } = c else {
            return Vec::new();
        };
        let buckets = self.source_buckets.get(source).copied().unwrap_or(1) as u64;
        let lo = self.t0_ns + w as f64 * self.cfg.window_ns as f64;
        let hi = lo + self.cfg.window_ns as f64;
        let mut counts: HashMap<FiveTuple, f64> = HashMap::new();
        for (sid, st) in self.trace.streams.iter().enumerate() {
            let Some(info) = &st.info else { continue };
            if info.nf != *source || info.direction != collector::Direction::Tx {
                continue;
            }
            let cal = &self.calib[sid];
            let start = st.batches.partition_point(|b| cal.to_ns(b.tsc) < lo);
            for b in st.batches[start..].iter() {
                if cal.to_ns(b.tsc) >= hi {
                    break;
                }
                for t in b.tuples.iter().flatten() {
                    if buckets > 1 && crate::model::flow_hash(t) % buckets != *bucket as u64 {
                        continue;
                    }
                    *counts.entry(*t).or_default() += 1.0;
                }
            }
        }
        let mut excess: Vec<(FiveTuple, f64)> = counts
            .iter()
            .map(|(t, n)| (*t, n - self.flow_mean.get(t).copied().unwrap_or(0.0)))
            .filter(|(_, x)| *x > 0.0)
            .collect();
        if excess.is_empty() {
            excess = counts.into_iter().collect();
        }
        let sum: f64 = excess.iter().map(|(_, x)| x).sum();
        if sum <= 0.0 {
            return Vec::new();
        }
        excess.iter_mut().for_each(|(_, x)| *x /= sum);
        excess.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        excess.truncate(MAX_CULPRIT_FLOWS);
        excess
    }
}

/// A NetMedic diagnoser over one trace, caching per-window analyses and
/// per-(window, effect) rankings (victims cluster in time, so many share
/// a window).
pub struct NetMedic<'t> {
    model: Model<'t>,
    cache: HashMap<usize, WindowAnalysis>,
    ranked: HashMap<(usize, String), std::rc::Rc<Vec<RankedCulprit>>>,
}

impl<'t> NetMedic<'t> {
    pub fn new(model: Model<'t>) -> Self {
        NetMedic {
            model,
            cache: HashMap::new(),
            ranked: HashMap::new(),
        }
    }

    pub fn model(&self) -> &Model<'t> {
        &self.model
    }

    /// Ranked culprits for an abnormality of NF `effect` at calibrated time
    /// `ns` (the window holding it). Errors: unknown NF, time outside the
    /// trace.
    pub fn diagnose_at(
        &mut self,
        effect: &str,
        ns: f64,
    ) -> Result<std::rc::Rc<Vec<RankedCulprit>>, NetMedicError> {
        let w = self
            .model
            .window_of(ns)
            .ok_or(NetMedicError::TimeOutOfRange { ns })?;
        self.diagnose_window(effect, w)
    }

    /// Ranked culprits for NF `effect` in window `w` (shared, cached).
    pub fn diagnose_window(
        &mut self,
        effect: &str,
        w: usize,
    ) -> Result<std::rc::Rc<Vec<RankedCulprit>>, NetMedicError> {
        if let Some(r) = self.ranked.get(&(w, effect.to_string())) {
            return Ok(r.clone());
        }
        if !self.cache.contains_key(&w) {
            let a = self.model.analyse_window(w)?;
            self.cache.insert(w, a);
        }
        let r = std::rc::Rc::new(self.model.rank(&self.cache[&w], effect)?);
        self.ranked.insert((w, effect.to_string()), r.clone());
        Ok(r)
    }
}
