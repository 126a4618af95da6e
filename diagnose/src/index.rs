//! Dense, flat arrays over every packet observation of a trace.
//!
//! An *observation* is one packet in one batch record of one stream. All
//! observations are numbered `0..n_obs` stream by stream, batch by batch, so
//! the observations of a stream and of a batch are contiguous ranges (CSR
//! layout). Times are nanoseconds on the calibrated clock of the stream's
//! host (see [`calibrate`]).
//!
//! [`IndexBuilder`] is the only way an index is made: it takes metadata,
//! stream declarations and records incrementally — from reader chunks
//! (streaming, no [`Trace`] in memory) or from a whole [`Trace`] — keeps
//! them per stream in columnar vectors (no `Vec` per record), and on
//! `finish` sorts by seq, drops duplicates, derives loss windows,
//! calibrates clocks and lays the arrays out.

use crate::{DiagnoseError, PacketSlot};
use collector::{Calibration, Direction, StreamId};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tracefile::Trace;

/// "No such observation / node / path".
pub const NONE: u32 = u32::MAX;

/// Clock calibration used for one host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostClock {
    pub host: String,
    pub anchors: usize,
    pub calibration: Calibration,
}

/// Fits one [`Calibration`] per host over the anchors of all its streams.
pub fn calibrate(trace: &Trace, nominal_hz: f64) -> Vec<HostClock> {
    let mut by_host: BTreeMap<&str, Vec<collector::ClockAnchor>> = BTreeMap::new();
    for s in &trace.streams {
        if let Some(info) = &s.info {
            by_host
                .entry(info.host.as_str())
                .or_default()
                .extend(s.anchors.iter().copied());
        }
    }
    let hz = trace
        .meta
        .tsc_hz_hint
        .filter(|h| h.is_finite() && *h > 0.0)
        .unwrap_or(nominal_hz);
    by_host
        .into_iter()
        .map(|(host, mut anchors)| {
            anchors.sort_by_key(|a| (a.tsc, a.mono_ns));
            HostClock {
                host: host.to_string(),
                anchors: anchors.len(),
                calibration: Calibration::fit(&anchors, hz),
            }
        })
        .collect()
}

/// The flat observation index.
pub struct Index {
    pub stream_node: Vec<u32>,
    pub stream_dir: Vec<Direction>,
    /// `stream_batches[s]..stream_batches[s+1]` are the batches of stream s.
    pub stream_batches: Vec<u32>,
    pub batch_time: Vec<i64>,
    /// `batch_obs[b]..batch_obs[b+1]` are the observations of batch b.
    pub batch_obs: Vec<u32>,
    pub batch_requested: Vec<u16>,
    pub batch_seq: Vec<u64>,
    pub batch_stream: Vec<u32>,
    pub obs_ipid: Vec<u16>,
    pub obs_batch: Vec<u32>,
    /// Batches whose timestamp went backwards and were clamped.
    pub clamped_times: u64,
    /// Records seen more than once (e.g. across a dumper restart) and dropped.
    pub duplicates_dropped: u64,
}

impl Index {
    pub fn n_obs(&self) -> usize {
        self.obs_ipid.len()
    }

    pub fn n_streams(&self) -> usize {
        self.stream_dir.len()
    }

    #[inline]
    pub fn time(&self, o: u32) -> i64 {
        self.batch_time[self.obs_batch[o as usize] as usize]
    }

    #[inline]
    pub fn stream_of(&self, o: u32) -> u32 {
        self.batch_stream[self.obs_batch[o as usize] as usize]
    }

    #[inline]
    pub fn node_of_obs(&self, o: u32) -> u32 {
        self.stream_node[self.stream_of(o) as usize]
    }

    /// Observation range of stream `s`.
    pub fn stream_obs(&self, s: u32) -> std::ops::Range<u32> {
        let b0 = self.stream_batches[s as usize] as usize;
        let b1 = self.stream_batches[s as usize + 1] as usize;
        self.batch_obs[b0]..self.batch_obs[b1]
    }

