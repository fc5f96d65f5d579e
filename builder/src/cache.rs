//! The build cache: `<root>/cache/records/<key>.json`, one record per step key (the layer
//! it made, as an uncompressed blob whose digest is its diffID, and its history entry),
//! written only after the layer blob is committed. Layers are pinned against `rbuild
//! prune` through the gc root `<root>/gcroots/buildcache.json`. Compressed copies of cached
//! layers (made when a layer leaves the machine) are remembered in
//! `<root>/cache/compressed/` and pinned too. A record file's mtime is when it was last
//! used: [`prune`] goes by it.

use crate::context::write_atomic;
use crate::{Error, Result};
use rbuild_image::config::History;
use rbuild_image::{Compression, Descriptor, Digest, Store, media_type};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The gc root name the cache pins its layers under.
pub const GC_ROOT: &str = "buildcache";

/// A cached layer: an uncompressed tar blob, so its digest is its diffID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// The diffID (= the blob digest).
    pub diff_id: Digest,
    /// The blob size.
    pub size: u64,
}

impl LayerRecord {
    /// The layer's descriptor (uncompressed OCI layer).
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(media_type::OCI_LAYER_TAR, self.diff_id.clone(), self.size)
    }
}

/// What a step produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The layer, or none for a step that changed no file.
    pub layer: Option<LayerRecord>,
    /// The history entry.
    pub history: History,
}

/// The cache of one store.
#[derive(Debug, Clone)]
pub struct Cache {
    store: Store,
    dir: PathBuf,
}

fn records_dir(root: &Path) -> PathBuf {
    root.join("cache").join("records")
}

fn compressed_dir(root: &Path) -> PathBuf {
    root.join("cache").join("compressed")
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 128 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Cache {
    /// The cache in `store`'s root.
    pub fn open(store: &Store) -> Cache {
        Cache { store: store.clone(), dir: records_dir(store.root()) }
    }

    /// The record for `key`, when there is one whose layer blob is still in the store.
    /// Marks it used.
    pub fn get(&self, key: &str) -> Option<Record> {
        if !valid_key(key) {
            return None;
        }
        let path = self.dir.join(format!("{key}.json"));
        let bytes = std::fs::read(&path).ok()?;
        let rec: Record = serde_json::from_slice(&bytes).ok()?;
        if let Some(l) = &rec.layer {
            if self.store.blob_size(&l.diff_id).ok()? != Some(l.size) {
                return None;
            }
        }
        let _ = std::fs::File::options().write(true).open(&path).and_then(|f| f.set_modified(SystemTime::now()));
        Some(rec)
    }

    /// Remember `rec` under `key` (the layer blob must be committed already).
    pub fn put(&self, key: &str, rec: &Record) -> Result<()> {
        if !valid_key(key) {
            return Err(Error::Invalid(format!("invalid cache key {key:?}")));
        }
        let bytes = serde_json::to_vec(rec).map_err(|e| Error::Invalid(format!("cache record: {e}")))?;
        write_atomic(&self.dir.join(format!("{key}.json")), &bytes)
    }

    /// A compressed copy of the uncompressed layer `diff_id`, when one was made before and
    /// is still in the store.
    pub fn compressed(&self, diff_id: &Digest, c: Compression, level: Option<i32>) -> Option<Descriptor> {
        let p = compressed_dir(self.store.root()).join(compressed_name(diff_id, c, level));
        let d: Descriptor = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
        (self.store.blob_size(&d.digest).ok()? == Some(d.size)).then_some(d)
    }

    /// Remember a compressed copy of `diff_id`.
    pub fn put_compressed(&self, diff_id: &Digest, c: Compression, level: Option<i32>, d: &Descriptor) -> Result<()> {
        let bytes = serde_json::to_vec(d).map_err(|e| Error::Invalid(e.to_string()))?;
        write_atomic(&compressed_dir(self.store.root()).join(compressed_name(diff_id, c, level)), &bytes)
    }

    /// Rewrite the gc root from every record and compressed copy.
    pub fn pin(&self) -> Result<()> {
        pin(&self.store)
    }
}

fn compressed_name(diff_id: &Digest, c: Compression, level: Option<i32>) -> String {
    let c = match c {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
    };
    let l = level.map(|l| l.to_string()).unwrap_or_else(|| "default".into());
    format!("{}-{c}-{l}.json", diff_id.hex())
}

struct Entry {
    path: PathBuf,
    used: SystemTime,
    layer: Option<LayerRecord>,
}

fn list_records(root: &Path) -> Vec<Entry> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(records_dir(root)) else { return out };
    for e in rd.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let used = e.metadata().and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
        let layer =
            std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Record>(&b).ok()).and_then(|r| r.layer);
        out.push(Entry { path, used, layer });
    }
    out
}

