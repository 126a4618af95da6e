//! The discrete-event engine.
//!
//! Model (per NF instance): packets arrive in an input queue (drop-tail,
//! `queue_capacity`); a poll loop dequeues up to `burst` packets at a time,
//! processes them one after the other (service time around `1/peak_rate`
//! with jitter, stretched by stalls), and transmits the whole batch at the
//! end; each packet reaches the next hop's queue `link_delay_ns` later.
//! A batch smaller than `burst` therefore means the queue was emptied, as on
//! a real DPDK NF. The source transmits the packets generated in each
//! `source_batch_ns` window as one tx batch; the sink records every arriving
//! batch.
//!
//! Events: one wake-up per instance at a time in a binary heap keyed by
//! `(time, entity)` — a batch completion (transmit, then poll again) or an
//! idle instance's next arrival — plus the source's next batch. Arrivals are
//! admitted lazily at the next poll: between two polls nothing leaves the
//! queue, so the occupancy an arriving packet sees is exactly the occupancy
//! after the last dequeue plus the packets admitted since, and drop-tail is
//! exact without per-packet events. Every event pushes packets with arrival
//! time `now + link_delay`, so each queue receives them in arrival order.
//!
//! Determinism: no wall clock, no hash-map iteration, ties broken by entity
//! index; all randomness is keyed (see [`crate::rng`]). Counterfactual runs:
//! the baseline (no injections) runs the same background — service time
//! draws are keyed by the packet's background index, stalls and rate drift
//! by instance and time slot — so a packet's fate differs between the runs
//! only because of the injection.

use crate::faults::{self, Plan, INJECTED_FLOW};
use crate::pcap::PcapError;
use crate::rng::{mix, purpose, unit};
use crate::scenario::{Scenario, ScenarioError, Threshold};
use crate::topology::{Graph, Next};
use crate::traffic::{GenPacket, Source};
use crate::truth::{
    BackgroundEvent, Fault, Journeys, LabelledVictim, NfStats, PacketSlot, PacketTruth,
    StreamSlots, Truth, TruthError, TruthStats,
};
use collector::{
    BatchRecord, ClockAnchor, Direction, FiveTuple, LossCounters, Record, Role, StreamInfo,
    TraceMeta,
};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::path::{Path, PathBuf};
use tracefile::{StreamData, Trace, TraceError, TraceWriter};

/// A simulation's results in memory.
#[derive(Clone, Debug)]
pub struct SimOutput {
    /// The trace exactly as [`tracefile::read_trace`] returns it after
    /// [`write_output`] (except `report`, which describes the file).
    pub trace: Trace,
    pub truth: Truth,
}

