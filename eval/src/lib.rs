//! # eval (being built)