    /// Batch range of stream `s`.
    pub fn stream_batch_range(&self, s: u32) -> std::ops::Range<u32> {
        self.stream_batches[s as usize]..self.stream_batches[s as usize + 1]
    }

    /// True when batch `b` returned fewer packets than requested: the queue
    /// was empty after it.
    #[inline]
    pub fn batch_emptied(&self, b: u32) -> bool {
        let b = b as usize;
        (self.batch_obs[b + 1] - self.batch_obs[b]) < self.batch_requested[b] as u32
    }

    /// The trace coordinates of observation `o`.
    pub fn slot(&self, o: u32) -> PacketSlot {
        let b = self.obs_batch[o as usize];
        PacketSlot {
            stream: self.batch_stream[b as usize] as StreamId,
            seq: self.batch_seq[b as usize],
            idx: (o - self.batch_obs[b as usize]) as u16,
        }
    }

    /// Inverse of [`Index::slot`], by binary search over the stream's batches.
    pub fn obs_of_slot(&self, slot: &PacketSlot) -> Option<u32> {
        let s = slot.stream as usize;
        if s + 1 >= self.stream_batches.len() {
            return None;
        }
        let r = self.stream_batch_range(slot.stream);
        let seqs = &self.batch_seq[r.start as usize..r.end as usize];
        let i = seqs.binary_search(&slot.seq).ok()?;
        let b = r.start as usize + i;
        let o = self.batch_obs[b] + slot.idx as u32;
        (o < self.batch_obs[b + 1]).then_some(o)
    }
}

/// Per-stream accumulator of [`IndexBuilder`]: columnar, no per-record
/// allocation, in arrival order until [`IndexBuilder::finish`] sorts it.
#[derive(Default)]
struct StreamAcc {
    info: Option<collector::StreamInfo>,
    b_seq: Vec<u64>,
    b_tsc: Vec<u64>,
    b_req: Vec<u16>,
    /// Start of each batch in `ipids` (arrival order).
    b_off: Vec<u32>,
    ipids: Vec<u16>,
    /// Recorded 5-tuples: (arrival batch index, index in batch, tuple).
    tuples: Vec<(u32, u16, collector::FiveTuple)>,
    anchors: Vec<(u64, collector::ClockAnchor)>,
    loss: collector::LossCounters,
    /// Batches and anchors both arrived in ascending, unique seq order.
    ascending: bool,
    last_seq: Option<u64>,
}

impl StreamAcc {
    fn note_seq(&mut self, seq: u64) {
        if self.last_seq.is_some_and(|l| seq <= l) {
            self.ascending = false;
        }
        self.last_seq = Some(seq);
    }
}

/// Streams and metadata without the batches: what the clock, DAG and loss
/// stages need, shaped as a [`Trace`] whose `batches` are all empty.
pub(crate) struct Built {
    pub skeleton: Trace,
    pub ix: Index,
    /// Per stream: the recorded 5-tuples as (observation, index in its
    /// batch, tuple), in observation order.
    pub stream_tuples: Vec<Vec<(u32, u16, collector::FiveTuple)>>,
}

/// Builds the dense [`Index`] incrementally — from a [`Trace`] in memory or
/// straight from [`tracefile::TraceReader`] chunks — without ever holding a
/// `Vec` per batch. Records of a stream may arrive in any order and repeat
/// (as the trace assembler allows); `finish` sorts them by
/// seq, drops duplicates (the first copy wins, as in the assembler), derives
/// the loss windows and converts timestamps once every anchor is known.
#[derive(Default)]
pub struct IndexBuilder {
    meta: Option<collector::TraceMeta>,
    streams: Vec<StreamAcc>,
    footer_last: bool,
    duplicates: u64,
}

