//! Ground truth of a simulation: injected faults, background events,
//! counterfactual victim labels, and every packet's true journey.
//!
//! `truth.json` holds everything but the per-packet data; the per-packet
//! data (which packet occupies every slot of every batch record, and each
//! packet's flow, send time, fate) lives in `journeys.bin`, little-endian:
//!
//! ```text
//! magic "MSJRNY01" (8 bytes)
//! u32 n_streams, u32 n_packets, u32 n_flows, u32 n_injected_flows
//! n_flows × flow (13 bytes, FiveTuple::to_bytes), then n_injected_flows × flow
//! n_packets × packet: u32 flow (bit 31 set: injected flow), u64 sent_ns,
//!     u64 end_ns (delivery at the sink, or drop time), u16 ipid,
//!     u16 origin (0 background, k+1 injected by fault k),
//!     u16 lost_at (instance index, 0xffff when delivered)   = 28 bytes
//! n_streams × stream: u32 stream id, u32 n_batches, u32 n_slots, u32 n_anchors,
//!     n_anchors × u64 anchor seq (the seqs batches skip),
//!     n_batches × u16 batch size,
//!     n_slots × packet id as a zigzag LEB128 varint of the delta to the
//!     previous id on the stream (ids are nearly increasing: ~1 byte each)
//! u32 n_order, n_order × (u32 stream id, u8 is_rx)   — streams in DAG order
//! ```

use collector::{FiveTuple, StreamId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

pub use crate::scenario::FaultKind;

/// One packet observation: batch record `seq` of `stream`, position `idx`.
pub use collector::PacketSlot;

/// One injected problem.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    pub id: u32,
    pub kind: FaultKind,
    /// The culprit instance (interrupt, bug); `None` for bursts.
    pub nf: Option<String>,
    /// Culprit flows as the source sent them (burst, bug triggering flows).
    pub flows: Vec<FiveTuple>,
    /// The same flows as they reach the sink (after NAT rewriting), i.e. as
    /// recorded on the sink's rx stream.
    pub flows_at_sink: Vec<FiveTuple>,
    /// When the injection acts: first to last injected packet sent, or the
    /// stall's start and end.
    pub start_ns: u64,
    pub end_ns: u64,
    /// Packets sent in `[window_start_ns, window_end_ns)` may be labelled
    /// victims of this fault.
    pub window_start_ns: u64,
    pub window_end_ns: u64,
    pub injected_packets: u64,
    pub victims: u64,
    pub params: BTreeMap<String, serde_json::Value>,
}

/// A natural perturbation (not a fault): a short stall of an instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackgroundEvent {
    pub kind: String,
    pub nf: String,
    pub start_ns: u64,
    pub end_ns: u64,
}

/// A packet the injection made late or lost (counterfactual label).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelledVictim {
    pub fault_id: u32,
    /// The victim's rx observation at the NF where it waited longest; for a
    /// lost packet the last slot it was seen in (an upstream tx).
    pub slot: PacketSlot,
    /// That NF (for a lost packet: the NF whose queue dropped it).
    pub nf: String,
    /// The packet's 5-tuple as sent by the source.
    pub flow: FiveTuple,
    /// End-to-end latency (or time until the drop) in the injected run.
    pub latency_ns: u64,
    /// Time the packet waited in `nf`'s input queue (arrival to dequeue);
    /// 0 for lost packets.
    #[serde(default)]
    pub wait_ns: u64,
    pub lost: bool,
    /// Packet id (index into the journeys' packet table).
    pub packet: u32,
    /// Its end-to-end latency without injections; `None` for injected
    /// packets and packets lost in the baseline.
    pub baseline_latency_ns: Option<u64>,
}

