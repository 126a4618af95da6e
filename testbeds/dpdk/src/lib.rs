//! # dpdk-testbed — a real DPDK NF chain on one machine, traced by the shim
//!
//! Microscope's claims are about real DPDK NFs, so this crate runs a chain
//! of them on this machine — no NICs, no hugepages — with the C shim linked
//! in, and records the ground truth of the problems it injects.
//!
//! Layers, each usable and tested without DPDK:
//! - [`packet`]: Ethernet/IPv4/UDP/TCP parsing, building and rewriting with
//!   correct checksums (the IPID is never changed by an NF).
//! - [`nf`]: the NFs' processing — NAT, firewall (rules + a bug knob that
//!   slows chosen flows), monitor (per-flow counters), VPN (AES-128-GCM per
//!   packet) — on byte slices.
//! - [`traffic`]: the generator's input: a seeded CAIDA-like synthetic mix or
//!   a pcap replayed as captured.
//! - [`topology`]: the chain (`small`, or a TOML file), validated as a DAG,
//!   with each NF's peak rate: `ms-nf` holds its NF to it and the dumper
//!   stores it in the trace, so the engine's `r_f` is the NF's real one.
//! - [`inject`]: burst / stall / bug / loss / delay injections and the
//!   `truth.json` they produce (CLOCK_MONOTONIC times, the clock of the
//!   trace's anchors).
//! - [`orchestrate`]: starts the dumper and one process per NF (memif links,
//!   servers before clients, one `--file-prefix` each, `--no-huge`; NFs
//!   sleep when idle and optionally run SCHED_FIFO, since they share the
//!   cores), stops everything and leaves no process, socket or runtime file
//!   behind.
//!
//! The DPDK runtime itself ([`runtime`], binary `ms-nf`) exists only when
//! `dpdk-sys` found DPDK at build time (`cfg(has_dpdk)`); it links the shim
//! (`shim-c/src/shim.c`, compiled by this crate's build script) and calls
//! `microscope_attach` after starting each port. Binary `ms-testbed` is the
//! orchestrator behind `microscope testbed dpdk`.
//!
//! Invariants: every NF process polls its input ports from one lcore; a
//! packet an output refuses is freed and counted as dropped, never queued
//! unboundedly; injections are scheduled on CLOCK_MONOTONIC and the truth
//! file uses the same clock.

pub mod inject;
pub mod nf;
pub mod orchestrate;
pub mod packet;
pub mod topology;
pub mod traffic;

#[cfg(has_dpdk)]
pub mod runtime;

/// True when this build can run DPDK NFs.
pub const HAS_DPDK: bool = cfg!(has_dpdk);

/// CLOCK_MONOTONIC in nanoseconds.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC
    // is always supported on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
