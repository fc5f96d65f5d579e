//! Where blobs came from: `<store root>/blob-sources.json`, digest -> `registry/repository`
//! names that had it. Push uses it to mount a blob from another repository of the same
//! registry instead of sending it, and to fetch a blob the store never downloaded (a lazily
//! pulled base layer). It is a hint: a lost update costs an upload, never correctness.

use crate::error::{Error, Result};
use rbuild_image::Digest;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Names kept per blob; the newest first.
const MAX_PER_BLOB: usize = 8;

/// The blob sources file of one store.
#[derive(Debug, Clone, Default)]
pub struct BlobSources {
    path: PathBuf,
    map: BTreeMap<String, Vec<String>>,
}

impl BlobSources {
    /// The file for the store at `root`.
    pub fn path_in(root: &Path) -> PathBuf {
        root.join("blob-sources.json")
    }

    /// Load (empty when missing or unreadable: it is only a hint).
    pub fn load(root: &Path) -> BlobSources {
        let path = Self::path_in(root);
        let map = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        BlobSources { path, map }
    }

    /// Every `registry/repository` known to hold `d`, newest first.
    pub fn get(&self, d: &Digest) -> &[String] {
        self.map.get(&d.to_string()).map(Vec::as_slice).unwrap_or(&[])
    }

    /// A repository of `registry` known to hold `d`, other than `except`.
    pub fn repository_on(&self, d: &Digest, registry: &str, except: &str) -> Option<String> {
        self.get(d).iter().find_map(|name| {
            let repo = name.strip_prefix(registry)?.strip_prefix('/')?;
            (repo != except).then(|| repo.to_string())
        })
    }

    /// Note that `registry/repository` holds `d`.
    pub fn record(&mut self, d: &Digest, registry: &str, repository: &str) {
        let name = format!("{registry}/{repository}");
        let v = self.map.entry(d.to_string()).or_default();
        v.retain(|n| n != &name);
        v.insert(0, name);
        v.truncate(MAX_PER_BLOB);
    }

    /// Merge with what is on disk now (another process may have written) and write
    /// atomically.
    pub fn save(&self) -> Result<()> {
        let mut merged = BlobSources::load(self.path.parent().unwrap_or(Path::new(".")));
        for (d, names) in &self.map {
            let v = merged.map.entry(d.clone()).or_default();
            for n in names.iter().rev() {
                v.retain(|x| x != n);
                v.insert(0, n.clone());
            }
            v.truncate(MAX_PER_BLOB);
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(format!(".blob-sources.json.tmp-{}-{}", std::process::id(), rand::random::<u32>()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec(&merged.map).expect("JSON"))?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(&self.path)(e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_finds_mount_sources() {
        let dir = tempfile::tempdir().unwrap();
        let d = Digest::sha256_of(b"layer");
        let mut s = BlobSources::load(dir.path());
        s.record(&d, "reg:5000", "base/alpine");
        s.record(&d, "other.io", "x");
        s.save().unwrap();
        let s = BlobSources::load(dir.path());
        assert_eq!(s.repository_on(&d, "reg:5000", "app").as_deref(), Some("base/alpine"));
        assert_eq!(s.repository_on(&d, "reg:5000", "base/alpine"), None);
        assert_eq!(s.repository_on(&d, "reg", "app"), None);
        assert_eq!(s.get(&d)[0], "other.io/x");
    }
}
