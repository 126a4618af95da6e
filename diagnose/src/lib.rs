//! # diagnose — Microscope's offline engine
//!
//! Input: a trace file streamed chunk by chunk ([`run_path`], what the CLI
//! uses: the in-memory [`tracefile::Trace`], with a `Vec` per batch record,
//! is never built) or a [`tracefile::Trace`] already in memory ([`run`]).
//! Both feed one [`IndexBuilder`] (per-stream batch records with TSC
//! timestamps, requested burst sizes, IPIDs and optional 5-tuples, clock
//! anchors, loss counters, and usually the NF topology). Output: a
//! [`Diagnosis`]: for every victim packet at every NF where it suffered, a
//! ranked list of culprits (an NF's local processing or a traffic source's
//! input, with the culprit flows), and the flat list of causal relations
//! `<culprit packets, culprit location> → <victim packet, victim NF>: score`
//! the aggregator consumes. The stages, one module each:
//!
//! 1. **Index and clock** ([`index`]): records are accumulated per stream
//!    in columnar form (any order, duplicates dropped, loss windows derived
//!    as the trace assembler does; [`read_index`] decodes the file on a
//!    thread of its own while the caller's thread builds); then one least-squares
//!    [`collector::Calibration`] per host over the anchors of all its
//!    streams turns every batch timestamp into nanoseconds, and all
//!    observations are laid out (streams in parallel) in flat, dense arrays
//!    (CSR by stream and batch) — no per-packet allocation anywhere.
//! 2. **DAG** ([`dag`]): from `TraceMeta::topology`, or inferred by IPID
//!    matching between tx and rx streams, each edge with a confidence.
//! 3. **Reconstruction** ([`reconstruct`](mod@reconstruct), paper §5): every rx observation
//!    is mapped to the same packet's tx at an immediate upstream neighbour
//!    (IPID + DAG + bounded delay + FIFO order per link and per queue, in
//!    time-ordered sweeps over per-IPID window lists), and every tx to the
//!    NF's own rx; journeys, paths and flows follow.
//! 4. **Queuing periods** ([`queue`], §4.1): a batch smaller than requested
//!    empties the queue; the period of a packet is the NF's busy period up
//!    to its arrival — from the last emptying whose batch the NF could have
//!    processed (at the peak rate) before the next arrival; n_p counts
//!    packets processed, not merely dequeued; eq. (1)–(2) give S_i and S_p
//!    with S_i + S_p = n_i − n_p.
//! 5. **Victims** ([`victims`]): high latency (percentile or absolute), low
//!    per-flow throughput, or lost; diagnosed only where locally abnormal.
//! 6. **Propagation and recursion** ([`blame`], §4.2–4.3): timespan analysis
//!    of PreSet over its DAG paths with the non-monotone rule and
//!    proportional merge, then recursion into upstream NFs.
//!
//! Invariants: scores are never negative; per victim, culprit scores plus
//! the unattributed remainder equal the queue length `n_i − n_p`; results
//! do not depend on the number of threads (work is split by victim and
//! merged in victim order).

#![deny(unsafe_code)]

pub mod blame;
pub mod config;
pub mod dag;
pub mod index;
pub mod output;
pub mod progress;
pub mod queue;
pub mod reconstruct;
pub mod victims;

pub use config::{parse_duration_ns, parse_victims, Config, VictimRule};
pub use dag::{Dag, DagEdge, DagNode, DagOrigin};
pub use index::{HostClock, IndexBuilder};
pub use output::{
    gap_summary, read_bin, read_jsonl, to_autofocus, write_bin, write_jsonl, CausalRelation,
    Culprit, Location, PacketSlot, VictimDiagnosis,
};
pub use queue::{PeakRate, RateOrigin};
pub use reconstruct::{MatchStats, ReconstructionStats};
pub use victims::VictimStats;

use blame::{Contrib, Engine, Scratch};
use collector::Role;
use index::{Index, NONE};
use rayon::prelude::*;
use reconstruct::Journeys;
use serde::{Deserialize, Serialize};
use tracefile::Trace;

/// Engine errors.
#[derive(Debug, thiserror::Error)]
pub enum DiagnoseError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("the topology in the trace metadata has a cycle")]
    CyclicTopology,
    #[error("trace too large: {count} {what} (limit 2^32-1)")]
    TooLarge { what: &'static str, count: u64 },
    #[error("NF {nf} has no usable peak rate (estimated {pps} pps); give one with peak_rates")]
    NoPeakRate { nf: String, pps: f64 },
    #[error("{name}: at offset {offset}: {reason}")]
    Input {
        name: String,
        offset: u64,
        reason: String,
    },
    #[error("thread pool: {0}")]
    Threads(String),
    #[error(transparent)]
    Trace(#[from] tracefile::TraceError),
}

/// Counters of the blame stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineStats {
    /// Periods where the NF dequeued more than r_f·T (peak rate too low).
    pub clamped_periods: u64,
    /// Victims with a branch stopped by the recursion cap.
    pub truncated_victims: u64,
    pub max_depth: usize,
    /// Deepest culprit found.
    pub deepest_culprit: u32,
}

