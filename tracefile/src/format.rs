//! The byte layout of a trace file, defined once (see `docs/trace-format.md`).
//!
//! Two layers, smoltcp style:
//! - the *frame* of a chunk ([`ChunkHeader`]: fixed 72-byte header, payload,
//!   CRC32C, repeated length), validated by [`check_frame`] before any field
//!   of the payload is looked at;
//! - the *payload* of a record chunk ([`encode_record`] / [`decode_records`],
//!   or [`decode_records_into`] reused [`RecordColumns`]), a compact
//!   delta/varint coding of batch records and clock anchors.
//!
//! Every decoder here takes untrusted bytes and returns `Err(reason)` instead
//! of panicking; every allocation is bounded by the bytes that remain in the
//! payload, so a hostile chunk cannot make the reader allocate more than a
//! small multiple of its own (capped) size.

use collector::{BatchRecord, ClockAnchor, FiveTuple, LossCounters, Record, StreamId};

/// First 8 bytes of every trace file.
pub const FILE_MAGIC: [u8; 8] = *b"MSCTRACE";
/// The format version this crate writes and the only one it reads.
pub const VERSION: u32 = 1;
/// File header: magic (8), version (u32), flags (u32, written 0).
pub const FILE_HEADER_LEN: usize = 16;

/// First 4 bytes of every chunk; salvage resynchronizes on it.
pub const CHUNK_MAGIC: [u8; 4] = *b"MSCK";
/// Fixed chunk header size.
pub const CHUNK_HEADER_LEN: usize = 72;
/// CRC32C (u32) + payload length repeated (u32).
pub const CHUNK_TRAILER_LEN: usize = 8;
/// Largest payload a reader accepts (and a writer produces).
pub const MAX_PAYLOAD: usize = 16 << 20;
/// Largest record count in one chunk.
pub const MAX_RECORDS_PER_CHUNK: usize = 1 << 16;
/// Stream ids are dense and below this bound.
pub const MAX_STREAMS: u32 = 1 << 16;
/// Largest batch (IPIDs per record).
pub const MAX_BATCH: usize = u16::MAX as usize;

/// Chunk kinds.
pub const KIND_META: u8 = 1;
pub const KIND_STREAM: u8 = 2;
pub const KIND_RECORDS: u8 = 3;
pub const KIND_FOOTER: u8 = 4;

/// Length of a whole chunk with a payload of `payload_len` bytes.
pub const fn chunk_len(payload_len: usize) -> usize {
    CHUNK_HEADER_LEN + payload_len + CHUNK_TRAILER_LEN
}

/// The fixed header of a chunk, as a validated value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkHeader {
    pub kind: u8,
    pub flags: u8,
    pub payload_len: u32,
    pub stream: StreamId,
    pub first_seq: u64,
    pub last_seq: u64,
    pub record_count: u32,
    pub loss: LossCounters,
}

impl ChunkHeader {
    /// Writes the 72 header bytes into `out[..72]`.
    pub fn emit(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&CHUNK_MAGIC);
        out[4] = self.kind;
        out[5] = self.flags;
        out[6..8].copy_from_slice(&0u16.to_le_bytes());
        out[8..12].copy_from_slice(&self.payload_len.to_le_bytes());
        out[12..16].copy_from_slice(&self.stream.to_le_bytes());
        out[16..24].copy_from_slice(&self.first_seq.to_le_bytes());
        out[24..32].copy_from_slice(&self.last_seq.to_le_bytes());
        out[32..36].copy_from_slice(&self.record_count.to_le_bytes());
        out[36..40].copy_from_slice(&0u32.to_le_bytes());
        out[40..48].copy_from_slice(&self.loss.lost_full.to_le_bytes());
        out[48..56].copy_from_slice(&self.loss.lost_too_big.to_le_bytes());
        out[56..64].copy_from_slice(&self.loss.lost_write.to_le_bytes());
        out[64..72].copy_from_slice(&self.loss.lost_corrupt.to_le_bytes());
    }

    /// Parses the first 72 bytes of `b` (which must hold at least 72 bytes
    /// and start with [`CHUNK_MAGIC`]; the caller checks both).
    pub fn parse(b: &[u8]) -> ChunkHeader {
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(a)
        };
        ChunkHeader {
            kind: b[4],
            flags: b[5],
            payload_len: u32_at(8),
            stream: u32_at(12),
            first_seq: u64_at(16),
            last_seq: u64_at(24),
            record_count: u32_at(32),
            loss: LossCounters {
                lost_full: u64_at(40),
                lost_too_big: u64_at(48),
                lost_write: u64_at(56),
                lost_corrupt: u64_at(64),
            },
        }
    }
}

