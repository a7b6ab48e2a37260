//! One error type for the engine; the binding maps its kinds to JS error classes.

use std::fmt;
use std::path::{Path, PathBuf};

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// A file or directory could not be opened or read.
    Io { path: PathBuf, message: String },
    /// A socket could not be made, bound, joined to a group, or sent on.
    Network { url: String, message: String },
    /// A record or header that does not follow the format (`line` 0: a
    /// binary format, where the byte offset alone says where).
    Malformed {
        path: PathBuf,
        line: u64,
        byte_offset: u64,
        reason: String,
        snippet: String,
    },
    /// A directory or split set that is inconsistent (mismatched `created`, missing header...).
    Layout { path: PathBuf, reason: String },
    /// An argument out of its domain (speed <= 0, length 0...).
    InvalidArgument { name: &'static str, reason: String },
    /// An operation that the current state forbids (second consumer of a queue...).
    State(String),
}

impl Error {
    pub fn io(path: &Path, err: &std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            message: err.to_string(),
        }
    }

    pub fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, message } => write!(f, "{}: {}", path.display(), message),
            Error::Network { url, message } => write!(f, "{url}: {message}"),
            Error::Malformed {
                path,
                line,
                byte_offset,
                reason,
                snippet,
            } if *line == 0 => {
                // A binary format (MCAP): no lines, the byte offset says where.
                write!(
                    f,
                    "{}: {} (byte offset {})",
                    path.display(),
                    reason,
                    byte_offset
                )?;
                if !snippet.is_empty() {
                    write!(f, ": '{snippet}'")?;
                }
                Ok(())
            }
            Error::Malformed {
                path,
                line,
                byte_offset,
                reason,
                snippet,
            } => write!(
                f,
                "{}:{}: {} (byte offset {}): '{}'",
                path.display(),
                line,
                reason,
                byte_offset,
                snippet
            ),
            Error::Layout { path, reason } => write!(f, "{}: {}", path.display(), reason),
            Error::InvalidArgument { name, reason } => write!(f, "invalid '{}': {}", name, reason),
            Error::State(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}
