//! Where things live under the store root, and the one way files are written there.
//!
//! ```text
//! <root>/
//!   oci-layout            {"imageLayoutVersion":"1.0.0"}
//!   index.json            an OCI index: one manifest descriptor per tag
//!   blobs/<alg>/<hex>     content, named by its digest, written once, never changed
//!   tmp/                  ingests in progress (same filesystem as blobs/, so rename is atomic),
//!                         each flock'd by its writer; ingest-<alg>-<hex>.partial: a download to resume
//!   gcroots/*.json        JSON arrays of descriptors that gc must keep (build cache pins)
//!   index.lock            flock: index.json read-modify-write, and gc
//!   lease.lock            flock: shared while a process writes blobs, exclusive during gc
//! ```

use crate::digest::Digest;
use crate::error::{Error, Result};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The `oci-layout` file's content.
pub const OCI_LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Paths under one root.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn oci_layout(&self) -> PathBuf {
        self.root.join("oci-layout")
    }
    pub fn index(&self) -> PathBuf {
        self.root.join("index.json")
    }
    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }
    pub fn blob(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs").join(d.algorithm().as_str()).join(d.hex())
    }
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }
    pub fn gcroots(&self) -> PathBuf {
        self.root.join("gcroots")
    }
    pub fn index_lock(&self) -> PathBuf {
        self.root.join("index.lock")
    }
    pub fn lease_lock(&self) -> PathBuf {
        self.root.join("lease.lock")
    }

    /// Create what is missing. Idempotent, and safe when several processes race.
    pub fn create(&self) -> Result<()> {
        for d in [self.root.clone(), self.blobs().join("sha256"), self.tmp(), self.gcroots()] {
            std::fs::create_dir_all(&d).map_err(Error::io(&d))?;
        }
        let ol = self.oci_layout();
        if !ol.exists() {
            write_atomic(&self.tmp(), &ol, OCI_LAYOUT_CONTENT)?;
        }
        let idx = self.index();
        if !idx.exists() {
            // Under the index lock, checked again: another process may have created it, and
            // tagged something, since the first look.
            let _g = super::lock::exclusive(&self.index_lock())?;
            if !idx.exists() {
                write_atomic(&self.tmp(), &idx, super::index::EMPTY_INDEX)?;
            }
        }
        Ok(())
    }
}

/// fsync a directory, so a rename inside it survives a crash.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).map_err(Error::io(dir))?;
    f.sync_all().map_err(Error::io(dir))
}

/// Write `bytes` to `dest` atomically: a temp file in `tmp_dir` (same filesystem), fsync,
/// rename over `dest`, fsync of `dest`'s directory.
pub(crate) fn write_atomic(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    let mut t = tempfile::Builder::new().prefix(".write-").tempfile_in(tmp_dir).map_err(Error::io(tmp_dir))?;
    t.write_all(bytes).map_err(Error::io(t.path()))?;
    t.as_file().sync_all().map_err(Error::io(t.path()))?;
    t.persist(dest).map_err(|e| Error::Io { path: dest.to_path_buf(), source: e.error })?;
    if let Some(parent) = dest.parent() {
        fsync_dir(parent)?;
    }
    Ok(())
}

/// Remove temp files under `tmp_dir` last modified more than `max_age` ago: what a killed
/// process left behind. Younger ones may belong to a live ingest and are left alone.
pub(crate) fn clean_stale_tmp(tmp_dir: &Path, max_age: std::time::Duration) -> Result<(usize, u64)> {
    let mut removed = (0usize, 0u64);
    let rd = match std::fs::read_dir(tmp_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(Error::io(tmp_dir)(e)),
    };
    let now = std::time::SystemTime::now();
    for entry in rd.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        let old = meta.modified().ok().and_then(|m| now.duration_since(m).ok()).is_some_and(|age| age > max_age);
        // An ingest whose writer is alive holds its flock, however long it has been idle.
        let held = entry.file_name().to_string_lossy().starts_with("ingest-")
            && File::open(entry.path()).is_ok_and(|f| !super::lock::try_lock(&f).unwrap_or(false));
        if old && !held && meta.is_file() && std::fs::remove_file(entry.path()).is_ok() {
            removed.0 += 1;
            removed.1 += meta.len();
        }
    }
    Ok(removed)
}
