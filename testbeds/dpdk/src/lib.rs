//! # dpdk-testbed (being built)
