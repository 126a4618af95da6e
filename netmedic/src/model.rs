//! From a trace to NetMedic's model: components, the dependency graph, and
//! per-window state variables with their history statistics.

use crate::stats::{mean_sd, AbnormalityFormula};
use crate::{Config, NetMedicError};
use collector::{Calibration, Direction, FiveTuple, Role};
use std::collections::{BTreeMap, HashMap};
use tracefile::Trace;

/// A NetMedic component: an NF instance, or one flow aggregate of a traffic
/// source (flows hashed into buckets by 5-tuple).
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Component {
    Nf(String),
    Source { source: String, bucket: u32 },
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Component::Nf(n) => write!(f, "{n}"),
            Component::Source { source, bucket } => write!(f, "{source}/b{bucket}"),
        }
    }
}

/// Names of the NF state variables, in storage order.
pub const NF_VARS: [&str; 6] = ["input", "rx", "tx", "queue", "full_share", "loss"];
/// Names of the source-aggregate state variables, in storage order.
pub const SOURCE_VARS: [&str; 2] = ["rate", "top_flow"];

/// One component's per-window state and its history statistics.
#[derive(Clone, Debug)]
pub(crate) struct ComponentState {
    /// `vars[v][w]`: variable `v` in window `w`.
    pub vars: Vec<Vec<f64>>,
    /// Per variable: (mean, standard deviation) over all windows.
    pub moments: Vec<(f64, f64)>,
    /// Per variable: (min, max) over all windows, for state differences.
    pub range: Vec<(f64, f64)>,
}

/// NetMedic's view of one trace.
pub struct Model<'t> {
    pub(crate) trace: &'t Trace,
    pub(crate) cfg: Config,
    /// Start of window 0 in calibrated nanoseconds.
    pub(crate) t0_ns: f64,
    pub(crate) windows: usize,
    pub(crate) components: Vec<Component>,
    pub(crate) index: HashMap<Component, usize>,
    pub(crate) state: Vec<ComponentState>,
    /// Dependency edges (from, to) as component indices.
    pub(crate) edges: Vec<(usize, usize)>,
    /// Outgoing edge indices per component.
    pub(crate) out_edges: Vec<Vec<usize>>,
    /// Per stream: ticks → ns.
    pub(crate) calib: Vec<Calibration>,
    /// Per flow: mean packets per window over the whole trace (for the
    /// excess-based flow attribution of source culprits).
    pub(crate) flow_mean: HashMap<FiveTuple, f64>,
    /// Source name → bucket count (1 when its streams carry no 5-tuples).
    pub(crate) source_buckets: BTreeMap<String, u32>,
}

/// FNV-1a over the 13-byte packed 5-tuple: stable across runs and platforms.
pub fn flow_hash(t: &FiveTuple) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in t.to_bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// One batch reduced to what NetMedic needs.
#[derive(Clone, Copy, Debug)]
struct Ev {
    ns: f64,
    size: f64,
    emptied: bool,
}

