//! The shared-memory ring protocol between an NF's hook points and the
//! dumper.
//!
//! One ring file per (NF process, port, queue, direction); one producer (the
//! NF: the C shim through `shim-c/include/microscope_ring.h`, or the Rust
//! [`Producer`] here, byte-for-byte the same), one consumer (the dumper,
//! through [`Consumer`]). The layout is defined once in the C header and
//! mirrored in [`layout`], with size and offset asserts on both sides.
//!
//! Protocol, in the house vocabulary:
//! - The producer *reserves* space at `head`, writes the record, *commits*
//!   (release-store of `head`). It never blocks, never allocates on the hot
//!   path: a record that does not fit the free space is dropped and counted in
//!   `lost_full`; one larger than `max_record_size` in `lost_too_big`. Every
//!   record offered consumes a sequence number, dropped or not, so a gap in
//!   the sequence numbers is exactly the loss.
//! - The consumer *drains* records after its private read position
//!   (acquire-load of `head`), copies them out, validates them, and only
//!   *commits* (release-store of `tail`) once the caller made them durable.
//!   `tail` lives in the shared header, so a restarted consumer resumes at the
//!   last commit and re-reads what was drained but not yet durable; readers
//!   drop the resulting duplicates by sequence number.
//! - Trust: ring files are created owner-only (0600), or 0660 with a
//!   configured group; the consumer refuses files owned by untrusted users or
//!   writable by group (unless configured) or world, and says why.
//! - Hostile input: the NF can write anything into its ring. The consumer
//!   validates the header at open, `head` on every drain, and every record's
//!   length, type, flags, counts and sequence number before use; a violation
//!   poisons that ring (reported, skipped), never the consumer process.

#[cfg(ms_ring_c)]
pub mod c_producer;
pub mod codec;
mod consumer;
pub mod layout;
mod producer;
mod shm;

pub use codec::BatchView;
pub use consumer::{Committer, Consumer, Observer, RingCounters, TrustPolicy};
pub use producer::{Producer, ProducerCounters, PutOutcome, RingConfig};

use crate::meta::StreamInfo;
use crate::record::{Direction, Role, StreamId};
use std::path::PathBuf;

/// File name suffix of ring files; the dumper picks up every `*.ring`.
pub const RING_SUFFIX: &str = ".ring";

/// Who wrote a ring: the stream identity stored in its header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingIdentity {
    /// NF instance name (at most 63 bytes of UTF-8).
    pub nf: String,
    /// NF type (at most 63 bytes).
    pub nf_type: String,
    pub role: Role,
    pub port: u16,
    pub queue: u16,
    pub direction: Direction,
    /// Host name (at most 63 bytes).
    pub host: String,
    /// Batch records carry full 5-tuples.
    pub carries_tuples: bool,
    /// Producer process id.
    pub pid: u32,
    /// CLOCK_REALTIME at creation, ns; tells ring instances apart.
    pub created_ns: u64,
    /// Nominal TSC frequency, when the producer knew it.
    pub tsc_hz_hint: Option<u64>,
}

impl RingIdentity {
    /// The trace's stream declaration for this ring under stream id `id`.
    pub fn stream_info(&self, id: StreamId) -> StreamInfo {
        StreamInfo {
            id,
            nf: self.nf.clone(),
            nf_type: self.nf_type.clone(),
            role: self.role,
            port: self.port,
            queue: self.queue,
            direction: self.direction,
            host: self.host.clone(),
            carries_tuples: self.carries_tuples,
        }
    }
}

/// Wire encoding of [`Role`].
pub fn role_code(r: Role) -> u8 {
    match r {
        Role::Source => layout::ROLE_SOURCE,
        Role::Nf => layout::ROLE_NF,
        Role::Sink => layout::ROLE_SINK,
    }
}

/// Inverse of [`role_code`].
pub fn role_from_code(c: u8) -> Option<Role> {
    match c {
        layout::ROLE_SOURCE => Some(Role::Source),
        layout::ROLE_NF => Some(Role::Nf),
        layout::ROLE_SINK => Some(Role::Sink),
        _ => None,
    }
}

/// Wire encoding of [`Direction`].
pub fn direction_code(d: Direction) -> u8 {
    match d {
        Direction::Rx => layout::DIR_RX,
        Direction::Tx => layout::DIR_TX,
    }
}

/// Inverse of [`direction_code`].
pub fn direction_from_code(c: u8) -> Option<Direction> {
    match c {
        layout::DIR_RX => Some(Direction::Rx),
        layout::DIR_TX => Some(Direction::Tx),
        _ => None,
    }
}

/// Ring errors. Every variant names the ring file; data errors also the byte
/// offset in the file and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    #[error("{path}: another consumer is draining this ring (flock held)")]
    Busy { path: PathBuf },
    #[error("{path}: refusing untrusted ring: {reason}")]
    Untrusted { path: PathBuf, reason: String },
    #[error("{path}: bad ring header at offset {offset}: {reason}")]
    BadHeader {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("{path}: corrupt ring data at file offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("{path}: ring skipped after an earlier error: {reason}")]
    Poisoned { path: PathBuf, reason: String },
    #[error("{path}: invalid ring configuration: {reason}")]
    InvalidConfig { path: PathBuf, reason: String },
    #[error("{path}: invalid record: {reason}")]
    InvalidInput { path: PathBuf, reason: String },
}

/// The error type of this module.
pub type Result<T, E = RingError> = std::result::Result<T, E>;
