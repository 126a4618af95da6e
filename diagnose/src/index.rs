//! Dense, flat arrays over every packet observation of a trace.
//!
//! An *observation* is one packet in one batch record of one stream. All
//! observations are numbered `0..n_obs` stream by stream, batch by batch, so
//! the observations of a stream and of a batch are contiguous ranges (CSR
//! layout). Times are nanoseconds on the calibrated clock of the stream's
//! host (see [`calibrate`]).

use crate::{DiagnoseError, PacketSlot};
use collector::{Calibration, Direction, StreamId};
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
}

impl Index {
    /// Builds the index. `node_of` maps a stream to its DAG node (or
    /// [`NONE`] for streams without metadata).
    pub fn build(
        trace: &Trace,
        clocks: &[HostClock],
        node_of: &[u32],
    ) -> Result<Index, DiagnoseError> {
        let n_streams = trace.streams.len();
        let n_batches: usize = trace.streams.iter().map(|s| s.batches.len()).sum();
        let n_obs: usize = trace
            .streams
            .iter()
            .flat_map(|s| s.batches.iter())
            .map(|b| b.ipids.len())
            .sum();
        if n_obs >= NONE as usize || n_batches >= NONE as usize {
            return Err(DiagnoseError::TooLarge {
                what: "packet observations",
                count: n_obs as u64,
            });
        }
        let mut ix = Index {
            stream_node: node_of.to_vec(),
            stream_dir: Vec::with_capacity(n_streams),
            stream_batches: Vec::with_capacity(n_streams + 1),
            batch_time: Vec::with_capacity(n_batches),
            batch_obs: Vec::with_capacity(n_batches + 1),
            batch_requested: Vec::with_capacity(n_batches),
            batch_seq: Vec::with_capacity(n_batches),
            batch_stream: Vec::with_capacity(n_batches),
            obs_ipid: Vec::with_capacity(n_obs),
            obs_batch: Vec::with_capacity(n_obs),
            clamped_times: 0,
        };
        for (s, data) in trace.streams.iter().enumerate() {
            ix.stream_batches.push(ix.batch_time.len() as u32);
            let dir = data.info.as_ref().map_or(Direction::Rx, |i| i.direction);
            ix.stream_dir.push(dir);
            let cal = data
                .info
                .as_ref()
                .and_then(|i| clocks.iter().find(|c| c.host == i.host))
                .map(|c| c.calibration);
            let mut last = i64::MIN;
            for b in &data.batches {
                let t = match cal {
                    Some(c) => c.to_ns(b.tsc).round() as i64,
                    None => b.tsc as i64,
                };
                let t = if t < last {
                    ix.clamped_times += 1;
                    last
                } else {
                    t
                };
                last = t;
                let bi = ix.batch_time.len() as u32;
                ix.batch_time.push(t);
                ix.batch_obs.push(ix.obs_ipid.len() as u32);
                ix.batch_requested.push(b.requested);
                ix.batch_seq.push(b.seq);
                ix.batch_stream.push(s as u32);
                ix.obs_ipid.extend_from_slice(&b.ipids);
                ix.obs_batch.extend(std::iter::repeat_n(bi, b.ipids.len()));
            }
        }
        ix.stream_batches.push(ix.batch_time.len() as u32);
        ix.batch_obs.push(ix.obs_ipid.len() as u32);
        Ok(ix)
    }

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
