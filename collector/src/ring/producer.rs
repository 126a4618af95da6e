//! The Rust producer: creates a ring file and writes records exactly as the
//! C producer in `microscope_ring.h` does (used by the simulator, tests and
//! benches).

use super::codec::{self, BatchView};
use super::layout::*;
use super::shm::Mapping;
use super::{direction_code, role_code, RingError, RingIdentity};
use crate::record::Record;
use std::fs::OpenOptions;
use std::mem::offset_of;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// How to create a ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingConfig {
    pub identity: RingIdentity,
    /// Bytes of the data area: a power of two, at least 4096.
    pub data_size: u64,
    /// Largest record accepted; `None` = a quarter of the data area, at most
    /// 64 KiB. A multiple of 8 in `[64, data_size / 2]`.
    pub max_record_size: Option<u32>,
    /// Create the file 0660 with this group (so a dumper in the group may
    /// read it) instead of owner-only 0600.
    pub group: Option<u32>,
}

impl RingConfig {
    /// A 4 MiB ring with the default record limit, owner-only.
    pub fn new(identity: RingIdentity) -> RingConfig {
        RingConfig {
            identity,
            data_size: 1 << 22,
            max_record_size: None,
            group: None,
        }
    }
}

/// What happened to one offered record. The sequence number is consumed in
/// every case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    Written {
        seq: u64,
    },
    /// Dropped: not enough free space (counted in `lost_full`).
    LostFull {
        seq: u64,
    },
    /// Dropped: larger than the ring's `max_record_size` (counted in
    /// `lost_too_big`).
    LostTooBig {
        seq: u64,
    },
}

impl PutOutcome {
    pub fn seq(&self) -> u64 {
        match *self {
            PutOutcome::Written { seq }
            | PutOutcome::LostFull { seq }
            | PutOutcome::LostTooBig { seq } => seq,
        }
    }

    pub fn is_written(&self) -> bool {
        matches!(self, PutOutcome::Written { .. })
    }
}

/// Producer-side counters, as published in the ring header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProducerCounters {
    pub next_seq: u64,
    pub lost_full: u64,
    pub lost_too_big: u64,
    pub polls: u64,
    pub empty_polls: u64,
}

/// The single writer of one ring. Not `Clone`; one per ring.
pub struct Producer {
    map: Mapping,
    path: PathBuf,
    data_size: u64,
    mask: u64,
    max_record: u32,
    head: u64,
    tail_cache: u64,
    c: ProducerCounters,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("path", &self.path)
            .field("head", &self.head)
            .field("counters", &self.c)
            .finish()
    }
}

const OFF_HEAD: usize = offset_of!(RingHeader, head);
const OFF_TAIL: usize = offset_of!(RingHeader, tail);
const OFF_NEXT_SEQ: usize = offset_of!(RingHeader, next_seq);
const OFF_LOST_FULL: usize = offset_of!(RingHeader, lost_full);
const OFF_LOST_TOO_BIG: usize = offset_of!(RingHeader, lost_too_big);
const OFF_POLLS: usize = offset_of!(RingHeader, polls);
const OFF_EMPTY_POLLS: usize = offset_of!(RingHeader, empty_polls);

/// `ms_ring_has_room`: `need` bytes (at most `size`) fit between head and
/// tail. A tail beyond head (a broken consumer) reads as "no room": the
/// producer never overwrites.
fn has_room(head: u64, tail: u64, need: u64, size: u64) -> bool {
    tail <= head && head - tail <= size - need
}

fn name_field(out: &mut [u8], s: &str, what: &str) -> Result<(), String> {
    if s.len() >= NAME_LEN {
        return Err(format!(
            "{what} {s:?} is {} bytes, at most {} allowed",
            s.len(),
            NAME_LEN - 1
        ));
    }
    if s.bytes().any(|b| b == 0) {
        return Err(format!("{what} {s:?} contains a NUL byte"));
    }
    out[..s.len()].copy_from_slice(s.as_bytes());
    Ok(())
}

/// The first 512 bytes of the header (identity block), magic still 0.
fn identity_block(cfg: &RingConfig, max_record: u32) -> Result<Vec<u8>, String> {
    let id = &cfg.identity;
    let mut b = vec![0u8; 512];
    b[8..12].copy_from_slice(&VERSION.to_le_bytes());
    b[12..16].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
    b[16..24].copy_from_slice(&cfg.data_size.to_le_bytes());
    b[24..28].copy_from_slice(&max_record.to_le_bytes());
    let flags = if id.carries_tuples {
        RING_F_CARRIES_TUPLES
    } else {
        0
    };
    b[28..32].copy_from_slice(&flags.to_le_bytes());
    b[32..36].copy_from_slice(&id.pid.to_le_bytes());
    b[36] = role_code(id.role);
    b[37] = direction_code(id.direction);
    b[38..40].copy_from_slice(&id.port.to_le_bytes());
    b[40..42].copy_from_slice(&id.queue.to_le_bytes());
    b[48..56].copy_from_slice(&id.created_ns.to_le_bytes());
    b[56..64].copy_from_slice(&id.tsc_hz_hint.unwrap_or(0).to_le_bytes());
    name_field(&mut b[64..128], &id.nf, "NF name")?;
    name_field(&mut b[128..192], &id.nf_type, "NF type")?;
    name_field(&mut b[192..256], &id.host, "host")?;
    Ok(b)
}

