//! # tracefile — the trace file Microscope writes and reads
//!
//! A trace is an append-only sequence of self-framing *chunks* after a
//! 16-byte file header (magic `MSCTRACE`, format version). The byte layout is
//! specified in `docs/trace-format.md`; [`format`](mod@format) is its one definition in
//! code.
//!
//! - **Writing** ([`TraceWriter`]): metadata ([`collector::TraceMeta`]) goes
//!   first, stream declarations whenever a stream appears, then record
//!   chunks, either explicit ([`TraceWriter::write_chunk`]) or buffered per
//!   stream ([`TraceWriter::push`]). [`TraceWriter::finish`] writes a footer
//!   on clean exit only. [`TraceWriter::open_append`] continues a file left
//!   by a killed writer, cutting off its torn tail.
//! - **Reading** ([`read_trace`], [`read_trace_bytes`], or the streaming
//!   [`TraceReader`]) yields validated records only, grouped per stream in
//!   ascending sequence order, duplicates dropped and counted, with every
//!   loss as a [`LossWindow`]. [`ReadMode::Salvage`] returns every complete
//!   valid chunk of a damaged file and reports what it skipped. For bulk
//!   consumers, [`TraceReader::next_chunk_into`] decodes a record chunk
//!   column-wise into reused [`RecordColumns`] (no allocation per record or
//!   per chunk), with the same checks and errors.
//!
//! Invariants:
//! - A chunk is accepted only if its magic, length (≤ 16 MiB payload), CRC32C
//!   and repeated length all check out and its payload decodes exactly; a
//!   torn or corrupted chunk is never half-accepted.
//! - Every chunk is handed to the OS in one write; after a failed write the
//!   writer cuts the output back to the last chunk boundary (or refuses to go
//!   on) and reports how many records were lost.
//! - Hostile input never panics the reader, and the memory it allocates per
//!   chunk is bounded by a small multiple of the chunk's capped size.
//! - Readers never depend on the footer.
#![deny(unsafe_code)]

pub mod assemble;
pub mod format;
pub mod reader;
pub mod summary;
pub mod writer;

pub use assemble::{loss_windows_from, TraceAssembler};
pub use format::RecordColumns;
pub use reader::{Chunk, ChunkBody, RecordChunk, TraceReader};
pub use writer::{AppendReport, Rollback, TraceWriter, WriterStats, DEFAULT_CHUNK_RECORDS};

use collector::{BatchRecord, ClockAnchor, LossCounters, StreamId, StreamInfo, TraceMeta};
use serde::{Deserialize, Serialize};
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
    /// The writer was given something it cannot write; nothing was written.
    #[error("{path}: invalid input to the trace writer: {reason}")]
    InvalidInput { path: PathBuf, reason: String },
    /// A chunk write failed; its `lost_records` records are not in the file.
    /// With `recovered` the output was cut back to the last chunk boundary
    /// and the writer can go on; otherwise it is broken.
    #[error("{path}: write failed at offset {offset}, {lost_records} records lost ({}): {source}",
        if *recovered { "rolled back, writer usable" } else { "writer broken" })]
    WriteFailed {
        path: PathBuf,
        offset: u64,
        lost_records: u64,
        recovered: bool,
        source: std::io::Error,
    },
    /// An earlier failure left the writer unable to write safely.
    #[error("{path}: trace writer is broken ({reason}); {lost_records} records lost")]
    WriterBroken {
        path: PathBuf,
        reason: String,
        lost_records: u64,
    },
}

impl TraceError {
    /// Records lost by a failed write (for the caller's `lost_write`).
    pub fn lost_records(&self) -> u64 {
        match self {
            TraceError::WriteFailed { lost_records, .. }
            | TraceError::WriterBroken { lost_records, .. } => *lost_records,
            _ => 0,
        }
    }
}

/// Reads a whole trace file.
///
/// Errors: see [`TraceReader::new`] and [`TraceReader::next_chunk`]; every
/// error names `path` and the offset of the problem.
pub fn read_trace(path: &Path, mode: ReadMode) -> Result<Trace, TraceError> {
    let file = std::fs::File::open(path).map_err(|source| TraceError::Io {
        path: path.to_path_buf(),
        offset: 0,
        source,
    })?;
    let reader = std::io::BufReader::with_capacity(1 << 16, file);
    read_from(reader, path, mode)
}

/// Reads a trace held in memory (tests, fuzzing); errors name `<memory>`.
pub fn read_trace_bytes(bytes: &[u8], mode: ReadMode) -> Result<Trace, TraceError> {
    read_from(bytes, Path::new("<memory>"), mode)
}

/// Reads a whole trace from any reader; `name` is used in errors.
pub fn read_from<R: std::io::Read>(
    src: R,
    name: &Path,
    mode: ReadMode,
) -> Result<Trace, TraceError> {
    let mut rd = TraceReader::new(src, name, mode)?;
    let mut asm = TraceAssembler::new();
    while let Some(chunk) = rd.next_chunk()? {
        asm.chunk(chunk);
    }
    let report = ReadReport {
        bytes: rd.offset(),
        chunks: rd.chunks(),
        skipped: rd.skipped().to_vec(),
        clean_footer: false,
        duplicates_dropped: 0,
    };
    Ok(asm.finish(report))
}

impl Trace {
    /// Total packets in all batch records.
    pub fn packets(&self) -> u64 {
        self.streams
            .iter()
            .flat_map(|s| s.batches.iter())
            .map(|b| b.ipids.len() as u64)
            .sum()
    }

    /// Total records (batches and anchors).
    pub fn records(&self) -> u64 {
        self.streams
            .iter()
            .map(|s| (s.batches.len() + s.anchors.len()) as u64)
            .sum()
    }

    /// The stream with id `id`, if present.
    pub fn stream(&self, id: StreamId) -> Option<&StreamData> {
        self.streams.get(id as usize)
    }
}
