//! # testbeds — a deterministic simulator of DPDK NF chains with ground truth
//!
//! The diagnosis engine needs traces whose true causes are known, at the
//! paper's scale (16 NF instances, 1.2–1.6 Mpps, seconds of traffic). This
//! crate simulates a DAG of DPDK-style network functions and writes the
//! trace through the same record model and file format as the real dumper
//! (`collector` records, `tracefile` chunks), plus the ground truth.
//!
//! - [`scenario`]: the TOML scenario (graph, traffic, background, faults,
//!   victim rule); presets `paper-moderate`, `paper-high`, `small-chain`.
//! - [`traffic`] and [`pcap`]: CAIDA-style synthetic traffic (heavy-tailed
//!   flows, prefix structure, per-host IPID counters) or replay of a pcap.
//! - [`topology`]: instances, rule steering, 5-tuple load balancing, NAT.
//! - [`faults`]: the paper's §6.2 injections (bursts, interrupts, bugs) and
//!   the background stalls.
//! - [`sim`]: the discrete-event engine, [`sim::simulate`],
//!   [`sim::write_output`], [`sim::simulate_to_dir`].
//! - [`truth`]: faults, counterfactual victim labels, per-packet journeys.
//!
//! Invariants: a run is a pure function of the scenario (same seed, same
//! bytes); every random draw is keyed by (seed, purpose, entity, index) or
//! comes from a per-entity stream, so the run without injections has the
//! identical background and victims are labelled by comparing the two runs;
//! records on a stream are in time order with dense sequence numbers shared
//! with clock anchors; a batch smaller than its requested size means the
//! queue was emptied; IPIDs never change along a path, NATs rewrite only the
//! source address and port.

#![deny(unsafe_code)]

pub mod faults;
pub mod pcap;
pub mod rng;
pub mod scenario;
pub mod sim;
pub mod topology;
pub mod traffic;
pub mod truth;

pub use scenario::Scenario;
pub use sim::{simulate, simulate_to_dir, write_output, SimError, SimOutput};
pub use truth::{Fault, FaultKind, LabelledVictim, PacketSlot, Truth};
