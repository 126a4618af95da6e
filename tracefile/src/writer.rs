//! [`TraceWriter`]: header + metadata, stream declarations, record chunks,
//! footer; crash-safe appends and recovery from failed writes.

use crate::format::{self, ChunkHeader, CodecState, Footer};
use crate::reader::{ChunkBody, TraceReader};
use crate::{ReadMode, Skipped, TraceError};
use collector::{LossCounters, Record, StreamId, StreamInfo, TraceMeta};
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Records per stream buffered by [`TraceWriter::push`] before a chunk is
/// written, unless changed with [`TraceWriter::set_chunk_records`].
pub const DEFAULT_CHUNK_RECORDS: usize = 4096;

/// Cuts a writer's output back to a chunk boundary after a failed write, so
/// the next chunk starts where the last good one ended.
///
/// Implemented for [`File`] (truncate + seek; the writer holds a duplicate
/// handle sharing the file offset). Tests implement it for fault-injecting
/// sinks.
pub trait Rollback: Send {
    /// Makes the output exactly `len` bytes long, positioned at its end.
    fn rollback(&mut self, len: u64) -> std::io::Result<()>;
}

impl Rollback for File {
    fn rollback(&mut self, len: u64) -> std::io::Result<()> {
        self.set_len(len)?;
        self.seek(SeekFrom::Start(len))?;
        Ok(())
    }
}

/// Counters of one writer session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Chunks written successfully (all kinds).
    pub chunks: u64,
    /// Records written successfully.
    pub records: u64,
    /// Packets in the batch records written successfully.
    pub packets: u64,
    /// Records that were handed to the writer but lost because a write
    /// failed (the caller adds them to `lost_write`).
    pub lost_records: u64,
    /// Records not written because their stream already had that sequence
    /// number on file (e.g. re-delivered after a dumper restart).
    pub duplicates_skipped: u64,
}

/// What [`TraceWriter::open_append`] found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendReport {
    /// Where appending resumes: the end of the last valid chunk.
    pub valid_end: u64,
    /// Bytes cut off the tail (a torn chunk, garbage, or the old footer).
    pub truncated_bytes: u64,
    /// True when the old file ended with a footer that was removed.
    pub footer_removed: bool,
    /// Damaged regions before `valid_end` (left in place; the salvage
    /// reader skips them, the strict reader rejects the file).
    pub skipped: Vec<Skipped>,
    /// Valid chunks found.
    pub chunks: u64,
}

#[derive(Default)]
struct StreamState {
    info: Option<StreamInfo>,
    /// Highest sequence number on file for the stream.
    last_written: Option<u64>,
    pending: Vec<Record>,
    /// Latest counters handed in for the stream.
    pending_loss: LossCounters,
    /// Counters carried by the last chunk written for the stream.
    written_loss: LossCounters,
}

/// Writes a trace: header + metadata, stream declarations, chunks, footer.
///
/// Every chunk is prepared in memory and handed to the output in one
/// `write_all`. If that fails, the writer rolls the output back to the end
/// of the last good chunk (when it has a [`Rollback`]: always for files from
/// [`TraceWriter::create`] / [`TraceWriter::open_append`]) and returns
/// [`TraceError::WriteFailed`] with the number of records lost; it can then
/// keep going. Without a rollback, a failed write leaves the writer broken.
pub struct TraceWriter<W: Write> {
    out: W,
    name: PathBuf,
    offset: u64,
    rollback: Option<Box<dyn Rollback>>,
    streams: Vec<StreamState>,
    chunk_records: usize,
    buf: Vec<u8>,
    scratch: Vec<u8>,
    stats: WriterStats,
    broken: Option<String>,
    append: Option<AppendReport>,
}

impl TraceWriter<File> {
    /// Creates (truncates) `path` and writes the header and metadata.
    pub fn create(path: &Path, meta: &TraceMeta) -> Result<Self, TraceError> {
        let io = |e| TraceError::Io {
            path: path.to_path_buf(),
            offset: 0,
            source: e,
        };
        let file = File::create(path).map_err(io)?;
        let dup = file.try_clone().map_err(io)?;
        let mut w = TraceWriter::blank(file, path.to_path_buf(), Some(Box::new(dup)));
        w.start(meta)?;
        Ok(w)
    }

