//! The record model: what one hook point observes, independent of how it is
//! carried (shared-memory ring, trace file) or who produced it (the C shim,
//! the simulator, a test).
//!
//! Every record belongs to one *stream*: one (NF process, port, queue,
//! direction). Records on a stream carry a per-stream sequence number that
//! starts at 0 and increases by one per record *offered* by the producer,
//! whether or not it was dropped; a gap in the sequence numbers a reader sees
//! is therefore exactly the records lost, and the loss counters say why.

use serde::{Deserialize, Serialize};

/// Identifies a stream within one trace. Assigned by whoever writes the
/// trace (the dumper or the simulator); dense, starting at 0.
pub type StreamId = u32;

/// One packet observation in a trace: batch record `seq` of `stream`,
/// packet `idx` in that batch. The coordinate the simulator's ground truth
/// and the diagnosis engine's reconstruction both speak.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct PacketSlot {
    pub stream: StreamId,
    pub seq: u64,
    pub idx: u16,
}

/// Transport 5-tuple of an IPv4 packet, addresses and ports in host order.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct FiveTuple {
    pub src_ip: u32,
    pub dst_ip: u32,
    pub src_port: u16,
    pub dst_port: u16,
    /// IP protocol number (6 TCP, 17 UDP, ...).
    pub proto: u8,
}

impl FiveTuple {
    /// Size of the packed wire encoding used by rings and trace chunks.
    pub const WIRE_LEN: usize = 13;

    /// Packs into 13 bytes, little-endian fields in declaration order.
    pub fn to_bytes(&self) -> [u8; Self::WIRE_LEN] {
        let mut b = [0u8; Self::WIRE_LEN];
        b[0..4].copy_from_slice(&self.src_ip.to_le_bytes());
        b[4..8].copy_from_slice(&self.dst_ip.to_le_bytes());
        b[8..10].copy_from_slice(&self.src_port.to_le_bytes());
        b[10..12].copy_from_slice(&self.dst_port.to_le_bytes());
        b[12] = self.proto;
        b
    }

    /// Inverse of [`FiveTuple::to_bytes`].
    pub fn from_bytes(b: &[u8; Self::WIRE_LEN]) -> Self {
        FiveTuple {
            src_ip: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            dst_ip: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            src_port: u16::from_le_bytes([b[8], b[9]]),
            dst_port: u16::from_le_bytes([b[10], b[11]]),
            proto: b[12],
        }
    }
}

impl std::fmt::Display for FiveTuple {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ip = |a: u32| std::net::Ipv4Addr::from(a);
        write!(
            f,
            "{}:{} -> {}:{} proto {}",
            ip(self.src_ip),
            self.src_port,
            ip(self.dst_ip),
            self.dst_port,
            self.proto
        )
    }
}

/// Which side of the NF a stream observes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Packets the NF dequeued from its input queue (rx burst).
    Rx,
    /// Packets the NF handed to the next hop and the driver accepted (tx burst).
    Tx,
}

/// What a stream's owner is in the NF graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A traffic source (generator, ingress): only tx streams.
    Source,
    /// A network function: rx and tx streams.
    Nf,
    /// A traffic sink (egress): only rx streams.
    Sink,
}

/// One rx or tx burst as seen by a hook point.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRecord {
    /// Per-stream sequence number (see module docs).
    pub seq: u64,
    /// Timestamp in TSC ticks of the stream's host (see [`crate::clock`]).
    pub tsc: u64,
    /// Burst size the application asked for (`nb_pkts` of the burst call).
    /// A batch with fewer packets than this means the queue was emptied.
    pub requested: u16,
    /// IPv4 identification field of each packet, in batch order. The batch
    /// size is `ipids.len()`.
    pub ipids: Vec<u16>,
    /// Indices (into `ipids`) of packets that are not IPv4; their `ipids`
    /// entry is 0 and meaningless. Empty in the common case (no allocation).
    pub non_ipv4: Vec<u16>,
    /// Full 5-tuples, one per packet, only on streams configured to carry
    /// them; `None` otherwise.
    pub tuples: Option<Vec<FiveTuple>>,
}

impl BatchRecord {
    /// Number of packets in the batch.
    pub fn len(&self) -> usize {
        self.ipids.len()
    }

    /// True for an empty batch (never recorded by the shim, which skips empty
    /// polls, but representable).
    pub fn is_empty(&self) -> bool {
        self.ipids.is_empty()
    }

    /// True when the batch was smaller than requested: the queue was empty
    /// after this dequeue (the start of a new queuing period, paper §5).
    pub fn emptied_queue(&self) -> bool {
        self.ipids.len() < self.requested as usize
    }
}

/// A pair of simultaneous clock readings, so ticks convert to nanoseconds by
/// calibration from the data instead of from a nominal TSC frequency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockAnchor {
    /// Per-stream sequence number, shared with batch records of the stream.
    pub seq: u64,
    pub tsc: u64,
    /// CLOCK_MONOTONIC in nanoseconds, read next to `tsc`.
    pub mono_ns: u64,
}

/// Anything a stream carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    Batch(BatchRecord),
    Anchor(ClockAnchor),
}

impl Record {
    pub fn seq(&self) -> u64 {
        match self {
            Record::Batch(b) => b.seq,
            Record::Anchor(a) => a.seq,
        }
    }
}

/// Cumulative loss counters of one stream, per cause. They only grow; the
/// trace stores snapshots so a reader can bound each loss in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LossCounters {
    /// Records dropped by the producer because the ring was full.
    pub lost_full: u64,
    /// Records dropped by the producer because they did not fit in a ring slot.
    pub lost_too_big: u64,
    /// Records the consumer read but could not make durable (disk errors).
    pub lost_write: u64,
    /// Records the consumer found invalid in shared memory and discarded.
    pub lost_corrupt: u64,
}

impl LossCounters {
    pub fn total(&self) -> u64 {
        self.lost_full + self.lost_too_big + self.lost_write + self.lost_corrupt
    }
}
