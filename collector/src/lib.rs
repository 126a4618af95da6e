//! # collector — Microscope's record model and shared-memory ring protocol
//!
//! This crate is the one definition of what a hook point records and how it
//! travels from an NF process to the dumper.
//!
//! - [`record`]: per-batch rx/tx records (TSC timestamp, requested burst size,
//!   IPIDs, optional 5-tuples), clock anchors, and per-cause loss counters.
//!   Every record carries a per-stream sequence number, so gaps (loss) and
//!   duplicates are detectable by any reader.
//! - [`meta`]: stream identity (NF, type, role, port, queue, direction, host)
//!   and the NF graph, as written into a trace's metadata section.
//! - [`units`]: the one duration parser (`300us`, `1.5ms`, `5s`).
//! - [`clock`]: ticks → nanoseconds calibrated from anchors in the data, never
//!   from a nominal TSC frequency alone.
//!
//! Invariants: sequence numbers on one stream start at 0 and grow by exactly
//! one per record the producer *offered*; loss counters only grow; a batch
//! smaller than its requested burst size means the queue was emptied.

pub mod clock;
pub mod meta;
pub mod record;
pub mod ring;
pub mod units;

pub use clock::Calibration;
pub use meta::{Edge, NfSpec, StreamInfo, Topology, TraceMeta};
pub use record::{
    BatchRecord, ClockAnchor, Direction, FiveTuple, LossCounters, PacketSlot, Record, Role,
    StreamId,
};