/// Aggregate figures of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TruthStats {
    pub packets: u64,
    pub injected_packets: u64,
    pub delivered: u64,
    pub lost: u64,
    pub baseline_packets: u64,
    pub baseline_lost: u64,
    pub baseline_latency_p50_ns: u64,
    pub baseline_latency_p99_ns: u64,
    pub baseline_latency_max_ns: u64,
    /// Per instance: packets dropped, batches, mean batch, utilization.
    pub nfs: Vec<NfStats>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NfStats {
    pub nf: String,
    pub packets: u64,
    pub dropped: u64,
    pub batches: u64,
    pub mean_batch: f64,
    /// Busy share of the simulated duration.
    pub utilization: f64,
}

/// Per-packet truth.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketTruth {
    /// Index into `flows`, or (bit 31 set) into `injected_flows`.
    pub flow: u32,
    pub sent_ns: u64,
    /// Sink arrival, or drop time when `lost_at` is set.
    pub end_ns: u64,
    pub ipid: u16,
    /// 0 background, k+1 injected by fault k.
    pub origin: u16,
    /// Instance index whose queue dropped it; `u16::MAX` when delivered.
    pub lost_at: u16,
}

impl PacketTruth {
    pub fn lost(&self) -> bool {
        self.lost_at != u16::MAX
    }
}

/// Which packet occupies each slot of one stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamSlots {
    pub stream: StreamId,
    /// First slot (index into `pids`) of each batch record, in order.
    pub starts: Vec<u32>,
    /// Sequence numbers of the stream's clock anchors, ascending: the
    /// sequence numbers batch records do not use.
    pub anchor_seqs: Vec<u64>,
    pub pids: Vec<u32>,
}

impl StreamSlots {
    pub fn n_batches(&self) -> usize {
        self.starts.len()
    }

    /// Packet ids of batch `b`.
    pub fn batch(&self, b: usize) -> &[u32] {
        let start = self.starts[b] as usize;
        let end = self
            .starts
            .get(b + 1)
            .map_or(self.pids.len(), |e| *e as usize);
        &self.pids[start..end]
    }

    /// Sequence number of batch `b`.
    pub fn seq_of(&self, b: usize) -> u64 {
        // Anchor k precedes batch index `anchor_seqs[k] - k`.
        // `anchor_seqs[k] - k` is non-decreasing: binary search.
        let (mut lo, mut hi) = (0usize, self.anchor_seqs.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.anchor_seqs[mid] - mid as u64 <= b as u64 {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        b as u64 + lo as u64
    }

    /// The batch with sequence number `seq`, if it is a batch.
    pub fn batch_of_seq(&self, seq: u64) -> Option<usize> {
        let before = self.anchor_seqs.partition_point(|a| *a < seq);
        if self.anchor_seqs.get(before) == Some(&seq) {
            return None;
        }
        let b = (seq - before as u64) as usize;
        (b < self.n_batches()).then_some(b)
    }

    /// `(seq, packet ids)` of every batch in order.
    pub fn batches(&self) -> impl Iterator<Item = (u64, &[u32])> + '_ {
        let mut ai = 0usize;
        let mut seq = 0u64;
        (0..self.n_batches()).map(move |b| {
            while self.anchor_seqs.get(ai) == Some(&seq) {
                ai += 1;
                seq += 1;
            }
            let out = (seq, self.batch(b));
            seq += 1;
            out
        })
    }
}

/// Per-packet data (`journeys.bin`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Journeys {
    pub flows: Vec<FiveTuple>,
    pub injected_flows: Vec<FiveTuple>,
    pub packets: Vec<PacketTruth>,
    pub streams: Vec<StreamSlots>,
    /// Streams in DAG order (source tx, each instance's rx then tx in
    /// topological order, sink rx), with `true` for rx streams.
    pub order: Vec<(StreamId, bool)>,
}

/// Everything the evaluation needs to score a diagnosis.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    pub scenario: String,
    pub seed: u64,
    pub duration_ns: u64,
    /// The victim threshold rule (`p99`, `500us`) and its value.
    pub threshold_rule: String,
    pub threshold_ns: u64,
    pub faults: Vec<Fault>,
    pub background: Vec<BackgroundEvent>,
    pub victims: Vec<LabelledVictim>,
    pub stats: TruthStats,
    #[serde(skip)]
    pub journeys: Journeys,
}

