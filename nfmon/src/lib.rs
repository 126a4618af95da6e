//! # nfmon (being built)