impl IndexBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    fn acc(&mut self, id: StreamId) -> &mut StreamAcc {
        let i = id as usize;
        if self.streams.len() <= i {
            self.streams.resize_with(i + 1, || StreamAcc {
                ascending: true,
                ..Default::default()
            });
        }
        &mut self.streams[i]
    }

    /// Sets the metadata (the first one wins).
    pub fn meta(&mut self, meta: collector::TraceMeta) {
        if self.meta.is_none() {
            self.meta = Some(meta);
        }
    }

    /// Declares a stream (the first declaration of an id wins).
    pub fn declare(&mut self, info: collector::StreamInfo) {
        let a = self.acc(info.id);
        if a.info.is_none() {
            a.info = Some(info);
        }
    }

    /// Adds one batch record of `stream`.
    pub fn batch(&mut self, stream: StreamId, b: &collector::BatchRecord) {
        let a = self.acc(stream);
        a.note_seq(b.seq);
        let bi = a.b_seq.len() as u32;
        a.b_seq.push(b.seq);
        a.b_tsc.push(b.tsc);
        a.b_req.push(b.requested);
        a.b_off.push(a.ipids.len() as u32);
        a.ipids.extend_from_slice(&b.ipids);
        if let Some(ts) = &b.tuples {
            a.tuples.extend(
                ts.iter()
                    .take(b.ipids.len())
                    .enumerate()
                    .map(|(i, t)| (bi, i as u16, *t)),
            );
        }
    }

    /// Adds the records of one chunk of `stream` decoded column-wise
    /// ([`tracefile::TraceReader::next_chunk_into`]); the same as adding its
    /// records one by one, copied with a few bulk appends.
    pub fn columns(&mut self, stream: StreamId, cols: &tracefile::RecordColumns) {
        let a = self.acc(stream);
        // Seqs ascend strictly across a chunk's records (the decoder checks),
        // so the lowest and highest seq stand for all of them.
        let lo = cols
            .batch_seq
            .first()
            .into_iter()
            .chain(cols.anchors.first().map(|x| &x.seq))
            .min();
        let hi = cols
            .batch_seq
            .last()
            .into_iter()
            .chain(cols.anchors.last().map(|x| &x.seq))
            .max();
        if let (Some(&lo), Some(&hi)) = (lo, hi) {
            a.note_seq(lo);
            a.last_seq = Some(hi);
        }
        let bi0 = a.b_seq.len() as u32;
        let base = a.ipids.len() as u32;
        a.b_seq.extend_from_slice(&cols.batch_seq);
        a.b_tsc.extend_from_slice(&cols.batch_tsc);
        a.b_req.extend_from_slice(&cols.batch_requested);
        if let Some((_, starts)) = cols.batch_ipids.split_last() {
            a.b_off.extend(starts.iter().map(|&o| base + o));
        }
        a.ipids.extend_from_slice(&cols.ipids);
        for &(b, start) in &cols.tuple_batches {
            let n = cols.batch_len(b as usize);
            let ts = &cols.tuples[start as usize..start as usize + n];
            a.tuples
                .extend(ts.iter().enumerate().map(|(i, t)| (bi0 + b, i as u16, *t)));
        }
        a.anchors.extend(cols.anchors.iter().map(|x| (x.seq, *x)));
    }

    /// Adds one clock anchor of `stream` with its record seq.
    pub fn anchor(&mut self, stream: StreamId, seq: u64, x: collector::ClockAnchor) {
        let a = self.acc(stream);
        a.note_seq(seq);
        a.anchors.push((seq, x));
    }

    /// Raises the stream's cumulative loss counters.
    pub fn loss(&mut self, stream: StreamId, l: &collector::LossCounters) {
        let a = &mut self.acc(stream).loss;
        a.lost_full = a.lost_full.max(l.lost_full);
        a.lost_too_big = a.lost_too_big.max(l.lost_too_big);
        a.lost_write = a.lost_write.max(l.lost_write);
        a.lost_corrupt = a.lost_corrupt.max(l.lost_corrupt);
    }

    /// Adds one validated chunk from a [`tracefile::TraceReader`].
    pub fn chunk(&mut self, chunk: tracefile::Chunk) {
        self.chunk_ref(&chunk);
    }

    /// [`IndexBuilder::chunk`] by reference (records are copied), so the
    /// caller decides where the chunk's buffers are freed.
    pub fn chunk_ref(&mut self, chunk: &tracefile::Chunk) {
        self.footer_last = false;
        match &chunk.body {
            tracefile::ChunkBody::Meta(m) => self.meta(m.clone()),
            tracefile::ChunkBody::Stream(info) => self.declare(info.clone()),
            tracefile::ChunkBody::Records(rc) => {
                self.loss(rc.stream, &rc.loss);
                for r in &rc.records {
                    match r {
                        collector::Record::Batch(b) => self.batch(rc.stream, b),
                        collector::Record::Anchor(x) => self.anchor(rc.stream, x.seq, *x),
                    }
                }
            }
            tracefile::ChunkBody::Footer(_) => self.footer_last = true,
            tracefile::ChunkBody::Unknown { .. } => {}
        }
    }

    /// Feeds a whole in-memory trace (its records are already sorted and
    /// unique; its loss counters are final).
    pub fn trace(&mut self, trace: &Trace) {
        self.meta(trace.meta.clone());
        for (s, data) in trace.streams.iter().enumerate() {
            let s = s as StreamId;
            if let Some(info) = &data.info {
                let mut info = info.clone();
                info.id = s;
                self.declare(info);
            }
            self.acc(s);
            self.loss(s, &data.loss);
            // Merge batches and anchors by seq so the order stays ascending.
            let (mut i, mut k) = (0, 0);
            while i < data.batches.len() || k < data.anchors.len() {
                let take_batch = k >= data.anchors.len()
                    || (i < data.batches.len() && data.batches[i].seq < data.anchors[k].seq);
                if take_batch {
                    self.batch(s, &data.batches[i]);
                    i += 1;
                } else {
                    let x = data.anchors[k];
                    self.anchor(s, x.seq, x);
                    k += 1;
                }
            }
        }
    }

    /// True when the last chunk added was a footer.
    pub fn footer_last(&self) -> bool {
        self.footer_last
    }

    /// Streams declared or carrying records so far.
    pub fn n_streams(&self) -> usize {
        self.streams.len()
    }

    /// Packet observations added so far (duplicates included).
    pub fn n_obs(&self) -> usize {
        self.streams.iter().map(|a| a.ipids.len()).sum()
    }

    /// Sorts, deduplicates, calibrates and lays out the index. Each stream's
    /// accumulator is freed as soon as it is copied, so peak memory is the
    /// index plus the largest stream.
    pub(crate) fn finish(
        mut self,
        nominal_hz: f64,
    ) -> Result<(Built, Vec<HostClock>), DiagnoseError> {
        let t0 = std::time::Instant::now();
        crate::progress::lap(t0, "  index: finish");
        // Pass 1 (streams in parallel): order every stream by seq and drop
        // duplicates, and collect what the skeleton trace (clock, DAG,
        // losses) needs.
        let pass1: Vec<(u64, tracefile::StreamData)> = self
            .streams
            .par_iter_mut()
            .enumerate()
            .map(|(id, a)| {
                let dups = sort_dedup(a);
                // Both kinds are ascending now: merge them without allocating.
                let (bs, xs) = (&a.b_seq, &a.anchors);
                let (mut i, mut k) = (0, 0);
                let seqs = std::iter::from_fn(|| {
                    let batch = match (bs.get(i), xs.get(k)) {
                        (None, None) => return None,
                        (Some(_), None) => true,
                        (None, Some(_)) => false,
                        (Some(&b), Some(x)) => b < x.0,
                    };
                    if batch {
                        i += 1;
                        Some((bs[i - 1], a.b_tsc[i - 1]))
                    } else {
                        k += 1;
                        Some((xs[k - 1].0, xs[k - 1].1.tsc))
                    }
                });
                let loss_windows = tracefile::loss_windows_from(id as StreamId, seqs, &a.loss);
                let data = tracefile::StreamData {
                    info: a.info.clone(),
                    batches: Vec::new(),
                    anchors: a.anchors.iter().map(|(_, x)| *x).collect(),
                    loss: a.loss,
                    loss_windows,
                };
                (dups, data)
            })
            .collect();
        let mut skeleton_streams = Vec::with_capacity(pass1.len());
        for (dups, data) in pass1 {
            self.duplicates += dups;
            skeleton_streams.push(data);
        }
        let skeleton = Trace {
            meta: self.meta.take().unwrap_or_default(),
            streams: skeleton_streams,
            report: tracefile::ReadReport::default(),
        };
        crate::progress::lap(t0, "  index: pass 1");
        let clocks = calibrate(&skeleton, nominal_hz);
        let n_streams = self.streams.len();
        let n_batches: usize = self.streams.iter().map(|a| a.b_seq.len()).sum();
        let n_obs: usize = self.streams.iter().map(|a| a.ipids.len()).sum();
        if n_obs >= NONE as usize || n_batches >= NONE as usize {
            return Err(DiagnoseError::TooLarge {
                what: "packet observations",
                count: n_obs as u64,
            });
        }
        // Each stream's slice of every array is known up front, so streams
        // are laid out in parallel, each accumulator freed once copied.
        let mut stream_batches = Vec::with_capacity(n_streams + 1);
        let mut stream_obs0 = Vec::with_capacity(n_streams + 1);
        let (mut nb, mut no) = (0u32, 0u32);
        for a in &self.streams {
            stream_batches.push(nb);
            stream_obs0.push(no);
            nb += a.b_seq.len() as u32;
            no += a.ipids.len() as u32;
        }
        stream_batches.push(nb);
        stream_obs0.push(no);
        let mut ix = Index {
            stream_node: vec![NONE; n_streams],
            stream_dir: skeleton
                .streams
                .iter()
                .map(|d| d.info.as_ref().map_or(Direction::Rx, |i| i.direction))
                .collect(),
            stream_batches,
            batch_time: vec![0; n_batches],
            batch_obs: vec![0; n_batches + 1],
            batch_requested: vec![0; n_batches],
            batch_seq: vec![0; n_batches],
            batch_stream: vec![0; n_batches],
            obs_ipid: vec![0; n_obs],
            obs_batch: vec![0; n_obs],
            clamped_times: 0,
            duplicates_dropped: self.duplicates,
        };
        ix.batch_obs[n_batches] = n_obs as u32;
        crate::progress::lap(t0, "  index: arrays allocated");
        let accs = std::mem::take(&mut self.streams);
        let nbs: Vec<usize> = accs.iter().map(|a| a.b_seq.len()).collect();
        let nos: Vec<usize> = accs.iter().map(|a| a.ipids.len()).collect();
        let work: Vec<_> = accs
            .into_iter()
            .zip(split_mut(&mut ix.batch_time, &nbs))
            .zip(split_mut(&mut ix.batch_obs[..n_batches], &nbs))
            .zip(split_mut(&mut ix.batch_requested, &nbs))
            .zip(split_mut(&mut ix.batch_seq, &nbs))
            .zip(split_mut(&mut ix.batch_stream, &nbs))
            .zip(split_mut(&mut ix.obs_ipid, &nos))
            .zip(split_mut(&mut ix.obs_batch, &nos))
            .enumerate()
            .map(|(s, (((((((a, bt), bo), br), bs), bst), oi), ob))| {
                (s, a, bt, bo, br, bs, bst, oi, ob)
            })
            .collect();
        let sb = &ix.stream_batches;
        let (skel, clocks_ref, so0) = (&skeleton, &clocks, &stream_obs0);
        type Tuples = Vec<(u32, u16, collector::FiveTuple)>;
        let per_stream: Vec<(u64, Tuples)> = work
            .into_par_iter()
            .map(|(s, mut a, bt, bo, br, bs, bst, oi, ob)| {
                let cal = skel.streams[s]
                    .info
                    .as_ref()
                    .and_then(|i| clocks_ref.iter().find(|c| c.host == i.host))
                    .map(|c| c.calibration);
                let (b0, o0) = (sb[s], so0[s]);
                let mut clamped = 0u64;
                let mut last = i64::MIN;
                for k in 0..a.b_seq.len() {
                    let t = match cal {
                        Some(c) => c.to_ns(a.b_tsc[k]).round() as i64,
                        None => a.b_tsc[k] as i64,
                    };
                    let t = if t < last {
                        clamped += 1;
                        last
                    } else {
                        t
                    };
                    last = t;
                    bt[k] = t;
                    let start = a.b_off[k] as usize;
                    let end = a.b_off.get(k + 1).map_or(a.ipids.len(), |&e| e as usize);
                    bo[k] = o0 + start as u32;
                    ob[start..end].fill(b0 + k as u32);
                }
                br.copy_from_slice(&a.b_req);
                bs.copy_from_slice(&a.b_seq);
                bst.fill(s as u32);
                oi.copy_from_slice(&a.ipids);
                // Batch index → observation, in place (no copy).
                let mut tuples = std::mem::take(&mut a.tuples);
                for e in &mut tuples {
                    e.0 = o0 + a.b_off[e.0 as usize] + e.1 as u32;
                }
                (clamped, tuples)
            })
            .collect();
        crate::progress::lap(t0, "  index: laid out");
        let mut stream_tuples = Vec::with_capacity(n_streams);
        for (c, t) in per_stream {
            ix.clamped_times += c;
            stream_tuples.push(t);
        }
        Ok((
            Built {
                skeleton,
                ix,
                stream_tuples,
            },
            clocks,
        ))
    }
}

