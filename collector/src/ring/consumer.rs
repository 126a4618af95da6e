//! The consumer: opens a ring file it trusts, validates everything it reads
//! from shared memory, drains records, and commits the shared tail only when
//! told the records are durable.

use super::codec;
use super::layout::*;
use super::shm::Mapping;
use super::{direction_from_code, role_from_code, RingError, RingIdentity};
use crate::record::{LossCounters, Record};
use std::fs::{Metadata, OpenOptions};
use std::mem::offset_of;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const OFF_HEAD: usize = offset_of!(RingHeader, head);
const OFF_TAIL: usize = offset_of!(RingHeader, tail);
const OFF_NEXT_SEQ: usize = offset_of!(RingHeader, next_seq);
const OFF_LOST_FULL: usize = offset_of!(RingHeader, lost_full);
const OFF_LOST_TOO_BIG: usize = offset_of!(RingHeader, lost_too_big);
const OFF_POLLS: usize = offset_of!(RingHeader, polls);
const OFF_EMPTY_POLLS: usize = offset_of!(RingHeader, empty_polls);
const OFF_COOKIE: usize = offset_of!(RingHeader, consumer_cookie);
const OFF_STREAM: usize = offset_of!(RingHeader, consumer_stream);
const OFF_CPID: usize = offset_of!(RingHeader, consumer_pid);
const OFF_LOST_WRITE: usize = offset_of!(RingHeader, lost_write);
const OFF_LOST_CORRUPT: usize = offset_of!(RingHeader, lost_corrupt);

/// Which ring files the consumer accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustPolicy {
    /// Owners accepted (default: the consumer's effective uid).
    pub allowed_uids: Vec<u32>,
    /// A group whose members may write rings: files may then be
    /// group-writable if their group is this one.
    pub group: Option<u32>,
}

impl Default for TrustPolicy {
    fn default() -> Self {
        TrustPolicy::current_user()
    }
}

impl TrustPolicy {
    /// Rings owned by the current effective user, not group- or
    /// world-writable.
    pub fn current_user() -> TrustPolicy {
        // SAFETY: geteuid has no preconditions and cannot fail.
        #[allow(unsafe_code)]
        let uid = unsafe { libc::geteuid() };
        TrustPolicy {
            allowed_uids: vec![uid],
            group: None,
        }
    }

    /// Says why a file with `meta` is not trusted, if it is not.
    pub fn check(&self, meta: &Metadata) -> Result<(), String> {
        if !meta.file_type().is_file() {
            return Err("not a regular file".into());
        }
        let mode = meta.mode() & 0o7777;
        if !self.allowed_uids.contains(&meta.uid()) {
            return Err(format!(
                "owned by uid {}, trusted owners are {:?}",
                meta.uid(),
                self.allowed_uids
            ));
        }
        if mode & 0o002 != 0 {
            return Err(format!("world-writable (mode {mode:04o})"));
        }
        if mode & 0o020 != 0 && self.group != Some(meta.gid()) {
            return Err(match self.group {
                Some(g) => format!(
                    "group-writable by gid {} (mode {mode:04o}), only gid {g} is trusted",
                    meta.gid()
                ),
                None => format!("group-writable (mode {mode:04o}) and no ring group is configured"),
            });
        }
        Ok(())
    }
}

/// A snapshot of a ring's shared counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingCounters {
    pub head: u64,
    pub tail: u64,
    pub next_seq: u64,
    pub lost_full: u64,
    pub lost_too_big: u64,
    pub polls: u64,
    pub empty_polls: u64,
}

struct Shared {
    map: Mapping,
    path: PathBuf,
    committed: AtomicU64,
    lost_write: AtomicU64,
    lost_corrupt: AtomicU64,
}

/// A `Send + Sync` handle that publishes a consumer's durable position; held
/// by whoever makes records durable (the dumper's writer thread).
#[derive(Clone)]
pub struct Committer(Arc<Shared>);

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Committer").field(&self.0.path).finish()
    }
}

