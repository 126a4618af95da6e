//! # diagnose (being built)
