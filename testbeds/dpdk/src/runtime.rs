//! The thin DPDK layer the NF processes use: EAL start, mbuf pool, port
//! set-up by device name, bursts, and the Microscope shim (statically linked,
//! attached after each port start). Only built with `cfg(has_dpdk)`.
//!
//! Everything `unsafe` in the crate lives here; each block says why it holds.

use dpdk_sys as sys;
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int};

/// Totals of the shim (mirror of `struct microscope_stats`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct ShimStats {
    pub streams: u64,
    pub batches: u64,
    pub packets: u64,
    pub anchors: u64,
    pub lost_full: u64,
    pub lost_too_big: u64,
}

extern "C" {
    fn microscope_attach(port_id: u16) -> c_int;
    fn microscope_stats(out: *mut ShimStats);
    fn microscope_shutdown();
    fn microscope_flush(port_id: u16);
}

/// Error from a DPDK call, with the call and DPDK's message.
#[derive(Debug, thiserror::Error)]
#[error("{call}: {msg}")]
pub struct DpdkError {
    pub call: String,
    pub msg: String,
}

fn err(call: impl Into<String>, code: c_int) -> DpdkError {
    let code = if code < 0 { -code } else { code };
    // SAFETY: rte_strerror returns a pointer to a static or thread-local
    // NUL-terminated string for any errno value.
    let msg = unsafe { CStr::from_ptr(sys::rte_strerror(code)) }
        .to_string_lossy()
        .into_owned();
    DpdkError {
        call: call.into(),
        msg,
    }
}

/// Initializes the EAL with `args` (`args[0]` is the program name). The
/// argument strings are leaked: EAL keeps pointers into them.
pub fn eal_init(args: &[String]) -> Result<(), DpdkError> {
    let owned: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_str()).unwrap_or_default())
        .collect();
    let mut ptrs: Vec<*mut c_char> = owned.into_iter().map(|c| c.into_raw()).collect();
    ptrs.push(std::ptr::null_mut());
    let argv = Box::leak(ptrs.into_boxed_slice());
    // SAFETY: argv is a NULL-terminated array of valid C strings that lives
    // for the rest of the process, as rte_eal_init requires.
    let rc = unsafe { sys::rte_eal_init((argv.len() - 1) as c_int, argv.as_mut_ptr()) };
    if rc < 0 {
        // SAFETY: reads the calling thread's rte_errno.
        return Err(err("rte_eal_init", unsafe { sys::rte_errno() }));
    }
    Ok(())
}

/// An mbuf pool (never freed: lives as long as the process).
#[derive(Clone, Copy, Debug)]
pub struct Pool(pub *mut sys::rte_mempool);

pub fn pool_create(name: &str, n: u32) -> Result<Pool, DpdkError> {
    let cname = CString::new(name).unwrap_or_default();
    // SAFETY: valid C string; the EAL is initialized (callers run eal_init
    // first); SOCKET_ID_ANY is accepted.
    let p = unsafe {
        sys::rte_pktmbuf_pool_create(
            cname.as_ptr(),
            n,
            256,
            0,
            sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
            -1,
        )
    };
    if p.is_null() {
        // SAFETY: reads rte_errno.
        return Err(err(format!("rte_pktmbuf_pool_create({name})"), unsafe {
            sys::rte_errno()
        }));
    }
    Ok(Pool(p))
}

/// Port id of a device by name (e.g. `net_memif0`).
pub fn port_by_name(name: &str) -> Result<u16, DpdkError> {
    let cname = CString::new(name).unwrap_or_default();
    let mut id = 0u16;
    // SAFETY: valid C string and out pointer.
    let rc = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
    if rc != 0 {
        return Err(err(format!("no port named {name}"), rc));
    }
    Ok(id)
}

/// Configures one rx and one tx queue, starts the port and attaches the
/// shim (unless `shim` is false).
pub fn port_start(port: u16, pool: Pool, ring: u16, shim: bool) -> Result<(), DpdkError> {
    // SAFETY: plain DPDK control-path calls on a valid port id with
    // zero-initialized configuration structs (the documented defaults) and a
    // pool created by pool_create.
    unsafe {
        let conf: sys::rte_eth_conf = std::mem::zeroed();
        let rc = sys::rte_eth_dev_configure(port, 1, 1, &conf);
        if rc != 0 {
            return Err(err(format!("rte_eth_dev_configure(port {port})"), rc));
        }
        let socket = sys::rte_eth_dev_socket_id(port);
        let socket = if socket < 0 { 0 } else { socket as u32 };
        let rc = sys::rte_eth_rx_queue_setup(port, 0, ring, socket, std::ptr::null(), pool.0);
        if rc != 0 {
            return Err(err(format!("rte_eth_rx_queue_setup(port {port})"), rc));
        }
        let rc = sys::rte_eth_tx_queue_setup(port, 0, ring, socket, std::ptr::null());
        if rc != 0 {
            return Err(err(format!("rte_eth_tx_queue_setup(port {port})"), rc));
        }
        let rc = sys::rte_eth_dev_start(port);
        if rc != 0 {
            return Err(err(format!("rte_eth_dev_start(port {port})"), rc));
        }
        if shim {
            let rc = microscope_attach(port);
            if rc != 0 {
                return Err(err(format!("microscope_attach(port {port})"), rc));
            }
        }
    }
    Ok(())
}