/// Everything the engine found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub dag: Dag,
    pub clocks: Vec<HostClock>,
    pub reconstruction: ReconstructionStats,
    pub peak_rates: Vec<PeakRate>,
    pub victim_stats: VictimStats,
    pub engine: EngineStats,
    pub victims: Vec<VictimDiagnosis>,
    pub relations: Vec<CausalRelation>,
}

impl Diagnosis {
    /// The relations as autofocus input (see [`output::to_autofocus`]).
    pub fn to_autofocus(&self) -> Vec<autofocus::Relation> {
        output::to_autofocus(&self.relations)
    }
}

/// Pipeline stages reported to a progress callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Reconstruct,
    Victims,
    Diagnose,
}

/// The reconstructed trace: clock, DAG, journeys. Useful on its own for
/// accuracy measurements (`upstream`) and inspection.
pub struct Reconstruction {
    pub dag: Dag,
    pub clocks: Vec<HostClock>,
    pub(crate) ix: Index,
    pub(crate) j: Journeys,
    pub(crate) loss_ns: Vec<Vec<(i64, i64)>>,
}

impl Reconstruction {
    pub fn stats(&self) -> &ReconstructionStats {
        &self.j.stats
    }

    /// Records seen more than once in the input and dropped.
    pub fn duplicates_dropped(&self) -> u64 {
        self.ix.duplicates_dropped
    }

    /// The upstream observation mapped to `slot` (for an rx slot: the
    /// upstream tx; for a tx slot: the NF's own rx).
    pub fn upstream(&self, slot: &PacketSlot) -> Option<PacketSlot> {
        let o = self.ix.obs_of_slot(slot)?;
        let p = self.j.prev[o as usize];
        (p != NONE).then(|| self.ix.slot(p))
    }

    /// Every (rx slot, upstream tx slot) mapping across nodes.
    pub fn links(&self) -> impl Iterator<Item = (PacketSlot, PacketSlot)> + '_ {
        (0..self.ix.n_obs() as u32).filter_map(move |o| {
            let s = self.ix.stream_of(o) as usize;
            let p = self.j.prev[o as usize];
            (self.ix.stream_dir[s] == collector::Direction::Rx && p != NONE)
                .then(|| (self.ix.slot(o), self.ix.slot(p)))
        })
    }

    /// Time of an observation in calibrated nanoseconds.
    pub fn time_ns(&self, slot: &PacketSlot) -> Option<i64> {
        self.ix.obs_of_slot(slot).map(|o| self.ix.time(o))
    }

    /// The 5-tuple of the packet observed at `slot`, when recorded anywhere
    /// on its journey.
    pub fn flow(&self, slot: &PacketSlot) -> Option<collector::FiveTuple> {
        let o = self.ix.obs_of_slot(slot)?;
        let t = self.j.pkt_tuple[self.j.obs_pkt[o as usize] as usize];
        (t != NONE).then(|| self.j.tuples[t as usize])
    }
}

/// Calibrates clocks, builds the DAG and reconstructs journeys.
pub fn reconstruct(trace: &Trace, cfg: &Config) -> Result<Reconstruction, DiagnoseError> {
    validate(cfg)?;
    let mut b = IndexBuilder::new();
    b.trace(trace);
    let p = prepare(b, cfg)?;
    Ok(finish(p, cfg))
}

/// [`reconstruct()`] taking the trace by value: the trace is dropped once its
/// records are in the index builder, before matching.
pub fn reconstruct_owned(trace: Trace, cfg: &Config) -> Result<Reconstruction, DiagnoseError> {
    validate(cfg)?;
    let mut b = IndexBuilder::new();
    b.trace(&trace);
    drop(trace);
    let p = prepare(b, cfg)?;
    Ok(finish(p, cfg))
}

/// What [`read_index`] saw besides records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub bytes: u64,
    pub chunks: u64,
    /// Regions skipped in salvage mode.
    pub skipped: Vec<tracefile::Skipped>,
    pub clean_footer: bool,
    /// Streams declared or carrying records.
    pub streams: usize,
}

