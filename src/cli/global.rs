//! What every subcommand shares: the store root and logging.

use std::path::PathBuf;

/// Settings every subcommand shares.
#[derive(Debug, Clone)]
pub struct Global {
    /// The store root: `--root`, `RBUILD_ROOT`, or the default.
    pub root: PathBuf,
}

impl Global {
    /// Resolve the store root: the flag (or `RBUILD_ROOT`), else the per-user default.
    pub fn new(root: Option<PathBuf>) -> Self {
        Global { root: root.unwrap_or_else(rbuild_image::store::default_root) }
    }

    /// Open (creating when missing) the local store.
    pub fn store(&self) -> anyhow::Result<rbuild_image::store::Store> {
        Ok(rbuild_image::store::Store::open(&self.root)?)
    }
}

/// Colour only for a person at a terminal: never into a pipe, a file or a CI log, and
/// never when `NO_COLOR` is set (to anything but the empty string, per no-color.org).
pub fn use_color(stream_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stream_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Logs go to stderr; `-v` raises the level, `RUST_LOG` overrides.
pub fn init_logging(verbose: u8) {
    use std::io::IsTerminal;
    let ansi = use_color(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR").as_deref());
    let level = match verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).try_init();
}

/// An error and its causes on one line each, the way people read them.
pub fn render_error(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(&format!("\n  caused by: {c}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::use_color;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_color(true, None));
        assert!(use_color(true, Some("".as_ref())));
        assert!(!use_color(true, Some("1".as_ref())));
        assert!(!use_color(false, None));
    }
}