/// Figures of a simulation written straight to a directory.
#[derive(Clone, Debug)]
pub struct DirSummary {
    pub truth: Truth,
    pub trace_path: PathBuf,
    pub trace_bytes: u64,
    pub streams: usize,
    pub batches: u64,
    pub anchors: u64,
    /// Packet observations over all streams (Σ batch sizes).
    pub observations: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error(transparent)]
    Pcap(#[from] PcapError),
    #[error("fault injection plan: {0}")]
    Plan(String),
    #[error(transparent)]
    Trace(#[from] TraceError),
    #[error(transparent)]
    Truth(#[from] TruthError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("scenario too large: {0}")]
    TooLarge(String),
}

/// Runs the scenario (and its no-injection baseline) and returns the trace
/// and the ground truth in memory.
///
/// Errors: invalid scenario, unreadable pcap, impossible fault plan,
/// more than 2³¹ packets or 65 535 streams.
pub fn simulate(sc: &Scenario) -> Result<SimOutput, SimError> {
    let ex = execute(sc)?;
    let trace = ex.to_trace();
    let truth = ex.into_truth();
    Ok(SimOutput { trace, truth })
}

/// Writes `dir/trace.bin`, `dir/truth.json` and `dir/journeys.bin`
/// (creating `dir`).
pub fn write_output(out: &SimOutput, dir: &Path) -> Result<(), SimError> {
    std::fs::create_dir_all(dir).map_err(|source| SimError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let cursors: Vec<Box<dyn RecordCursor + '_>> = out
        .trace
        .streams
        .iter()
        .map(|s| Box::new(DataCursor { s, bi: 0, ai: 0 }) as Box<dyn RecordCursor>)
        .collect();
    let infos: Vec<StreamInfo> = out
        .trace
        .streams
        .iter()
        .map(|s| s.info.clone().expect("simulated streams are declared"))
        .collect();
    write_trace_file(&dir.join("trace.bin"), &out.trace.meta, &infos, cursors)?;
    out.truth.write(dir)?;
    Ok(())
}

/// Simulates and writes `dir/trace.bin`, `dir/truth.json`, `dir/journeys.bin`
/// without building the in-memory trace (the paper-scale path: the same
/// bytes as [`simulate`] + [`write_output`], a fraction of the memory).
pub fn simulate_to_dir(sc: &Scenario, dir: &Path) -> Result<DirSummary, SimError> {
    let ex = execute(sc)?;
    std::fs::create_dir_all(dir).map_err(|source| SimError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let trace_path = dir.join("trace.bin");
    let ctx = ex.out_ctx();
    let cursors: Vec<Box<dyn RecordCursor + '_>> = ex
        .run
        .streams
        .iter()
        .map(|s| {
            Box::new(CCursor {
                s,
                ctx: &ctx,
                bi: 0,
                ai: 0,
            }) as Box<dyn RecordCursor>
        })
        .collect();
    let infos: Vec<StreamInfo> = ex.run.streams.iter().map(|s| s.info.clone()).collect();
    write_trace_file(&trace_path, &ex.meta, &infos, cursors)?;
    let trace_bytes = std::fs::metadata(&trace_path)
        .map_err(|source| SimError::Io {
            path: trace_path.clone(),
            source,
        })?
        .len();
    let streams = ex.run.streams.len();
    let batches = ex.run.streams.iter().map(|s| s.batches.len() as u64).sum();
    let anchors = ex.run.streams.iter().map(|s| s.anchors.len() as u64).sum();
    let observations = ex.run.streams.iter().map(|s| s.pids.len() as u64).sum();
    let truth = ex.into_truth();
    truth.write(dir)?;
    Ok(DirSummary {
        truth,
        trace_path,
        trace_bytes,
        streams,
        batches,
        anchors,
        observations,
    })
}

// ---------------------------------------------------------------- engine

const NONE16: u16 = u16::MAX;
const NO_SLOT: u64 = u64::MAX;
const NO_BG: u32 = u32::MAX;

#[inline]
fn tsc(ns: u64, ghz: f64) -> u64 {
    (ns as f64 * ghz).round() as u64
}

#[inline]
fn pack_slot(stream: usize, batch: u32, idx: usize) -> u64 {
    ((stream as u64) << 48) | ((idx as u64) << 32) | batch as u64
}

#[inline]
fn unpack_slot(s: u64) -> (usize, u32, u16) {
    ((s >> 48) as usize, s as u32, (s >> 32) as u16)
}

/// A packet of the run (index = packet id, in send order).
#[derive(Clone, Copy, Debug)]
struct Pkt {
    flow: u32,
    /// Index among background packets (same in every run of a seed), or
    /// `NO_BG` for injected packets.
    bg: u32,
    sent_ns: u64,
    ipid: u16,
    origin: u16,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    pid: u32,
    arr: u64,
    tuple: FiveTuple,
    /// The packed slot of the tx that sent it (for lost-packet truth).
    from: u64,
}

/// A batch record in 16 bytes: time and size packed, sequence, first slot.
#[derive(Clone, Copy, Debug)]
struct CBatch {
    /// `ns << 16 | len`.
    ns_len: u64,
    seq: u32,
    start: u32,
}

impl CBatch {
    #[inline]
    fn ns(&self) -> u64 {
        self.ns_len >> 16
    }
    #[inline]
    fn len(&self) -> usize {
        (self.ns_len & 0xffff) as usize
    }
}

/// How a stream's `requested` burst size follows from the batch size.
#[derive(Clone, Copy, Debug)]
enum Req {
    /// rx bursts: the poll loop always asks for `burst`.
    Fixed(u16),
    /// tx bursts: the NF asks to send exactly the batch.
    Len,
    /// The sink polls with `burst` (or more for a larger arriving batch).
    AtLeast(u16),
}

impl Req {
    #[inline]
    fn requested(self, len: usize) -> u16 {
        match self {
            Req::Fixed(b) => b,
            Req::Len => len as u16,
            Req::AtLeast(b) => b.max(len as u16),
        }
    }
}

/// A stream's records in compact form: packet ids instead of IPIDs.
struct CStream {
    info: StreamInfo,
    req: Req,
    batches: Vec<CBatch>,
    pids: Vec<u32>,
    anchors: Vec<ClockAnchor>,
    next_seq: u64,
    next_anchor: u64,
}

impl CStream {
    fn anchors_until(&mut self, t: u64, interval: u64, ghz: f64) {
        while self.next_anchor <= t {
            self.anchors.push(ClockAnchor {
                seq: self.next_seq,
                tsc: tsc(self.next_anchor, ghz),
                mono_ns: self.next_anchor,
            });
            self.next_seq += 1;
            self.next_anchor += interval;
        }
    }
}

struct Inst {
    ty: usize,
    base_ns: f64,
    cap: usize,
    burst: usize,
    pending: VecDeque<Entry>,
    queue: VecDeque<Entry>,
    batch: Vec<Entry>,
    busy: bool,
    scheduled: bool,
    /// Sorted, non-overlapping `(start, end)`.
    stalls: Vec<(u64, u64)>,
    sp: usize,
    /// Sorted triggering flow ids and their service time.
    bug: Option<(Vec<u32>, f64)>,
}

struct Run {
    streams: Vec<CStream>,
    pkts: Vec<Pkt>,
    end_ns: Vec<u64>,
    lost_at: Vec<u16>,
    max_wait: Vec<u32>,
    wait_slot: Vec<u64>,
    /// (packet, last slot seen) of every lost packet, in drop order.
    lost_from: Vec<(u32, u64)>,
    busy_ns: Vec<u64>,
    drops: Vec<u64>,
    rx_pkts: Vec<u64>,
    rx_batches: Vec<u64>,
    flows: Vec<FiveTuple>,
}

struct Engine<'a> {
    g: &'a Graph,
    seed: u64,
    record: bool,
    link: u64,
    jitter: f64,
    rjit: f64,
    slot_ns: u64,
    overhead: u64,
    ghz: f64,
    anchor_ns: u64,
    insts: Vec<Inst>,
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    run: Run,
    sink_buf: Vec<Entry>,
}

impl Engine<'_> {
    #[inline]
    fn rx_stream(i: usize) -> usize {
        1 + 2 * i
    }
    #[inline]
    fn tx_stream(i: usize) -> usize {
        2 + 2 * i
    }
    #[inline]
    fn sink_stream(&self) -> usize {
        1 + 2 * self.insts.len()
    }

    fn schedule(&mut self, i: usize, t: u64) {
        self.insts[i].scheduled = true;
        self.heap.push(Reverse((t, i as u32)));
    }

    /// Appends a batch record; returns its batch index on the stream.
    fn record(&mut self, s: usize, t: u64, entries: &[Entry]) -> u32 {
        if !self.record {
            return 0;
        }
        let st = &mut self.run.streams[s];
        st.anchors_until(t, self.anchor_ns, self.ghz);
        let bi = st.batches.len() as u32;
        st.batches.push(CBatch {
            ns_len: (t << 16) | entries.len() as u64,
            seq: st.next_seq as u32,
            start: st.pids.len() as u32,
        });
        st.next_seq += 1;
        st.pids.extend(entries.iter().map(|e| e.pid));
        bi
    }

    #[inline]
    fn push(&mut self, j: usize, e: Entry) {
        self.insts[j].pending.push_back(e);
        if !self.insts[j].scheduled {
            self.schedule(j, e.arr);
        }
    }

    fn event(&mut self, i: usize, t: u64) {
        self.insts[i].scheduled = false;
        if self.insts[i].busy {
            self.insts[i].busy = false;
            self.complete(i, t);
        }
        self.poll(i, t);
    }

    fn complete(&mut self, i: usize, t: u64) {
        let mut batch = std::mem::take(&mut self.insts[i].batch);
        let ty = self.insts[i].ty;
        for e in &mut batch {
            e.tuple = self.g.rewrite(i, &e.tuple);
        }
        let s = Self::tx_stream(i);
        let bi = self.record(s, t, &batch);
        let arr = t + self.link;
        for (k, e) in batch.iter().enumerate() {
            let from = pack_slot(s, bi, k);
            match self.g.route(ty, &e.tuple) {
                Next::Sink => self.sink_buf.push(Entry { arr, from, ..*e }),
                Next::Type(nt) => {
                    let j = self.g.pick(nt, &e.tuple);
                    self.push(j, Entry { arr, from, ..*e });
                }
            }
        }
        if !self.sink_buf.is_empty() {
            let sb = std::mem::take(&mut self.sink_buf);
            let s = self.sink_stream();
            self.record(s, arr, &sb);
            for e in &sb {
                self.run.end_ns[e.pid as usize] = arr;
            }
            self.sink_buf = sb;
            self.sink_buf.clear();
        }
        batch.clear();
        self.insts[i].batch = batch;
    }

    /// The end of the stall covering `t`, if any.
    fn in_stall(&mut self, i: usize, t: u64) -> Option<u64> {
        let st = &mut self.insts[i];
        while st.sp < st.stalls.len() && st.stalls[st.sp].1 <= t {
            st.sp += 1;
        }
        (st.sp < st.stalls.len() && st.stalls[st.sp].0 <= t).then(|| st.stalls[st.sp].1)
    }

    /// When `work` ns of processing started at `t` ends, stalls included.
    fn finish(&self, i: usize, t: u64, work: u64) -> u64 {
        let st = &self.insts[i];
        let (mut now, mut rem, mut k) = (t, work, st.sp);
        while k < st.stalls.len() && st.stalls[k].1 <= now {
            k += 1;
        }
        loop {
            if k == st.stalls.len() || st.stalls[k].0 >= now + rem {
                return now + rem;
            }
            let s = st.stalls[k].0.max(now);
            rem -= s - now;
            now = st.stalls[k].1;
            k += 1;
        }
    }

    fn poll(&mut self, i: usize, t: u64) {
        if let Some(end) = self.in_stall(i, t) {
            self.schedule(i, end);
            return;
        }
        // Admit arrivals up to now, drop-tail.
        {
            let st = &mut self.insts[i];
            while let Some(e) = st.pending.front() {
                if e.arr > t {
                    break;
                }
                let e = st.pending.pop_front().expect("front exists");
                if st.queue.len() < st.cap {
                    st.queue.push_back(e);
                } else {
                    self.run.lost_at[e.pid as usize] = i as u16;
                    if self.record {
                        self.run.lost_from.push((e.pid, e.from));
                    }
                    self.run.end_ns[e.pid as usize] = e.arr;
                    self.run.drops[i] += 1;
                }
            }
        }
        if self.insts[i].queue.is_empty() {
            if let Some(e) = self.insts[i].pending.front() {
                let at = e.arr;
                self.schedule(i, at);
            }
            return;
        }
        let mut batch = std::mem::take(&mut self.insts[i].batch);
        let k = {
            let st = &mut self.insts[i];
            let k = st.queue.len().min(st.burst);
            batch.extend(st.queue.drain(..k));
            k
        };
        let s = Self::rx_stream(i);
        let bi = self.record(s, t, &batch);
        self.run.rx_pkts[i] += k as u64;
        self.run.rx_batches[i] += 1;
        // Service: base × slot drift × per-packet jitter (keyed draws).
        let slot = t / self.slot_ns;
        let drift = 1.0
            + self.rjit * (2.0 * unit(mix(self.seed, purpose::RATE_SLOT, i as u64, slot)) - 1.0);
        let base = self.insts[i].base_ns * drift;
        let mut work = self.overhead as f64;
        for (idx, e) in batch.iter().enumerate() {
            let p = self.run.pkts[e.pid as usize];
            if self.record {
                let w = (t - e.arr).min(u32::MAX as u64) as u32;
                let pid = e.pid as usize;
                if self.run.wait_slot[pid] == NO_SLOT || w > self.run.max_wait[pid] {
                    self.run.max_wait[pid] = w;
                    self.run.wait_slot[pid] = pack_slot(s, bi, idx);
                }
            }
            let bugged = match &self.insts[i].bug {
                Some((flows, ns)) if flows.binary_search(&p.flow).is_ok() => Some(*ns),
                _ => None,
            };
            work += match bugged {
                Some(ns) => ns,
                None => {
                    let key = if p.bg != NO_BG {
                        p.bg as u64
                    } else {
                        (1u64 << 40) | e.pid as u64
                    };
                    let u = unit(mix(self.seed, purpose::SERVICE, i as u64, key));
                    base * (1.0 + self.jitter * (2.0 * u - 1.0))
                }
            };
        }
        let work = (work.round() as u64).max(1);
        let end = self.finish(i, t, work);
        self.run.busy_ns[i] += work;
        self.insts[i].batch = batch;
        self.insts[i].busy = true;
        self.schedule(i, end);
    }
}

/// Everything one run needs besides the scenario.
struct RunInput<'a> {
    sc: &'a Scenario,
    g: &'a Graph,
    plan: &'a Plan,
    stalls: &'a [Vec<(u64, u64)>],
    record: bool,
}

fn stream_infos(sc: &Scenario, g: &Graph) -> Vec<(StreamInfo, bool)> {
    let carries = |name: &str, ty: &str| {
        sc.trace
            .tuples
            .iter()
            .any(|t| t == "all" || t == name || t == ty)
    };
    let host = sc.trace.host.clone();
    let mk = |id: usize, nf: &str, ty: &str, role: Role, port: u16, dir: Direction| {
        let c = carries(nf, ty);
        (
            StreamInfo {
                id: id as u32,
                nf: nf.to_string(),
                nf_type: ty.to_string(),
                role,
                port,
                queue: 0,
                direction: dir,
                host: host.clone(),
                carries_tuples: c,
            },
            c,
        )
    };
    let mut v = vec![mk(0, "source", "source", Role::Source, 0, Direction::Tx)];
    for (i, inst) in g.instances.iter().enumerate() {
        let ty = &g.types[inst.ty].name;
        v.push(mk(1 + 2 * i, &inst.name, ty, Role::Nf, 0, Direction::Rx));
        v.push(mk(2 + 2 * i, &inst.name, ty, Role::Nf, 1, Direction::Tx));
    }
    let n = v.len();
    v.push(mk(n, "sink", "sink", Role::Sink, 0, Direction::Rx));
    v
}

fn run_once(inp: &RunInput) -> Result<Run, SimError> {
    let sc = inp.sc;
    let g = inp.g;
    let d = &sc.nf_defaults;
    let n = g.instances.len();
    let mut insts: Vec<Inst> = g
        .instances
        .iter()
        .enumerate()
        .map(|(i, inst)| {
            let t = &g.types[inst.ty];
            let mut stalls = inp.stalls[i].clone();
            if inp.record || sc.faults.enabled {
                stalls.extend(
                    inp.plan
                        .stalls
                        .iter()
                        .filter(|s| s.0 == i)
                        .map(|s| (s.1, s.2)),
                );
            }
            stalls.sort_unstable();
            let mut merged: Vec<(u64, u64)> = Vec::with_capacity(stalls.len());
            for s in stalls {
                match merged.last_mut() {
                    Some(l) if s.0 <= l.1 => l.1 = l.1.max(s.1),
                    _ => merged.push(s),
                }
            }
            let bug = inp.plan.bugs.iter().find(|b| b.inst == i).map(|b| {
                let mut flows: Vec<u32> = inp
                    .plan
                    .bugs
                    .iter()
                    .filter(|x| x.inst == i)
                    .flat_map(|x| x.flows.iter().copied())
                    .collect();
                flows.sort_unstable();
                (flows, b.service_ns)
            });
            Inst {
                ty: inst.ty,
                base_ns: 1e9 / t.peak_rate_pps,
                cap: t.queue_capacity,
                burst: t.burst,
                pending: VecDeque::new(),
                queue: VecDeque::with_capacity(t.queue_capacity.min(4096)),
                batch: Vec::with_capacity(t.burst),
                busy: false,
                scheduled: false,
                stalls: merged,
                sp: 0,
                bug,
            }
        })
        .collect();
    insts.shrink_to_fit();
    let streams = if inp.record {
        stream_infos(sc, g)
            .into_iter()
            .map(|(info, _)| CStream {
                req: match (info.role, info.direction) {
                    (Role::Nf, Direction::Rx) => {
                        let i = (info.id as usize - 1) / 2;
                        Req::Fixed(g.types[g.instances[i].ty].burst as u16)
                    }
                    (Role::Sink, _) => Req::AtLeast(d.burst),
                    _ => Req::Len,
                },
                info,
                batches: Vec::new(),
                pids: Vec::new(),
                anchors: Vec::new(),
                next_seq: 0,
                next_anchor: 0,
            })
            .collect()
    } else {
        Vec::new()
    };
    if 2 * n + 2 > u16::MAX as usize {
        return Err(SimError::TooLarge(format!("{n} instances (at most 32766)")));
    }
    let mut e = Engine {
        g,
        seed: sc.seed,
        record: inp.record,
        link: d.link_delay_ns.max(1),
        jitter: d.service_jitter,
        rjit: if sc.background.enabled {
            d.rate_jitter
        } else {
            0.0
        },
        slot_ns: d.rate_slot_ns,
        overhead: d.batch_overhead_ns,
        ghz: sc.trace.tsc_ghz,
        anchor_ns: sc.trace.anchor_interval_ns,
        insts,
        heap: BinaryHeap::new(),
        run: Run {
            streams,
            pkts: Vec::new(),
            end_ns: Vec::new(),
            lost_at: Vec::new(),
            max_wait: Vec::new(),
            wait_slot: Vec::new(),
            lost_from: Vec::new(),
            busy_ns: vec![0; n],
            drops: vec![0; n],
            rx_pkts: vec![0; n],
            rx_batches: vec![0; n],
            flows: Vec::new(),
        },
        sink_buf: Vec::new(),
    };
    let mut src = Source::new(sc)?;
    let dur = sc.duration.ns();
    let w = sc.traffic.source_batch_ns;
    let batch_time = |t: u64| if w == 0 { t } else { t.div_ceil(w) * w };
    let inj: &[faults::InjPacket] = if inp.record || sc.faults.enabled {
        &inp.plan.packets
    } else {
        &[]
    };
    let mut ii = 0usize;
    let mut bg_next: Option<GenPacket> = src.next(dur);
    let mut bg_count: u32 = 0;
    let src_id = n as u32;
    let next_time = |bg: &Option<GenPacket>, ii: usize| -> Option<u64> {
        let a = bg.map(|p| p.t_ns);
        let b = inj.get(ii).map(|p| p.t_ns);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (x, None) | (None, x) => x,
        }
    };
    if let Some(t) = next_time(&bg_next, ii) {
        e.heap.push(Reverse((batch_time(t), src_id)));
    }
    let entry_ty = g.entry;
    let mut scratch: Vec<Entry> = Vec::new();
    while let Some(Reverse((t, ent))) = e.heap.pop() {
        if ent != src_id {
            e.event(ent as usize, t);
            continue;
        }
        // Source: everything generated in this window leaves now.
        scratch.clear();
        loop {
            let take_bg = match (&bg_next, inj.get(ii)) {
                (Some(b), Some(x)) => b.t_ns <= x.t_ns,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let (tg, flow, ipid, bg, origin, tuple) = if take_bg {
                let b = bg_next.expect("checked");
                if batch_time(b.t_ns) != t {
                    break;
                }
                bg_next = src.next(dur);
                let tuple = src.flows()[b.flow as usize];
                bg_count += 1;
                (b.t_ns, b.flow, b.ipid, bg_count - 1, 0u16, tuple)
            } else {
                let x = inj[ii];
                if batch_time(x.t_ns) != t {
                    break;
                }
                ii += 1;
                let tuple = inp.plan.flows[(x.flow & !INJECTED_FLOW) as usize];
                (x.t_ns, x.flow, x.ipid, NO_BG, x.fault + 1, tuple)
            };
            let _ = tg;
            let pid = e.run.pkts.len();
            if pid >= (1usize << 31) {
                return Err(SimError::TooLarge("more than 2^31 packets".into()));
            }
            e.run.pkts.push(Pkt {
                flow,
                bg,
                sent_ns: t,
                ipid,
                origin,
            });
            e.run.end_ns.push(u64::MAX);
            e.run.lost_at.push(NONE16);
            if e.record {
                e.run.max_wait.push(0);
                e.run.wait_slot.push(NO_SLOT);
            }
            scratch.push(Entry {
                pid: pid as u32,
                arr: t + e.link,
                tuple,
                from: NO_SLOT,
            });
        }
        if scratch.len() > u16::MAX as usize {
            return Err(SimError::TooLarge(format!(
                "{} packets in one source batch; lower traffic.source_batch_ns",
                scratch.len()
            )));
        }
        let bi = e.record(0, t, &scratch);
        for (k, en) in scratch.iter().enumerate() {
            let j = g.pick(entry_ty, &en.tuple);
            e.push(
                j,
                Entry {
                    from: pack_slot(0, bi, k),
                    ..*en
                },
            );
        }
        if let Some(tn) = next_time(&bg_next, ii) {
            e.heap.push(Reverse((batch_time(tn), src_id)));
        }
    }
    // Close every stream with anchors up to the end of the run.
    let last = e
        .run
        .streams
        .iter()
        .filter_map(|s| s.batches.last().map(|b| b.ns()))
        .max()
        .unwrap_or(0)
        .max(dur);
    let end = last.div_ceil(e.anchor_ns) * e.anchor_ns;
    for s in &mut e.run.streams {
        s.anchors_until(end, e.anchor_ns, e.ghz);
    }
    if e.run.streams.iter().any(|s| s.next_seq >= u32::MAX as u64) {
        return Err(SimError::TooLarge(
            "more than 2^32 records on one stream".into(),
        ));
    }
    e.run.flows = src.into_flows();
    Ok(e.run)
}

/// Both runs and the plan.
struct Executed {
    sc: Scenario,
    g: Graph,
    plan: Plan,
    stalls: Vec<Vec<(u64, u64)>>,
    run: Run,
    /// Baseline per background index: (latency, lost).
    base: Option<Vec<(u64, bool)>>,
    meta: TraceMeta,
    ghz: f64,
}

fn execute(sc: &Scenario) -> Result<Executed, SimError> {
    sc.validate()?;
    let mut g = Graph::new(sc);
    let plan = {
        let src = Source::new(sc)?;
        faults::plan(sc, &g, &src).map_err(SimError::Plan)?
    };
    for (t, inst) in &plan.pins {
        g.pin(t, *inst)
            .map_err(|e| SimError::Plan(format!("faults.bug.steer: {e}")))?;
    }
    let stalls = faults::background_stalls(sc, g.instances.len());
    let with_faults = !plan.faults.is_empty();
    let base_sc = sc.without_faults();
    let empty = Plan::default();
    let (run, base) = std::thread::scope(|scope| {
        let baseline = with_faults.then(|| {
            let (base_sc, g, stalls, empty) = (&base_sc, &g, &stalls, &empty);
            scope.spawn(move || {
                run_once(&RunInput {
                    sc: base_sc,
                    g,
                    plan: empty,
                    stalls,
                    record: false,
                })
            })
        });
        let run = run_once(&RunInput {
            sc,
            g: &g,
            plan: &plan,
            stalls: &stalls,
            record: true,
        });
        let base = baseline.map(|h| h.join().expect("baseline thread does not panic"));
        (run, base)
    });
    let run = run?;
    let base = match base {
        Some(b) => {
            let b = b?;
            Some(
                b.pkts
                    .iter()
                    .zip(b.end_ns.iter().zip(&b.lost_at))
                    .map(|(p, (end, lost))| (end.saturating_sub(p.sent_ns), *lost != NONE16))
                    .collect(),
            )
        }
        None => None,
    };
    let meta = TraceMeta {
        producer: format!(
            "microscope simulate scenario={} seed={} rate={} duration={} faults={} (testbeds {})",
            sc.name,
            sc.seed,
            sc.traffic.rate,
            sc.duration,
            plan.faults.len(),
            env!("CARGO_PKG_VERSION")
        ),
        topology: Some(g.to_topology()),
        tsc_hz_hint: Some(sc.trace.tsc_ghz * 1e9),
    };
    Ok(Executed {
        ghz: sc.trace.tsc_ghz,
        sc: sc.clone(),
        g,
        plan,
        stalls,
        run,
        base,
        meta,
    })
}

fn percentile(v: &mut [u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let k = ((p / 100.0 * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    *v.select_nth_unstable(k).1
}

impl Executed {
    /// Context for turning compact records into trace records.
    fn out_ctx(&self) -> OutCtx<'_> {
        let sink = |flows: &[FiveTuple]| flows.iter().map(|t| self.g.path(t).1).collect();
        OutCtx {
            pkts: &self.run.pkts,
            ghz: self.ghz,
            g: &self.g,
            flows: &self.run.flows,
            inj_flows: &self.plan.flows,
            sink_bg: sink(&self.run.flows),
            sink_inj: sink(&self.plan.flows),
        }
    }

    fn to_trace(&self) -> Trace {
        let ctx = self.out_ctx();
        let streams = self
            .run
            .streams
            .iter()
            .map(|s| StreamData {
                info: Some(s.info.clone()),
                batches: s.batches.iter().map(|b| c_to_batch(s, b, &ctx)).collect(),
                anchors: s.anchors.clone(),
                loss: LossCounters::default(),
                loss_windows: Vec::new(),
            })
            .collect();
        Trace {
            meta: self.meta.clone(),
            streams,
            report: Default::default(),
        }
    }

    fn slot(&self, packed: u64) -> PacketSlot {
        let (s, bi, idx) = unpack_slot(packed);
        PacketSlot {
            stream: s as u32,
            seq: self.run.streams[s].batches[bi as usize].seq as u64,
            idx,
        }
    }

    fn into_truth(mut self) -> Truth {
        self.run.lost_from.sort_unstable();
        let sc = &self.sc;
        let run = &self.run;
        let n = run.pkts.len();
        let lat = |pid: usize| run.end_ns[pid].saturating_sub(run.pkts[pid].sent_ns);
        // Latency distribution of the run without injections.
        let (mut base_lat, base_lost): (Vec<u64>, u64) = match &self.base {
            Some(b) => (
                b.iter().filter(|x| !x.1).map(|x| x.0).collect(),
                b.iter().filter(|x| x.1).count() as u64,
            ),
            None => (
                (0..n)
                    .filter(|p| run.lost_at[*p] == NONE16)
                    .map(lat)
                    .collect(),
                run.lost_at.iter().filter(|l| **l != NONE16).count() as u64,
            ),
        };
        let base_packets = self.base.as_ref().map_or(n, |b| b.len()) as u64;
        let p50 = percentile(&mut base_lat, 50.0);
        let p99 = percentile(&mut base_lat, 99.0);
        let pmax = base_lat.iter().copied().max().unwrap_or(0);
        let threshold = sc.victims.parse_threshold().expect("validated");
        let thr = match threshold {
            Threshold::Percentile(p) => percentile(&mut base_lat, p),
            Threshold::Absolute(ns) => ns,
        };
        drop(base_lat);
        let inst_name = |i: usize| self.g.instances[i].name.clone();
        let stream_nf = |s: usize| run.streams[s].info.nf.clone();
        // Fault windows.
        let v = &sc.victims;
        let fs = &self.plan.faults;
        let windows: Vec<(u64, u64)> = fs
            .iter()
            .enumerate()
            .map(|(k, f)| {
                let ws = f.start_ns.saturating_sub(v.pre_ns);
                let mut we = f.end_ns + v.settle_ns;
                if let Some(nx) = fs.get(k + 1) {
                    we = we.min(nx.start_ns.saturating_sub(v.pre_ns));
                }
                (ws, we.max(ws))
            })
            .collect();
        let mut victims = Vec::new();
        let mut per_fault = vec![0u64; fs.len()];
        if let Some(base) = &self.base {
            let mut k = 0usize;
            for pid in 0..n {
                let p = run.pkts[pid];
                while k < windows.len() && p.sent_ns >= windows[k].1 {
                    k += 1;
                }
                if k == windows.len() {
                    break;
                }
                if p.sent_ns < windows[k].0 {
                    continue;
                }
                let lost = run.lost_at[pid] != NONE16;
                let l = lat(pid);
                let (victim, base_l) = if p.bg == NO_BG {
                    (lost || l > thr, None)
                } else {
                    let (bl, blost) = base[p.bg as usize];
                    let v = !blost && ((lost) || (l > thr && bl <= thr));
                    (v, (!blost).then_some(bl))
                };
                if !victim {
                    continue;
                }
                let (slot, nf) = if lost {
                    let i = run
                        .lost_from
                        .binary_search_by_key(&(pid as u32), |x| x.0)
                        .expect("every lost packet has its last slot");
                    (
                        self.slot(run.lost_from[i].1),
                        inst_name(run.lost_at[pid] as usize),
                    )
                } else {
                    let ws = run.wait_slot[pid];
                    (self.slot(ws), stream_nf(unpack_slot(ws).0))
                };
                per_fault[k] += 1;
                victims.push(LabelledVictim {
                    fault_id: fs[k].id,
                    slot,
                    nf,
                    flow: flow_tuple(&run.flows, &self.plan.flows, p.flow),
                    latency_ns: l,
                    wait_ns: if lost { 0 } else { run.max_wait[pid] as u64 },
                    lost,
                    packet: pid as u32,
                    baseline_latency_ns: base_l,
                });
            }
        }
        let faults: Vec<Fault> = fs
            .iter()
            .enumerate()
            .map(|(k, f)| {
                let flows: Vec<FiveTuple> = f
                    .flows
                    .iter()
                    .map(|fl| self.plan.flows[(fl & !INJECTED_FLOW) as usize])
                    .collect();
                Fault {
                    id: f.id,
                    kind: f.kind,
                    nf: f.inst.map(inst_name),
                    flows_at_sink: flows.iter().map(|t| self.g.path(t).1).collect(),
                    flows,
                    start_ns: f.start_ns,
                    end_ns: f.end_ns,
                    window_start_ns: windows[k].0,
                    window_end_ns: windows[k].1,
                    injected_packets: f.injected_packets,
                    victims: per_fault[k],
                    params: f.params.clone(),
                }
            })
            .collect();
        let g = &self.g;
        let mut background: Vec<BackgroundEvent> = self
            .stalls
            .iter()
            .enumerate()
            .flat_map(|(i, v)| {
                v.iter().map(move |s| BackgroundEvent {
                    kind: "stall".into(),
                    nf: g.instances[i].name.clone(),
                    start_ns: s.0,
                    end_ns: s.1,
                })
            })
            .collect();
        background.sort_by(|a, b| (a.start_ns, &a.nf).cmp(&(b.start_ns, &b.nf)));
        let dur = sc.duration.ns().max(1) as f64;
        let nfs = (0..self.g.instances.len())
            .map(|i| NfStats {
                nf: inst_name(i),
                packets: run.rx_pkts[i],
                dropped: run.drops[i],
                batches: run.rx_batches[i],
                mean_batch: run.rx_pkts[i] as f64 / run.rx_batches[i].max(1) as f64,
                utilization: run.busy_ns[i] as f64 / dur,
            })
            .collect();
        let lost = run.lost_at.iter().filter(|l| **l != NONE16).count() as u64;
        let stats = TruthStats {
            packets: n as u64,
            injected_packets: run.pkts.iter().filter(|p| p.bg == NO_BG).count() as u64,
            delivered: n as u64 - lost,
            lost,
            baseline_packets: base_packets,
            baseline_lost: base_lost,
            baseline_latency_p50_ns: p50,
            baseline_latency_p99_ns: p99,
            baseline_latency_max_ns: pmax,
            nfs,
        };
        // Journeys (moves the per-stream packet ids).
        let order = {
            let mut o = vec![(0u32, false)];
            for t in self.g.type_order() {
                let ty = &self.g.types[t];
                for i in ty.first..ty.first + ty.count {
                    o.push((Engine::rx_stream(i) as u32, true));
                    o.push((Engine::tx_stream(i) as u32, false));
                }
            }
            o.push(((1 + 2 * self.g.instances.len()) as u32, true));
            o
        };
        let packets = (0..n)
            .map(|pid| {
                let p = run.pkts[pid];
                PacketTruth {
                    flow: p.flow,
                    sent_ns: p.sent_ns,
                    end_ns: run.end_ns[pid],
                    ipid: p.ipid,
                    origin: p.origin,
                    lost_at: run.lost_at[pid],
                }
            })
            .collect();
        let Executed { run, plan, sc, .. } = self;
        let streams = run
            .streams
            .into_iter()
            .map(|s| StreamSlots {
                stream: s.info.id,
                starts: s.batches.iter().map(|b| b.start).collect(),
                anchor_seqs: s.anchors.iter().map(|a| a.seq).collect(),
                pids: s.pids,
            })
            .collect();
        let threshold_rule = sc.victims.threshold.clone();
        Truth {
            scenario: sc.name.clone(),
            seed: sc.seed,
            duration_ns: sc.duration.ns(),
            threshold_rule,
            threshold_ns: thr,
            faults,
            background,
            victims,
            stats,
            journeys: Journeys {
                flows: run.flows,
                injected_flows: plan.flows,
                packets,
                streams,
                order,
            },
        }
    }
}

fn flow_tuple(bg: &[FiveTuple], inj: &[FiveTuple], flow: u32) -> FiveTuple {
    if flow & INJECTED_FLOW != 0 {
        inj[(flow & !INJECTED_FLOW) as usize]
    } else {
        bg[flow as usize]
    }
}

/// What compact records need to become trace records.
struct OutCtx<'a> {
    pkts: &'a [Pkt],
    ghz: f64,
    g: &'a Graph,
    flows: &'a [FiveTuple],
    inj_flows: &'a [FiveTuple],
    /// Each flow's tuple at the sink (after NAT rewriting).
    sink_bg: Vec<FiveTuple>,
    sink_inj: Vec<FiveTuple>,
}

impl OutCtx<'_> {
    /// The 5-tuple of packet `pid` as the hook of stream `info` sees it
    /// (a pure function of the flow: rewriting is deterministic).
    fn tuple(&self, info: &StreamInfo, pid: u32) -> FiveTuple {
        let flow = self.pkts[pid as usize].flow;
        let inj = flow & INJECTED_FLOW != 0;
        let f = (flow & !INJECTED_FLOW) as usize;
        let t = if inj {
            self.inj_flows[f]
        } else {
            self.flows[f]
        };
        match info.role {
            Role::Source => t,
            Role::Sink => {
                if inj {
                    self.sink_inj[f]
                } else {
                    self.sink_bg[f]
                }
            }
            Role::Nf => {
                let inst = (info.id as usize - 1) / 2;
                self.g.tuple_at(&t, inst, info.direction == Direction::Tx)
            }
        }
    }
}

fn c_to_batch(s: &CStream, b: &CBatch, ctx: &OutCtx) -> BatchRecord {
    let r = b.start as usize..b.start as usize + b.len();
    let pids = &s.pids[r];
    BatchRecord {
        seq: b.seq as u64,
        tsc: tsc(b.ns(), ctx.ghz),
        requested: s.req.requested(b.len()),
        ipids: pids.iter().map(|p| ctx.pkts[*p as usize].ipid).collect(),
        non_ipv4: Vec::new(),
        tuples: s
            .info
            .carries_tuples
            .then(|| pids.iter().map(|p| ctx.tuple(&s.info, *p)).collect()),
    }
}

// ---------------------------------------------------------------- writing

/// Records of one stream in sequence order.
trait RecordCursor {
    fn peek_tsc(&self) -> Option<u64>;
    fn next_record(&mut self) -> Option<Record>;
}

struct CCursor<'a> {
    s: &'a CStream,
    ctx: &'a OutCtx<'a>,
    bi: usize,
    ai: usize,
}