/// Streams a trace file chunk by chunk into an [`IndexBuilder`], never
/// materializing a [`Trace`]. `mode` is the reader's strict or salvage mode.
pub fn read_index(
    path: &std::path::Path,
    mode: tracefile::ReadMode,
) -> Result<(IndexBuilder, LoadReport), DiagnoseError> {
    let file = std::fs::File::open(path).map_err(|source| tracefile::TraceError::Io {
        path: path.to_path_buf(),
        offset: 0,
        source,
    })?;
    let src = std::io::BufReader::with_capacity(1 << 20, file);
    let mut rd = tracefile::TraceReader::new(src, path, mode)?;
    let mut b = IndexBuilder::new();
    // The reader (framing, CRC, decoding) runs on its own thread and the
    // builder on this one; chunks pass in file order through a bounded
    // channel, so the result is the same as a plain loop. Records are
    // decoded column-wise ([`tracefile::RecordColumns`]: no allocation per
    // record) and the columns go back to the reader thread to be refilled,
    // so after the first few chunks loading allocates nothing but the
    // builder's own growing arrays.
    type Item = (tracefile::Chunk, tracefile::RecordColumns);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Item>(32);
    let (back_tx, back_rx) = std::sync::mpsc::channel::<tracefile::RecordColumns>();
    let joined = std::thread::scope(|s| {
        let reader = s.spawn(move || {
            loop {
                let mut cols = back_rx.try_recv().unwrap_or_default();
                let Some(chunk) = rd.next_chunk_into(&mut cols)? else {
                    break;
                };
                if tx.send((chunk, cols)).is_err() {
                    break;
                }
            }
            Ok::<_, tracefile::TraceError>(rd)
        });
        for (chunk, cols) in rx {
            b.chunk_ref(&chunk);
            if let tracefile::ChunkBody::Records(rc) = &chunk.body {
                b.columns(rc.stream, &cols);
            }
            // The reader may be gone (done or failed): then drop here.
            let _ = back_tx.send(cols);
        }
        reader.join()
    });
    let rd = match joined {
        Ok(r) => r?,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    let report = LoadReport {
        bytes: rd.offset(),
        chunks: rd.chunks(),
        skipped: rd.skipped().to_vec(),
        clean_footer: b.footer_last(),
        streams: b.n_streams(),
    };
    Ok((b, report))
}

/// [`reconstruct()`] from records streamed into an [`IndexBuilder`] (see
/// [`read_index`]).
pub fn reconstruct_built(b: IndexBuilder, cfg: &Config) -> Result<Reconstruction, DiagnoseError> {
    validate(cfg)?;
    let p = prepare(b, cfg)?;
    Ok(finish(p, cfg))
}

struct Prepared {
    dag: Dag,
    clocks: Vec<HostClock>,
    ix: Index,
    tuples: reconstruct::TupleObs,
    loss_ns: Vec<Vec<(i64, i64)>>,
}

/// The DAG the engine uses for a trace (skeleton + index): from the
/// topology in its metadata unless absent or `cfg.infer_dag`, else inferred
/// from IPIDs. Sets `ix.stream_node`.
fn build_dag(trace: &Trace, ix: &mut Index, cfg: &Config) -> Result<Dag, DiagnoseError> {
    let (mut nodes, node_of) = dag::nodes_of(trace);
    ix.stream_node = node_of;
    let from_topology = !cfg.infer_dag
        && trace
            .meta
            .topology
            .as_ref()
            .is_some_and(|t| !t.edges.is_empty());
    let mut edges = if from_topology {
        dag::edges_from_topology(trace, &mut nodes)
    } else {
        Vec::new()
    };
    let origin = if from_topology {
        DagOrigin::Topology
    } else {
        edges = dag::infer_edges(&nodes, ix, cfg.match_window_ns);
        DagOrigin::Inferred {
            window_ns: cfg.match_window_ns,
            sampled_rx_per_node: dag::INFER_SAMPLES,
        }
    };
    let topo_order = dag::topo_order(nodes.len(), &mut edges, !from_topology)?;
    Ok(Dag {
        nodes,
        edges,
        origin,
        topo_order,
    })
}

/// The DAG `diagnose` would use for `trace` with `cfg` (the metadata's
/// topology, or the one inferred from IPIDs with each edge's confidence),
/// without reconstructing journeys — for `microscope inspect`. Render it
/// with [`Dag::describe`].
pub fn dag_of(trace: &Trace, cfg: &Config) -> Result<Dag, DiagnoseError> {
    validate(cfg)?;
    let mut b = IndexBuilder::new();
    b.trace(trace);
    let (built, _) = b.finish(cfg.nominal_tsc_hz)?;
    let index::Built {
        skeleton, mut ix, ..
    } = built;
    build_dag(&skeleton, &mut ix, cfg)
}

fn prepare(b: IndexBuilder, cfg: &Config) -> Result<Prepared, DiagnoseError> {
    let t0 = std::time::Instant::now();
    let (built, clocks) = b.finish(cfg.nominal_tsc_hz)?;
    progress::lap(t0, "index laid out");
    let index::Built {
        skeleton: trace,
        mut ix,
        stream_tuples,
    } = built;
    let trace = &trace;
    let dag = build_dag(trace, &mut ix, cfg)?;
    progress::lap(t0, "  DAG built");
    let tuples = reconstruct::collect_tuples(stream_tuples, &dag);
    progress::lap(t0, "index + DAG + tuples built");
    let loss_ns = trace
        .streams
        .iter()
        .map(|s| {
            let cal = s
                .info
                .as_ref()
                .and_then(|i| clocks.iter().find(|c| c.host == i.host))
                .map(|c| c.calibration);
            let conv = |t: u64| cal.map_or(t as i64, |c| c.to_ns(t).round() as i64);
            s.loss_windows
                .iter()
                .map(|w| {
                    (
                        w.after_tsc.map_or(i64::MIN, conv),
                        w.before_tsc.map_or(i64::MAX, conv),
                    )
                })
                .collect()
        })
        .collect();
    Ok(Prepared {
        dag,
        clocks,
        ix,
        tuples,
        loss_ns,
    })
}

fn finish(p: Prepared, cfg: &Config) -> Reconstruction {
    let t0 = std::time::Instant::now();
    let j = reconstruct::reconstruct(p.tuples, &p.ix, &p.dag, cfg.match_window_ns, cfg.slack_ns);
    progress::lap(t0, "matching + journeys");
    Reconstruction {
        dag: p.dag,
        clocks: p.clocks,
        ix: p.ix,
        j,
        loss_ns: p.loss_ns,
    }
}

fn validate(cfg: &Config) -> Result<(), DiagnoseError> {
    let bad = |m: &str| Err(DiagnoseError::Config(m.to_string()));
    if cfg.victims.is_empty() {
        return bad("no victim rule");
    }
    if cfg.match_window_ns <= 0 {
        return bad("match_window_ns must be positive");
    }
    if cfg.slack_ns < 0 {
        return bad("slack_ns must not be negative");
    }
    if cfg.history_ns <= 0 || cfg.history_bucket_ns <= 0 {
        return bad("history_ns and history_bucket_ns must be positive");
    }
    if cfg.abnormal_sigma.is_nan() || cfg.abnormal_sigma < 0.0 {
        return bad("abnormal_sigma must be >= 0");
    }
    if cfg.nominal_tsc_hz.is_nan() || cfg.nominal_tsc_hz <= 0.0 {
        return bad("nominal_tsc_hz must be positive");
    }
    if cfg.threads == Some(0) {
        return bad("threads must be at least 1");
    }
    for (k, r) in &cfg.peak_rates {
        if !(r.is_finite() && *r > 0.0) {
            return Err(DiagnoseError::Config(format!(
                "peak rate for {k} must be positive"
            )));
        }
    }
    Ok(())
}

/// Runs the whole engine.
pub fn run(trace: &Trace, cfg: &Config) -> Result<Diagnosis, DiagnoseError> {
    run_with_progress(trace, cfg, &|_, _, _| {})
}

/// [`run`] with a progress callback `(stage, done, total)`.
pub fn run_with_progress(
    trace: &Trace,
    cfg: &Config,
    progress: &(dyn Fn(Stage, u64, u64) + Sync),
) -> Result<Diagnosis, DiagnoseError> {
    validate(cfg)?;
    match cfg.threads {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| DiagnoseError::Threads(e.to_string()))?
            .install(|| run_inner(trace, cfg, progress)),
        None => run_inner(trace, cfg, progress),
    }
}

