//! # netmedic (being built)
