//! [`TraceReader`]: a streaming, validating chunk iterator with salvage.
//!
//! The reader keeps a window of the input in memory: at most one chunk
//! (capped at [`format::MAX_PAYLOAD`] + 80 bytes) plus one read buffer. Every
//! chunk is frame-checked (magic, length cap, CRC32C, repeated length)
//! before its payload is decoded, and decoding is bounded by the payload.
//!
//! Strict mode turns the first problem into an error. Salvage mode records a
//! [`Skipped`] region, scans forward for the next chunk magic, and resumes at
//! the first position where a complete, valid chunk starts.

use crate::format::{self, ChunkHeader, FrameError};
use crate::{ReadMode, Skipped, TraceError};
use collector::{LossCounters, Record, StreamId, StreamInfo, TraceMeta};
use std::io::Read;
use std::path::{Path, PathBuf};

/// A validated record chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordChunk {
    pub stream: StreamId,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Cumulative loss counters of the stream as of `last_seq`.
    pub loss: LossCounters,
    /// Ascending seq, `first_seq..=last_seq` (gaps possible).
    pub records: Vec<Record>,
}

/// The validated content of one chunk.
#[derive(Clone, Debug, PartialEq)]
pub enum ChunkBody {
    Meta(TraceMeta),
    Stream(StreamInfo),
    Records(RecordChunk),
    Footer(format::Footer),
    /// A chunk kind this reader does not know (a newer writer of the same
    /// major version); its frame was valid, its content is ignored.
    Unknown {
        kind: u8,
    },
}

/// One validated chunk and where it was.
#[derive(Clone, Debug, PartialEq)]
pub struct Chunk {
    /// File offset of the chunk's first byte.
    pub offset: u64,
    /// Total length in bytes (header + payload + trailer).
    pub len: u64,
    pub body: ChunkBody,
}

const READ_SIZE: usize = 64 << 10;

/// Streaming reader over any [`Read`]; see the module docs.
pub struct TraceReader<R: Read> {
    src: R,
    name: PathBuf,
    mode: ReadMode,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    base: u64,
    /// Index in `buf` of the next unread byte.
    pos: usize,
    eof: bool,
    done: bool,
    header_ok: bool,
    chunks: u64,
    saw_meta: bool,
    declared: Vec<Option<StreamInfo>>,
    skipped: Vec<Skipped>,
    /// Start offset and reason of the damaged region being skipped.
    skipping: Option<(u64, String)>,
    last_was_footer: bool,
}

impl<R: Read> TraceReader<R> {
    /// Reads and checks the file header.
    ///
    /// Errors: [`TraceError::Io`], [`TraceError::Truncated`] (fewer than 16
    /// bytes), [`TraceError::NotATrace`] (strict mode; salvage mode instead
    /// scans for chunks and fails with it only if it finds none),
    /// [`TraceError::UnsupportedVersion`].
    pub fn new(src: R, name: impl AsRef<Path>, mode: ReadMode) -> Result<Self, TraceError> {
        let mut r = TraceReader {
            src,
            name: name.as_ref().to_path_buf(),
            mode,
            buf: Vec::new(),
            base: 0,
            pos: 0,
            eof: false,
            done: false,
            header_ok: false,
            chunks: 0,
            saw_meta: false,
            declared: Vec::new(),
            skipped: Vec::new(),
            skipping: None,
            last_was_footer: false,
        };
        let have = r.fill(format::FILE_HEADER_LEN)?;
        let head = &r.buf[..have.min(format::FILE_HEADER_LEN)];
        let magic_ok = head[..head.len().min(8)] == format::FILE_MAGIC[..head.len().min(8)];
        if have < format::FILE_HEADER_LEN && magic_ok {
            return Err(TraceError::Truncated {
                path: r.name.clone(),
                offset: 0,
                expected: format!(
                    "a {}-byte file header, the file has {have} bytes",
                    format::FILE_HEADER_LEN
                ),
            });
        }
        if !magic_ok {
            if mode == ReadMode::Strict || have < format::FILE_HEADER_LEN {
                return Err(TraceError::NotATrace { path: r.name });
            }
            r.skipping = Some((0, "bad file magic".into()));
            return Ok(r);
        }
        let version = u32::from_le_bytes([r.buf[8], r.buf[9], r.buf[10], r.buf[11]]);
        if version != format::VERSION {
            return Err(TraceError::UnsupportedVersion {
                path: r.name,
                offset: 8,
                found: version,
                supported: format::VERSION,
            });
        }
        r.header_ok = true;
        r.pos = format::FILE_HEADER_LEN;
        Ok(r)
    }

    /// True when the file header was valid.
    pub fn header_ok(&self) -> bool {
        self.header_ok
    }

    /// Damaged regions skipped so far (salvage mode), plus ignored chunks of
    /// unknown kinds.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Valid chunks returned so far.
    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    /// File offset of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// True when the last chunk returned was a footer.
    pub fn last_was_footer(&self) -> bool {
        self.last_was_footer
    }

