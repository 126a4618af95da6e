//! The C producer of `microscope_ring.h`, compiled by `build.rs` into a small
//! static library, behind a safe wrapper. Exists so tests can prove the C
//! and Rust producers write identical bytes, and benches can time the C hot
//! path; the DPDK shim includes the header directly.
#![allow(unsafe_code)]

use super::codec::BatchView;
use super::{direction_code, role_code, PutOutcome, RingConfig, RingError};
use std::ffi::{c_char, c_int, c_long, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

#[repr(C)]
struct MsRing {
    _opaque: [u8; 0],
}

extern "C" {
    fn ms_check_layout_len() -> usize;
    fn ms_check_layout_entry(i: usize, value: *mut usize) -> *const c_char;
    fn ms_check_const_entry(i: usize, value: *mut u64) -> *const c_char;
    fn ms_check_magic() -> u64;
    fn ms_check_version() -> u32;
    fn ms_check_batch_len(count: u32, flags: u32) -> u64;
    fn ms_check_create(
        path: *const c_char,
        nf_name: *const c_char,
        nf_type: *const c_char,
        host: *const c_char,
        role: u8,
        direction: u8,
        port: u16,
        queue: u16,
        carries_tuples: c_int,
        pid: u32,
        created_ns: u64,
        tsc_hz_hint: u64,
        data_size: u64,
        max_record_size: u32,
        gid: c_long,
        err: *mut c_int,
    ) -> *mut MsRing;
    fn ms_check_put_batch(
        r: *mut MsRing,
        tsc: u64,
        requested: u16,
        count: u16,
        ipids: *const u16,
        non_ipv4: *const u64,
        tuples: *const u8,
        seq: *mut u64,
    ) -> c_int;
    fn ms_check_reserve_batch(
        r: *mut MsRing,
        tsc: u64,
        requested: u16,
        count: u16,
        ipids: *const u16,
        non_ipv4: *const u64,
        tuples: *const u8,
        seq: *mut u64,
    ) -> c_int;
    fn ms_check_put_anchor(r: *mut MsRing, tsc: u64, mono_ns: u64, seq: *mut u64) -> c_int;
    fn ms_check_note_poll(r: *mut MsRing, nb_rx: u16);
    fn ms_check_tuple_pack(
        out: *mut u8,
        src_ip: u32,
        dst_ip: u32,
        src_port: u16,
        dst_port: u16,
        proto: u8,
    );
    fn ms_check_close(r: *mut MsRing);
}

/// `(name, value)` of every offset and size the C header defines.
pub fn c_layout() -> Vec<(String, usize)> {
    // SAFETY: both functions only read a static table; entry names are
    // static NUL-terminated strings and `v` is a valid out-pointer.
    unsafe {
        (0..ms_check_layout_len())
            .filter_map(|i| {
                let mut v = 0usize;
                let p = ms_check_layout_entry(i, &mut v);
                (!p.is_null()).then(|| (CStr::from_ptr(p).to_string_lossy().into_owned(), v))
            })
            .collect()
    }
}

/// `(name, value)` of every constant the C header defines.
pub fn c_constant_table() -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for i in 0.. {
        let mut v = 0u64;
        // SAFETY: reads a static table; a non-null result is a static
        // NUL-terminated string; `v` is a valid out-pointer.
        let p = unsafe { ms_check_const_entry(i, &mut v) };
        if p.is_null() {
            break;
        }
        // SAFETY: non-null entries point at static C strings.
        out.push((
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned(),
            v,
        ));
    }
    out
}

/// `MS_RING_MAGIC`, `MS_RING_VERSION` as the C side sees them.
pub fn c_constants() -> (u64, u32) {
    // SAFETY: pure functions returning constants.
    unsafe { (ms_check_magic(), ms_check_version()) }
}

/// `ms_batch_len(count, flags)`.
pub fn c_batch_len(count: u32, flags: u32) -> u64 {
    // SAFETY: pure arithmetic.
    unsafe { ms_check_batch_len(count, flags) }
}

/// `ms_tuple_pack` of a 5-tuple.
pub fn c_tuple_pack(t: &crate::record::FiveTuple) -> [u8; 13] {
    let mut out = [0u8; 13];
    // SAFETY: `out` has the 13 bytes the function writes.
    unsafe {
        ms_check_tuple_pack(
            out.as_mut_ptr(),
            t.src_ip,
            t.dst_ip,
            t.src_port,
            t.dst_port,
            t.proto,
        )
    };
    out
}

/// A ring created and written by the C producer.
pub struct CProducer {
    ring: *mut MsRing,
    path: PathBuf,
    ipid_buf: Vec<u16>,
    bitmap: Vec<u64>,
    tuples: Vec<u8>,
}

// SAFETY: the handle is only used through &mut self (one thread at a time);
// the C producer keeps no thread-local state.
unsafe impl Send for CProducer {}

fn cstr(path: &Path, s: &[u8]) -> Result<CString, RingError> {
    CString::new(s).map_err(|_| RingError::InvalidConfig {
        path: path.to_path_buf(),
        reason: "string contains a NUL byte".into(),
    })
}