/// Appends a complete chunk (header, payload, CRC, length) to `out`, the
/// payload produced by `body` writing into the vector after the header.
pub fn frame_chunk(out: &mut Vec<u8>, mut header: ChunkHeader, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.resize(start + CHUNK_HEADER_LEN, 0);
    body(out);
    let payload_len = out.len() - start - CHUNK_HEADER_LEN;
    header.payload_len = payload_len as u32;
    header.emit(&mut out[start..start + CHUNK_HEADER_LEN]);
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&(payload_len as u32).to_le_bytes());
}

/// What is wrong with the bytes at a chunk position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The bytes end before the chunk does; `expected` says what was needed.
    Truncated { expected: String },
    /// The chunk is complete but invalid.
    Corrupt { reason: String },
}

/// Validates the frame of the chunk at the start of `b`. A
/// [`FrameError::Truncated`] means `b` ends before the chunk does; a caller
/// with more input supplies [`chunk_len`] bytes and checks again.
///
/// Returns the header and the chunk's total length; after `Ok` the payload
/// is `b[72..72 + payload_len]` and its CRC matched.
pub fn check_frame(b: &[u8]) -> Result<(ChunkHeader, usize), FrameError> {
    if b.len() < CHUNK_MAGIC.len() {
        if CHUNK_MAGIC.starts_with(b) {
            return Err(FrameError::Truncated {
                expected: format!(
                    "a {CHUNK_HEADER_LEN}-byte chunk header, {} bytes left",
                    b.len()
                ),
            });
        }
        return Err(FrameError::Corrupt {
            reason: "bad chunk magic".into(),
        });
    }
    if b[..4] != CHUNK_MAGIC {
        return Err(FrameError::Corrupt {
            reason: format!(
                "bad chunk magic {:02x?}, expected {:02x?}",
                &b[..4],
                CHUNK_MAGIC
            ),
        });
    }
    if b.len() < CHUNK_HEADER_LEN {
        return Err(FrameError::Truncated {
            expected: format!(
                "a {CHUNK_HEADER_LEN}-byte chunk header, {} bytes left",
                b.len()
            ),
        });
    }
    let h = ChunkHeader::parse(b);
    let plen = h.payload_len as usize;
    if plen > MAX_PAYLOAD {
        return Err(FrameError::Corrupt {
            reason: format!("payload length {plen} exceeds the cap of {MAX_PAYLOAD}"),
        });
    }
    let total = chunk_len(plen);
    if b.len() < total {
        return Err(FrameError::Truncated {
            expected: format!("a {total}-byte chunk, {} bytes left", b.len()),
        });
    }
    let body_end = CHUNK_HEADER_LEN + plen;
    let stored_crc = u32::from_le_bytes([
        b[body_end],
        b[body_end + 1],
        b[body_end + 2],
        b[body_end + 3],
    ]);
    let repeated = u32::from_le_bytes([
        b[body_end + 4],
        b[body_end + 5],
        b[body_end + 6],
        b[body_end + 7],
    ]);
    let crc = crc32c::crc32c(&b[..body_end]);
    if crc != stored_crc {
        return Err(FrameError::Corrupt {
            reason: format!("CRC mismatch (stored {stored_crc:#010x}, computed {crc:#010x})"),
        });
    }
    if repeated != h.payload_len {
        return Err(FrameError::Corrupt {
            reason: format!(
                "trailing length {repeated} differs from header length {}",
                h.payload_len
            ),
        });
    }
    Ok((h, total))
}

