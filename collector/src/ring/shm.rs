//! The one module that touches mapped shared memory.
//!
//! Every access to a ring file's bytes goes through [`Mapping`], which hands
//! out only atomics: header fields as `&AtomicU64`/`&AtomicU32`, the data area
//! as relaxed 8-byte atomic loads and stores. Another process (the NF) writes
//! the same memory concurrently and may be buggy or hostile; with atomics
//! every interleaving is a defined (if meaningless) value, never a data race,
//! and callers validate what they read before using it.
//!
//! Residual risk, documented rather than hidden: a process that *truncates*
//! the ring file while it is mapped makes later accesses raise SIGBUS. The
//! consumer re-checks the file length before every drain
//! ([`Mapping::file_len_ok`]), which narrows the window to a race with a
//! deliberately hostile owner of the file.
#![allow(unsafe_code)]

use memmap2::{MmapOptions, MmapRaw};
use std::fs::File;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A shared, writable mapping of a whole ring file.
pub(crate) struct Mapping {
    raw: MmapRaw,
    len: usize,
    file: File,
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping").field("len", &self.len).finish()
    }
}

impl Mapping {
    /// Maps the first `len` bytes of `file` shared, read-write (or read-only
    /// when `!writable`: then nothing may be stored through it). `len` must
    /// be a multiple of 8 (ring files always are).
    pub(crate) fn map(file: File, len: usize, writable: bool) -> std::io::Result<Mapping> {
        assert!(len % 8 == 0 && len > 0, "ring mapping length {len}");
        let opts = MmapOptions::new().len(len).clone();
        let raw = if writable {
            opts.map_raw(&file)?
        } else {
            opts.map_raw_read_only(&file)?
        };
        // mmap returns page-aligned memory, so 8-byte offsets are aligned.
        debug_assert_eq!(raw.as_ptr() as usize % 8, 0);
        Ok(Mapping { raw, len, file })
    }

    /// Takes an exclusive, non-blocking `flock(2)` on the file, held as long
    /// as the mapping lives (released by the kernel if the process dies).
    /// Returns false when another open file description holds it.
    pub(crate) fn try_lock_exclusive(&self) -> std::io::Result<bool> {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(false)
        } else {
            Err(e)
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// True when the file is still at least as long as the mapping.
    pub(crate) fn file_len_ok(&self) -> bool {
        self.file
            .metadata()
            .map(|m| m.len() >= self.len as u64)
            .unwrap_or(false)
    }

    pub(crate) fn u64_at(&self, off: usize) -> &AtomicU64 {
        assert!(off % 8 == 0 && off + 8 <= self.len, "u64 at {off}");
        // SAFETY: the offset is in bounds and 8-aligned (checked above; the
        // mapping is page-aligned); the mapping lives as long as `self`; any
        // bit pattern is a valid AtomicU64, and concurrent access from the
        // other process goes through atomics too (or is a race we tolerate by
        // validating every value).
        unsafe { &*(self.raw.as_ptr().add(off) as *const AtomicU64) }
    }

    pub(crate) fn u32_at(&self, off: usize) -> &AtomicU32 {
        assert!(off % 4 == 0 && off + 4 <= self.len, "u32 at {off}");
        // SAFETY: as in `u64_at`, with 4-byte alignment and size.
        unsafe { &*(self.raw.as_ptr().add(off) as *const AtomicU32) }
    }

    /// Copies `out.len()` words starting at byte `off` (8-aligned) out of the
    /// mapping with relaxed loads.
    pub(crate) fn load_words(&self, off: usize, out: &mut [u64]) {
        assert!(off % 8 == 0 && off + out.len() * 8 <= self.len);
        for (i, w) in out.iter_mut().enumerate() {
            *w = self.u64_at(off + i * 8).load(Ordering::Relaxed);
        }
    }

    /// Copies `bytes.len()` bytes (a multiple of 8) into the mapping at byte
    /// `off` (8-aligned) with relaxed stores.
    pub(crate) fn store_bytes(&self, off: usize, bytes: &[u8]) {
        assert!(off % 8 == 0 && bytes.len() % 8 == 0 && off + bytes.len() <= self.len);
        for (i, c) in bytes.chunks_exact(8).enumerate() {
            let w = u64::from_le_bytes(c.try_into().expect("8-byte chunk"));
            self.u64_at(off + i * 8).store(w, Ordering::Relaxed);
        }
    }

    /// Copies `out.len()` bytes (a multiple of 8) from byte `off` (8-aligned).
    pub(crate) fn load_bytes(&self, off: usize, out: &mut [u8]) {
        assert!(off % 8 == 0 && out.len() % 8 == 0 && off + out.len() <= self.len);
        for (i, c) in out.chunks_exact_mut(8).enumerate() {
            let w = self.u64_at(off + i * 8).load(Ordering::Relaxed);
            c.copy_from_slice(&w.to_le_bytes());
        }
    }
}