impl<'t> Model<'t> {
    /// Builds the model. Errors: the trace has no topology, no batch
    /// records, or the configuration is invalid.
    pub fn build(trace: &'t Trace, cfg: &Config) -> Result<Model<'t>, NetMedicError> {
        cfg.validate()?;
        let topo = trace
            .meta
            .topology
            .as_ref()
            .ok_or(NetMedicError::NoTopology)?;
        let nominal = trace.meta.tsc_hz_hint.filter(|h| *h > 0.0).unwrap_or(2.6e9);
        let calib: Vec<Calibration> = trace
            .streams
            .iter()
            .map(|s| Calibration::fit(&s.anchors, nominal))
            .collect();

        // Time range.
        let mut t_min = f64::INFINITY;
        let mut t_max = f64::NEG_INFINITY;
        for (sid, s) in trace.streams.iter().enumerate() {
            if s.info.is_none() {
                continue;
            }
            for b in [s.batches.first(), s.batches.last()].into_iter().flatten() {
                let ns = calib[sid].to_ns(b.tsc);
                t_min = t_min.min(ns);
                t_max = t_max.max(ns);
            }
        }
        if !t_min.is_finite() {
            return Err(NetMedicError::NoRecords);
        }
        let w_ns = cfg.window_ns as f64;
        let windows = ((t_max - t_min) / w_ns).floor() as usize + 1;
        let win = |ns: f64| (((ns - t_min) / w_ns).floor().max(0.0) as usize).min(windows - 1);

        // Events per NF / source, by direction.
        let mut rx: HashMap<&str, Vec<Ev>> = HashMap::new();
        let mut tx: HashMap<&str, Vec<Ev>> = HashMap::new();
        let mut source_tuples: HashMap<&str, bool> = HashMap::new();
        for (sid, s) in trace.streams.iter().enumerate() {
            let Some(info) = &s.info else { continue };
            let evs = match info.direction {
                Direction::Rx => rx.entry(info.nf.as_str()).or_default(),
                Direction::Tx => tx.entry(info.nf.as_str()).or_default(),
            };
            for b in &s.batches {
                evs.push(Ev {
                    ns: calib[sid].to_ns(b.tsc),
                    size: b.len() as f64,
                    emptied: b.emptied_queue(),
                });
            }
            if info.role == Role::Source {
                let t = source_tuples.entry(info.nf.as_str()).or_insert(false);
                *t |= info.carries_tuples;
            }
        }
        for v in rx.values_mut().chain(tx.values_mut()) {
            v.sort_by(|a, b| a.ns.total_cmp(&b.ns));
        }

        // Components: sources (bucketed) then NFs.
        let mut source_names: Vec<String> = topo
            .nfs
            .iter()
            .filter(|n| n.role == Role::Source)
            .map(|n| n.name.clone())
            .collect();
        for name in source_tuples.keys() {
            if !source_names.iter().any(|n| n == name) {
                source_names.push(name.to_string());
            }
        }
        source_names.sort();
        let nf_names: Vec<String> = topo
            .nfs
            .iter()
            .filter(|n| n.role == Role::Nf)
            .map(|n| n.name.clone())
            .collect();
        let mut components = Vec::new();
        let mut source_buckets = BTreeMap::new();
        for s in &source_names {
            let buckets = if source_tuples.get(s.as_str()).copied().unwrap_or(false) {
                cfg.source_buckets
            } else {
                1
            };
            source_buckets.insert(s.clone(), buckets);
            for bucket in 0..buckets {
                components.push(Component::Source {
                    source: s.clone(),
                    bucket,
                });
            }
        }
        for n in &nf_names {
            components.push(Component::Nf(n.clone()));
        }
        let index: HashMap<Component, usize> = components
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i))
            .collect();

        // Routing shares π[U→d] by iterative proportional fitting of the
        // trace totals (see docs/netmedic.md).
        let total = |m: &HashMap<&str, Vec<Ev>>, n: &str| -> f64 {
            m.get(n)
                .map(|v| v.iter().map(|e| e.size).sum())
                .unwrap_or(0.0)
        };
        let mut pi: HashMap<(String, String), f64> = HashMap::new();
        let senders: Vec<&str> = source_names
            .iter()
            .chain(nf_names.iter())
            .map(|s| s.as_str())
            .collect();
        for u in &senders {
            let down: Vec<&str> = topo.downstream(u).collect();
            for d in &down {
                pi.insert((u.to_string(), d.to_string()), 1.0 / down.len() as f64);
            }
        }
        for _ in 0..50 {
            for d in &nf_names {
                let r = total(&rx, d);
                let pred: f64 = topo
                    .upstream(d)
                    .map(|u| {
                        total(&tx, u) * pi.get(&(u.to_string(), d.clone())).copied().unwrap_or(0.0)
                    })
                    .sum();
                if pred > 0.0 && r > 0.0 {
                    let f = r / pred;
                    for u in topo.upstream(d) {
                        if let Some(p) = pi.get_mut(&(u.to_string(), d.clone())) {
                            *p *= f;
                        }
                    }
                }
            }
            for u in &senders {
                let down: Vec<&str> = topo.downstream(u).collect();
                let sum: f64 = down
                    .iter()
                    .map(|d| {
                        pi.get(&(u.to_string(), d.to_string()))
                            .copied()
                            .unwrap_or(0.0)
                    })
                    .sum();
                if sum > 0.0 {
                    for d in &down {
                        if let Some(p) = pi.get_mut(&(u.to_string(), d.to_string())) {
                            *p /= sum;
                        }
                    }
                }
            }
        }

