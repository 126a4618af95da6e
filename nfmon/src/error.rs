//! Typed errors of the nfmon library. Every parse error names the file, the
//! byte offset (or line) and what was expected there.

use std::path::PathBuf;

/// Everything that can go wrong in nfmon.
#[derive(Debug, thiserror::Error)]
pub enum NfmonError {
    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file's content did not match its expected layout.
    #[error("{path}: line {line} (byte offset {offset}): expected {expected}, found {found:?}")]
    Parse {
        /// The file being parsed (or `<input>` for in-memory text).
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Byte offset of the start of the offending line.
        offset: usize,
        /// What the parser expected.
        expected: String,
        /// What it found (truncated).
        found: String,
    },
    /// A dataset cannot support the requested computation.
    #[error("dataset: {0}")]
    Data(String),
    /// A saved model is malformed or of the wrong kind.
    #[error("model {path}: {what}")]
    Model {
        /// The model file.
        path: PathBuf,
        /// What was wrong.
        what: String,
    },
    /// A JSON (de)serialisation error on a named file.
    #[error("{path}: JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The serde error (includes line and column).
        #[source]
        source: serde_json::Error,
    },
    /// A system call failed (perf_event_open, kill, spawn).
    #[error("{what}: {source}")]
    Sys {
        /// What was attempted.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Result alias for nfmon.
pub type Result<T> = std::result::Result<T, NfmonError>;

impl NfmonError {
    /// Wrap an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        NfmonError::Io {
            path: path.into(),
            source,
        }
    }

    /// Build a parse error; `found` is truncated to 80 characters.
    pub fn parse(
        path: impl Into<PathBuf>,
        line: usize,
        offset: usize,
        expected: impl Into<String>,
        found: &str,
    ) -> Self {
        let found: String = found.chars().take(80).collect();
        NfmonError::Parse {
            path: path.into(),
            line,
            offset,
            expected: expected.into(),
            found,
        }
    }
}
