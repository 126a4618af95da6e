//! # nfmon — black-box NF utilization, state and anomaly detection
//!
//! Polled (DPDK) NFs show 100% CPU whether busy or idle. nfmon estimates what
//! they are doing from the outside, in three layers:
//!
//! 1. **Collection** into one schema ([`schema::Row`]: metric name →
//!    `Option<f64>`, missing is missing, never 0), from tiers that may or may
//!    not exist on a machine: hardware PMU counters and kernel software
//!    events through `perf_event_open` ([`perf`]), per-thread `/proc`
//!    ([`procfs`]), cgroup v1/v2 and host pressure files ([`host`]).
//!    [`probe`] says which tiers exist here and, for each one that does not,
//!    why. [`sampler::Sampler`] produces rows for a PID at an interval;
//!    [`import`] reads `perf stat -x,` output and the VPP dataset layout.
//! 2. **Estimators** on labelled matrices ([`dataset`]): utilization by least
//!    squares over 1–3 events ([`utilization`]); scenario classification by
//!    cosine similarity, ON/OFF and PCA regime detection ([`state`]); anomaly
//!    detection by a Random Forest ([`forest`]) trained on fault-injection
//!    campaigns ([`campaign`]).
//!    [`vpp`] runs all of them on the real VPP counter dataset; [`sweep`]
//!    and [`campaign`] produce labelled data on this machine with a
//!    busy-polling stand-in NF ([`standin`]) that publishes the shim's
//!    poll counters; [`train`] turns labelled rows into any model.
//!    [`chain_campaign`] runs the same kind of campaign on the real DPDK
//!    chain (`ms-testbed`): packet loss and added per-packet latency
//!    injected inside an NF, every chain NF sampled (including its shim
//!    rings' header counters), labels from the run's `truth.json`.
//! 3. **Models** saved as documented JSON files ([`model`]), used by
//!    `microscope nf` and `microscope top`.
//! 4. **Diagnosis annotation** ([`annotate`]): the anomaly detector's
//!    verdict for one NF over one time window of a diagnosis. Sampled rows
//!    carry `CLOCK_MONOTONIC` end times ([`clock`]), the clock of
//!    calibrated trace times and of the testbed's ground truth; [`record`]
//!    samples every NF of a shim ring directory next to a trace.
//!
//! Unsafe code is confined to [`perf`] (the `perf_event_open` system call
//! and adopting its descriptor), one `kill(2)` in [`campaign`] and one
//! `clock_gettime(2)` in [`clock`], each with a `// SAFETY:` comment.
//!
//! Invariants: every metric name carries its tier prefix (`hw.`, `sw.`,
//! `proc.`, `cg.`, `host.`, `shim.`) and every result reports the tiers of the
//! features it used, so no figure from one tier is presented as another's.
//! All evaluation splits are by time block or by run, never by random
//! sample; everything random is seeded (ChaCha8).

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod annotate;
pub mod campaign;
pub mod chain_campaign;
pub mod clock;
pub mod dataset;
pub mod error;
pub mod forest;
pub mod host;
pub mod import;
pub mod model;
pub mod perf;
pub mod probe;
pub mod procfs;
pub mod record;
pub mod sampler;
pub mod schema;
pub mod standin;
pub mod state;
pub mod stats;
pub mod sweep;
pub mod train;
pub mod utilization;
pub mod vpp;

pub use error::{NfmonError, Result};
pub use schema::{Row, Tier};