impl RecordCursor for CCursor<'_> {
    fn peek_tsc(&self) -> Option<u64> {
        match (self.s.batches.get(self.bi), self.s.anchors.get(self.ai)) {
            (Some(b), Some(a)) if a.seq < b.seq as u64 => Some(a.tsc),
            (Some(b), _) => Some(tsc(b.ns(), self.ctx.ghz)),
            (None, Some(a)) => Some(a.tsc),
            (None, None) => None,
        }
    }
    fn next_record(&mut self) -> Option<Record> {
        match (self.s.batches.get(self.bi), self.s.anchors.get(self.ai)) {
            (Some(b), Some(a)) if a.seq < b.seq as u64 => {
                self.ai += 1;
                Some(Record::Anchor(*a))
            }
            (Some(b), _) => {
                self.bi += 1;
                Some(Record::Batch(c_to_batch(self.s, b, self.ctx)))
            }
            (None, Some(a)) => {
                self.ai += 1;
                Some(Record::Anchor(*a))
            }
            (None, None) => None,
        }
    }
}

struct DataCursor<'a> {
    s: &'a StreamData,
    bi: usize,
    ai: usize,
}

impl RecordCursor for DataCursor<'_> {
    fn peek_tsc(&self) -> Option<u64> {
        match (self.s.batches.get(self.bi), self.s.anchors.get(self.ai)) {
            (Some(b), Some(a)) if a.seq < b.seq => Some(a.tsc),
            (Some(b), _) => Some(b.tsc),
            (None, Some(a)) => Some(a.tsc),
            (None, None) => None,
        }
    }
    fn next_record(&mut self) -> Option<Record> {
        match (self.s.batches.get(self.bi), self.s.anchors.get(self.ai)) {
            (Some(b), Some(a)) if a.seq < b.seq => {
                self.ai += 1;
                Some(Record::Anchor(*a))
            }
            (Some(b), _) => {
                self.bi += 1;
                Some(Record::Batch(b.clone()))
            }
            (None, Some(a)) => {
                self.ai += 1;
                Some(Record::Anchor(*a))
            }
            (None, None) => None,
        }
    }
}