/// Errors reading or writing truth files.
#[derive(Debug, thiserror::Error)]
pub enum TruthError {
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid truth.json: {source}")]
    Json {
        path: std::path::PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: bad journeys file at offset {offset}: expected {expected}")]
    Format {
        path: std::path::PathBuf,
        offset: u64,
        expected: String,
    },
}

impl Truth {
    /// The 5-tuple (as sent) of a flow id of the packet table.
    pub fn flow_tuple(&self, flow: u32) -> FiveTuple {
        let j = &self.journeys;
        if flow & 0x8000_0000 != 0 {
            j.injected_flows[(flow & 0x7fff_ffff) as usize]
        } else {
            j.flows[flow as usize]
        }
    }

    /// The packet observed at `slot`, if any.
    pub fn packet_at(&self, slot: &PacketSlot) -> Option<u32> {
        let s = self
            .journeys
            .streams
            .iter()
            .find(|s| s.stream == slot.stream)?;
        let b = s.batch_of_seq(slot.seq)?;
        s.batch(b).get(slot.idx as usize).copied()
    }

    /// Every observation of packet `pid`, in path order. Scans all streams
    /// (O(trace)); for bulk use see [`Truth::true_upstream_pairs`].
    pub fn journey(&self, pid: u32) -> Vec<PacketSlot> {
        let mut out = Vec::new();
        for (sid, _) in &self.journeys.order {
            let Some(s) = self.journeys.streams.iter().find(|s| s.stream == *sid) else {
                continue;
            };
            for (seq, pids) in s.batches() {
                for (k, p) in pids.iter().enumerate() {
                    if *p == pid {
                        out.push(PacketSlot {
                            stream: *sid,
                            seq,
                            idx: k as u16,
                        });
                    }
                }
            }
        }
        out
    }

    /// For every rx observation at an NF or the sink, the tx observation of
    /// the same packet at its upstream neighbour: `(rx, upstream tx)`.
    /// This is what a correct reconstruction must find.
    pub fn true_upstream_pairs(&self) -> Vec<(PacketSlot, PacketSlot)> {
        let j = &self.journeys;
        let mut last_tx: Vec<Option<PacketSlot>> = vec![None; j.packets.len()];
        let mut out = Vec::new();
        for (sid, is_rx) in &j.order {
            let Some(s) = j.streams.iter().find(|s| s.stream == *sid) else {
                continue;
            };
            for (seq, pids) in s.batches() {
                for (k, p) in pids.iter().enumerate() {
                    let here = PacketSlot {
                        stream: *sid,
                        seq,
                        idx: k as u16,
                    };
                    if *is_rx {
                        if let Some(up) = last_tx[*p as usize] {
                            out.push((here, up));
                        }
                    } else {
                        last_tx[*p as usize] = Some(here);
                    }
                }
            }
        }
        out
    }

    /// The true upstream tx slot of each given rx slot (`None` for slots
    /// that are not rx observations of a packet with an upstream tx). One
    /// pass over the journeys; memory proportional to the packets, not to
    /// the observations — use this instead of [`Truth::true_upstream`] to
    /// score a sample of a paper-scale reconstruction.
    pub fn true_upstream_of(&self, rx: &[PacketSlot]) -> Vec<Option<PacketSlot>> {
        let j = &self.journeys;
        let mut want: HashMap<PacketSlot, Vec<usize>> = HashMap::with_capacity(rx.len());
        for (k, s) in rx.iter().enumerate() {
            want.entry(*s).or_default().push(k);
        }
        let mut out = vec![None; rx.len()];
        let mut last_tx: Vec<(u32, u64, u16)> = vec![(u32::MAX, 0, 0); j.packets.len()];
        for (sid, is_rx) in &j.order {
            let Some(s) = j.streams.iter().find(|s| s.stream == *sid) else {
                continue;
            };
            for (seq, pids) in s.batches() {
                for (k, p) in pids.iter().enumerate() {
                    if *is_rx {
                        let here = PacketSlot {
                            stream: *sid,
                            seq,
                            idx: k as u16,
                        };
                        if let Some(ks) = want.get(&here) {
                            let (st, sq, ix) = last_tx[*p as usize];
                            if st != u32::MAX {
                                for q in ks {
                                    out[*q] = Some(PacketSlot {
                                        stream: st,
                                        seq: sq,
                                        idx: ix,
                                    });
                                }
                            }
                        }
                    } else {
                        last_tx[*p as usize] = (*sid, seq, k as u16);
                    }
                }
            }
        }
        out
    }