impl Committer {
    /// Publishes `tail = pos` (a position from [`Consumer::position`] whose
    /// records are durable or counted lost), and the consumer-side loss
    /// counters before it. Positions not beyond the last commit are ignored.
    pub fn commit(&self, pos: u64) {
        let sh = &self.0;
        if pos <= sh.committed.load(Ordering::Acquire) {
            return;
        }
        sh.map
            .u64_at(OFF_LOST_WRITE)
            .store(sh.lost_write.load(Ordering::Relaxed), Ordering::Relaxed);
        sh.map
            .u64_at(OFF_LOST_CORRUPT)
            .store(sh.lost_corrupt.load(Ordering::Relaxed), Ordering::Relaxed);
        sh.map
            .u32_at(OFF_CPID)
            .store(std::process::id(), Ordering::Relaxed);
        sh.committed.store(pos, Ordering::Release);
        sh.map.u64_at(OFF_TAIL).store(pos, Ordering::Release);
    }

    /// Counts `n` records that could not be made durable (disk errors).
    pub fn add_lost_write(&self, n: u64) {
        self.0.lost_write.fetch_add(n, Ordering::Relaxed);
    }

    /// The last committed position.
    pub fn committed(&self) -> u64 {
        self.0.committed.load(Ordering::Acquire)
    }

    pub fn path(&self) -> &Path {
        &self.0.path
    }
}

/// The single reader of one ring.
pub struct Consumer {
    sh: Arc<Shared>,
    identity: RingIdentity,
    data_size: u64,
    mask: u64,
    max_record: u32,
    read_pos: u64,
    last_seq: Option<u64>,
    lost_full: u64,
    lost_too_big: u64,
    poisoned: Option<String>,
    scratch: Vec<u8>,
    file_id: (u64, u64),
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("path", &self.sh.path)
            .field("read_pos", &self.read_pos)
            .field("last_seq", &self.last_seq)
            .finish()
    }
}

