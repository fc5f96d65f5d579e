//! The build context: a directory (or a tar read from stdin, extracted to a temp
//! directory), filtered by `.dockerignore`, and the content hashing of what a COPY reads,
//! with a persistent stat cache so unchanged files are not read again.

use crate::{Error, Result};
use rbuild_frontend::dockerignore::Matcher;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The build context.
pub struct Context {
    root: PathBuf,
    ignore: Option<Matcher>,
    _tmp: Option<tempfile::TempDir>,
    entries: OnceLock<Result<BTreeMap<String, PathBuf>, String>>,
    /// Whether `.dockerignore` kept anything of the directory out (set by the walk).
    excludes_any: std::sync::atomic::AtomicBool,
    mount_tree: OnceLock<Result<PathBuf, String>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("root", &self.root).finish()
    }
}

impl Context {
    /// A context directory, with the ignore file found for `dockerfile` (or given text).
    pub fn from_dir(dir: &Path, ignore_text: Option<String>) -> Result<Context> {
        let root = dir.canonicalize().map_err(|e| Error::Context(format!("{}: {e}", dir.display())))?;
        if !root.is_dir() {
            return Err(Error::Context(format!("{} is not a directory", dir.display())));
        }
        let ignore = match ignore_text {
            Some(t) => Some(Matcher::parse(&t).map_err(|e| Error::Context(format!(".dockerignore: {e}")))?),
            None => None,
        };
        Ok(Context {
            root,
            ignore,
            _tmp: None,
            entries: OnceLock::new(),
            excludes_any: Default::default(),
            mount_tree: OnceLock::new(),
        })
    }

    /// A context sent as a tar (plain, gzip or zstd) on `input`: extracted into a temp
    /// directory under `tmp_parent`. Its own `.dockerignore` applies.
    pub fn from_tar(input: impl Read + Send + 'static, tmp_parent: &Path) -> Result<Context> {
        std::fs::create_dir_all(tmp_parent).map_err(Error::io(tmp_parent))?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!("context-{}-", std::process::id()))
            .tempdir_in(tmp_parent)
            .map_err(Error::io(tmp_parent))?;
        let opts = rbuild_image::layer::ApplyOptions { privileged: false, ..Default::default() };
        rbuild_image::layer::apply_layer(input, tmp.path(), &opts)
            .map_err(|e| Error::Context(format!("reading the context tar from stdin: {e}")))?;
        let ignore_text = std::fs::read_to_string(tmp.path().join(".dockerignore")).ok();
        let mut c = Context::from_dir(tmp.path(), ignore_text)?;
        c._tmp = Some(tmp);
        Ok(c)
    }

    /// The context directory on disk.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Is `rel` (relative, `/`-separated) excluded by `.dockerignore`?
    pub fn is_ignored(&self, rel: &str) -> bool {
        self.ignore.as_ref().is_some_and(|m| !rel.is_empty() && m.matches(rel))
    }

    /// Every path of the context that `.dockerignore` keeps (directories included; the
    /// root is `""`), with its host path. Walked once per build.
    pub fn entries(&self) -> Result<&BTreeMap<String, PathBuf>> {
        let r = self.entries.get_or_init(|| self.walk().map_err(|e| e.to_string()));
        r.as_ref().map_err(|e| Error::Context(e.clone()))
    }

    /// The tree a `RUN --mount=type=bind` of the context shows: the context directory
    /// itself when `.dockerignore` excludes nothing, else (made once per build, under
    /// `tmp`) a tree of what it keeps, as BuildKit's filtered context source: files are
    /// hard links to the context's (copies across filesystems), directories keep their
    /// mode, owner and mtime. Nothing mounted from here is ever written through: read-only
    /// mounts are read-only, rw ones get a throwaway layer on top.
    pub fn mount_tree(&self, tmp: &Path) -> Result<PathBuf> {
        let entries = self.entries()?;
        if !self.excludes_any.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(self.root.clone());
        }
        let r = self.mount_tree.get_or_init(|| {
            let dir = tmp.join(format!("context-view-{}", std::process::id()));
            link_tree(entries, &dir).map(|_| dir).map_err(|e| e.to_string())
        });
        r.clone().map_err(Error::Context)
    }

    fn walk(&self) -> Result<BTreeMap<String, PathBuf>> {
        let mut out = BTreeMap::new();
        out.insert(String::new(), self.root.clone());
        let root = self.root.clone();
        let ignore = self.ignore.clone();
        let pruned = std::cell::Cell::new(false);
        let it =
            walkdir::WalkDir::new(&root).follow_links(false).min_depth(1).sort_by_file_name().into_iter().filter_entry(
                |e| {
                    let Some(m) = &ignore else { return true };
                    let Ok(rel) = e.path().strip_prefix(&root) else { return true };
                    let rel = rel.to_string_lossy();
                    let skip = e.file_type().is_dir() && m.matches(&rel) && !m.may_contain_included(&rel);
                    if skip {
                        pruned.set(true);
                    }
                    !skip
                },
            );
        let mut excluded = false;
        for ent in it {
            let ent = ent.map_err(|e| Error::Context(format!("walking {}: {e}", root.display())))?;
            let rel = ent.path().strip_prefix(&root).expect("under root");
            let Some(rel) = rel.to_str() else {
                return Err(Error::Context(format!("{}: file name is not UTF-8", ent.path().display())));
            };
            if self.is_ignored(rel) {
                excluded = true;
                continue;
            }
            // A file re-included below an excluded directory brings that directory (and
            // any excluded one between) along as it is in the context, mode, owner and
            // mtime, as BuildKit's walker sends such parents when a child passes.
            let mut cut = rel.len();
            while let Some(i) = rel[..cut].rfind('/') {
                let parent = &rel[..i];
                if out.contains_key(parent) {
                    break;
                }
                out.insert(parent.to_string(), root.join(parent));
                cut = i;
            }
            out.insert(rel.to_string(), ent.into_path());
        }
        self.excludes_any.store(excluded || pruned.get(), std::sync::atomic::Ordering::Relaxed);
        Ok(out)
    }
}