fn list_compressed(root: &Path) -> Vec<(PathBuf, Descriptor)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(compressed_dir(root)) else { return out };
    for e in rd.flatten() {
        let path = e.path();
        if let Some(d) = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Descriptor>(&b).ok()) {
            out.push((path, d));
        }
    }
    out
}

fn pin(store: &Store) -> Result<()> {
    let root = store.root();
    let mut descs: Vec<Descriptor> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for e in list_records(root) {
        if let Some(l) = e.layer {
            if seen.insert(l.diff_id.clone()) {
                descs.push(l.descriptor());
            }
        }
    }
    for (_, d) in list_compressed(root) {
        if seen.insert(d.digest.clone()) {
            descs.push(d);
        }
    }
    descs.sort_by_key(|d| d.digest.to_string());
    store.set_gc_root(GC_ROOT, &descs)?;
    Ok(())
}

/// What [`prune`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Cache records removed.
    pub records_removed: usize,
    /// Cache records kept.
    pub records_kept: usize,
    /// Bytes of layers the removed records held (freed once nothing else uses them).
    pub bytes_released: u64,
    /// Blobs the following gc removed.
    pub blobs_removed: usize,
    /// Bytes the following gc freed.
    pub freed_bytes: u64,
}

/// `rbuild prune --cache [--keep-storage SIZE] [--filter until=DURATION]`: drop cache
/// records unused for longer than `until`, then the least recently used ones until the
/// cached layers take at most `keep_storage` bytes (both `None`: drop every record); re-pin
/// what is left and collect the store's garbage.
pub fn prune(store: &Store, keep_storage: Option<u64>, until: Option<Duration>) -> Result<PruneReport> {
    let root = store.root();
    let mut entries = list_records(root);
    entries.sort_by_key(|e| std::cmp::Reverse(e.used));
    let now = SystemTime::now();
    let mut report = PruneReport::default();
    let mut kept_bytes = 0u64;
    let mut keep_digests = std::collections::BTreeSet::new();
    let everything = keep_storage.is_none() && until.is_none();
    for e in entries {
        let size = e.layer.as_ref().map(|l| l.size).unwrap_or(0);
        let too_old = until.is_some_and(|u| now.duration_since(e.used).unwrap_or_default() > u);
        let over = keep_storage.is_some_and(|k| kept_bytes + size > k);
        if everything || too_old || over {
            let _ = std::fs::remove_file(&e.path);
            report.records_removed += 1;
            report.bytes_released += size;
        } else {
            kept_bytes += size;
            report.records_kept += 1;
            if let Some(l) = e.layer {
                keep_digests.insert(l.diff_id);
            }
        }
    }
    for (path, _) in list_compressed(root) {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let hex = name.split('-').next().unwrap_or("");
        if !keep_digests.iter().any(|d| d.hex() == hex) {
            let _ = std::fs::remove_file(&path);
        }
    }
    pin(store)?;
    let gc = store.gc(false)?;
    report.blobs_removed = gc.removed.len();
    report.freed_bytes = gc.freed_bytes;
    Ok(report)
}

/// Parse a size like `10GB`, `512m`, `1.5GiB`, `1000` (bytes).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let end = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let n: f64 = t[..end].parse().ok()?;
    let unit = t[end..].trim();
    let unit = unit.strip_suffix("ib").or_else(|| unit.strip_suffix('b')).unwrap_or(unit);
    let mult = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0f64.powi(3),
        "t" => 1024.0f64.powi(4),
        _ => return None,
    };
    Some((n * mult) as u64)
}

/// Parse a duration like `24h`, `30m`, `90s`, `7d`, `1h30m`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut num = String::new();
    let mut any = false;
    for c in s.trim().chars() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        total += n * match c {
            's' => 1.0,
            'm' => 60.0,
            'h' => 3600.0,
            'd' => 86400.0,
            _ => return None,
        };
        any = true;
    }
    if !num.is_empty() {
        return None;
    }
    any.then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("2GB"), Some(2 * 1024 * 1024 * 1024));
        assert_eq!(parse_size("512m"), Some(512 * 1024 * 1024));
        assert_eq!(parse_duration("24h"), Some(Duration::from_secs(86400)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("x"), None);
    }

    #[test]
    fn records_survive_and_prune_drops_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cache = Cache::open(&store);
        let d = store.put_blob_bytes(b"layer-bytes").unwrap();
        let rec = Record { layer: Some(LayerRecord { diff_id: d.clone(), size: 11 }), history: History::default() };
        let key = "ab".repeat(32);
        cache.put(&key, &rec).unwrap();
        cache.pin().unwrap();
        assert_eq!(cache.get(&key), Some(rec));
        // Pinned: gc keeps it.
        store.gc(false).unwrap();
        assert!(store.has_blob(&d));
        let r = prune(&store, None, None).unwrap();
        assert_eq!(r.records_removed, 1);
        assert!(!store.has_blob(&d));
        assert_eq!(cache.get(&key), None);
    }
}
