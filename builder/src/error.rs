//! The one error type of rbuild-builder: builds (the runtime's errors are wrapped whole).

use std::path::PathBuf;

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong building an image; errors name the step (Dockerfile line)
/// or the thing concerned.
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
    /// Snapshots, the sandbox or a layer diff (a RUN step's machinery).
    #[error(transparent)]
    Runtime(#[from] rbuild_runtime::Error),
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
}