/// Lay out `entries` (relative path -> host path, parents first) under `dir`: files (and
/// symlinks, devices…) as hard links, or copies when linking fails (another filesystem);
/// directories made with their source's mode, owner and times, set after their content.
fn link_tree(entries: &BTreeMap<String, PathBuf>, dir: &Path) -> Result<()> {
    let mut dirs = Vec::new();
    for (rel, src) in entries {
        let dst = if rel.is_empty() { dir.to_path_buf() } else { dir.join(rel) };
        let md = std::fs::symlink_metadata(src).map_err(Error::io(src))?;
        if md.is_dir() {
            std::fs::create_dir(&dst).map_err(Error::io(&dst))?;
            dirs.push((dst, src, md));
            continue;
        }
        if std::fs::hard_link(src, &dst).is_ok() {
            continue;
        }
        if md.file_type().is_symlink() {
            let t = std::fs::read_link(src).map_err(Error::io(src))?;
            std::os::unix::fs::symlink(&t, &dst).map_err(Error::io(&dst))?;
            rbuild_runtime::util::copy_meta(&dst, &md, src)?;
        } else if md.is_file() {
            rbuild_runtime::util::copy_file(src, &dst)?;
            rbuild_runtime::util::copy_meta(&dst, &md, src)?;
        }
        // A device, fifo or socket that cannot be linked is left out: nothing to read.
    }
    for (dst, src, md) in dirs.iter().rev() {
        rbuild_runtime::util::copy_meta(dst, md, src)?;
    }
    Ok(())
}

/// What the stat cache knows a file by: if none of these changed, neither did the content.
type StatKey = (u64, u64, u64, i64, i64);

/// Content digests by (device, inode, size, mtime ns, ctime ns), kept in
/// `<root>/cache/statcache.bin` across builds.
pub struct StatCache {
    path: PathBuf,
    map: Mutex<HashMap<StatKey, [u8; 32]>>,
    dirty: std::sync::atomic::AtomicBool,
    /// When the cache was loaded, before any file of this build was looked at: every
    /// `stat` of the build happens after it.
    loaded_ns: i64,
}

/// How old a file's times must be, before the build looked at it, to be remembered: a
/// write after our `stat` gets a later time unless the filesystem's clock is coarser than
/// this (the kernel's coarse clock ticks every few ms).
const RACY_FINE_NS: i64 = 100_000_000;
/// The same for filesystems with whole-second times (their nanoseconds are always 0).
const RACY_COARSE_NS: i64 = 2_000_000_000;