fn name(b: &[u8], what: &str) -> Result<String, String> {
    let end = b
        .iter()
        .position(|&c| c == 0)
        .ok_or_else(|| format!("{what} is not NUL-terminated within {} bytes", b.len()))?;
    std::str::from_utf8(&b[..end])
        .map(str::to_owned)
        .map_err(|e| format!("{what} is not UTF-8: {e}"))
}

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn le64(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

/// A validated, mapped ring header.
struct Opened {
    map: Mapping,
    identity: RingIdentity,
    data_size: u64,
    max_record: u32,
    file_id: (u64, u64),
}

/// Opens `path`, checks trust, maps it and validates the header (shared by
/// [`Consumer::open`] and [`Observer::open`]).
fn open_header(path: &Path, trust: &TrustPolicy, writable: bool) -> Result<Opened, RingError> {
    let io = |op: &'static str| {
        move |source| RingError::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    };
    let bad = |offset: u64, reason: String| RingError::BadHeader {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(writable)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(io("open"))?;
    let meta = file.metadata().map_err(io("stat"))?;
    trust.check(&meta).map_err(|reason| RingError::Untrusted {
        path: path.to_path_buf(),
        reason,
    })?;
    let len = meta.len();
    if len < HEADER_SIZE as u64 + MIN_DATA_SIZE {
        return Err(bad(
            len,
            format!(
                "file is {len} bytes, a ring needs at least {}",
                HEADER_SIZE as u64 + MIN_DATA_SIZE
            ),
        ));
    }
    if len > HEADER_SIZE as u64 + MAX_DATA_SIZE || len % 8 != 0 {
        return Err(bad(
            0,
            format!("file size {len} is not a possible ring size"),
        ));
    }
    let file_id = (meta.dev(), meta.ino());
    let map = Mapping::map(file, len as usize, writable).map_err(io("map"))?;
    if writable && !map.try_lock_exclusive().map_err(io("flock"))? {
        return Err(RingError::Busy {
            path: path.to_path_buf(),
        });
    }
    let magic = map.u64_at(0).load(Ordering::Acquire);
    if magic != MAGIC {
        return Err(bad(
            0,
            format!("magic {magic:#018x}, expected {MAGIC:#018x}"),
        ));
    }
    let mut h = vec![0u8; 512];
    map.load_bytes(0, &mut h);
    let version = le32(&h, 8);
    if version != VERSION {
        return Err(bad(
            8,
            format!("version {version}, this consumer reads {VERSION}"),
        ));
    }
    let hs = le32(&h, 12);
    if hs as usize != HEADER_SIZE {
        return Err(bad(12, format!("header size {hs}, expected {HEADER_SIZE}")));
    }
    let ds = le64(&h, 16);
    if !ds.is_power_of_two() || ds < MIN_DATA_SIZE || HEADER_SIZE as u64 + ds != len {
        return Err(bad(
            16,
            format!(
                "data size {ds}: expected a power of two >= {MIN_DATA_SIZE} equal to the file size {len} - {HEADER_SIZE}"
            ),
        ));
    }
    let max_record = le32(&h, 24);
    if max_record % 8 != 0
        || !(MIN_MAX_RECORD..=MAX_MAX_RECORD).contains(&max_record)
        || max_record as u64 > ds / 2
    {
        return Err(bad(
            24,
            format!(
                "max record size {max_record}: expected a multiple of 8 in [{MIN_MAX_RECORD}, {}]",
                (ds / 2).min(MAX_MAX_RECORD as u64)
            ),
        ));
    }
    let flags = le32(&h, 28);
    if flags & !RING_F_CARRIES_TUPLES != 0 {
        return Err(bad(28, format!("unknown ring flags {flags:#x}")));
    }
    let role = role_from_code(h[36]).ok_or_else(|| bad(36, format!("unknown role {}", h[36])))?;
    let direction = direction_from_code(h[37])
        .ok_or_else(|| bad(37, format!("unknown direction {}", h[37])))?;
    let nf = name(&h[64..128], "NF name").map_err(|r| bad(64, r))?;
    if nf.is_empty() {
        return Err(bad(64, "empty NF name".into()));
    }
    let nf_type = name(&h[128..192], "NF type").map_err(|r| bad(128, r))?;
    let host = name(&h[192..256], "host").map_err(|r| bad(192, r))?;
    let hz = le64(&h, 56);
    let identity = RingIdentity {
        nf,
        nf_type,
        role,
        port: u16::from_le_bytes([h[38], h[39]]),
        queue: u16::from_le_bytes([h[40], h[41]]),
        direction,
        host,
        carries_tuples: flags & RING_F_CARRIES_TUPLES != 0,
        pid: le32(&h, 32),
        created_ns: le64(&h, 48),
        tsc_hz_hint: (hz != 0).then_some(hz),
    };
    Ok(Opened {
        map,
        identity,
        data_size: ds,
        max_record,
        file_id,
    })
}

impl Consumer {
    /// Opens and validates a ring file.
    ///
    /// The consumer holds an exclusive `flock(2)` on the file while it lives,
    /// so two consumers never drain one ring.
    ///
    /// Errors: [`RingError::Io`] (open, stat, map, flock);
    /// [`RingError::Busy`] (another consumer has it); [`RingError::Untrusted`]
    /// (owner or mode, see [`TrustPolicy::check`]); [`RingError::BadHeader`]
    /// (truncated file, wrong magic or version, impossible sizes, bad names,
    /// impossible head/tail) — all naming the offset of the bad field.
    pub fn open(path: &Path, trust: &TrustPolicy) -> Result<Consumer, RingError> {
        let bad = |offset: u64, reason: String| RingError::BadHeader {
            path: path.to_path_buf(),
            offset,
            reason,
        };
        let Opened {
            map,
            identity,
            data_size: ds,
            max_record,
            file_id,
        } = open_header(path, trust, true)?;
        let tail = map.u64_at(OFF_TAIL).load(Ordering::Acquire);
        let head = map.u64_at(OFF_HEAD).load(Ordering::Acquire);
        if tail % 8 != 0 || head % 8 != 0 || tail > head || head - tail > ds {
            return Err(bad(
                OFF_HEAD as u64,
                format!("impossible head {head} / tail {tail} for a {ds}-byte data area"),
            ));
        }
        let lost_write = map.u64_at(OFF_LOST_WRITE).load(Ordering::Relaxed);
        let lost_corrupt = map.u64_at(OFF_LOST_CORRUPT).load(Ordering::Relaxed);
        let lost_full = map.u64_at(OFF_LOST_FULL).load(Ordering::Acquire);
        let lost_too_big = map.u64_at(OFF_LOST_TOO_BIG).load(Ordering::Acquire);
        Ok(Consumer {
            sh: Arc::new(Shared {
                map,
                path: path.to_path_buf(),
                committed: AtomicU64::new(tail),
                lost_write: AtomicU64::new(lost_write),
                lost_corrupt: AtomicU64::new(lost_corrupt),
            }),
            identity,
            data_size: ds,
            mask: ds - 1,
            max_record,
            read_pos: tail,
            last_seq: None,
            lost_full,
            lost_too_big,
            poisoned: None,
            scratch: Vec::with_capacity(max_record as usize),
            file_id,
        })
    }

    pub fn identity(&self) -> &RingIdentity {
        &self.identity
    }

    pub fn path(&self) -> &Path {
        &self.sh.path
    }

    /// `(st_dev, st_ino)` of the ring file this consumer mapped.
    pub fn file_id(&self) -> (u64, u64) {
        self.file_id
    }

    /// The handle that commits this ring's tail.
    pub fn committer(&self) -> Committer {
        Committer(self.sh.clone())
    }

    /// Read position after the last record drained (commit it once those
    /// records are durable).
    pub fn position(&self) -> u64 {
        self.read_pos
    }

    /// Commits everything drained so far (see [`Committer::commit`]).
    pub fn commit(&mut self) {
        self.committer().commit(self.read_pos);
    }

    /// Sequence number of the last record drained.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// The reason this ring is skipped, once a drain found it corrupt.
    pub fn poisoned(&self) -> Option<&str> {
        self.poisoned.as_deref()
    }

    /// Cumulative loss counters: producer drops (as of the last drain; never
    /// decreasing even if the shared counters do) and consumer-side losses.
    pub fn loss(&self) -> LossCounters {
        LossCounters {
            lost_full: self.lost_full,
            lost_too_big: self.lost_too_big,
            lost_write: self.sh.lost_write.load(Ordering::Relaxed),
            lost_corrupt: self.sh.lost_corrupt.load(Ordering::Relaxed),
        }
    }

    /// The shared counters now (unvalidated numbers, for display); all zero
    /// if the file shrank (reading the mapping would fault).
    pub fn counters(&self) -> RingCounters {
        let m = &self.sh.map;
        if !m.file_len_ok() {
            return RingCounters::default();
        }
        RingCounters {
            head: m.u64_at(OFF_HEAD).load(Ordering::Acquire),
            tail: self.sh.committed.load(Ordering::Acquire),
            next_seq: m.u64_at(OFF_NEXT_SEQ).load(Ordering::Acquire),
            lost_full: m.u64_at(OFF_LOST_FULL).load(Ordering::Acquire),
            lost_too_big: m.u64_at(OFF_LOST_TOO_BIG).load(Ordering::Acquire),
            polls: m.u64_at(OFF_POLLS).load(Ordering::Acquire),
            empty_polls: m.u64_at(OFF_EMPTY_POLLS).load(Ordering::Acquire),
        }
    }

    /// Which trace (cookie) and stream id the last consumer wrote this ring
    /// to; `None` if never bound. Unvalidated: check it against the trace.
    pub fn binding(&self) -> Option<(u64, u32)> {
        let cookie = self.sh.map.u64_at(OFF_COOKIE).load(Ordering::Acquire);
        let stream = self.sh.map.u32_at(OFF_STREAM).load(Ordering::Acquire);
        (cookie != 0).then_some((cookie, stream))
    }

    /// Records that this ring is written to trace `cookie` (non-zero) as
    /// `stream`, so a restarted consumer continues the same stream.
    pub fn bind(&self, cookie: u64, stream: u32) {
        self.sh
            .map
            .u32_at(OFF_STREAM)
            .store(stream, Ordering::Relaxed);
        self.sh
            .map
            .u64_at(OFF_COOKIE)
            .store(cookie, Ordering::Release);
    }

    /// True when everything published has been drained.
    pub fn is_drained(&self) -> bool {
        self.sh.map.u64_at(OFF_HEAD).load(Ordering::Acquire) == self.read_pos
    }

    fn poison(&mut self, offset: u64, reason: String, next_seq: u64) -> RingError {
        // Records published but not readable: every sequence number from the
        // next expected one up to the producer's next_seq, less what the
        // producer says it dropped (an estimate: the counters race with us).
        let expected = self.last_seq.map_or(0, |s| s + 1);
        let unread = next_seq.saturating_sub(expected).max(1);
        self.sh.lost_corrupt.fetch_add(unread, Ordering::Relaxed);
        self.poisoned = Some(format!("corrupt data at file offset {offset}: {reason}"));
        RingError::Corrupt {
            path: self.sh.path.clone(),
            offset,
            reason,
        }
    }

    /// Drains up to `max` records into `out` (appended), validating each.
    /// Returns how many were appended. Does not commit.
    ///
    /// Errors: [`RingError::Corrupt`] when shared memory holds something
    /// impossible (head moved backwards or past the free space, a record
    /// whose length, type, flags, count or sequence number is invalid, the
    /// file shrank); the records before the corruption are still appended to
    /// `out` and [`Consumer::position`] covers them. The ring is then
    /// poisoned: later calls return [`RingError::Poisoned`].
    pub fn drain(&mut self, max: usize, out: &mut Vec<Record>) -> Result<usize, RingError> {
        if let Some(reason) = &self.poisoned {
            return Err(RingError::Poisoned {
                path: self.sh.path.clone(),
                reason: reason.clone(),
            });
        }
        if !self.sh.map.file_len_ok() {
            return Err(self.poison(
                0,
                format!(
                    "the file shrank below the {} bytes mapped",
                    self.sh.map.len()
                ),
                0,
            ));
        }
        let m = &self.sh.map;
        let head = m.u64_at(OFF_HEAD).load(Ordering::Acquire);
        let committed = self.sh.committed.load(Ordering::Acquire);
        let next_seq = m.u64_at(OFF_NEXT_SEQ).load(Ordering::Acquire);
        let lf = m.u64_at(OFF_LOST_FULL).load(Ordering::Acquire);
        let ltb = m.u64_at(OFF_LOST_TOO_BIG).load(Ordering::Acquire);
        if head % 8 != 0 || head < self.read_pos || head - committed > self.data_size {
            let reason = format!(
                "head {head} impossible (read position {}, tail {committed}, data size {})",
                self.read_pos, self.data_size
            );
            return Err(self.poison(OFF_HEAD as u64, reason, next_seq));
        }
        let mut n = 0;
        while n < max && self.read_pos < head {
            let pos = self.read_pos & self.mask;
            let file_off = (HEADER_SIZE as u64) + pos;
            let contig = self.data_size - pos;
            let avail = head - self.read_pos;
            let mut w = [0u64; 1];
            self.sh.map.load_words(file_off as usize, &mut w);
            let (len, rtype, _flags) = codec::peek_header(&w[0].to_le_bytes());
            let len = len as u64;
            if len < REC_HDR_SIZE as u64 || len % 8 != 0 || len > avail || len > contig {
                let reason = format!(
                    "record length {len}: expected a multiple of 8 in [8, {}]",
                    avail.min(contig)
                );
                return Err(self.poison(file_off, reason, next_seq));
            }
            if rtype == REC_PAD {
                if len != contig {
                    let reason = format!(
                        "PAD record of {len} bytes must reach the end of the area ({contig})"
                    );
                    return Err(self.poison(file_off, reason, next_seq));
                }
                self.read_pos += len;
                continue;
            }
            if len > self.max_record as u64 {
                let reason = format!(
                    "record of {len} bytes exceeds max record size {}",
                    self.max_record
                );
                return Err(self.poison(file_off, reason, next_seq));
            }
            self.scratch.clear();
            self.scratch.resize(len as usize, 0);
            self.sh.map.load_bytes(file_off as usize, &mut self.scratch);
            let rec = match codec::decode(&self.scratch) {
                Ok(r) => r,
                Err(reason) => return Err(self.poison(file_off, reason, next_seq)),
            };
            let seq = rec.seq();
            let expected = self.last_seq.map_or(0, |s| s + 1);
            if seq < expected || seq >= next_seq {
                let reason = format!(
                    "sequence number {seq}: expected at least {expected} and below the producer's next {next_seq}"
                );
                return Err(self.poison(file_off, reason, next_seq));
            }
            out.push(rec);
            self.last_seq = Some(seq);
            self.read_pos += len;
            n += 1;
        }
        self.lost_full = self.lost_full.max(lf);
        self.lost_too_big = self.lost_too_big.max(ltb);
        Ok(n)
    }

    /// [`Consumer::drain`] into a new vector.
    pub fn drain_vec(&mut self, max: usize) -> Result<Vec<Record>, RingError> {
        let mut v = Vec::new();
        self.drain(max, &mut v)?;
        Ok(v)
    }
}

/// A read-only view of a ring for monitoring (`microscope top`): its
/// identity and live counters. Takes no lock, never drains, never writes, so
/// it can watch rings a dumper is draining.
pub struct Observer {
    map: Mapping,
    path: PathBuf,
    identity: RingIdentity,
    file_id: (u64, u64),
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("path", &self.path)
            .finish()
    }
}