/// [`run_with_progress`] taking the trace by value (dropped once indexed,
/// lowering peak memory).
pub fn run_owned_with_progress(
    trace: Trace,
    cfg: &Config,
    progress: &(dyn Fn(Stage, u64, u64) + Sync),
) -> Result<Diagnosis, DiagnoseError> {
    validate(cfg)?;
    let go = move || {
        progress(Stage::Reconstruct, 0, 1);
        let rec = reconstruct_owned(trace, cfg)?;
        progress(Stage::Reconstruct, 1, 1);
        diagnose_reconstructed(&rec, cfg, progress)
    };
    match cfg.threads {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| DiagnoseError::Threads(e.to_string()))?
            .install(go),
        None => go(),
    }
}

/// Runs the whole engine on a trace file, streaming it chunk by chunk into
/// the dense index (the in-memory [`Trace`] is never built). Returns the
/// diagnosis and what the reader saw (skipped regions in salvage mode).
pub fn run_path(
    path: &std::path::Path,
    mode: tracefile::ReadMode,
    cfg: &Config,
) -> Result<(Diagnosis, LoadReport), DiagnoseError> {
    run_path_with_progress(path, mode, cfg, &|_, _, _| {})
}

/// [`run_path`] with a progress callback `(stage, done, total)`; loading
/// and reconstruction report as [`Stage::Reconstruct`].
pub fn run_path_with_progress(
    path: &std::path::Path,
    mode: tracefile::ReadMode,
    cfg: &Config,
    progress: &(dyn Fn(Stage, u64, u64) + Sync),
) -> Result<(Diagnosis, LoadReport), DiagnoseError> {
    validate(cfg)?;
    let go = || {
        progress(Stage::Reconstruct, 0, 2);
        let (b, report) = read_index(path, mode)?;
        progress(Stage::Reconstruct, 1, 2);
        let rec = reconstruct_built(b, cfg)?;
        progress(Stage::Reconstruct, 2, 2);
        Ok((diagnose_reconstructed(&rec, cfg, progress)?, report))
    };
    match cfg.threads {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| DiagnoseError::Threads(e.to_string()))?
            .install(go),
        None => go(),
    }
}

fn run_inner(
    trace: &Trace,
    cfg: &Config,
    progress: &(dyn Fn(Stage, u64, u64) + Sync),
) -> Result<Diagnosis, DiagnoseError> {
    progress(Stage::Reconstruct, 0, 1);
    let rec = reconstruct(trace, cfg)?;
    progress(Stage::Reconstruct, 1, 1);
    diagnose_reconstructed(&rec, cfg, progress)
}

