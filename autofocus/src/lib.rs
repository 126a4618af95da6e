//! # autofocus (being built)