impl Observer {
    /// Opens `path` read-only and validates its header as
    /// [`Consumer::open`] does.
    ///
    /// Errors: [`RingError::Io`], [`RingError::Untrusted`],
    /// [`RingError::BadHeader`].
    pub fn open(path: &Path, trust: &TrustPolicy) -> Result<Observer, RingError> {
        let o = open_header(path, trust, false)?;
        Ok(Observer {
            map: o.map,
            path: path.to_path_buf(),
            identity: o.identity,
            file_id: o.file_id,
        })
    }

    pub fn identity(&self) -> &RingIdentity {
        &self.identity
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `(st_dev, st_ino)` of the ring file.
    pub fn file_id(&self) -> (u64, u64) {
        self.file_id
    }

    /// The shared counters now (unvalidated numbers, for display; `tail` is
    /// the consumer's last commit).
    ///
    /// Errors: [`RingError::Corrupt`] when the file shrank below its mapped
    /// size (reading it would fault).
    pub fn counters(&self) -> Result<RingCounters, RingError> {
        let m = &self.map;
        if !m.file_len_ok() {
            return Err(RingError::Corrupt {
                path: self.path.clone(),
                offset: 0,
                reason: format!("the file shrank below the {} bytes mapped", m.len()),
            });
        }
        Ok(RingCounters {
            head: m.u64_at(OFF_HEAD).load(Ordering::Acquire),
            tail: m.u64_at(OFF_TAIL).load(Ordering::Acquire),
            next_seq: m.u64_at(OFF_NEXT_SEQ).load(Ordering::Acquire),
            lost_full: m.u64_at(OFF_LOST_FULL).load(Ordering::Acquire),
            lost_too_big: m.u64_at(OFF_LOST_TOO_BIG).load(Ordering::Acquire),
            polls: m.u64_at(OFF_POLLS).load(Ordering::Acquire),
            empty_polls: m.u64_at(OFF_EMPTY_POLLS).load(Ordering::Acquire),
        })
    }
}