impl CProducer {
    /// `ms_ring_create_file` with `cfg`.
    pub fn create(path: &Path, cfg: &RingConfig) -> Result<CProducer, RingError> {
        let id = &cfg.identity;
        let p = cstr(path, path.as_os_str().as_bytes())?;
        let nf = cstr(path, id.nf.as_bytes())?;
        let ty = cstr(path, id.nf_type.as_bytes())?;
        let host = cstr(path, id.host.as_bytes())?;
        let mut err: c_int = 0;
        // SAFETY: all pointers are valid NUL-terminated strings living across
        // the call; `err` is a valid out-pointer.
        let ring = unsafe {
            ms_check_create(
                p.as_ptr(),
                nf.as_ptr(),
                ty.as_ptr(),
                host.as_ptr(),
                role_code(id.role),
                direction_code(id.direction),
                id.port,
                id.queue,
                id.carries_tuples as c_int,
                id.pid,
                id.created_ns,
                id.tsc_hz_hint.unwrap_or(0),
                cfg.data_size,
                cfg.max_record_size.unwrap_or(0),
                cfg.group.map_or(-1, |g| g as c_long),
                &mut err,
            )
        };
        if ring.is_null() {
            return Err(RingError::Io {
                path: path.to_path_buf(),
                op: "ms_ring_create_file",
                source: std::io::Error::from_raw_os_error(-err),
            });
        }
        Ok(CProducer {
            ring,
            path: path.to_path_buf(),
            ipid_buf: Vec::new(),
            bitmap: Vec::new(),
            tuples: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Offers a batch with `ms_ring_put_batch`, or with
    /// `ms_ring_reserve_batch` + in-place fill + `ms_ring_commit` when
    /// `zero_copy`. Batches over 65535 packets cannot be expressed in C and
    /// are rejected with [`RingError::InvalidInput`], as are inconsistent
    /// views.
    pub fn put_batch(
        &mut self,
        b: &BatchView<'_>,
        zero_copy: bool,
    ) -> Result<PutOutcome, RingError> {
        let invalid = |reason: String| RingError::InvalidInput {
            path: self.path.clone(),
            reason,
        };
        b.check().map_err(invalid)?;
        let count = u16::try_from(b.ipids.len())
            .map_err(|_| invalid(format!("{} packets do not fit a u16 count", b.ipids.len())))?;
        self.ipid_buf.clear();
        self.ipid_buf.extend_from_slice(b.ipids);
        let bitmap = if b.non_ipv4.is_empty() {
            std::ptr::null()
        } else {
            self.bitmap.clear();
            self.bitmap.resize((count as usize).div_ceil(64), 0);
            for &i in b.non_ipv4 {
                self.bitmap[i as usize / 64] |= 1 << (i % 64);
            }
            self.bitmap.as_ptr()
        };
        let tuples = match b.tuples {
            None => std::ptr::null(),
            Some(t) => {
                self.tuples.clear();
                for x in t {
                    self.tuples.extend_from_slice(&x.to_bytes());
                }
                self.tuples.as_ptr()
            }
        };
        let mut seq = 0u64;
        // SAFETY: `ring` is a live handle from ms_check_create; `ipid_buf`
        // has `count` entries, `bitmap` (when non-null) ceil(count/64) words,
        // `tuples` (when non-null) 13*count bytes; `seq` is an out-pointer.
        let rc = unsafe {
            if zero_copy {
                ms_check_reserve_batch(
                    self.ring,
                    b.tsc,
                    b.requested,
                    count,
                    self.ipid_buf.as_ptr(),
                    bitmap,
                    tuples,
                    &mut seq,
                )
            } else {
                ms_check_put_batch(
                    self.ring,
                    b.tsc,
                    b.requested,
                    count,
                    self.ipid_buf.as_ptr(),
                    bitmap,
                    tuples,
                    &mut seq,
                )
            }
        };
        Ok(outcome(rc, seq))
    }

    /// `ms_ring_put_anchor`.
    pub fn put_anchor(&mut self, tsc: u64, mono_ns: u64) -> PutOutcome {
        let mut seq = 0u64;
        // SAFETY: live handle; valid out-pointer.
        let rc = unsafe { ms_check_put_anchor(self.ring, tsc, mono_ns, &mut seq) };
        outcome(rc, seq)
    }

    /// `ms_ring_note_poll`.
    pub fn note_poll(&mut self, nb_rx: u16) {
        // SAFETY: live handle.
        unsafe { ms_check_note_poll(self.ring, nb_rx) }
    }
}

fn outcome(rc: c_int, seq: u64) -> PutOutcome {
    match rc {
        0 => PutOutcome::Written { seq },
        2 => PutOutcome::LostTooBig { seq },
        _ => PutOutcome::LostFull { seq },
    }
}

impl Drop for CProducer {
    fn drop(&mut self) {
        // SAFETY: the handle came from ms_check_create and is closed once.
        unsafe { ms_check_close(self.ring) }
    }
}
