//! Record encoding (producer side) and validating decoding (consumer side).
//!
//! [`encode_batch`] / [`encode_anchor`] produce exactly the bytes the C
//! producer in `microscope_ring.h` writes. [`decode`] takes a record's bytes
//! copied out of shared memory and either returns a validated [`Record`] or
//! says what is wrong; it never panics and allocates at most what the
//! (already bounded) record length implies.

use super::layout::*;
use crate::record::{BatchRecord, ClockAnchor, FiveTuple, Record};

/// A borrowed batch to write: what one burst hook observed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchView<'a> {
    /// Timestamp in TSC ticks.
    pub tsc: u64,
    /// Burst size the application asked for.
    pub requested: u16,
    /// IPv4 identification of each packet; the batch size is `ipids.len()`.
    pub ipids: &'a [u16],
    /// Indices into `ipids` of packets that are not IPv4.
    pub non_ipv4: &'a [u16],
    /// One 5-tuple per packet, on streams that carry them.
    pub tuples: Option<&'a [FiveTuple]>,
}

impl<'a> From<&'a BatchRecord> for BatchView<'a> {
    fn from(b: &'a BatchRecord) -> Self {
        BatchView {
            tsc: b.tsc,
            requested: b.requested,
            ipids: &b.ipids,
            non_ipv4: &b.non_ipv4,
            tuples: b.tuples.as_deref(),
        }
    }
}

impl BatchView<'_> {
    /// Batch flags (`MS_BATCH_F_*`) this batch is encoded with.
    pub fn flags(&self) -> u16 {
        let mut f = 0;
        if !self.non_ipv4.is_empty() {
            f |= BATCH_F_NON_IPV4;
        }
        if self.tuples.is_some() {
            f |= BATCH_F_TUPLES;
        }
        f
    }

    /// Encoded length in bytes, or `None` when the batch has more than
    /// 65535 packets (not representable: dropped as too big).
    pub fn encoded_len(&self) -> Option<u64> {
        let count = u16::try_from(self.ipids.len()).ok()?;
        Some(batch_len(count as u32, self.flags()))
    }

    /// Checks what the caller must get right: non-IPv4 indices inside the
    /// batch, one tuple per packet.
    pub fn check(&self) -> Result<(), String> {
        let n = self.ipids.len();
        if let Some(&i) = self.non_ipv4.iter().find(|&&i| i as usize >= n) {
            return Err(format!("non-IPv4 index {i} outside a batch of {n} packets"));
        }
        if let Some(t) = self.tuples {
            if t.len() != n {
                return Err(format!("{} tuples for a batch of {n} packets", t.len()));
            }
        }
        Ok(())
    }
}

fn put_hdr(buf: &mut [u8], len: u32, rtype: u16, flags: u16) {
    buf[0..4].copy_from_slice(&len.to_le_bytes());
    buf[4..6].copy_from_slice(&rtype.to_le_bytes());
    buf[6..8].copy_from_slice(&flags.to_le_bytes());
}

/// Encodes a batch record (already [`BatchView::check`]ed, at most 65535
/// packets) into `buf`, which is resized to the record length. Does not
/// allocate when `buf` has the capacity.
pub fn encode_batch(buf: &mut Vec<u8>, seq: u64, b: &BatchView<'_>) {
    let count = b.ipids.len();
    let flags = b.flags();
    let len = batch_len(count as u32, flags) as usize;
    buf.clear();
    buf.resize(len, 0);
    put_hdr(buf, len as u32, REC_BATCH, flags);
    buf[8..16].copy_from_slice(&seq.to_le_bytes());
    buf[16..24].copy_from_slice(&b.tsc.to_le_bytes());
    buf[24..26].copy_from_slice(&b.requested.to_le_bytes());
    buf[26..28].copy_from_slice(&(count as u16).to_le_bytes());
    let mut off = BATCH_FIXED_SIZE;
    for (i, id) in b.ipids.iter().enumerate() {
        buf[off + 2 * i..off + 2 * i + 2].copy_from_slice(&id.to_le_bytes());
    }
    off += align8(count as u64 * 2) as usize;
    if flags & BATCH_F_NON_IPV4 != 0 {
        for &i in b.non_ipv4 {
            let byte = off + (i as usize / 64) * 8 + (i as usize % 64) / 8;
            buf[byte] |= 1 << (i % 8);
        }
        off += count.div_ceil(64) * 8;
    }
    if let Some(tuples) = b.tuples {
        for (i, t) in tuples.iter().enumerate() {
            buf[off + 13 * i..off + 13 * i + 13].copy_from_slice(&t.to_bytes());
        }
    }
}