    /// Opens an existing trace to continue it (e.g. a restarted dumper).
    ///
    /// Validates every chunk, cuts off a torn or invalid tail after the last
    /// valid chunk (and a footer, since the file is open again), remembers
    /// the declared streams and each stream's last sequence number, and
    /// positions the writer at the end. See [`TraceWriter::append_report`].
    ///
    /// Errors: [`TraceError::Io`]; [`TraceError::NotATrace`],
    /// [`TraceError::Truncated`] (no complete header or no metadata chunk:
    /// nothing to continue — use [`TraceWriter::open_or_create`]),
    /// [`TraceError::UnsupportedVersion`].
    pub fn open_append(path: &Path) -> Result<Self, TraceError> {
        let io = |offset, e| TraceError::Io {
            path: path.to_path_buf(),
            offset,
            source: e,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| io(0, e))?;
        let file_len = file.metadata().map_err(|e| io(0, e))?.len();
        let mut streams: Vec<StreamState> = Vec::new();
        let mut report = AppendReport::default();
        let mut saw_meta = false;
        let mut footer_at: Option<u64> = None;
        {
            let mut rd = TraceReader::new(
                std::io::BufReader::with_capacity(1 << 20, &file),
                path,
                ReadMode::Salvage,
            )?;
            if !rd.header_ok() {
                return Err(TraceError::NotATrace {
                    path: path.to_path_buf(),
                });
            }
            report.valid_end = format::FILE_HEADER_LEN as u64;
            while let Some(chunk) = rd.next_chunk()? {
                report.chunks += 1;
                report.valid_end = chunk.offset + chunk.len;
                footer_at = None;
                match chunk.body {
                    ChunkBody::Meta(_) => saw_meta = true,
                    ChunkBody::Stream(info) => {
                        let s = slot(&mut streams, info.id);
                        if s.info.is_none() {
                            s.info = Some(info);
                        }
                    }
                    ChunkBody::Records(rc) => {
                        let s = slot(&mut streams, rc.stream);
                        if !rc.records.is_empty() {
                            s.last_written =
                                Some(s.last_written.map_or(rc.last_seq, |l| l.max(rc.last_seq)));
                        }
                        s.written_loss = max_loss(&s.written_loss, &rc.loss);
                        s.pending_loss = s.written_loss;
                    }
                    ChunkBody::Footer(_) => footer_at = Some(chunk.offset),
                    ChunkBody::Unknown { .. } => {}
                }
            }
            report.skipped = rd
                .skipped()
                .iter()
                .filter(|s| s.offset < report.valid_end)
                .cloned()
                .collect();
        }
        if !saw_meta {
            return Err(TraceError::Truncated {
                path: path.to_path_buf(),
                offset: format::FILE_HEADER_LEN as u64,
                expected: "a metadata chunk (nothing to continue)".into(),
            });
        }
        if let Some(at) = footer_at {
            report.footer_removed = true;
            report.valid_end = at;
        }
        report.truncated_bytes = file_len.saturating_sub(report.valid_end);
        let mut dup = file.try_clone().map_err(|e| io(0, e))?;
        dup.rollback(report.valid_end)
            .map_err(|e| io(report.valid_end, e))?;
        let mut w = TraceWriter::blank(file, path.to_path_buf(), Some(Box::new(dup)));
        w.offset = report.valid_end;
        w.streams = streams;
        w.append = Some(report);
        Ok(w)
    }

    /// [`TraceWriter::open_append`] when `path` holds a trace with a header
    /// and metadata; otherwise (missing, empty, torn before the metadata
    /// ended) [`TraceWriter::create`]. Other errors (a file that is not a
    /// trace, an unsupported version) are returned, never overwritten.
    pub fn open_or_create(path: &Path, meta: &TraceMeta) -> Result<Self, TraceError> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return TraceWriter::create(path, meta)
            }
            Err(e) => {
                return Err(TraceError::Io {
                    path: path.to_path_buf(),
                    offset: 0,
                    source: e,
                })
            }
            Ok(_) => {}
        }
        match TraceWriter::open_append(path) {
            Err(TraceError::Truncated { .. }) => TraceWriter::create(path, meta),
            other => other,
        }
    }

    /// Flushes and fsyncs the file (data only).
    pub fn sync(&mut self) -> Result<(), TraceError> {
        self.out.flush().map_err(|e| self.io_err(e))?;
        self.out.sync_data().map_err(|e| self.io_err(e))
    }
}