impl Producer {
    /// Creates the ring file at `path` (replacing an existing one
    /// atomically): writes `<path>.tmp.<pid>` owner-only (0600, or 0660 with
    /// `cfg.group`), sizes and formats it, publishes the magic last, then
    /// renames it into place, so a consumer never sees a half-made ring.
    ///
    /// Errors: [`RingError::InvalidConfig`] (sizes, names too long or with
    /// NUL bytes), [`RingError::Io`] (create, chown, size, map, rename).
    pub fn create(path: &Path, cfg: &RingConfig) -> Result<Producer, RingError> {
        let invalid = |reason: String| RingError::InvalidConfig {
            path: path.to_path_buf(),
            reason,
        };
        let ds = cfg.data_size;
        if !ds.is_power_of_two() || !(MIN_DATA_SIZE..=MAX_DATA_SIZE).contains(&ds) {
            return Err(invalid(format!(
                "data size {ds} must be a power of two in [{MIN_DATA_SIZE}, {MAX_DATA_SIZE}]"
            )));
        }
        let max_record = cfg.max_record_size.unwrap_or(default_max_record(ds));
        if max_record % 8 != 0
            || !(MIN_MAX_RECORD..=MAX_MAX_RECORD).contains(&max_record)
            || max_record as u64 > ds / 2
        {
            return Err(invalid(format!(
                "max record size {max_record} must be a multiple of 8 in [{MIN_MAX_RECORD}, {}]",
                (ds / 2).min(MAX_MAX_RECORD as u64)
            )));
        }
        let ident = identity_block(cfg, max_record).map_err(invalid)?;
        let io = |op: &'static str| {
            move |source| RingError::Io {
                path: path.to_path_buf(),
                op,
                source,
            }
        };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".tmp.{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(io("create"))?;
        let cleanup = |e: RingError| {
            let _ = std::fs::remove_file(&tmp);
            e
        };
        if let Some(gid) = cfg.group {
            std::os::unix::fs::fchown(&file, None, Some(gid))
                .map_err(io("chown to the ring group"))
                .map_err(cleanup)?;
            file.set_permissions(std::fs::Permissions::from_mode(0o660))
                .map_err(io("chmod 0660"))
                .map_err(cleanup)?;
        }
        let len = HEADER_SIZE as u64 + ds;
        file.set_len(len)
            .map_err(io("set length"))
            .map_err(cleanup)?;
        let map = Mapping::map(file, len as usize, true)
            .map_err(io("map"))
            .map_err(cleanup)?;
        map.store_bytes(0, &ident);
        map.u64_at(0).store(MAGIC, Ordering::Release);
        std::fs::rename(&tmp, path)
            .map_err(io("rename into place"))
            .map_err(cleanup)?;
        Ok(Producer {
            map,
            path: path.to_path_buf(),
            data_size: ds,
            mask: ds - 1,
            max_record,
            head: 0,
            tail_cache: 0,
            c: ProducerCounters::default(),
            buf: Vec::with_capacity(max_record as usize),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The counters as published.
    pub fn counters(&self) -> ProducerCounters {
        self.c
    }

    /// Largest record this ring accepts, bytes.
    pub fn max_record_size(&self) -> u32 {
        self.max_record
    }

    fn drop_record(&mut self, too_big: bool) -> PutOutcome {
        let seq = self.c.next_seq;
        self.c.next_seq += 1;
        if too_big {
            self.c.lost_too_big += 1;
            self.map
                .u64_at(OFF_LOST_TOO_BIG)
                .store(self.c.lost_too_big, Ordering::Release);
        } else {
            self.c.lost_full += 1;
            self.map
                .u64_at(OFF_LOST_FULL)
                .store(self.c.lost_full, Ordering::Release);
        }
        self.map
            .u64_at(OFF_NEXT_SEQ)
            .store(self.c.next_seq, Ordering::Release);
        if too_big {
            PutOutcome::LostTooBig { seq }
        } else {
            PutOutcome::LostFull { seq }
        }
    }

    /// `ms_ring_reserve`: finds room for `len` bytes (writing a PAD record
    /// when the record would cross the end of the area); returns the data
    /// offset and sequence number, or the drop.
    fn reserve(&mut self, len: u64) -> Result<(u64, u64), PutOutcome> {
        if len > self.max_record as u64 || len % 8 != 0 || len < REC_HDR_SIZE as u64 {
            return Err(self.drop_record(true));
        }
        let mut pos = self.head & self.mask;
        let contig = self.data_size - pos;
        let pad = if len > contig { contig } else { 0 };
        // pad + len <= data_size: pad is nonzero only when pad < len <= data_size / 2.
        let need = pad + len;
        if !has_room(self.head, self.tail_cache, need, self.data_size) {
            self.tail_cache = self.map.u64_at(OFF_TAIL).load(Ordering::Acquire);
            if !has_room(self.head, self.tail_cache, need, self.data_size) {
                return Err(self.drop_record(false));
            }
        }
        if pad != 0 {
            let mut ph = [0u8; 8];
            ph[0..4].copy_from_slice(&(pad as u32).to_le_bytes());
            ph[4..6].copy_from_slice(&REC_PAD.to_le_bytes());
            self.map.store_bytes(HEADER_SIZE + pos as usize, &ph);
            self.head += pad;
            pos = 0;
        }
        let seq = self.c.next_seq;
        self.c.next_seq += 1;
        Ok((pos, seq))
    }

    /// `ms_ring_commit` for the record in `self.buf` at data offset `pos`.
    fn commit(&mut self, pos: u64) {
        self.map.store_bytes(HEADER_SIZE + pos as usize, &self.buf);
        self.head += self.buf.len() as u64;
        self.map
            .u64_at(OFF_NEXT_SEQ)
            .store(self.c.next_seq, Ordering::Release);
        self.map
            .u64_at(OFF_HEAD)
            .store(self.head, Ordering::Release);
    }

    /// Offers one batch; never blocks, allocates only if the batch is larger
    /// than the ring's record limit would allow (it is then dropped anyway).
    ///
    /// Errors: [`RingError::InvalidInput`] when the view is inconsistent
    /// (a non-IPv4 index outside the batch, tuple count != packet count);
    /// no sequence number is consumed then.
    pub fn put_batch(&mut self, b: &BatchView<'_>) -> Result<PutOutcome, RingError> {
        b.check().map_err(|reason| RingError::InvalidInput {
            path: self.path.clone(),
            reason,
        })?;
        let len = match b.encoded_len() {
            Some(l) if l <= self.max_record as u64 => l,
            _ => return Ok(self.drop_record(true)),
        };
        let (pos, seq) = match self.reserve(len) {
            Ok(r) => r,
            Err(o) => return Ok(o),
        };
        let mut buf = std::mem::take(&mut self.buf);
        codec::encode_batch(&mut buf, seq, b);
        self.buf = buf;
        self.commit(pos);
        Ok(PutOutcome::Written { seq })
    }

    /// Offers a clock anchor (simultaneous TSC and CLOCK_MONOTONIC readings).
    pub fn put_anchor(&mut self, tsc: u64, mono_ns: u64) -> PutOutcome {
        let (pos, seq) = match self.reserve(ANCHOR_SIZE as u64) {
            Ok(r) => r,
            Err(o) => return o,
        };
        let mut buf = std::mem::take(&mut self.buf);
        codec::encode_anchor(&mut buf, seq, tsc, mono_ns);
        self.buf = buf;
        self.commit(pos);
        PutOutcome::Written { seq }
    }

    /// Offers any record; its `seq` field is ignored (the ring assigns one).
    pub fn put_record(&mut self, r: &Record) -> Result<PutOutcome, RingError> {
        match r {
            Record::Batch(b) => self.put_batch(&BatchView::from(b)),
            Record::Anchor(a) => Ok(self.put_anchor(a.tsc, a.mono_ns)),
        }
    }

    /// Counts one rx poll that returned `nb_rx` packets (`ms_ring_note_poll`).
    pub fn note_poll(&mut self, nb_rx: u16) {
        self.c.polls += 1;
        self.map
            .u64_at(OFF_POLLS)
            .store(self.c.polls, Ordering::Release);
        if nb_rx == 0 {
            self.c.empty_polls += 1;
            self.map
                .u64_at(OFF_EMPTY_POLLS)
                .store(self.c.empty_polls, Ordering::Release);
        }
    }

    /// Bytes of the ring in use (published but not yet committed by the
    /// consumer), as seen now.
    pub fn used_bytes(&self) -> u64 {
        let tail = self.map.u64_at(OFF_TAIL).load(Ordering::Acquire);
        self.head.saturating_sub(tail)
    }
}
