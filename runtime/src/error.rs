//! The one error type of rbuild-runtime: snapshots, the sandbox, diffs and containers.

use std::path::PathBuf;

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong preparing snapshots, running a sandbox, diffing a layer or
/// running a container; each names the path, the call or the thing concerned.
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
    /// A resource limit that cannot be used (a bad `--memory`, `--ulimit`…).
    #[error("{0}")]
    Limit(String),
    /// A cgroup that could not be made, written, read or removed.
    #[error("cgroup: {0}")]
    Cgroup(String),
    /// No container has this ID, name or ID prefix.
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    /// A path in a container that cannot be copied, read or written (`cp`, `export`,
    /// `diff`, `commit`), with the path.
    #[error("{0}")]
    Copy(String),
    /// A volume that is missing, in use or badly named.
    #[error("volume {name}: {reason}")]
    Volume {
        /// The volume's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A `-v`, `--mount` or `--volumes-from` that cannot be used.
    #[error("{0}")]
    Mount(String),
    /// A `--format` template that does not parse or cannot be applied.
    #[error("template {template:?}: {reason}")]
    Template {
        /// The template as given.
        template: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A flag's value that does not parse (`--since`, `--tail`, `--filter`...).
    #[error("invalid {flag} {value:?}: {reason}")]
    BadValue {
        /// The flag.
        flag: String,
        /// The value as given.
        value: String,
        /// What is wrong with it, and what would do.
        reason: String,
    },
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