fn max_loss(a: &LossCounters, b: &LossCounters) -> LossCounters {
    LossCounters {
        lost_full: a.lost_full.max(b.lost_full),
        lost_too_big: a.lost_too_big.max(b.lost_too_big),
        lost_write: a.lost_write.max(b.lost_write),
        lost_corrupt: a.lost_corrupt.max(b.lost_corrupt),
    }
}

fn slot(streams: &mut Vec<StreamState>, id: StreamId) -> &mut StreamState {
    let i = id as usize;
    if streams.len() <= i {
        streams.resize_with(i + 1, StreamState::default);
    }
    &mut streams[i]
}

impl<W: Write> TraceWriter<W> {
    /// Starts a trace on any writer. Without a [`Rollback`], a failed write
    /// leaves the writer broken (see [`TraceWriter::with_rollback`]).
    pub fn new(out: W, meta: &TraceMeta) -> Result<Self, TraceError> {
        let mut w = TraceWriter::blank(out, PathBuf::from("<writer>"), None);
        w.start(meta)?;
        Ok(w)
    }

    /// Starts a trace on `out`, using `rollback` to cut torn chunks off after
    /// a failed write. `name` is used in error messages.
    pub fn with_rollback(
        out: W,
        name: impl Into<PathBuf>,
        rollback: Box<dyn Rollback>,
        meta: &TraceMeta,
    ) -> Result<Self, TraceError> {
        let mut w = TraceWriter::blank(out, name.into(), Some(rollback));
        w.start(meta)?;
        Ok(w)
    }

    fn blank(out: W, name: PathBuf, rollback: Option<Box<dyn Rollback>>) -> Self {
        TraceWriter {
            out,
            name,
            offset: 0,
            rollback,
            streams: Vec::new(),
            chunk_records: DEFAULT_CHUNK_RECORDS,
            buf: Vec::new(),
            scratch: Vec::new(),
            stats: WriterStats::default(),
            broken: None,
            append: None,
        }
    }

    fn start(&mut self, meta: &TraceMeta) -> Result<(), TraceError> {
        let json = serde_json::to_vec(meta).map_err(|e| self.invalid(format!("metadata: {e}")))?;
        if json.len() > format::MAX_PAYLOAD {
            return Err(self.invalid(format!("metadata is {} bytes", json.len())));
        }
        self.buf.clear();
        self.buf.extend_from_slice(&format::FILE_MAGIC);
        self.buf.extend_from_slice(&format::VERSION.to_le_bytes());
        self.buf.extend_from_slice(&0u32.to_le_bytes());
        let h = ChunkHeader {
            kind: format::KIND_META,
            ..Default::default()
        };
        format::frame_chunk(&mut self.buf, h, |o| o.extend_from_slice(&json));
        self.emit(0, 0)?;
        self.stats.chunks += 1;
        Ok(())
    }

    fn invalid(&self, reason: String) -> TraceError {
        TraceError::InvalidInput {
            path: self.name.clone(),
            reason,
        }
    }

    fn io_err(&self, e: std::io::Error) -> TraceError {
        TraceError::Io {
            path: self.name.clone(),
            offset: self.offset,
            source: e,
        }
    }