    /// [`Truth::true_upstream_pairs`] as a map from rx slot to upstream tx slot.
    pub fn true_upstream(&self) -> HashMap<PacketSlot, PacketSlot> {
        self.true_upstream_pairs().into_iter().collect()
    }

    /// Writes `truth.json` and `journeys.bin` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), TruthError> {
        let jp = dir.join("truth.json");
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TruthError::Io { path, source }
        };
        let f = std::fs::File::create(&jp).map_err(io(&jp))?;
        let mut w = std::io::BufWriter::new(f);
        serde_json::to_writer_pretty(&mut w, self).map_err(|source| TruthError::Json {
            path: jp.clone(),
            source,
        })?;
        w.write_all(b"\n").map_err(io(&jp))?;
        w.flush().map_err(io(&jp))?;
        let bp = dir.join("journeys.bin");
        let f = std::fs::File::create(&bp).map_err(io(&bp))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        self.journeys.write_to(&mut w).map_err(io(&bp))?;
        w.flush().map_err(io(&bp))
    }

    /// Reads `truth.json` and `journeys.bin` from `dir` (journeys optional).
    pub fn load(dir: &Path) -> Result<Truth, TruthError> {
        let jp = dir.join("truth.json");
        let text = std::fs::read(&jp).map_err(|source| TruthError::Io {
            path: jp.clone(),
            source,
        })?;
        let mut t: Truth = serde_json::from_slice(&text).map_err(|source| TruthError::Json {
            path: jp.clone(),
            source,
        })?;
        let bp = dir.join("journeys.bin");
        if bp.exists() {
            let data = std::fs::read(&bp).map_err(|source| TruthError::Io {
                path: bp.clone(),
                source,
            })?;
            t.journeys =
                Journeys::parse(&data).map_err(|(offset, expected)| TruthError::Format {
                    path: bp.clone(),
                    offset,
                    expected,
                })?;
        }
        Ok(t)
    }
}

const MAGIC: &[u8; 8] = b"MSJRNY01";

impl Journeys {
    /// Serializes in the `journeys.bin` format (module docs).
    pub fn write_to<W: Write>(&self, w: &mut W) -> std::io::Result<()> {
        w.write_all(MAGIC)?;
        for n in [
            self.streams.len(),
            self.packets.len(),
            self.flows.len(),
            self.injected_flows.len(),
        ] {
            w.write_all(&(n as u32).to_le_bytes())?;
        }
        for f in self.flows.iter().chain(&self.injected_flows) {
            w.write_all(&f.to_bytes())?;
        }
        for p in &self.packets {
            let mut b = [0u8; 28];
            b[0..4].copy_from_slice(&p.flow.to_le_bytes());
            b[4..12].copy_from_slice(&p.sent_ns.to_le_bytes());
            b[12..20].copy_from_slice(&p.end_ns.to_le_bytes());
            b[20..22].copy_from_slice(&p.ipid.to_le_bytes());
            b[22..24].copy_from_slice(&p.origin.to_le_bytes());
            b[24..26].copy_from_slice(&p.lost_at.to_le_bytes());
            w.write_all(&b)?;
        }
        for s in &self.streams {
            w.write_all(&s.stream.to_le_bytes())?;
            w.write_all(&(s.n_batches() as u32).to_le_bytes())?;
            w.write_all(&(s.pids.len() as u32).to_le_bytes())?;
            w.write_all(&(s.anchor_seqs.len() as u32).to_le_bytes())?;
            let mut buf =
                Vec::with_capacity(s.anchor_seqs.len() * 8 + s.n_batches() * 2 + s.pids.len() * 2);
            for a in &s.anchor_seqs {
                buf.extend_from_slice(&a.to_le_bytes());
            }
            for b in 0..s.n_batches() {
                buf.extend_from_slice(&(s.batch(b).len() as u16).to_le_bytes());
            }
            let mut prev = 0i64;
            for p in &s.pids {
                let d = *p as i64 - prev;
                prev = *p as i64;
                let mut z = ((d << 1) ^ (d >> 63)) as u64;
                loop {
                    let byte = (z & 0x7f) as u8;
                    z >>= 7;
                    if z == 0 {
                        buf.push(byte);
                        break;
                    }
                    buf.push(byte | 0x80);
                }
            }
            w.write_all(&buf)?;
        }
        w.write_all(&(self.order.len() as u32).to_le_bytes())?;
        for (s, rx) in &self.order {
            w.write_all(&s.to_le_bytes())?;
            w.write_all(&[*rx as u8])?;
        }
        Ok(())
    }

