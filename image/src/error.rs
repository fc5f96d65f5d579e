//! The one error type of rbuild-image.

use crate::digest::Digest;
use std::path::PathBuf;

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong describing, writing, reading or storing an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A digest string that breaks the grammar.
    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest {
        /// The offending text.
        digest: String,
        /// The rule it breaks.
        reason: String,
    },
    /// Bytes that do not hash to what they claim.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What the content was supposed to hash to.
        expected: Digest,
        /// What it hashed to.
        actual: Digest,
    },
    /// A reference (name, tag, digest) that breaks the grammar.
    #[error("invalid reference {reference:?}: {reason}")]
    InvalidReference {
        /// The offending text.
        reference: String,
        /// The rule it breaks.
        reason: String,
    },
    /// JSON that is not a valid manifest, index or config.
    #[error("invalid {what}: {reason}")]
    InvalidJson {
        /// What was being parsed (manifest, index, config…).
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A media type that does not fit where it was found.
    #[error("unsupported media type {0:?}")]
    UnsupportedMediaType(String),
    /// A tar entry refused because it would escape the target or is malformed.
    #[error("layer entry {entry:?}: {reason}")]
    UnsafeEntry {
        /// The entry's path as written in the tar.
        entry: String,
        /// Why it was refused.
        reason: String,
    },
    /// A tar stream that is corrupt or truncated.
    #[error("corrupt layer: {0}")]
    CorruptLayer(String),
    /// Something that is not in the store.
    #[error("{0} not found in the local store")]
    NotFound(String),
    /// An I/O error, with the path it happened on.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An I/O error on a stream with no path.
    #[error(transparent)]
    Stream(#[from] std::io::Error),
}

impl Error {
    /// Wrap an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