    /// Writes `self.buf` (whole chunks) with one `write_all`; on failure
    /// rolls back to `self.offset` and reports `records` lost.
    fn emit(&mut self, records: u64, packets: u64) -> Result<(), TraceError> {
        if let Some(reason) = &self.broken {
            self.stats.lost_records += records;
            return Err(TraceError::WriterBroken {
                path: self.name.clone(),
                reason: reason.clone(),
                lost_records: records,
            });
        }
        match self.out.write_all(&self.buf) {
            Ok(()) => {
                self.offset += self.buf.len() as u64;
                self.stats.records += records;
                self.stats.packets += packets;
                Ok(())
            }
            Err(source) => {
                self.stats.lost_records += records;
                let recovered = match &mut self.rollback {
                    Some(rb) => match rb.rollback(self.offset) {
                        Ok(()) => true,
                        Err(e) => {
                            self.broken =
                                Some(format!("rollback to offset {} failed: {e}", self.offset));
                            false
                        }
                    },
                    None => {
                        self.broken = Some(format!(
                            "a write failed after offset {} and the output cannot be rolled back",
                            self.offset
                        ));
                        false
                    }
                };
                Err(TraceError::WriteFailed {
                    path: self.name.clone(),
                    offset: self.offset,
                    lost_records: records,
                    recovered,
                    source,
                })
            }
        }
    }

    /// Records per stream that [`TraceWriter::push`] buffers before writing
    /// a chunk (at least 1, at most 65536).
    pub fn set_chunk_records(&mut self, n: usize) {
        self.chunk_records = n.clamp(1, format::MAX_RECORDS_PER_CHUNK);
    }

    /// Declares a stream; must precede its first chunk. Declaring again with
    /// identical info is a no-op (so a restarted dumper may redeclare);
    /// different info for a declared id is [`TraceError::InvalidInput`].
    pub fn declare_stream(&mut self, info: &StreamInfo) -> Result<(), TraceError> {
        if info.id >= format::MAX_STREAMS {
            return Err(self.invalid(format!(
                "stream id {} exceeds the maximum {}",
                info.id,
                format::MAX_STREAMS - 1
            )));
        }
        if let Some(old) = self
            .streams
            .get(info.id as usize)
            .and_then(|s| s.info.as_ref())
        {
            if old == info {
                return Ok(());
            }
            return Err(self.invalid(format!(
                "stream {} already declared as {old:?}, now {info:?}",
                info.id
            )));
        }
        let json =
            serde_json::to_vec(info).map_err(|e| self.invalid(format!("stream info: {e}")))?;
        self.buf.clear();
        let h = ChunkHeader {
            kind: format::KIND_STREAM,
            stream: info.id,
            ..Default::default()
        };
        format::frame_chunk(&mut self.buf, h, |o| o.extend_from_slice(&json));
        self.emit(0, 0)?;
        self.stats.chunks += 1;
        slot(&mut self.streams, info.id).info = Some(info.clone());
        Ok(())
    }

    fn check_declared(&self, stream: StreamId) -> Result<(), TraceError> {
        match self
            .streams
            .get(stream as usize)
            .and_then(|s| s.info.as_ref())
        {
            Some(_) => Ok(()),
            None => Err(self.invalid(format!("stream {stream} was not declared"))),
        }
    }

    /// Writes one chunk holding `records` of `stream` (ascending seq) and the
    /// stream's cumulative loss counters as of the last record.
    ///
    /// Records whose seq is not above the stream's last seq on file are
    /// skipped as duplicates ([`WriterStats::duplicates_skipped`]). More
    /// records than fit one chunk (65536 or 16 MiB) are split into several.
    ///
    /// Errors: [`TraceError::InvalidInput`] (undeclared stream, seq not
    /// strictly ascending, malformed record — nothing written),
    /// [`TraceError::WriteFailed`] / [`TraceError::WriterBroken`] (records
    /// lost, counted in the error and in [`WriterStats::lost_records`]).
    pub fn write_chunk(
        &mut self,
        stream: StreamId,
        records: &[Record],
        loss: &LossCounters,
    ) -> Result<(), TraceError> {
        self.check_declared(stream)?;
        for w in records.windows(2) {
            if w[1].seq() <= w[0].seq() {
                return Err(self.invalid(format!(
                    "stream {stream}: seq {} follows seq {} (must ascend strictly)",
                    w[1].seq(),
                    w[0].seq()
                )));
            }
        }
        for r in records {
            format::validate_record(r)
                .map_err(|e| self.invalid(format!("stream {stream}: {e}")))?;
        }
        let last = self.streams[stream as usize].last_written;
        let skip = match last {
            Some(l) => records.partition_point(|r| r.seq() <= l),
            None => 0,
        };
        self.stats.duplicates_skipped += skip as u64;
        let mut rest = &records[skip..];
        let mut result = Ok(());
        while !rest.is_empty() {
            let n = self.encode_chunk(stream, rest, loss);
            let packets = rest[..n]
                .iter()
                .map(|r| match r {
                    Record::Batch(b) => b.ipids.len() as u64,
                    Record::Anchor(_) => 0,
                })
                .sum();
            match self.emit(n as u64, packets) {
                Ok(()) => {
                    self.stats.chunks += 1;
                    let s = &mut self.streams[stream as usize];
                    s.last_written = Some(rest[n - 1].seq());
                    s.written_loss = *loss;
                    s.pending_loss = *loss;
                }
                Err(e) => {
                    if result.is_ok() {
                        result = Err(e);
                    } else if let Err(
                        TraceError::WriteFailed { lost_records, .. }
                        | TraceError::WriterBroken { lost_records, .. },
                    ) = &mut result
                    {
                        *lost_records += n as u64;
                    }
                }
            }
            rest = &rest[n..];
        }
        result
    }