// ---------------------------------------------------------------- varints

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A bounds-checked cursor over untrusted bytes.
pub struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Cursor { b, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.b.len() - self.pos
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn u8(&mut self) -> Result<u8, String> {
        let v = *self
            .b
            .get(self.pos)
            .ok_or_else(|| format!("payload ends at byte {} inside a record", self.pos))?;
        self.pos += 1;
        Ok(v)
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.remaining() < n {
            return Err(format!(
                "payload ends at byte {} but {n} more bytes were expected",
                self.b.len()
            ));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// An LEB128 varint of at most 10 bytes (64 bits).
    #[inline]
    pub fn varint(&mut self) -> Result<u64, String> {
        // Most varints in a trace (IPID and timestamp deltas, counts) are
        // one byte: decode those inline.
        if let Some(&b) = self.b.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
        }
        self.varint_long()
    }

    #[inline(never)]
    fn varint_long(&mut self) -> Result<u64, String> {
        let start = self.pos;
        // Away from the end of the payload no byte can be missing: decode
        // straight from the slice (same results and errors as below).
        if let Some(b) = self.b.get(start..start + 10) {
            let mut v: u64 = 0;
            for (i, &byte) in b.iter().enumerate() {
                if i == 9 && byte > 1 {
                    return Err(format!("varint at payload byte {start} overflows 64 bits"));
                }
                v |= u64::from(byte & 0x7f) << (7 * i);
                if byte & 0x80 == 0 {
                    self.pos = start + i + 1;
                    return Ok(v);
                }
            }
            return Err(format!(
                "varint at payload byte {start} is longer than 10 bytes"
            ));
        }
        let mut v: u64 = 0;
        for i in 0..10 {
            let byte = self.u8()?;
            if i == 9 && byte > 1 {
                return Err(format!("varint at payload byte {start} overflows 64 bits"));
            }
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!(
            "varint at payload byte {start} is longer than 10 bytes"
        ))
    }

    #[inline]
    pub fn varint_max(&mut self, max: u64, what: &str) -> Result<u64, String> {
        let start = self.pos;
        let v = self.varint()?;
        if v > max {
            return Err(format!("{what} {v} at payload byte {start} exceeds {max}"));
        }
        Ok(v)
    }
}

// ---------------------------------------------------------- record payload

// Tag byte of one record.
const TAG_ANCHOR: u8 = 1 << 0;
const TAG_SEQ_NEXT: u8 = 1 << 1;
const TAG_REQ_SAME: u8 = 1 << 2;
const TAG_LEN_IS_REQ: u8 = 1 << 3;
const TAG_NON_IPV4: u8 = 1 << 4;
const TAG_TUPLES: u8 = 1 << 5;
const IPID_SHIFT: u8 = 6;
const IPID_RAW: u8 = 0;
const IPID_DELTA: u8 = 1;

/// Delta state shared by encoder and decoder within one chunk.
#[derive(Clone, Copy, Debug)]
pub struct CodecState {
    prev_seq: u64,
    prev_tsc: u64,
    prev_requested: u16,
    prev_mono: u64,
}

impl CodecState {
    /// State at the start of a chunk whose first record has `first_seq`.
    pub fn new(first_seq: u64) -> Self {
        CodecState {
            prev_seq: first_seq.wrapping_sub(1),
            prev_tsc: 0,
            prev_requested: 32,
            prev_mono: 0,
        }
    }
}

fn ipid_delta_len(ipids: &[u16]) -> usize {
    let mut prev = 0u16;
    let mut n = 0;
    for &x in ipids {
        let z = zigzag(i64::from(x.wrapping_sub(prev) as i16));
        n += if z < 0x80 {
            1
        } else if z < 0x4000 {
            2
        } else {
            3
        };
        prev = x;
    }
    n
}

/// Checks what the encoding needs of a record; the writer refuses anything
/// the reader would reject.
pub fn validate_record(r: &Record) -> Result<(), String> {
    if let Record::Batch(b) = r {
        let n = b.ipids.len();
        if n > MAX_BATCH {
            return Err(format!(
                "batch seq {} has {n} packets (max {MAX_BATCH})",
                b.seq
            ));
        }
        if b.non_ipv4.len() > MAX_BATCH {
            return Err(format!(
                "batch seq {} has {} non-IPv4 indices (max {MAX_BATCH})",
                b.seq,
                b.non_ipv4.len()
            ));
        }
        if let Some(i) = b.non_ipv4.iter().find(|&&i| i as usize >= n) {
            return Err(format!(
                "batch seq {}: non_ipv4 index {i} out of range for {n} packets",
                b.seq
            ));
        }
        if let Some(t) = &b.tuples {
            if t.len() != n {
                return Err(format!(
                    "batch seq {}: {} tuples for {n} packets",
                    b.seq,
                    t.len()
                ));
            }
        }
    }
    Ok(())
}

/// Appends one record (already validated) to a chunk payload.
pub fn encode_record(out: &mut Vec<u8>, st: &mut CodecState, r: &Record) {
    let seq = r.seq();
    let seq_delta = seq.wrapping_sub(st.prev_seq);
    let mut tag = if seq_delta == 1 { TAG_SEQ_NEXT } else { 0 };
    match r {
        Record::Anchor(a) => {
            tag |= TAG_ANCHOR;
            out.push(tag);
            if seq_delta != 1 {
                put_varint(out, seq_delta);
            }
            put_varint(out, zigzag(a.tsc.wrapping_sub(st.prev_tsc) as i64));
            put_varint(out, zigzag(a.mono_ns.wrapping_sub(st.prev_mono) as i64));
            st.prev_tsc = a.tsc;
            st.prev_mono = a.mono_ns;
        }
        Record::Batch(b) => {
            let n = b.ipids.len();
            if b.requested == st.prev_requested {
                tag |= TAG_REQ_SAME;
            }
            if n == b.requested as usize {
                tag |= TAG_LEN_IS_REQ;
            }
            if !b.non_ipv4.is_empty() {
                tag |= TAG_NON_IPV4;
            }
            if b.tuples.is_some() {
                tag |= TAG_TUPLES;
            }
            let delta = ipid_delta_len(&b.ipids) < 2 * n;
            tag |= if delta { IPID_DELTA } else { IPID_RAW } << IPID_SHIFT;
            out.push(tag);
            if seq_delta != 1 {
                put_varint(out, seq_delta);
            }
            put_varint(out, zigzag(b.tsc.wrapping_sub(st.prev_tsc) as i64));
            if b.requested != st.prev_requested {
                put_varint(out, u64::from(b.requested));
            }
            if n != b.requested as usize {
                put_varint(out, n as u64);
            }
            if delta {
                let mut prev = 0u16;
                for &x in &b.ipids {
                    put_varint(out, zigzag(i64::from(x.wrapping_sub(prev) as i16)));
                    prev = x;
                }
            } else {
                for &x in &b.ipids {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
            if !b.non_ipv4.is_empty() {
                put_varint(out, b.non_ipv4.len() as u64);
                for &i in &b.non_ipv4 {
                    put_varint(out, u64::from(i));
                }
            }
            if let Some(t) = &b.tuples {
                for ft in t {
                    out.extend_from_slice(&ft.to_bytes());
                }
            }
            st.prev_tsc = b.tsc;
            st.prev_requested = b.requested;
        }
    }
    st.prev_seq = seq;
}

/// The records of one chunk decoded column-wise, into buffers a caller
/// reuses from chunk to chunk (no allocation per record or per chunk once
/// they have grown): what a streaming consumer such as the diagnosis
/// engine's index builder wants. Batches and anchors are kept apart; both
/// are in ascending seq order, and since seqs ascend strictly across all
/// records of a chunk, merging the two by seq restores the record order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordColumns {
    /// Per batch record: its seq, timestamp and requested burst size.
    pub batch_seq: Vec<u64>,
    pub batch_tsc: Vec<u64>,
    pub batch_requested: Vec<u16>,
    /// `batch_ipids[i]..batch_ipids[i + 1]` index batch `i`'s IPIDs in
    /// `ipids` (one more entry than batches; empty when there are none).
    pub batch_ipids: Vec<u32>,
    pub ipids: Vec<u16>,
    /// Non-IPv4 packets as (batch, index in batch).
    pub non_ipv4: Vec<(u32, u16)>,
    /// Batches carrying 5-tuples as (batch, start in `tuples`); the batch's
    /// tuples are the next `batch_len(batch)` entries.
    pub tuple_batches: Vec<(u32, u32)>,
    pub tuples: Vec<FiveTuple>,
    pub anchors: Vec<ClockAnchor>,
}

impl RecordColumns {
    /// Empties every column, keeping the allocations.
    pub fn clear(&mut self) {
        self.batch_seq.clear();
        self.batch_tsc.clear();
        self.batch_requested.clear();
        self.batch_ipids.clear();
        self.ipids.clear();
        self.non_ipv4.clear();
        self.tuple_batches.clear();
        self.tuples.clear();
        self.anchors.clear();
    }

    /// Number of batch records.
    pub fn batches(&self) -> usize {
        self.batch_seq.len()
    }

    /// Packets in batch `i`.
    pub fn batch_len(&self, i: usize) -> usize {
        (self.batch_ipids[i + 1] - self.batch_ipids[i]) as usize
    }

    /// The IPIDs of batch `i`.
    pub fn batch_ipids_of(&self, i: usize) -> &[u16] {
        &self.ipids[self.batch_ipids[i] as usize..self.batch_ipids[i + 1] as usize]
    }

    /// The records as [`Record`]s, in seq order.
    pub fn to_records(&self) -> Vec<Record> {
        let mut out = Vec::with_capacity(self.batches() + self.anchors.len());
        let (mut t, mut n4) = (0usize, 0usize);
        let mut k = 0usize;
        for i in 0..self.batches() {
            while k < self.anchors.len() && self.anchors[k].seq < self.batch_seq[i] {
                out.push(Record::Anchor(self.anchors[k]));
                k += 1;
            }
            let mut non_ipv4 = Vec::new();
            while n4 < self.non_ipv4.len() && self.non_ipv4[n4].0 as usize == i {
                non_ipv4.push(self.non_ipv4[n4].1);
                n4 += 1;
            }
            let tuples = if t < self.tuple_batches.len() && self.tuple_batches[t].0 as usize == i {
                let s = self.tuple_batches[t].1 as usize;
                t += 1;
                Some(self.tuples[s..s + self.batch_len(i)].to_vec())
            } else {
                None
            };
            out.push(Record::Batch(BatchRecord {
                seq: self.batch_seq[i],
                tsc: self.batch_tsc[i],
                requested: self.batch_requested[i],
                ipids: self.batch_ipids_of(i).to_vec(),
                non_ipv4,
                tuples,
            }));
        }
        out.extend(self.anchors[k..].iter().map(|a| Record::Anchor(*a)));
        out
    }
}

/// Decodes the payload of a record chunk whose (CRC-checked) header is `h`.
/// Checks that exactly `record_count` records fill the payload, that their
/// sequence numbers ascend strictly from `first_seq` to `last_seq`, and that
/// every index and count is in range.
pub fn decode_records(h: &ChunkHeader, payload: &[u8]) -> Result<Vec<Record>, String> {
    let mut cols = RecordColumns::default();
    decode_records_into(h, payload, &mut cols)?;
    Ok(cols.to_records())
}

/// [`decode_records`] into reusable columns (cleared first; on error their
/// content is unspecified). Same checks, same errors.
pub fn decode_records_into(
    h: &ChunkHeader,
    payload: &[u8],
    out: &mut RecordColumns,
) -> Result<(), String> {
    out.clear();
    let count = h.record_count as usize;
    if count == 0 {
        // A loss-only chunk: just the stream's counters.
        if !payload.is_empty() || h.first_seq != 0 || h.last_seq != 0 {
            return Err("loss-only chunk (zero records) with a payload or a sequence range".into());
        }
        return Ok(());
    }
    if count > MAX_RECORDS_PER_CHUNK {
        return Err(format!(
            "record count {count} exceeds the cap of {MAX_RECORDS_PER_CHUNK}"
        ));
    }
    // Every record takes at least 2 bytes (tag + tsc).
    if count > payload.len() / 2 {
        return Err(format!(
            "record count {count} cannot fit in a {}-byte payload",
            payload.len()
        ));
    }
    if h.first_seq > h.last_seq {
        return Err(format!(
            "first seq {} > last seq {}",
            h.first_seq, h.last_seq
        ));
    }
    let mut c = Cursor::new(payload);
    let mut st = CodecState::new(h.first_seq);
    out.batch_ipids.push(0);
    for i in 0..count {
        let at = c.pos();
        let tag = c.u8()?;
        let delta = if tag & TAG_SEQ_NEXT != 0 {
            1
        } else {
            c.varint()?
        };
        if delta == 0 {
            return Err(format!(
                "record {i} at payload byte {at}: sequence does not advance"
            ));
        }
        let seq = if i == 0 {
            st.prev_seq.wrapping_add(delta)
        } else {
            st.prev_seq
                .checked_add(delta)
                .ok_or_else(|| format!("record {i} at payload byte {at}: sequence overflows"))?
        };
        if i == 0 && seq != h.first_seq {
            return Err(format!(
                "first record has seq {seq}, header says {}",
                h.first_seq
            ));
        }
        if seq > h.last_seq {
            return Err(format!(
                "record {i} has seq {seq} beyond the header's last seq {}",
                h.last_seq
            ));
        }
        let tsc = st.prev_tsc.wrapping_add(unzigzag(c.varint()?) as u64);
        if tag & TAG_ANCHOR != 0 {
            if tag & !(TAG_ANCHOR | TAG_SEQ_NEXT) != 0 {
                return Err(format!(
                    "anchor {i} at payload byte {at}: unknown tag bits {tag:#04x}"
                ));
            }
            let mono_ns = st.prev_mono.wrapping_add(unzigzag(c.varint()?) as u64);
            st.prev_mono = mono_ns;
            out.anchors.push(ClockAnchor { seq, tsc, mono_ns });
        } else {
            let bi = out.batch_seq.len() as u32;
            let requested = if tag & TAG_REQ_SAME != 0 {
                st.prev_requested
            } else {
                c.varint_max(u64::from(u16::MAX), "requested burst size")? as u16
            };
            let n = if tag & TAG_LEN_IS_REQ != 0 {
                requested as usize
            } else {
                c.varint_max(MAX_BATCH as u64, "batch size")? as usize
            };
            match tag >> IPID_SHIFT {
                IPID_RAW => {
                    let raw = c.bytes(2 * n)?;
                    out.ipids.extend(
                        raw.chunks_exact(2)
                            .map(|p| u16::from_le_bytes([p[0], p[1]])),
                    );
                }
                IPID_DELTA => {
                    if c.remaining() < n {
                        return Err(format!(
                            "batch {i}: {n} IPIDs cannot fit in the {} bytes left",
                            c.remaining()
                        ));
                    }
                    out.ipids.reserve(n);
                    let mut prev = 0u16;
                    for _ in 0..n {
                        let z = c.varint_max(u64::from(u16::MAX), "IPID delta")?;
                        prev = prev.wrapping_add(unzigzag(z) as i16 as u16);
                        out.ipids.push(prev);
                    }
                }
                e => return Err(format!("batch {i}: unknown IPID encoding {e}")),
            }
            if tag & TAG_NON_IPV4 != 0 {
                let k = c.varint_max(MAX_BATCH as u64, "non-IPv4 count")? as usize;
                if c.remaining() < k {
                    return Err(format!("batch {i}: {k} non-IPv4 indices cannot fit"));
                }
                for _ in 0..k {
                    let idx = c.varint()?;
                    if idx >= n as u64 {
                        return Err(format!(
                            "batch {i}: non-IPv4 index {idx} out of range for {n} packets"
                        ));
                    }
                    out.non_ipv4.push((bi, idx as u16));
                }
            }
            if tag & TAG_TUPLES != 0 {
                let raw = c.bytes(FiveTuple::WIRE_LEN * n)?;
                out.tuple_batches.push((bi, out.tuples.len() as u32));
                out.tuples
                    .extend(raw.chunks_exact(FiveTuple::WIRE_LEN).map(|t| {
                        let mut a = [0u8; FiveTuple::WIRE_LEN];
                        a.copy_from_slice(t);
                        FiveTuple::from_bytes(&a)
                    }));
            }
            st.prev_requested = requested;
            out.batch_seq.push(seq);
            out.batch_tsc.push(tsc);
            out.batch_requested.push(requested);
            out.batch_ipids.push(out.ipids.len() as u32);
        }
        st.prev_seq = seq;
        st.prev_tsc = tsc;
    }
    if c.remaining() != 0 {
        return Err(format!(
            "{} bytes left after the last of {count} records",
            c.remaining()
        ));
    }
    if st.prev_seq != h.last_seq {
        return Err(format!(
            "last record has seq {}, header says {}",
            st.prev_seq, h.last_seq
        ));
    }
    Ok(())
}

/// Footer payload: totals the writer saw (informative only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footer {
    /// Chunks written before the footer, this writer session only.
    pub chunks: u64,
    /// Records written, this writer session only.
    pub records: u64,
    /// File offset of the footer chunk.
    pub offset: u64,
}

pub const FOOTER_PAYLOAD_LEN: usize = 24;

impl Footer {
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.chunks.to_le_bytes());
        out.extend_from_slice(&self.records.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
    }

    pub fn parse(b: &[u8]) -> Result<Footer, String> {
        if b.len() != FOOTER_PAYLOAD_LEN {
            return Err(format!(
                "footer payload is {} bytes, expected {FOOTER_PAYLOAD_LEN}",
                b.len()
            ));
        }
        let u = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(a)
        };
        Ok(Footer {
            chunks: u(0),
            records: u(8),
            offset: u(16),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip_and_overflow() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(Cursor::new(&b).varint().unwrap(), v);
        }
        let over = [0xffu8; 10];
        assert!(Cursor::new(&over).varint().is_err());
        let mut b = vec![0xff; 9];
        b.push(0x02);
        assert!(Cursor::new(&b).varint().unwrap_err().contains("overflows"));
    }

    #[test]
    fn zigzag_round_trip() {
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, -12345] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }
}