/// Splits `v` into consecutive mutable slices of the given lengths.
pub(crate) fn split_mut<'a, T>(mut v: &'a mut [T], lens: &[usize]) -> Vec<&'a mut [T]> {
    let mut out = Vec::with_capacity(lens.len());
    for &n in lens {
        let (head, tail) = std::mem::take(&mut v).split_at_mut(n);
        out.push(head);
        v = tail;
    }
    out
}

/// Sorts a stream's batches and anchors by seq (stable: the first copy of a
/// seq wins) and drops repeated seqs across both kinds. Returns the number
/// of records dropped. Batch ipids are compacted into the new order and
/// tuples re-pointed at the kept batches.
fn sort_dedup(a: &mut StreamAcc) -> u64 {
    if a.ascending {
        return 0;
    }
    // (seq, arrival rank, is_anchor, index)
    let mut order: Vec<(u64, u32, bool, u32)> = Vec::with_capacity(a.b_seq.len() + a.anchors.len());
    // Arrival rank is not tracked across kinds; batches first, then
    // anchors, is what the assembler's stable sort yields only when a seq
    // is not shared by both kinds — which a valid writer never produces.
    order.extend(
        a.b_seq
            .iter()
            .enumerate()
            .map(|(i, &s)| (s, i as u32, false, i as u32)),
    );
    order.extend(
        a.anchors
            .iter()
            .enumerate()
            .map(|(i, (s, _))| (*s, (a.b_seq.len() + i) as u32, true, i as u32)),
    );
    order.sort_unstable_by_key(|e| (e.0, e.1));
    let before = order.len();
    order.dedup_by_key(|e| e.0);
    let dropped = (before - order.len()) as u64;
    let mut new_of_old = vec![NONE; a.b_seq.len()];
    let (mut seq, mut tsc, mut req, mut off, mut ipids) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut anchors = Vec::new();
    for &(_, _, is_anchor, i) in &order {
        let i = i as usize;
        if is_anchor {
            anchors.push(a.anchors[i]);
            continue;
        }
        new_of_old[i] = seq.len() as u32;
        seq.push(a.b_seq[i]);
        tsc.push(a.b_tsc[i]);
        req.push(a.b_req[i]);
        off.push(ipids.len() as u32);
        let end = a.b_off.get(i + 1).map_or(a.ipids.len(), |&e| e as usize);
        ipids.extend_from_slice(&a.ipids[a.b_off[i] as usize..end]);
    }
    let mut tuples: Vec<(u32, u16, collector::FiveTuple)> = a
        .tuples
        .iter()
        .filter(|t| new_of_old[t.0 as usize] != NONE)
        .map(|&(b, i, t)| (new_of_old[b as usize], i, t))
        .collect();
    tuples.sort_by_key(|t| (t.0, t.1));
    a.b_seq = seq;
    a.b_tsc = tsc;
    a.b_req = req;
    a.b_off = off;
    a.ipids = ipids;
    a.anchors = anchors;
    a.tuples = tuples;
    a.ascending = true;
    dropped
}