    /// Encodes a prefix of `records` (non-empty, validated) into `self.buf`
    /// as one chunk; returns how many records it holds.
    fn encode_chunk(&mut self, stream: StreamId, records: &[Record], loss: &LossCounters) -> usize {
        self.buf.clear();
        let first_seq = records[0].seq();
        let mut n = 0;
        let mut h = ChunkHeader {
            kind: format::KIND_RECORDS,
            stream,
            first_seq,
            loss: *loss,
            ..Default::default()
        };
        let mut payload = std::mem::take(&mut self.scratch);
        payload.clear();
        let mut st = CodecState::new(first_seq);
        for r in records.iter().take(format::MAX_RECORDS_PER_CHUNK) {
            let before = payload.len();
            format::encode_record(&mut payload, &mut st, r);
            if payload.len() > format::MAX_PAYLOAD && n > 0 {
                // This record starts the next chunk (with fresh delta state).
                payload.truncate(before);
                break;
            }
            n += 1;
        }
        h.last_seq = records[n - 1].seq();
        h.record_count = n as u32;
        format::frame_chunk(&mut self.buf, h, |o| o.extend_from_slice(&payload));
        self.scratch = payload;
        n
    }

    /// Buffers a record for `stream`; a chunk is written when the stream's
    /// buffer is full. `loss` is the stream's cumulative counters now.
    ///
    /// A record whose seq is not above everything buffered or on file for
    /// the stream is dropped as a duplicate. Errors as
    /// [`TraceWriter::write_chunk`]; on a failed write the buffered records
    /// are gone (counted as lost).
    pub fn push(
        &mut self,
        stream: StreamId,
        record: Record,
        loss: &LossCounters,
    ) -> Result<(), TraceError> {
        self.check_declared(stream)?;
        format::validate_record(&record)
            .map_err(|e| self.invalid(format!("stream {stream}: {e}")))?;
        let s = &mut self.streams[stream as usize];
        let high = s.pending.last().map(|r| r.seq()).or(s.last_written);
        if high.is_some_and(|h| record.seq() <= h) {
            self.stats.duplicates_skipped += 1;
            return Ok(());
        }
        s.pending.push(record);
        s.pending_loss = *loss;
        if s.pending.len() >= self.chunk_records {
            return self.flush_stream(stream);
        }
        Ok(())
    }

    /// Records `loss` as the stream's current cumulative counters without a
    /// record (e.g. the ring dropped everything lately); the next chunk of
    /// the stream carries them, or [`TraceWriter::flush`] writes them in a
    /// loss-only chunk.
    pub fn set_loss(&mut self, stream: StreamId, loss: &LossCounters) -> Result<(), TraceError> {
        self.check_declared(stream)?;
        self.streams[stream as usize].pending_loss = *loss;
        Ok(())
    }