/// Diagnoses an already reconstructed trace.
pub fn diagnose_reconstructed(
    rec: &Reconstruction,
    cfg: &Config,
    progress: &(dyn Fn(Stage, u64, u64) + Sync),
) -> Result<Diagnosis, DiagnoseError> {
    let (ix, j, dag) = (&rec.ix, &rec.j, &rec.dag);
    let t0 = std::time::Instant::now();
    let lap = |what: &str| progress::lap(t0, &format!("  diagnose: {what}"));
    let peak = queue::peak_rates(dag, ix, &cfg.peak_rates);
    lap("peak rates");
    for (n, p) in dag.nodes.iter().zip(&peak) {
        if n.role == Role::Nf && !n.rx_streams.is_empty() && !(p.pps.is_finite() && p.pps > 0.0) {
            return Err(DiagnoseError::NoPeakRate {
                nf: n.name.clone(),
                pps: p.pps,
            });
        }
    }
    let rates: Vec<f64> = peak.iter().map(|p| p.pps).collect();
    let empties = queue::emptying_batches(ix);
    lap("emptying batches");
    progress(Stage::Victims, 0, 1);
    let (targets, victim_stats) = victims::select(ix, j, dag, cfg, &empties, &rates, &rec.loss_ns);
    progress(Stage::Victims, 1, 1);
    lap("victims selected");
    let engine = Engine {
        ix,
        j,
        dag,
        rates: &rates,
        empties: &empties,
        cfg,
    };
    let total = targets.len() as u64;
    let done = std::sync::atomic::AtomicU64::new(0);
    let n_paths = j.paths.len();
    // Victims in one queuing period share a growing PreSet: group them by
    // (queue, period start) in dequeue order and extend one accumulator.
    let periods: Vec<queue::Period> = targets
        .par_iter()
        .map(|vt| engine.period(vt.node, vt.target))
        .collect();
    let mut keyed: Vec<(u32, u32, u32, u8, usize)> = targets
        .iter()
        .zip(&periods)
        .enumerate()
        .map(|(i, (vt, p))| {
            let lost = matches!(vt.target, queue::Target::Lost { .. }) as u8;
            (p.stream, p.start, p.end, lost, i)
        })
        .collect();
    lap("periods");
    keyed.sort_unstable();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (k, e) in keyed.iter().enumerate() {
        let same = k > 0 && {
            let pr = &keyed[k - 1];
            (pr.0, pr.1) == (e.0, e.1)
        };
        if same {
            groups.last_mut().expect("previous group").push(e.4);
        } else {
            groups.push(vec![e.4]);
        }
    }
    lap("grouped");
    let mut results: Vec<Option<(VictimDiagnosis, bool)>> = vec![None; targets.len()];
    // Groups run largest first (estimated by their PreSet sizes), pulled by
    // one worker per thread from a shared cursor, each worker with its own
    // scratch: a long group started last would leave the other threads
    // idle. Results go back to victim order, so they do not depend on who
    // ran a group.
    let cost = |g: &Vec<usize>| -> u64 {
        g.iter()
            .map(|&i| u64::from(periods[i].end.saturating_sub(periods[i].start)) + 1)
            .sum()
    };
    let mut sched: Vec<usize> = (0..groups.len()).collect();
    sched.sort_by_cached_key(|&k| (std::cmp::Reverse(cost(&groups[k])), k));
    let cursor = std::sync::atomic::AtomicUsize::new(0);
    let workers = rayon::current_num_threads().clamp(1, groups.len().max(1));
    type Done = Vec<(usize, VictimDiagnosis, bool)>;
    let mut per_worker: Vec<Done> = (0..workers).map(|_| Vec::new()).collect();
    rayon::scope(|s| {
        for out in per_worker.iter_mut() {
            let (groups, sched, cursor, engine, periods, targets, done) =
                (&groups, &sched, &cursor, &engine, &periods, &targets, &done);
            s.spawn(move |_| {
                let mut sc = Scratch::new(n_paths);
                loop {
                    let n = cursor.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&k) = sched.get(n) else {
                        break;
                    };
                    let g = &groups[k];
                    let mut st = blame::PreSetAcc::new(n_paths, periods[g[0]].start);
                    for &i in g {
                        let vt = &targets[i];
                        let ex =
                            engine.explain_with(vt.node, periods[i].clone(), &mut st, 0, &mut sc);
                        let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                        if d.is_multiple_of(1024) || d == total {
                            progress(Stage::Diagnose, d, total);
                        }
                        let clamped = ex.period.clamped;
                        out.push((i, to_victim(rec, vt, ex, cfg.max_flows), clamped));
                    }
                }
            });
        }
    });
    lap("explained");
    for w in per_worker {
        for (i, v, c) in w {
            results[i] = Some((v, c));
        }
    }
    let victims: Vec<(VictimDiagnosis, bool)> = results.into_iter().flatten().collect();
    let mut stats = EngineStats {
        max_depth: cfg.max_depth,
        ..Default::default()
    };
    let mut out = Vec::with_capacity(victims.len());
    for (v, clamped) in victims {
        stats.clamped_periods += clamped as u64;
        stats.truncated_victims += v.truncated as u64;
        stats.deepest_culprit = stats
            .deepest_culprit
            .max(v.ranked.iter().map(|c| c.depth).max().unwrap_or(0));
        out.push(v);
    }
    lap("merged");
    let relations = relations_of(dag, &out);
    lap("relations");
    Ok(Diagnosis {
        dag: dag.clone(),
        clocks: rec.clocks.clone(),
        reconstruction: j.stats.clone(),
        peak_rates: peak,
        victim_stats,
        engine: stats,
        victims: out,
        relations,
    })
}