/// Records per chunk the simulator writes.
pub const CHUNK_RECORDS: usize = 1024;

/// Writes chunks of up to [`CHUNK_RECORDS`] records, interleaving streams
/// by the timestamp of each chunk's first record (as a dumper draining rings
/// would), ties by stream id.
fn write_trace_file(
    path: &Path,
    meta: &TraceMeta,
    infos: &[StreamInfo],
    mut cursors: Vec<Box<dyn RecordCursor + '_>>,
) -> Result<(), SimError> {
    let mut w = TraceWriter::create(path, meta)?;
    for info in infos {
        w.declare_stream(info)?;
    }
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = cursors
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.peek_tsc().map(|t| Reverse((t, i))))
        .collect();
    let loss = LossCounters::default();
    let mut buf = Vec::with_capacity(CHUNK_RECORDS);
    while let Some(Reverse((_, i))) = heap.pop() {
        buf.clear();
        while buf.len() < CHUNK_RECORDS {
            match cursors[i].next_record() {
                Some(r) => buf.push(r),
                None => break,
            }
        }
        w.write_chunk(infos[i].id, &buf, &loss)?;
        if let Some(t) = cursors[i].peek_tsc() {
            heap.push(Reverse((t, i)));
        }
    }
    w.finish()?;
    Ok(())
}