    /// Parses `journeys.bin`; errors give the offset and what was expected.
    pub fn parse(data: &[u8]) -> Result<Journeys, (u64, String)> {
        let mut r = Cursor { d: data, o: 0 };
        let magic = r.take(8, "magic MSJRNY01")?;
        if magic != MAGIC {
            return Err((0, "magic MSJRNY01".into()));
        }
        let n_streams = r.u32()? as usize;
        let n_packets = r.u32()? as usize;
        let n_flows = r.u32()? as usize;
        let n_inj = r.u32()? as usize;
        let tuple = |r: &mut Cursor| -> Result<FiveTuple, (u64, String)> {
            let b = r.take(13, "a 13-byte 5-tuple")?;
            Ok(FiveTuple::from_bytes(b.try_into().expect("13 bytes")))
        };
        let flows = (0..n_flows)
            .map(|_| tuple(&mut r))
            .collect::<Result<Vec<_>, _>>()?;
        let injected_flows = (0..n_inj)
            .map(|_| tuple(&mut r))
            .collect::<Result<Vec<_>, _>>()?;
        let mut packets = Vec::with_capacity(n_packets.min(data.len() / 28));
        for _ in 0..n_packets {
            let b = r.take(28, "a 28-byte packet entry")?;
            packets.push(PacketTruth {
                flow: u32::from_le_bytes(b[0..4].try_into().expect("4")),
                sent_ns: u64::from_le_bytes(b[4..12].try_into().expect("8")),
                end_ns: u64::from_le_bytes(b[12..20].try_into().expect("8")),
                ipid: u16::from_le_bytes([b[20], b[21]]),
                origin: u16::from_le_bytes([b[22], b[23]]),
                lost_at: u16::from_le_bytes([b[24], b[25]]),
            });
        }
        let mut streams = Vec::with_capacity(n_streams.min(65536));
        for _ in 0..n_streams {
            let stream = r.u32()?;
            let nb = r.u32()? as usize;
            let ns = r.u32()? as usize;
            let na = r.u32()? as usize;
            let mut anchor_seqs = Vec::with_capacity(na.min(data.len() / 8));
            for _ in 0..na {
                anchor_seqs.push(r.u64()?);
            }
            let lens = r.take(nb * 2, "batch sizes of a stream")?;
            let mut starts = Vec::with_capacity(nb);
            let mut acc = 0u64;
            for c in lens.chunks_exact(2) {
                starts.push(acc as u32);
                acc += u16::from_le_bytes([c[0], c[1]]) as u64;
            }
            if acc != ns as u64 {
                return Err((
                    r.o as u64,
                    format!("batch sizes summing to {ns} slots, found {acc}"),
                ));
            }
            let mut pids = Vec::with_capacity(ns.min(data.len()));
            let mut prev = 0i64;
            for _ in 0..ns {
                let mut z = 0u64;
                let mut shift = 0;
                loop {
                    let b = r.take(1, "a packet-id varint")?[0];
                    if shift > 63 {
                        return Err((r.o as u64, "a varint of at most 10 bytes".into()));
                    }
                    z |= ((b & 0x7f) as u64) << shift;
                    shift += 7;
                    if b & 0x80 == 0 {
                        break;
                    }
                }
                let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
                prev += d;
                if !(0..=u32::MAX as i64).contains(&prev) {
                    return Err((r.o as u64, "a packet id in 0..2^32".into()));
                }
                pids.push(prev as u32);
            }
            streams.push(StreamSlots {
                stream,
                starts,
                anchor_seqs,
                pids,
            });
        }
        let n_order = r.u32()? as usize;
        let mut order = Vec::with_capacity(n_order.min(65536));
        for _ in 0..n_order {
            let s = r.u32()?;
            let rx = r.take(1, "an rx flag")?[0] != 0;
            order.push((s, rx));
        }
        Ok(Journeys {
            flows,
            injected_flows,
            packets,
            streams,
            order,
        })
    }
}