/// Diagnoses the given rx slots at their NF, whatever their latency (for
/// tests, evaluation and drill-down). Slots that are not rx observations at
/// an NF are skipped.
pub fn diagnose_slots(
    rec: &Reconstruction,
    cfg: &Config,
    slots: &[PacketSlot],
) -> Result<Vec<VictimDiagnosis>, DiagnoseError> {
    validate(cfg)?;
    let (ix, j, dag) = (&rec.ix, &rec.j, &rec.dag);
    let peak = queue::peak_rates(dag, ix, &cfg.peak_rates);
    let rates: Vec<f64> = peak.iter().map(|p| p.pps).collect();
    let empties = queue::emptying_batches(ix);
    let engine = Engine {
        ix,
        j,
        dag,
        rates: &rates,
        empties: &empties,
        cfg,
    };
    let mut sc = Scratch::new(j.paths.len());
    let mut out = Vec::new();
    for slot in slots {
        let Some(o) = ix.obs_of_slot(slot) else {
            continue;
        };
        let n = ix.node_of_obs(o);
        if n == NONE
            || dag.nodes[n as usize].role != Role::Nf
            || ix.stream_dir[ix.stream_of(o) as usize] != collector::Direction::Rx
            || rates[n as usize].is_nan()
            || rates[n as usize] <= 0.0
        {
            continue;
        }
        let pkt = j.obs_pkt[o as usize];
        let p = j.prev[o as usize];
        let vt = victims::VictimTarget {
            node: n,
            target: queue::Target::Received(o),
            slot_obs: o,
            pkt,
            latency_ns: f64::NAN,
            local_delay_ns: if p != NONE {
                (ix.time(o) - ix.time(p)) as f64
            } else {
                0.0
            },
            lost: false,
        };
        let ex = engine.explain(n, vt.target, 0, &mut sc);
        out.push(to_victim(rec, &vt, ex, cfg.max_flows));
    }
    Ok(out)
}

/// True when `f` is what [`blame::fold_flows`] returns for it: no unknown
/// tuple, at most `max` entries, in strictly descending score order, ties
/// by strictly ascending tuple id (which also makes the tuples distinct, so
/// folding sums nothing).
fn blame_flows_canonical(f: &[(u32, f64)], max: usize) -> bool {
    f.len() <= max
        && f.iter().all(|x| x.0 != NONE)
        && f.windows(2)
            .all(|w| w[1].1.total_cmp(&w[0].1).then(w[0].0.cmp(&w[1].0)).is_lt())
}

fn to_victim(
    rec: &Reconstruction,
    vt: &victims::VictimTarget,
    ex: blame::Explanation,
    max_flows: usize,
) -> VictimDiagnosis {
    let (ix, j, dag) = (&rec.ix, &rec.j, &rec.dag);
    let p = &ex.period;
    // Merge contributions per location.
    let mut merged: Vec<(u32, bool, Vec<Contrib>)> = Vec::new();
    for c in ex.contribs {
        match merged.iter_mut().find(|m| m.0 == c.node && m.1 == c.source) {
            Some(m) => m.2.push(c),
            None => merged.push((c.node, c.source, vec![c])),
        }
    }
    let mut ranked: Vec<Culprit> = merged
        .into_iter()
        .map(|(node, source, mut cs)| {
            let name = dag.nodes[node as usize].name.clone();
            let score: f64 = cs.iter().map(|c| c.score).sum();
            let gap = if score > 0.0 {
                cs.iter()
                    .map(|c| c.score * (p.t - c.t_culprit) as f64)
                    .sum::<f64>()
                    / score
            } else {
                0.0
            };
            // A location with one contribution usually has its flows
            // folded already (distinct tuples, at most `max_flows`, in the
            // canonical order); folding them again would give them back
            // unchanged, so only check the order.
            let flows = if cs.len() == 1 && blame_flows_canonical(&cs[0].flows, max_flows) {
                std::mem::take(&mut cs[0].flows)
            } else {
                blame::fold_flows(
                    cs.iter().flat_map(|c| c.flows.iter().copied()).collect(),
                    max_flows,
                )
            };
            Culprit {
                location: if source {
                    Location::Source(name)
                } else {
                    Location::Nf(name)
                },
                score,
                flows: flows
                    .into_iter()
                    .map(|(t, s)| (j.tuples[t as usize], s))
                    .collect(),
                gap_ns: gap,
                packets: cs.iter().map(|c| c.packets).sum(),
                first_ns: cs.iter().map(|c| c.first_ns).min().unwrap_or(0),
                last_ns: cs.iter().map(|c| c.last_ns).max().unwrap_or(0),
                depth: cs.iter().map(|c| c.depth).min().unwrap_or(0),
            }
        })
        .collect();
    ranked.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.location.cmp(&b.location))
    });
    let tup = j.pkt_tuple[vt.pkt as usize];
    VictimDiagnosis {
        slot: ix.slot(vt.slot_obs),
        nf: dag.nodes[vt.node as usize].name.clone(),
        flow: (tup != NONE).then(|| j.tuples[tup as usize]),
        latency_ns: if vt.latency_ns.is_nan() {
            0.0
        } else {
            vt.latency_ns
        },
        local_delay_ns: vt.local_delay_ns,
        lost: vt.lost,
        arrival_ns: p.t,
        period_ns: p.t - p.tau,
        n_i: p.n_i,
        n_p: p.n_p,
        s_i: p.s_i,
        s_p: p.s_p,
        ranked,
        unattributed: ex.unattributed,
        truncated: ex.truncated,
    }
}