        let mut state: Vec<ComponentState> = Vec::with_capacity(components.len());
        // Source aggregates: rate and heaviest flow per window.
        let mut flow_total: HashMap<FiveTuple, u64> = HashMap::new();
        for s in &source_names {
            let buckets = source_buckets[s];
            let mut rate = vec![vec![0.0; windows]; buckets as usize];
            let mut per_flow: HashMap<(usize, FiveTuple), u32> = HashMap::new();
            for (sid, st) in trace.streams.iter().enumerate() {
                let Some(info) = &st.info else { continue };
                if info.nf != *s || info.direction != Direction::Tx {
                    continue;
                }
                for b in &st.batches {
                    let w = win(calib[sid].to_ns(b.tsc));
                    match &b.tuples {
                        Some(ts) if buckets > 1 => {
                            for t in ts {
                                let bk = (flow_hash(t) % buckets as u64) as usize;
                                rate[bk][w] += 1.0;
                                *per_flow.entry((w, *t)).or_default() += 1;
                                *flow_total.entry(*t).or_default() += 1;
                            }
                        }
                        Some(ts) => {
                            rate[0][w] += b.len() as f64;
                            for t in ts {
                                *per_flow.entry((w, *t)).or_default() += 1;
                                *flow_total.entry(*t).or_default() += 1;
                            }
                        }
                        None => rate[0][w] += b.len() as f64,
                    }
                }
            }
            let mut top = vec![vec![0.0; windows]; buckets as usize];
            for ((w, t), n) in &per_flow {
                let bk = if buckets > 1 {
                    (flow_hash(t) % buckets as u64) as usize
                } else {
                    0
                };
                top[bk][*w] = f64::max(top[bk][*w], *n as f64);
            }
            for bk in 0..buckets as usize {
                state.push(ComponentState::new(vec![
                    std::mem::take(&mut rate[bk]),
                    std::mem::take(&mut top[bk]),
                ]));
            }
        }
        let flow_mean = flow_total
            .into_iter()
            .map(|(t, n)| (t, n as f64 / windows as f64))
            .collect();

        // NFs.
        for d in &nf_names {
            // Arrival events: upstream tx scaled by π.
            let mut arr: Vec<Ev> = Vec::new();
            for u in topo.upstream(d) {
                let p = pi.get(&(u.to_string(), d.clone())).copied().unwrap_or(0.0);
                if p <= 0.0 {
                    continue;
                }
                for e in tx.get(u).map(|v| v.as_slice()).unwrap_or(&[]) {
                    arr.push(Ev {
                        ns: e.ns,
                        size: e.size * p,
                        emptied: false,
                    });
                }
            }
            arr.sort_by(|a, b| a.ns.total_cmp(&b.ns));
            let rxv = rx.get(d.as_str()).map(|v| v.as_slice()).unwrap_or(&[]);
            let txv = tx.get(d.as_str()).map(|v| v.as_slice()).unwrap_or(&[]);
            let mut input = vec![0.0; windows];
            let mut rxc = vec![0.0; windows];
            let mut txc = vec![0.0; windows];
            let mut queue = vec![0.0; windows];
            let mut full = vec![0.0; windows];
            let mut nbatch = vec![0.0; windows];
            let mut loss = vec![0.0; windows];
            for e in &arr {
                input[win(e.ns)] += e.size;
            }
            for e in txv {
                txc[win(e.ns)] += e.size;
            }
            // Walk arrivals and dequeues in time order; a batch smaller than
            // requested proves the queue empty, which resets the estimate,
            // and what the estimate still held then was lost (or mis-routed).
            let (mut i, mut j) = (0usize, 0usize);
            let mut q = 0.0f64;
            while i < arr.len() || j < rxv.len() {
                let take_arrival = j >= rxv.len() || (i < arr.len() && arr[i].ns <= rxv[j].ns);
                if take_arrival {
                    q += arr[i].size;
                    let w = win(arr[i].ns);
                    queue[w] = f64::max(queue[w], q);
                    i += 1;
                } else {
                    let e = rxv[j];
                    let w = win(e.ns);
                    rxc[w] += e.size;
                    nbatch[w] += 1.0;
                    if !e.emptied {
                        full[w] += 1.0;
                    }
                    q -= e.size;
                    if e.emptied {
                        loss[w] += q.max(0.0);
                        q = 0.0;
                    }
                    q = q.max(0.0);
                    j += 1;
                }
            }
            for w in 0..windows {
                full[w] = if nbatch[w] > 0.0 {
                    full[w] / nbatch[w]
                } else if input[w] > 0.0 {
                    1.0 // packets arrived, none dequeued: stalled
                } else {
                    0.0
                };
            }
            let vars = match cfg.nf_variables {
                crate::NfVariables::All => vec![input, rxc, txc, queue, full, loss],
                crate::NfVariables::Rates => vec![input, rxc, txc],
            };
            state.push(ComponentState::new(vars));
        }

