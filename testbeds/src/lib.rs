//! # testbeds (being built)
