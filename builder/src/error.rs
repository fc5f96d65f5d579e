//! The one error type of rbuild-builder: builds (the runtime's errors are wrapped whole),
//! with a step's location attached and rendered for people with its Dockerfile line.

use rbuild_frontend::Span;
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
        span: Span,
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

    /// Attach a step's location to an error that has none.
    pub fn at_step(self, span: Span, instruction: &str) -> Error {
        match self {
            Error::Step { span: s, instruction: i, message, tail } if s.line == 0 => {
                Error::Step { span, instruction: if i.is_empty() { instruction.to_string() } else { i }, message, tail }
            }
            e @ (Error::Step { .. } | Error::Cancelled) => e,
            e => Error::Step { span, instruction: instruction.to_string(), message: e.to_string(), tail: Vec::new() },
        }
    }

    /// Render for people: the Dockerfile location and source line when the error has one.
    pub fn render(&self, dockerfile_name: &str, dockerfile_text: &str) -> String {
        match self {
            Error::Step { span, instruction, message, tail } => {
                let mut out = String::new();
                if span.line > 0 {
                    out.push_str(&format!("{dockerfile_name}:{}\n", span.line));
                    out.push_str("--------------------\n");
                    let lines: Vec<&str> = dockerfile_text.lines().collect();
                    let first = span.line.saturating_sub(2).max(1);
                    let last = span.end_line.max(span.line).min(span.line + 4);
                    for n in first..=last {
                        if let Some(l) = lines.get(n as usize - 1) {
                            let mark = if n >= span.line && n <= span.end_line.max(span.line) { ">>>" } else { "   " };
                            out.push_str(&format!(" {n:>4} | {mark} {l}\n"));
                        }
                    }
                    out.push_str("--------------------\n");
                } else if !instruction.is_empty() {
                    out.push_str(&format!("{instruction}\n"));
                }
                if !tail.is_empty() {
                    out.push_str("last output:\n");
                    for l in tail {
                        out.push_str(&format!("  {l}\n"));
                    }
                }
                out.push_str(message);
                out
            }
            e => e.to_string(),
        }
    }
}
