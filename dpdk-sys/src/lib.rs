//! # dpdk-sys — in-tree bindings to the system DPDK
//!
//! Raw FFI to the DPDK installed on the build machine (found with
//! `pkg-config libdpdk`, version ≥ 22.11), for Microscope's real NF chain
//! (`testbeds/dpdk`). Nothing here is safe Rust: it is the `-sys` layer
//! that safe wrappers build on.
//!
//! ## Where the bindings come from
//! - Header: `dpdk-sys/csrc/wrapper.h`, which includes the DPDK headers we
//!   use (`rte_eal.h`, `rte_ethdev.h`, `rte_mbuf.h`, `rte_ip.h`, …) after
//!   `rte_config.h`, and declares the out-of-line twins of DPDK's `static
//!   inline` fast-path functions.
//! - Generator: `build.rs` runs bindgen over that header on every build
//!   where the header, DPDK's `.pc` file or the environment changed, writing
//!   `$OUT_DIR/bindings.rs`. To regenerate by hand (to read them, or diff
//!   two DPDK versions):
//!   `cargo build -p dpdk-sys -vv` then open
//!   `target/debug/build/dpdk-sys-*/out/bindings.rs`; or with the bindgen CLI:
//!   `bindgen dpdk-sys/csrc/wrapper.h -- $(pkg-config --cflags libdpdk)`.
//! - Wrappers: `csrc/wrapper.c` (built by `cc` with DPDK's include paths)
//!   defines `dpdk_sys_rte_eth_rx_burst` etc.; this crate re-exports them
//!   under the DPDK names ([`rte_eth_rx_burst`], [`rte_pktmbuf_alloc`],
//!   [`rte_rdtsc`], [`rte_lcore_id`], …), so calling code reads like C DPDK.
//!
//! ## Without DPDK
//! When DPDK or libclang is missing (or `DPDK_SYS_DISABLE=1`), the build
//! script says why in a cargo warning and the crate is an empty shell:
//! [`AVAILABLE`] is `false` and no FFI item exists. Dependents gate their
//! DPDK code on the `DEP_DPDK_AVAILABLE` build-script variable (see
//! `testbeds/dpdk/build.rs`), so `cargo build` of the workspace never needs
//! DPDK.
//!
//! ## Invariants the generated code relies on
//! - Same ISA flags as DPDK's own `pkg-config --cflags` (`-march=corei7`,
//!   `-include rte_config.h`), so struct layouts match the libraries.
//! - `rte_arp_*`, `rte_l2tpv2_*`, `rte_gtp_*` are opaque: they are packed
//!   structs with aligned members, which Rust cannot represent (E0588); we
//!   never touch them.

#![allow(non_upper_case_globals, non_camel_case_types, non_snake_case)]
#![allow(clippy::all)]
#![allow(rustdoc::broken_intra_doc_links, rustdoc::bare_urls)]

/// True when the crate was built against a real DPDK.
#[cfg(not(no_dpdk))]
pub const AVAILABLE: bool = true;
/// True when the crate was built against a real DPDK.
#[cfg(no_dpdk)]
pub const AVAILABLE: bool = false;

/// The DPDK version the bindings were generated from (`pkg-config
/// --modversion libdpdk`), or `None` in the shell build.
#[cfg(not(no_dpdk))]
pub const DPDK_VERSION: Option<&str> = Some(env!("DPDK_SYS_VERSION"));
/// The DPDK version the bindings were generated from, or `None` in the
/// shell build.
#[cfg(no_dpdk)]
pub const DPDK_VERSION: Option<&str> = None;

#[cfg(not(no_dpdk))]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

#[cfg(not(no_dpdk))]
pub use generated::*;

/// DPDK's `static inline` functions under their own names (the out-of-line
/// twins from `csrc/wrapper.c`).
#[cfg(not(no_dpdk))]
pub use generated::{
    dpdk_sys_rte_errno as rte_errno, dpdk_sys_rte_eth_rx_burst as rte_eth_rx_burst,
    dpdk_sys_rte_eth_tx_burst as rte_eth_tx_burst, dpdk_sys_rte_lcore_id as rte_lcore_id,
    dpdk_sys_rte_pause as rte_pause, dpdk_sys_rte_pktmbuf_alloc as rte_pktmbuf_alloc,
    dpdk_sys_rte_pktmbuf_alloc_bulk as rte_pktmbuf_alloc_bulk,
    dpdk_sys_rte_pktmbuf_append as rte_pktmbuf_append,
    dpdk_sys_rte_pktmbuf_data_len as rte_pktmbuf_data_len,
    dpdk_sys_rte_pktmbuf_free as rte_pktmbuf_free, dpdk_sys_rte_pktmbuf_mtod as rte_pktmbuf_mtod,
    dpdk_sys_rte_pktmbuf_pkt_len as rte_pktmbuf_pkt_len,
    dpdk_sys_rte_pktmbuf_reset as rte_pktmbuf_reset,
    dpdk_sys_rte_pktmbuf_set_len as rte_pktmbuf_set_len, dpdk_sys_rte_rdtsc as rte_rdtsc,
};

#[cfg(all(test, not(no_dpdk)))]
mod tests {
    use super::*;

    #[test]
    fn version_is_at_least_22_11() {
        let v = DPDK_VERSION.unwrap();
        let mut it = v.split('.').map(|x| x.parse::<u32>().unwrap_or(0));
        let (maj, min) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
        assert!((maj, min) >= (22, 11), "DPDK {v}");
    }

    #[test]
    fn header_structs_have_wire_sizes() {
        // The wire headers must be bit-exact for NFs that parse packets.
        assert_eq!(std::mem::size_of::<rte_ether_hdr>(), 14);
        assert_eq!(std::mem::size_of::<rte_ipv4_hdr>(), 20);
        assert_eq!(std::mem::size_of::<rte_udp_hdr>(), 8);
        assert_eq!(std::mem::size_of::<rte_tcp_hdr>(), 20);
        // One cache line for rx, one for tx.
        assert_eq!(std::mem::size_of::<rte_eth_fp_ops>(), 128);
    }

    #[test]
    fn tsc_advances_without_eal() {
        // rte_rdtsc is a bare instruction: usable before rte_eal_init.
        // SAFETY: reads the time-stamp counter; no DPDK state involved.
        let (a, b) = unsafe { (rte_rdtsc(), rte_rdtsc()) };
        assert!(b >= a);
        assert!(a > 0);
    }
}

#[cfg(all(test, no_dpdk))]
mod tests {
    #[test]
    fn shell_build_says_unavailable() {
        assert!(!super::AVAILABLE);
        assert!(super::DPDK_VERSION.is_none());
    }
}
