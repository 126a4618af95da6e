//! # dpdk-sys (being built)