struct Cursor<'a> {
    d: &'a [u8],
    o: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], (u64, String)> {
        if self.d.len() - self.o < n {
            return Err((self.o as u64, what.to_string()));
        }
        let s = &self.d[self.o..self.o + n];
        self.o += n;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, (u64, String)> {
        Ok(u32::from_le_bytes(
            self.take(4, "a u32")?.try_into().expect("4"),
        ))
    }
    fn u64(&mut self) -> Result<u64, (u64, String)> {
        Ok(u64::from_le_bytes(
            self.take(8, "a u64")?.try_into().expect("8"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots() -> StreamSlots {
        // seq: 0 anchor, 1 batch0 [5,6], 2 batch1 [4], 3 anchor, 4 anchor, 5 batch2 [9,7,8]
        StreamSlots {
            stream: 3,
            starts: vec![0, 2, 3],
            anchor_seqs: vec![0, 3, 4],
            pids: vec![5, 6, 4, 9, 7, 8],
        }
    }

    #[test]
    fn batch_seq_mapping_skips_anchors() {
        let s = slots();
        assert_eq!(
            (0..3).map(|b| s.seq_of(b)).collect::<Vec<_>>(),
            vec![1, 2, 5]
        );
        assert_eq!(s.batch_of_seq(0), None);
        assert_eq!(s.batch_of_seq(2), Some(1));
        assert_eq!(s.batch_of_seq(4), None);
        assert_eq!(s.batch_of_seq(5), Some(2));
        assert_eq!(s.batch_of_seq(6), None);
        let all: Vec<(u64, Vec<u32>)> = s.batches().map(|(q, p)| (q, p.to_vec())).collect();
        assert_eq!(all, vec![(1, vec![5, 6]), (2, vec![4]), (5, vec![9, 7, 8])]);
    }

    #[test]
    fn journeys_roundtrip_and_reject_truncation() {
        let j = Journeys {
            flows: vec![FiveTuple {
                src_ip: 1,
                dst_ip: 2,
                src_port: 3,
                dst_port: 4,
                proto: 6,
            }],
            injected_flows: vec![],
            packets: vec![
                PacketTruth {
                    flow: 0,
                    sent_ns: 10,
                    end_ns: 99,
                    ipid: 7,
                    origin: 0,
                    lost_at: u16::MAX
                };
                10
            ],
            streams: vec![slots()],
            order: vec![(3, true)],
        };
        let mut buf = Vec::new();
        j.write_to(&mut buf).unwrap();
        assert_eq!(Journeys::parse(&buf).unwrap(), j);
        let (off, what) = Journeys::parse(&buf[..buf.len() - 3]).unwrap_err();
        assert!(off > 0 && !what.is_empty());
        assert!(Journeys::parse(b"NOTAJRNYxxxx").is_err());
    }
}