/// The flat relation list, victim by victim in order. Built in parallel
/// straight into the final vector: relation `r` belongs to the victim whose
/// range of the prefix sums of culprit counts holds it.
fn relations_of(dag: &Dag, victims: &[VictimDiagnosis]) -> Vec<CausalRelation> {
    let nf_type = |name: &str| {
        dag.node_index(name)
            .map(|i| dag.nodes[i].nf_type.clone())
            .unwrap_or_default()
    };
    let mut first = Vec::with_capacity(victims.len() + 1);
    let mut n = 0usize;
    for v in victims {
        first.push(n);
        n += v.ranked.len();
    }
    first.push(n);
    let mut out = Vec::with_capacity(n);
    (0..n)
        .into_par_iter()
        .map(|r| {
            let vi = first.partition_point(|&f| f <= r) - 1;
            let v = &victims[vi];
            let c = &v.ranked[r - first[vi]];
            CausalRelation {
                culprit: c.location.clone(),
                culprit_packets: c.packets,
                culprit_first_ns: c.first_ns,
                culprit_last_ns: c.last_ns,
                culprit_flows: c.flows.clone(),
                culprit_nf_type: match &c.location {
                    Location::Source(_) => "source".into(),
                    Location::Nf(n) => nf_type(n),
                },
                victim: v.slot,
                victim_nf: v.nf.clone(),
                victim_nf_type: nf_type(&v.nf),
                victim_flow: v.flow,
                score: c.score,
                gap_ns: c.gap_ns,
            }
        })
        .collect_into_vec(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use collector::{BatchRecord, ClockAnchor, Direction, FiveTuple, LossCounters, Record};
    use tracefile::{Chunk, ChunkBody, ReadMode, RecordChunk, TraceAssembler};

    fn sim_dir(tag: &str, duration: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("diagnose-stream-test-{tag}-{}", std::process::id()));
        let mut sc = testbeds::scenario::Scenario::by_name_or_path("paper-moderate").unwrap();
        sc.set("duration", duration).unwrap();
        testbeds::sim::simulate_to_dir(&sc, &dir).unwrap();
        dir
    }

    /// The streaming path and the in-memory path give the same diagnosis,
    /// with 1 and 2 threads.
    #[test]
    fn run_path_equals_run_on_the_read_trace() {
        let dir = sim_dir("eq", "0.06s");
        let path = dir.join("trace.bin");
        let trace = tracefile::read_trace(&path, ReadMode::Strict).unwrap();
        let cfg1 = Config {
            threads: Some(1),
            ..Config::default()
        };
        let cfg2 = Config {
            threads: Some(2),
            ..Config::default()
        };
        let mem = run(&trace, &cfg1).unwrap();
        let (s1, rep) = run_path(&path, ReadMode::Strict, &cfg1).unwrap();
        let (s2, _) = run_path(&path, ReadMode::Strict, &cfg2).unwrap();
        assert!(!mem.victims.is_empty());
        assert!(mem.reconstruction.observations > 10_000);
        assert_eq!(rep.streams, trace.streams.len());
        assert!(rep.skipped.is_empty());
        assert_eq!(mem, s1);
        assert_eq!(s1, s2);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Salvage mode: a damaged region is skipped by the streaming reader the
    /// same way as by the whole-trace reader; strict mode refuses the file.
    #[test]
    fn run_path_salvages_a_damaged_file() {
        let dir = sim_dir("salvage", "0.03s");
        let path = dir.join("trace.bin");
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        for b in &mut bytes[mid..mid + 64] {
            *b ^= 0x5a;
        }
        let bad = dir.join("damaged.bin");
        std::fs::write(&bad, &bytes).unwrap();
        let cfg = Config::default();
        assert!(matches!(
            run_path(&bad, ReadMode::Strict, &cfg),
            Err(DiagnoseError::Trace(_))
        ));
        let (d, rep) = run_path(&bad, ReadMode::Salvage, &cfg).unwrap();
        assert!(!rep.skipped.is_empty());
        let trace = tracefile::read_trace(&bad, ReadMode::Salvage).unwrap();
        assert_eq!(rep.skipped, trace.report.skipped);
        assert_eq!(d, run(&trace, &cfg).unwrap());
        std::fs::remove_dir_all(&dir).ok();
    }

    fn batch(seq: u64, tsc: u64, ipids: &[u16], tuples: bool) -> Record {
        Record::Batch(BatchRecord {
            seq,
            tsc,
            requested: 4,
            ipids: ipids.to_vec(),
            non_ipv4: vec![],
            tuples: tuples.then(|| {
                ipids
                    .iter()
                    .map(|&i| FiveTuple {
                        src_ip: i as u32,
                        dst_ip: 7,
                        src_port: 1,
                        dst_port: 2,
                        proto: 17,
                    })
                    .collect()
            }),
        })
    }

    fn rchunk(stream: u32, records: Vec<Record>, lost: u64) -> Chunk {
        Chunk {
            offset: 0,
            len: 0,
            body: ChunkBody::Records(RecordChunk {
                stream,
                first_seq: records.first().map_or(0, |r| r.seq()),
                last_seq: records.last().map_or(0, |r| r.seq()),
                loss: LossCounters {
                    lost_full: lost,
                    ..Default::default()
                },
                records,
            }),
        }
    }

    /// Chunks out of order, repeated and with gaps give the same index,
    /// tuples and loss windows as the trace assembler's sorted, deduplicated
    /// trace fed in order.
    #[test]
    fn builder_sorts_dedups_and_matches_the_assembler() {
        let info = |id: u32, dir: Direction| collector::StreamInfo {
            id,
            nf: format!("nf{id}"),
            nf_type: "t".into(),
            role: collector::Role::Nf,
            port: 0,
            queue: 0,
            direction: dir,
            host: "h".into(),
            carries_tuples: id == 0,
        };
        let anchor = |seq: u64, tsc: u64| {
            Record::Anchor(ClockAnchor {
                seq,
                tsc,
                mono_ns: tsc / 2,
            })
        };
        let chunks = vec![
            Chunk {
                offset: 0,
                len: 0,
                body: ChunkBody::Stream(info(0, Direction::Tx)),
            },
            Chunk {
                offset: 0,
                len: 0,
                body: ChunkBody::Stream(info(1, Direction::Rx)),
            },
            rchunk(0, vec![batch(5, 500, &[9, 10], true), anchor(6, 600)], 2),
            rchunk(
                1,
                vec![batch(0, 90, &[1], false), batch(1, 120, &[2, 3], false)],
                0,
            ),
            rchunk(
                0,
                vec![
                    anchor(0, 0),
                    batch(1, 100, &[1, 2, 3], true),
                    batch(2, 200, &[4], true),
                ],
                0,
            ),
            // A repeat (as after a dumper restart) and a late gap filler.
            rchunk(0, vec![batch(2, 200, &[4], true)], 2),
            rchunk(0, vec![batch(4, 400, &[7, 8], true)], 2),
            rchunk(1, vec![batch(3, 300, &[5], false)], 1),
        ];
        let mut asm = TraceAssembler::new();
        let mut streamed = IndexBuilder::new();
        for c in chunks {
            asm.chunk(c.clone());
            streamed.chunk(c);
        }
        let trace = asm.finish(tracefile::ReadReport::default());
        let mut in_mem = IndexBuilder::new();
        in_mem.trace(&trace);
        let (a, ca) = streamed.finish(1e9).unwrap();
        let (b, cb) = in_mem.finish(1e9).unwrap();
        assert_eq!(ca, cb);
        assert_eq!(a.ix.duplicates_dropped, 1);
        assert_eq!(b.ix.duplicates_dropped, 0);
        for (x, y) in [(&a, &trace), (&b, &trace)] {
            assert_eq!(x.ix.batch_seq, vec![1, 2, 4, 5, 0, 1, 3]);
            assert_eq!(x.ix.obs_ipid, vec![1, 2, 3, 4, 7, 8, 9, 10, 1, 2, 3, 5]);
            assert_eq!(x.ix.batch_obs, vec![0, 3, 4, 6, 8, 9, 11, 12]);
            assert_eq!(x.ix.stream_batches, vec![0, 4, 7]);
            for (s, d) in y.streams.iter().enumerate() {
                assert_eq!(x.skeleton.streams[s].loss_windows, d.loss_windows);
                assert_eq!(x.skeleton.streams[s].anchors, d.anchors);
            }
            let tup: Vec<(u32, u32)> = x.stream_tuples[0]
                .iter()
                .map(|(o, _, t)| (*o, t.src_ip))
                .collect();
            assert_eq!(
                tup,
                vec![
                    (0, 1),
                    (1, 2),
                    (2, 3),
                    (3, 4),
                    (4, 7),
                    (5, 8),
                    (6, 9),
                    (7, 10)
                ]
            );
            assert!(x.stream_tuples[1].is_empty());
        }
        // Stream 0: seq 3 missing plus one trailing loss; stream 1: seq 2.
        assert_eq!(trace.streams[0].loss_windows.len(), 2);
        assert_eq!(trace.streams[1].loss_windows.len(), 1);
    }
}
