//! # dumper (being built)