/// Encodes a clock anchor into `buf` (resized to 32 bytes).
pub fn encode_anchor(buf: &mut Vec<u8>, seq: u64, tsc: u64, mono_ns: u64) {
    buf.clear();
    buf.resize(ANCHOR_SIZE, 0);
    put_hdr(buf, ANCHOR_SIZE as u32, REC_ANCHOR, 0);
    buf[8..16].copy_from_slice(&seq.to_le_bytes());
    buf[16..24].copy_from_slice(&tsc.to_le_bytes());
    buf[24..32].copy_from_slice(&mono_ns.to_le_bytes());
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

/// The record header fields: `(len, type, flags)`. `b` must hold 8 bytes.
pub fn peek_header(b: &[u8]) -> (u32, u16, u16) {
    (u32_at(b, 0), u16_at(b, 4), u16_at(b, 6))
}

/// Decodes one BATCH or ANCHOR record from `b` (exactly the record's bytes,
/// `b.len()` equal to its header length, at least 8). Returns what is wrong
/// instead of panicking.
pub fn decode(b: &[u8]) -> Result<Record, String> {
    if b.len() < REC_HDR_SIZE {
        return Err(format!(
            "record of {} bytes is shorter than its header",
            b.len()
        ));
    }
    let (len, rtype, flags) = peek_header(b);
    if len as usize != b.len() {
        return Err(format!(
            "record length field {len} != {} bytes given",
            b.len()
        ));
    }
    match rtype {
        REC_BATCH => {
            if b.len() < BATCH_FIXED_SIZE {
                return Err(format!("batch record of {len} bytes, expected at least 32"));
            }
            if flags & !BATCH_F_ALL != 0 {
                return Err(format!("unknown batch flags {flags:#x}"));
            }
            let seq = u64_at(b, 8);
            let tsc = u64_at(b, 16);
            let requested = u16_at(b, 24);
            let count = u16_at(b, 26) as usize;
            let want = batch_len(count as u32, flags);
            if want != len as u64 {
                return Err(format!(
                    "batch of {count} packets with flags {flags:#x} must be {want} bytes, header says {len}"
                ));
            }
            let mut off = BATCH_FIXED_SIZE;
            let ipids: Vec<u16> = (0..count).map(|i| u16_at(b, off + 2 * i)).collect();
            off += align8(count as u64 * 2) as usize;
            let mut non_ipv4 = Vec::new();
            if flags & BATCH_F_NON_IPV4 != 0 {
                let words = count.div_ceil(64);
                for w in 0..words {
                    let mut word = u64_at(b, off + 8 * w);
                    if w == words - 1 && count % 64 != 0 && word >> (count % 64) != 0 {
                        return Err(format!(
                            "non-IPv4 bitmap has bits set beyond the {count} packets of the batch"
                        ));
                    }
                    while word != 0 {
                        let bit = word.trailing_zeros() as usize;
                        non_ipv4.push((w * 64 + bit) as u16);
                        word &= word - 1;
                    }
                }
                off += words * 8;
            }
            let tuples = if flags & BATCH_F_TUPLES != 0 {
                let t = (0..count)
                    .map(|i| {
                        let mut a = [0u8; FiveTuple::WIRE_LEN];
                        a.copy_from_slice(&b[off + 13 * i..off + 13 * i + 13]);
                        FiveTuple::from_bytes(&a)
                    })
                    .collect();
                Some(t)
            } else {
                None
            };
            Ok(Record::Batch(BatchRecord {
                seq,
                tsc,
                requested,
                ipids,
                non_ipv4,
                tuples,
            }))
        }
        REC_ANCHOR => {
            if len as usize != ANCHOR_SIZE || flags != 0 {
                return Err(format!(
                    "anchor record must be 32 bytes with flags 0, found {len} bytes, flags {flags:#x}"
                ));
            }
            Ok(Record::Anchor(ClockAnchor {
                seq: u64_at(b, 8),
                tsc: u64_at(b, 16),
                mono_ns: u64_at(b, 24),
            }))
        }
        t => Err(format!("unknown record type {t}")),
    }
}
