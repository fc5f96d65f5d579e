//! The one error type of rbuild-builder: snapshots, the sandbox, diffs and builds.

use std::path::PathBuf;

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong preparing snapshots, running a sandbox, diffing a layer or
/// building an image; build errors name the step (Dockerfile line) or the thing concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error, with the path it happened on.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A system call that failed, with what it was doing.
    #[error("{what}: {source}")]
    Sys {
        /// What was being done (names the path or the call).
        what: String,
        /// The errno.
        source: nix::Error,
    },
    /// A user or group the image does not know.
    #[error("{0}")]
    User(String),
    /// A run spec that cannot be run (bad mount, bad path, missing secret…).
    #[error("invalid run spec: {0}")]
    Spec(String),
    /// A snapshot that is missing, busy or in the wrong state.
    #[error("snapshot {key}: {reason}")]
    Snapshot {
        /// The snapshot key or name.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The sandbox could not be set up or did not report back.
    #[error("sandbox: {0}")]
    Sandbox(String),
    /// A container for `rbuild run` (name in use, unknown…).
    #[error("container {name}: {reason}")]
    Container {
        /// The container name or ID.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// An error from the image crate (store, layers).
    #[error(transparent)]
    Image(#[from] rbuild_image::Error),
    /// An I/O error on a stream with no path.
    #[error(transparent)]
    Stream(#[from] std::io::Error),
    /// The Dockerfile could not be parsed or lowered (already rendered with its source line).
    #[error("{0}")]
    Frontend(String),
    /// A build step failed; `span` points at its instruction.
    #[error("{message}")]
    Step {
        /// The Dockerfile line(s) of the step.
        span: rbuild_frontend::Span,
        /// The instruction as written.
        instruction: String,
        /// What went wrong.
        message: String,
        /// The last lines the step printed (RUN), for the error report.
        tail: Vec<String>,
    },
    /// The build request itself is wrong (a flag value, an unsupported platform, a bad output).
    #[error("{0}")]
    Invalid(String),
    /// The build context could not be read.
    #[error("build context: {0}")]
    Context(String),
    /// A registry operation failed (resolve, pull, push).
    #[error("{what}: {source}")]
    Registry {
        /// What was being done.
        what: String,
        /// The client's error.
        source: Box<rbuild_registry_client::Error>,
    },
    /// The build was cancelled (Ctrl-C, SIGTERM).
    #[error("build cancelled")]
    Cancelled,
}

impl Error {
    /// Wrap an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    /// Wrap an errno with what was being done.
    pub fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> Error {
        let what = what.into();
        move |source| Error::Sys { what, source }
    }
}
