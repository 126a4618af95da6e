//! Fault injection as shipped code (after smoltcp's `FaultInjector`): a
//! [`FaultyFile`] wraps the trace file and fails like a full or broken disk
//! — a short write followed by ENOSPC when the file would outgrow its
//! capacity, or EIO on chosen writes — so the dumper's reliability is tested
//! without special builds. It implements both `Write` and
//! [`tracefile::Rollback`] (clone the handle for the latter), and a rollback
//! frees the space it cuts off, as on a real file system.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

/// Which failures to inject.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// Largest size the file may reach. A write crossing it writes what fits
    /// (a short write) and the next write fails with ENOSPC.
    pub capacity: Option<u64>,
    /// After this many ENOSPC failures, `refill` more bytes fit (an operator
    /// freed space). 0 = never.
    pub refill_after: u64,
    /// Bytes added to the capacity by a refill.
    pub refill: u64,
    /// Every n-th write call fails with EIO before writing anything.
    pub eio_every: Option<u64>,
}

impl FromStr for FaultPlan {
    type Err = String;

    /// Parses comma-separated `key=value` items: `capacity=BYTES`,
    /// `refill-after=N`, `refill=BYTES`, `eio-every=N`.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut p = FaultPlan::default();
        for part in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("fault plan item {part:?}: expected key=value"))?;
            let n: u64 = v
                .parse()
                .map_err(|e| format!("fault plan item {part:?}: {e}"))?;
            match k {
                "capacity" => p.capacity = Some(n),
                "refill-after" => p.refill_after = n,
                "refill" => p.refill = n,
                "eio-every" if n > 0 => p.eio_every = Some(n),
                _ => {
                    return Err(format!(
                        "fault plan item {part:?}: unknown key or zero value"
                    ))
                }
            }
        }
        Ok(p)
    }
}

/// Counters of what a [`FaultyFile`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    pub writes: u64,
    pub short_writes: u64,
    pub enospc: u64,
    pub eio: u64,
    pub rollbacks: u64,
}

#[derive(Debug)]
struct Inner {
    file: File,
    plan: FaultPlan,
    capacity: Option<u64>,
    /// Current file length as far as this handle knows (writes + rollbacks).
    len: u64,
    failures: u64,
    stats: FaultStats,
}

/// A file handle that injects the failures of a [`FaultPlan`]. Clones share
/// the file and the fault state.
#[derive(Clone, Debug)]
pub struct FaultyFile(Arc<Mutex<Inner>>);

impl FaultyFile {
    /// Wraps `file`, whose current length counts against the capacity.
    pub fn new(file: File, plan: FaultPlan) -> io::Result<FaultyFile> {
        let len = file.metadata()?.len();
        Ok(FaultyFile(Arc::new(Mutex::new(Inner {
            file,
            plan,
            capacity: plan.capacity,
            len,
            failures: 0,
            stats: FaultStats::default(),
        }))))
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave Inner inconsistent
        // (plain counters), so a poisoned lock is still usable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn stats(&self) -> FaultStats {
        self.inner().stats
    }

    /// fsync (data) of the underlying file.
    pub fn sync_data(&self) -> io::Result<()> {
        self.inner().file.sync_data()
    }
}

impl Write for FaultyFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut g = self.inner();
        let st = &mut *g;
        st.stats.writes += 1;
        if let Some(k) = st.plan.eio_every {
            if st.stats.writes % k == 0 {
                st.stats.eio += 1;
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
        }
        let mut n = buf.len();
        if let Some(cap) = st.capacity {
            let room = cap.saturating_sub(st.len);
            if room == 0 && !buf.is_empty() {
                st.stats.enospc += 1;
                st.failures += 1;
                if st.plan.refill_after > 0 && st.failures >= st.plan.refill_after {
                    st.failures = 0;
                    st.capacity = Some(cap + st.plan.refill);
                }
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            if (room as usize) < n {
                n = room as usize;
                st.stats.short_writes += 1;
            }
        }
        let n = st.file.write(&buf[..n])?;
        st.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner().file.flush()
    }
}

impl tracefile::Rollback for FaultyFile {
    fn rollback(&mut self, len: u64) -> io::Result<()> {
        let mut g = self.inner();
        g.file.set_len(len)?;
        g.file.seek(SeekFrom::Start(len))?;
        g.len = len;
        g.stats.rollbacks += 1;
        Ok(())
    }
}