    /// Writes a loss-only chunk (no records) carrying the stream's
    /// cumulative counters, so losses after the stream's last record (or on
    /// a stream that never delivered one) reach the file.
    pub fn write_loss(&mut self, stream: StreamId, loss: &LossCounters) -> Result<(), TraceError> {
        self.check_declared(stream)?;
        self.buf.clear();
        let h = ChunkHeader {
            kind: format::KIND_RECORDS,
            stream,
            loss: *loss,
            ..Default::default()
        };
        format::frame_chunk(&mut self.buf, h, |_| {});
        self.emit(0, 0)?;
        self.stats.chunks += 1;
        let s = &mut self.streams[stream as usize];
        s.written_loss = *loss;
        s.pending_loss = *loss;
        Ok(())
    }

    fn flush_stream(&mut self, stream: StreamId) -> Result<(), TraceError> {
        let s = &mut self.streams[stream as usize];
        if s.pending.is_empty() {
            if s.info.is_some() && s.pending_loss != s.written_loss {
                let loss = s.pending_loss;
                return self.write_loss(stream, &loss);
            }
            return Ok(());
        }
        let pending = std::mem::take(&mut s.pending);
        let loss = s.pending_loss;
        let r = self.write_chunk(stream, &pending, &loss);
        // Keep the allocation for the next batch of records.
        let s = &mut self.streams[stream as usize];
        s.pending = pending;
        s.pending.clear();
        r
    }

    /// Writes every buffered record as chunks, then flushes the output.
    /// All streams are attempted; the first error is returned (with the
    /// records lost by every failed stream added up).
    pub fn flush(&mut self) -> Result<(), TraceError> {
        let mut result = Ok(());
        for id in 0..self.streams.len() as StreamId {
            if let Err(e) = self.flush_stream(id) {
                match (&mut result, e) {
                    (Ok(()), e) => result = Err(e),
                    (
                        Err(
                            TraceError::WriteFailed { lost_records, .. }
                            | TraceError::WriterBroken { lost_records, .. },
                        ),
                        TraceError::WriteFailed {
                            lost_records: more, ..
                        }
                        | TraceError::WriterBroken {
                            lost_records: more, ..
                        },
                    ) => *lost_records += more,
                    _ => {}
                }
            }
        }
        result?;
        self.out.flush().map_err(|e| self.io_err(e))
    }

    /// Flushes, writes the footer, and returns the output. It does not
    /// fsync: for a file, call [`TraceWriter::sync`] first, or `sync_all`
    /// on the returned [`File`].
    pub fn finish(mut self) -> Result<W, TraceError> {
        self.flush()?;
        let footer = Footer {
            chunks: self.stats.chunks,
            records: self.stats.records,
            offset: self.offset,
        };
        self.buf.clear();
        let h = ChunkHeader {
            kind: format::KIND_FOOTER,
            ..Default::default()
        };
        format::frame_chunk(&mut self.buf, h, |o| footer.emit(o));
        self.emit(0, 0)?;
        self.out.flush().map_err(|e| self.io_err(e))?;
        Ok(self.out)
    }

    /// Bytes written so far (the file offset of the next chunk).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Counters of this writer session.
    pub fn stats(&self) -> WriterStats {
        self.stats
    }

    /// Highest seq of `stream` on file (including what an appended file
    /// already held), not counting buffered records.
    pub fn last_seq(&self, stream: StreamId) -> Option<u64> {
        self.streams
            .get(stream as usize)
            .and_then(|s| s.last_written)
    }

    /// The declared info of `stream`.
    pub fn stream_info(&self, stream: StreamId) -> Option<&StreamInfo> {
        self.streams
            .get(stream as usize)
            .and_then(|s| s.info.as_ref())
    }

    /// Declared streams, in id order.
    pub fn declared_streams(&self) -> impl Iterator<Item = &StreamInfo> {
        self.streams.iter().filter_map(|s| s.info.as_ref())
    }

    /// Records buffered by [`TraceWriter::push`] and not yet written.
    pub fn pending_records(&self) -> usize {
        self.streams.iter().map(|s| s.pending.len()).sum()
    }

    /// What [`TraceWriter::open_append`] found, for writers it opened.
    pub fn append_report(&self) -> Option<&AppendReport> {
        self.append.as_ref()
    }

    /// The underlying output.
    pub fn get_ref(&self) -> &W {
        &self.out
    }
}