    /// Ensures `need` bytes from `pos` are buffered if the input has them;
    /// returns how many are available (≤ `need` only at end of input).
    fn fill(&mut self, need: usize) -> Result<usize, TraceError> {
        while self.buf.len() - self.pos < need && !self.eof {
            if self.pos > 0 && self.pos >= self.buf.len() / 2 {
                self.buf.drain(..self.pos);
                self.base += self.pos as u64;
                self.pos = 0;
            }
            let want = (need - (self.buf.len() - self.pos)).max(READ_SIZE);
            // `take` stops at `want` bytes or at the end of the input, so
            // fewer than `want` bytes means the end; `read_to_end` retries
            // on EINTR and keeps what it read before an error.
            match (&mut self.src).take(want as u64).read_to_end(&mut self.buf) {
                Ok(n) if n < want => self.eof = true,
                Ok(_) => {}
                Err(source) => {
                    return Err(TraceError::Io {
                        path: self.name.clone(),
                        offset: self.base + self.buf.len() as u64,
                        source,
                    });
                }
            }
        }
        Ok((self.buf.len() - self.pos).min(need))
    }

    fn close_skip(&mut self) {
        if let Some((start, reason)) = self.skipping.take() {
            let end = self.offset();
            self.skipped.push(Skipped {
                offset: start,
                len: end - start,
                reason,
            });
        }
    }

