//! # tracefile — the trace file Microscope writes and reads
//!
//! API CONTRACT (fixed; other crates code against it — implementation in progress):
//!
//! Writing: [`TraceWriter`] takes [`collector::TraceMeta`] up front, stream
//! declarations as streams appear, then records, either as explicit chunks
//! ([`TraceWriter::write_chunk`]) or buffered per stream ([`TraceWriter::push`]).
//! [`TraceWriter::finish`] writes the footer (clean exit only).
//!
//! Reading: [`read_trace`] returns a [`Trace`]: validated records grouped per
//! stream in sequence order, plus a [`ReadReport`] of what was skipped.

use collector::{BatchRecord, ClockAnchor, LossCounters, Record, StreamId, StreamInfo, TraceMeta};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// All records of one stream, validated, in ascending sequence order with
/// duplicates removed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamData {
    pub info: Option<StreamInfo>,
    pub batches: Vec<BatchRecord>,
    pub anchors: Vec<ClockAnchor>,
    /// Final cumulative loss counters seen for the stream.
    pub loss: LossCounters,
    /// Every loss as a window in time.
    pub loss_windows: Vec<LossWindow>,
}

/// "`count` records lost on stream `stream` between `after_tsc` and `before_tsc`".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LossWindow {
    pub stream: StreamId,
    /// Sequence numbers `first_seq..=last_seq` are missing.
    pub first_seq: u64,
    pub last_seq: u64,
    /// TSC of the last record before the gap, if any.
    pub after_tsc: Option<u64>,
    /// TSC of the first record after the gap, if any.
    pub before_tsc: Option<u64>,
}

impl LossWindow {
    pub fn count(&self) -> u64 {
        self.last_seq - self.first_seq + 1
    }
}

/// A whole trace in memory.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub meta: TraceMeta,
    /// Indexed by [`StreamId`].
    pub streams: Vec<StreamData>,
    pub report: ReadReport,
}

/// What the reader saw besides records.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadReport {
    pub bytes: u64,
    pub chunks: u64,
    /// Regions that were not accepted (salvage mode), with the reason.
    pub skipped: Vec<Skipped>,
    /// True when a valid footer closed the file (clean writer exit).
    pub clean_footer: bool,
    /// Records seen more than once (e.g. across a dumper restart) and dropped.
    pub duplicates_dropped: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub offset: u64,
    pub len: u64,
    pub reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// Any damage is an error.
    Strict,
    /// Return every complete, valid chunk; report what was skipped.
    Salvage,
}

/// Typed reader/writer errors; every variant names the file and offset.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{path}: I/O error at offset {offset}: {source}")]
    Io {
        path: PathBuf,
        offset: u64,
        source: std::io::Error,
    },
    #[error("{path}: truncated at offset {offset}: expected {expected}")]
    Truncated {
        path: PathBuf,
        offset: u64,
        expected: String,
    },
    #[error("{path}: corrupt chunk at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("{path}: unsupported trace version {found} at offset {offset} (this reader supports {supported})")]
    UnsupportedVersion {
        path: PathBuf,
        offset: u64,
        found: u32,
        supported: u32,
    },
    #[error("{path}: not a Microscope trace (bad magic at offset 0)")]
    NotATrace { path: PathBuf },
}

/// Reads a whole trace file.
pub fn read_trace(path: &Path, mode: ReadMode) -> Result<Trace, TraceError> {
    let _ = (path, mode);
    unimplemented!("tracefile reader: in progress")
}

/// Writes a trace: header + metadata, stream declarations, chunks, footer.
pub struct TraceWriter<W: Write> {
    out: W,
}

impl TraceWriter<std::fs::File> {
    /// Creates (truncates) `path` and writes the header and metadata.
    pub fn create(path: &Path, meta: &TraceMeta) -> Result<Self, TraceError> {
        let _ = (path, meta);
        unimplemented!("tracefile writer: in progress")
    }
}

impl<W: Write> TraceWriter<W> {
    /// Starts a trace on any writer.
    pub fn new(out: W, meta: &TraceMeta) -> Result<Self, TraceError> {
        let _ = meta;
        Ok(TraceWriter { out })
    }

    /// Declares a stream; must precede its first chunk.
    pub fn declare_stream(&mut self, info: &StreamInfo) -> Result<(), TraceError> {
        let _ = info;
        unimplemented!()
    }

    /// Writes one chunk holding `records` of `stream` (ascending seq) and the
    /// stream's cumulative loss counters as of the last record.
    pub fn write_chunk(
        &mut self,
        stream: StreamId,
        records: &[Record],
        loss: &LossCounters,
    ) -> Result<(), TraceError> {
        let _ = (stream, records, loss, &mut self.out);
        unimplemented!()
    }

    /// Buffers a record for `stream`; a chunk is written when the stream's
    /// buffer is full. `loss` is the stream's cumulative counters now.
    pub fn push(
        &mut self,
        stream: StreamId,
        record: Record,
        loss: &LossCounters,
    ) -> Result<(), TraceError> {
        let _ = (stream, record, loss);
        unimplemented!()
    }

    /// Writes every buffered record as chunks.
    pub fn flush(&mut self) -> Result<(), TraceError> {
        unimplemented!()
    }

    /// Flushes, writes the footer, and returns the writer.
    pub fn finish(self) -> Result<W, TraceError> {
        unimplemented!()
    }
}