        // Dependency edges: who sends traffic to whom.
        let mut edges = Vec::new();
        for e in &topo.edges {
            let Some(&to) = index.get(&Component::Nf(e.to.clone())) else {
                continue; // sinks are not components
            };
            if let Some(&b) = source_buckets.get(&e.from) {
                for bucket in 0..b {
                    let from = index[&Component::Source {
                        source: e.from.clone(),
                        bucket,
                    }];
                    edges.push((from, to));
                }
            } else if let Some(&from) = index.get(&Component::Nf(e.from.clone())) {
                edges.push((from, to));
            }
        }
        edges.sort_unstable();
        edges.dedup();
        let mut out_edges = vec![Vec::new(); components.len()];
        for (k, (from, _)) in edges.iter().enumerate() {
            out_edges[*from].push(k);
        }

        Ok(Model {
            trace,
            cfg: cfg.clone(),
            t0_ns: t_min,
            windows,
            components,
            index,
            state,
            edges,
            out_edges,
            calib,
            flow_mean,
            source_buckets,
        })
    }

    /// Number of windows covering the trace.
    pub fn windows(&self) -> usize {
        self.windows
    }

    /// All components, sources first.
    pub fn components(&self) -> &[Component] {
        &self.components
    }

    /// Dependency edges as (from, to) components.
    pub fn edges(&self) -> impl Iterator<Item = (&Component, &Component)> + '_ {
        self.edges
            .iter()
            .map(|(a, b)| (&self.components[*a], &self.components[*b]))
    }

    /// The window holding calibrated time `ns`, if inside the trace.
    pub fn window_of(&self, ns: f64) -> Option<usize> {
        if ns < self.t0_ns {
            return None;
        }
        let w = ((ns - self.t0_ns) / self.cfg.window_ns as f64).floor() as usize;
        (w < self.windows).then_some(w)
    }

    /// Calibrated time of batch record `seq` of `stream`.
    pub fn batch_time_ns(&self, stream: u32, seq: u64) -> Option<f64> {
        let s = self.trace.streams.get(stream as usize)?;
        let k = s.batches.binary_search_by_key(&seq, |b| b.seq).ok()?;
        Some(self.calib[stream as usize].to_ns(s.batches[k].tsc))
    }

    /// Value of variable `var` (see [`NF_VARS`] / [`SOURCE_VARS`]) of
    /// component `c` in window `w`.
    pub fn value(&self, c: &Component, var: &str, w: usize) -> Option<f64> {
        let i = *self.index.get(c)?;
        let names: &[&str] = match c {
            Component::Nf(_) => &NF_VARS,
            Component::Source { .. } => &SOURCE_VARS,
        };
        let v = names.iter().position(|n| *n == var)?;
        self.state[i].vars.get(v)?.get(w).copied()
    }

    /// Component abnormality in window `w`: the maximum over its variables.
    pub(crate) fn abnormality_idx(&self, c: usize, w: usize) -> f64 {
        let st = &self.state[c];
        let f: AbnormalityFormula = self.cfg.formula;
        st.vars
            .iter()
            .zip(&st.moments)
            .map(|(v, (m, s))| f.abnormality(v[w], *m, *s))
            .fold(0.0, f64::max)
    }

    /// Public form of the component abnormality.
    pub fn abnormality(&self, c: &Component, w: usize) -> Option<f64> {
        let i = *self.index.get(c)?;
        (w < self.windows).then(|| self.abnormality_idx(i, w))
    }

    /// Normalized state difference of component `c` between windows `a`
    /// and `b`: mean over variables of |Δ| / range, in [0, 1].
    pub(crate) fn state_diff(&self, c: usize, a: usize, b: usize) -> f64 {
        let st = &self.state[c];
        let n = st.vars.len() as f64;
        st.vars
            .iter()
            .zip(&st.range)
            .map(|(v, (lo, hi))| {
                let r = hi - lo;
                if r > 0.0 {
                    (v[a] - v[b]).abs() / r
                } else {
                    0.0
                }
            })
            .sum::<f64>()
            / n
    }
}

impl ComponentState {
    fn new(vars: Vec<Vec<f64>>) -> Self {
        let moments = vars.iter().map(|v| mean_sd(v.iter().copied())).collect();
        let range = vars
            .iter()
            .map(|v| {
                v.iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
                        (lo.min(*x), hi.max(*x))
                    })
            })
            .collect();
        ComponentState {
            vars,
            moments,
            range,
        }
    }
}