const STAT_MAGIC: &[u8; 8] = b"RBSTAT01";
const STAT_RECORD: usize = 8 * 5 + 32;
const STAT_MAX: usize = 2_000_000;

impl StatCache {
    /// Load the cache file (empty when missing or unreadable).
    pub fn load(path: &Path) -> StatCache {
        let mut map = HashMap::new();
        if let Ok(bytes) = std::fs::read(path) {
            if bytes.len() >= 8 && &bytes[..8] == STAT_MAGIC && (bytes.len() - 8) % STAT_RECORD == 0 {
                for rec in bytes[8..].chunks_exact(STAT_RECORD) {
                    let n = |i: usize| u64::from_le_bytes(rec[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
                    let mut d = [0u8; 32];
                    d.copy_from_slice(&rec[40..72]);
                    map.insert((n(0), n(1), n(2), n(3) as i64, n(4) as i64), d);
                }
            }
        }
        let loaded_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        StatCache { path: path.to_path_buf(), map: Mutex::new(map), dirty: Default::default(), loaded_ns }
    }

    /// The blake3 digest of the regular file at `path` (whose metadata is `md`).
    pub fn digest(&self, path: &Path, md: &std::fs::Metadata) -> Result<[u8; 32]> {
        let key: StatKey = (
            md.dev(),
            md.ino(),
            md.size(),
            md.mtime() * 1_000_000_000 + md.mtime_nsec(),
            md.ctime() * 1_000_000_000 + md.ctime_nsec(),
        );
        if let Some(d) = self.map.lock().expect("lock").get(&key) {
            return Ok(*d);
        }
        let mut f = std::fs::File::open(path).map_err(Error::io(path))?;
        let mut h = blake3::Hasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f.read(&mut buf).map_err(Error::io(path))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let d = *h.finalize().as_bytes();
        // A file changed just before we looked may change again without its times moving
        // (git's "racy" rule): remember it only when its times are clearly older than the
        // build, by more than the filesystem's timestamp granularity.
        let (mtime, ctime) = (key.3, key.4);
        let margin = if md.mtime_nsec() == 0 && md.ctime_nsec() == 0 { RACY_COARSE_NS } else { RACY_FINE_NS };
        if mtime < self.loaded_ns - margin && ctime < self.loaded_ns - margin {
            self.map.lock().expect("lock").insert(key, d);
            self.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(d)
    }

    /// Write the cache back (atomically) when it changed.
    pub fn save(&self) -> Result<()> {
        if !self.dirty.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let map = self.map.lock().expect("lock");
        let mut bytes = Vec::with_capacity(8 + map.len().min(STAT_MAX) * STAT_RECORD);
        bytes.extend_from_slice(STAT_MAGIC);
        for (k, d) in map.iter().take(STAT_MAX) {
            for v in [k.0, k.1, k.2, k.3 as u64, k.4 as u64] {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            bytes.extend_from_slice(d);
        }
        write_atomic(&self.path, &bytes)
    }
}

/// Write `bytes` to `path` through a temp file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir).map_err(Error::io(dir))?;
    tmp.write_all(bytes).map_err(Error::io(path))?;
    tmp.as_file().sync_all().map_err(Error::io(path))?;
    tmp.persist(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e.error })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cache_remembers_only_files_older_than_the_build() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old");
        std::fs::write(&old, "old\n").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2 * RACY_FINE_NS as u64 / 1_000_000));
        let cache_file = dir.path().join("statcache.bin");
        let c = StatCache::load(&cache_file);
        // Written after the build started: hashed, not remembered (it may change again
        // within the same timestamp tick).
        let fresh = dir.path().join("fresh");
        std::fs::write(&fresh, "fresh\n").unwrap();
        let d = c.digest(&fresh, &std::fs::metadata(&fresh).unwrap()).unwrap();
        assert_eq!(&d, blake3::hash(b"fresh\n").as_bytes());
        assert!(c.map.lock().unwrap().is_empty());
        // Older than the build by more than the margin: remembered and saved.
        let d = c.digest(&old, &std::fs::metadata(&old).unwrap()).unwrap();
        assert_eq!(&d, blake3::hash(b"old\n").as_bytes());
        assert_eq!(c.map.lock().unwrap().len(), 1);
        c.save().unwrap();
        let again = StatCache::load(&cache_file);
        assert_eq!(again.map.lock().unwrap().len(), 1);
    }
}