/// Whether the port's link is up now (does not wait).
pub fn link_up(port: u16) -> Result<bool, DpdkError> {
    // SAFETY: rte_eth_link is a plain C struct (all-zero is valid) and the
    // out pointer is valid for the call; port is a port this process probed.
    let mut link: sys::rte_eth_link = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let rc = unsafe { sys::rte_eth_link_get_nowait(port, &mut link) };
    if rc != 0 {
        return Err(err(format!("rte_eth_link_get_nowait(port {port})"), rc));
    }
    Ok(link.link_status() != 0)
}

/// Stops and closes a port (end of run), after publishing the records the
/// shim holds back on it (no lcore polls the port any more).
pub fn port_stop(port: u16) {
    // SAFETY: control-path calls on a port this process started;
    // microscope_flush takes the shim's lock and is a no-op for a port it
    // never attached.
    unsafe {
        microscope_flush(port);
        sys::rte_eth_dev_stop(port);
        sys::rte_eth_dev_close(port);
    }
}

/// EAL cleanup at exit (releases runtime files of this file prefix).
pub fn eal_cleanup() {
    // SAFETY: called once, after all ports are closed and no lcore polls.
    unsafe {
        sys::rte_eal_cleanup();
    }
}

pub type Mbuf = *mut sys::rte_mbuf;

/// Receives up to `bufs.len()` packets.
#[inline]
pub fn rx(port: u16, bufs: &mut [Mbuf]) -> usize {
    // SAFETY: bufs has room for bufs.len() pointers; queue 0 was set up.
    unsafe { sys::rte_eth_rx_burst(port, 0, bufs.as_mut_ptr(), bufs.len() as u16) as usize }
}

/// Offers `bufs` to the port; returns how many it accepted (the caller
/// still owns the rest).
#[inline]
pub fn tx(port: u16, bufs: &mut [Mbuf]) -> usize {
    // SAFETY: bufs holds valid mbufs owned by the caller; the driver takes
    // ownership of the accepted prefix.
    unsafe { sys::rte_eth_tx_burst(port, 0, bufs.as_mut_ptr(), bufs.len() as u16) as usize }
}

/// Frees mbufs the caller owns.
#[inline]
pub fn free(bufs: &[Mbuf]) {
    for &m in bufs {
        // SAFETY: each pointer is an mbuf owned by the caller, freed once.
        unsafe { sys::rte_pktmbuf_free(m) };
    }
}

/// The packet bytes of a single-segment mbuf, with `extra` bytes of
/// tailroom appended first when asked (None when there is no room).
///
/// # Safety
/// `m` must be a valid mbuf owned by the caller and not aliased for the
/// lifetime of the returned slice.
#[inline]
pub unsafe fn data<'a>(m: Mbuf, extra: u16) -> Option<&'a mut [u8]> {
    let len = sys::rte_pktmbuf_data_len(m) as usize;
    if extra > 0 && sys::rte_pktmbuf_append(m, extra).is_null() {
        return None;
    }
    let p = sys::rte_pktmbuf_mtod(m) as *mut u8;
    Some(std::slice::from_raw_parts_mut(p, len + extra as usize))
}

/// Allocates up to `out.len()` mbufs filled with `frames`; returns how many.
pub fn alloc_frames<'f>(
    pool: Pool,
    out: &mut [Mbuf],
    frames: impl Iterator<Item = &'f [u8]>,
) -> usize {
    let mut n = 0;
    for (slot, f) in out.iter_mut().zip(frames) {
        // SAFETY: the pool is valid; a NULL return is handled.
        let m = unsafe { sys::rte_pktmbuf_alloc(pool.0) };
        if m.is_null() {
            break;
        }
        // SAFETY: m is a fresh single-segment mbuf; append returns NULL when
        // the frame does not fit, handled by freeing it.
        unsafe {
            let p = sys::rte_pktmbuf_append(m, f.len() as u16) as *mut u8;
            if p.is_null() {
                sys::rte_pktmbuf_free(m);
                break;
            }
            std::ptr::copy_nonoverlapping(f.as_ptr(), p, f.len());
        }
        *slot = m;
        n += 1;
    }
    n
}

#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: reads the TSC.
    unsafe { sys::rte_rdtsc() }
}

pub fn tsc_hz() -> u64 {
    // SAFETY: valid after EAL init (returns the calibrated estimate).
    unsafe { sys::rte_get_tsc_hz() }
}

pub fn shim_stats() -> ShimStats {
    let mut s = ShimStats::default();
    // SAFETY: fills the struct we own (same layout as the C struct).
    unsafe { microscope_stats(&mut s) };
    s
}

/// Final clock anchor on every stream; call after polling stopped (the
/// shim's single-producer rule).
pub fn shim_shutdown() {
    // SAFETY: no lcore polls any more (the caller's loop has ended).
    unsafe { microscope_shutdown() };
}