    /// Returns the next valid chunk, `None` at the end of the input.
    ///
    /// Errors (strict mode, at the first problem): [`TraceError::Truncated`]
    /// (the input ends inside a chunk, or before the metadata chunk),
    /// [`TraceError::Corrupt`] (bad magic, length over the cap, CRC mismatch,
    /// undecodable payload, first chunk not metadata, records of an
    /// undeclared stream, conflicting stream declaration). Both modes:
    /// [`TraceError::Io`]; [`TraceError::NotATrace`] in salvage mode when the
    /// header was bad and no chunk was found.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>, TraceError> {
        self.next_chunk_inner(None)
    }

    /// [`TraceReader::next_chunk`] that decodes a record chunk's records into
    /// `cols` (cleared first, buffers reused) and leaves its
    /// [`RecordChunk::records`] empty: no allocation per record or per chunk.
    /// For any other chunk `cols` is left empty. Same checks and errors.
    pub fn next_chunk_into(
        &mut self,
        cols: &mut format::RecordColumns,
    ) -> Result<Option<Chunk>, TraceError> {
        cols.clear();
        self.next_chunk_inner(Some(cols))
    }

    fn next_chunk_inner(
        &mut self,
        mut cols: Option<&mut format::RecordColumns>,
    ) -> Result<Option<Chunk>, TraceError> {
        loop {
            if self.done {
                return Ok(None);
            }
            let avail = self.fill(format::CHUNK_HEADER_LEN)?;
            if avail == 0 {
                self.close_skip();
                self.done = true;
                if !self.header_ok && self.chunks == 0 {
                    return Err(TraceError::NotATrace {
                        path: self.name.clone(),
                    });
                }
                if self.mode == ReadMode::Strict && !self.saw_meta {
                    return Err(TraceError::Truncated {
                        path: self.name.clone(),
                        offset: self.offset(),
                        expected: "a metadata chunk".into(),
                    });
                }
                return Ok(None);
            }
            let offset = self.offset();
            let parsed = match self.frame_at()? {
                Ok((h, total)) => self.decode(&h, total, cols.as_deref_mut()),
                Err(e) => Err(e),
            };
            match parsed {
                Ok((body, total)) => {
                    self.close_skip();
                    self.pos += total;
                    self.chunks += 1;
                    self.last_was_footer = matches!(body, ChunkBody::Footer(_));
                    if let ChunkBody::Unknown { kind } = body {
                        self.skipped.push(Skipped {
                            offset,
                            len: total as u64,
                            reason: format!("chunk of unknown kind {kind} ignored"),
                        });
                    }
                    return Ok(Some(Chunk {
                        offset,
                        len: total as u64,
                        body,
                    }));
                }
                Err(e) => {
                    // A chunk that failed to decode contributes nothing.
                    if let Some(c) = cols.as_deref_mut() {
                        c.clear();
                    }
                    if self.mode == ReadMode::Strict {
                        self.done = true;
                        return Err(match e {
                            FrameError::Truncated { expected } => TraceError::Truncated {
                                path: self.name.clone(),
                                offset,
                                expected,
                            },
                            FrameError::Corrupt { reason } => TraceError::Corrupt {
                                path: self.name.clone(),
                                offset,
                                reason,
                            },
                        });
                    }
                    if self.skipping.is_none() {
                        let reason = match e {
                            FrameError::Truncated { expected } => {
                                format!("truncated chunk: expected {expected}")
                            }
                            FrameError::Corrupt { reason } => reason,
                        };
                        self.skipping = Some((offset, reason));
                    }
                    self.pos += 1;
                    self.scan_to_magic()?;
                }
            }
        }
    }

    /// Advances `pos` to the next occurrence of the chunk magic, or to the
    /// end of the input.
    fn scan_to_magic(&mut self) -> Result<(), TraceError> {
        let m = &format::CHUNK_MAGIC;
        loop {
            if let Some(i) = self.buf[self.pos..].windows(m.len()).position(|w| w == m) {
                self.pos += i;
                return Ok(());
            }
            // Keep the last 3 bytes: the magic may straddle the next read.
            let keep = (self.buf.len() - self.pos).min(m.len() - 1);
            self.pos = self.buf.len() - keep;
            if self.eof {
                self.pos = self.buf.len();
                return Ok(());
            }
            let have = self.buf.len() - self.pos;
            self.fill(have + 1)?;
        }
    }

    /// Frame-checks the chunk at `pos`, reading as much as it needs.
    /// The outer error is an I/O failure, the inner one a bad chunk.
    #[allow(clippy::type_complexity)]
    fn frame_at(&mut self) -> Result<Result<(ChunkHeader, usize), FrameError>, TraceError> {
        match format::check_frame(&self.buf[self.pos..]) {
            Err(FrameError::Truncated { .. }) if !self.eof => {}
            other => return Ok(other),
        }
        // Not at the end of input, so the 72-byte header is buffered and
        // says how long the chunk is (capped: check_frame rejected larger).
        let plen = ChunkHeader::parse(&self.buf[self.pos..]).payload_len as usize;
        self.fill(format::chunk_len(plen.min(format::MAX_PAYLOAD)))?;
        Ok(format::check_frame(&self.buf[self.pos..]))
    }

    fn decode(
        &mut self,
        h: &ChunkHeader,
        total: usize,
        cols: Option<&mut format::RecordColumns>,
    ) -> Result<(ChunkBody, usize), FrameError> {
        let corrupt = |reason: String| FrameError::Corrupt { reason };
        let payload = &self.buf
            [self.pos + format::CHUNK_HEADER_LEN..self.pos + total - format::CHUNK_TRAILER_LEN];
        if h.flags != 0 {
            return Err(corrupt(format!("unknown chunk flags {:#04x}", h.flags)));
        }
        if self.mode == ReadMode::Strict && !self.saw_meta && h.kind != format::KIND_META {
            return Err(corrupt(format!(
                "first chunk has kind {}, expected metadata ({})",
                h.kind,
                format::KIND_META
            )));
        }
        let body = match h.kind {
            format::KIND_META => {
                let meta: TraceMeta = serde_json::from_slice(payload)
                    .map_err(|e| corrupt(format!("metadata JSON: {e}")))?;
                self.saw_meta = true;
                ChunkBody::Meta(meta)
            }
            format::KIND_STREAM => {
                let info: StreamInfo = serde_json::from_slice(payload)
                    .map_err(|e| corrupt(format!("stream declaration JSON: {e}")))?;
                if info.id != h.stream {
                    return Err(corrupt(format!(
                        "stream declaration for id {} in a chunk of stream {}",
                        info.id, h.stream
                    )));
                }
                check_stream_id(h.stream).map_err(corrupt)?;
                let i = info.id as usize;
                if self.declared.len() <= i {
                    self.declared.resize(i + 1, None);
                }
                match &self.declared[i] {
                    Some(old) if *old != info && self.mode == ReadMode::Strict => {
                        return Err(corrupt(format!(
                            "stream {} redeclared with different info",
                            info.id
                        )));
                    }
                    Some(_) => {}
                    None => self.declared[i] = Some(info.clone()),
                }
                ChunkBody::Stream(info)
            }
            format::KIND_RECORDS => {
                check_stream_id(h.stream).map_err(corrupt)?;
                if self.mode == ReadMode::Strict
                    && self
                        .declared
                        .get(h.stream as usize)
                        .is_none_or(|d| d.is_none())
                {
                    return Err(corrupt(format!(
                        "records of stream {} before its declaration",
                        h.stream
                    )));
                }
                let records = match cols {
                    Some(cols) => {
                        format::decode_records_into(h, payload, cols).map_err(corrupt)?;
                        Vec::new()
                    }
                    None => format::decode_records(h, payload).map_err(corrupt)?,
                };
                ChunkBody::Records(RecordChunk {
                    stream: h.stream,
                    first_seq: h.first_seq,
                    last_seq: h.last_seq,
                    loss: h.loss,
                    records,
                })
            }
            format::KIND_FOOTER => {
                ChunkBody::Footer(format::Footer::parse(payload).map_err(corrupt)?)
            }
            kind => ChunkBody::Unknown { kind },
        };
        Ok((body, total))
    }
}

fn check_stream_id(id: StreamId) -> Result<(), String> {
    if id >= format::MAX_STREAMS {
        return Err(format!(
            "stream id {id} exceeds the maximum {}",
            format::MAX_STREAMS - 1
        ));
    }
    Ok(())
}

impl<R: Read> Iterator for TraceReader<R> {
    type Item = Result<Chunk, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_chunk().transpose()
    }
}
