//! The local image store: an OCI image layout on disk (placeholder; being written).

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The store root when neither `--root` nor `RBUILD_ROOT` says: `/var/lib/rbuild` for
/// root, `$XDG_DATA_HOME/rbuild` (or `~/.local/share/rbuild`) for everyone else.
pub fn default_root() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/rbuild");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("rbuild");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/rbuild")
}

/// The local store.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Open the store at `root`, creating it when missing.
    pub fn open(root: &Path) -> Result<Store> {
        std::fs::create_dir_all(root).map_err(Error::io(root))?;
        Ok(Store { root: root.to_path_buf() })
    }

    /// Where it lives.
    pub fn root(&self) -> &Path {
        &self.root
    }
}
