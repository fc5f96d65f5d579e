//! Snapshots: each image layer extracted once, keyed by its chain ID, under
//! `<store root>/snapshots/<driver>/`, and the writable views a RUN step or a container
//! works in.
//!
//! The vocabulary is containerd's: [`Snapshotter::prepare`] makes an active (writable)
//! snapshot on top of a committed parent, [`Snapshotter::view`] a read-only one,
//! [`Snapshotter::mounts`] says how to mount it, [`Snapshotter::commit`] turns an active
//! snapshot into a committed one under a name (a chain ID), [`Snapshotter::remove`] deletes.
//! Two drivers: [`overlay`] (each snapshot holds one layer; the sandbox mounts overlayfs
//! with the parents as lowerdirs, `userxattr` when rootless) and [`copy`] (each snapshot
//! holds the whole tree; used when overlayfs cannot mount here, chosen automatically by
//! [`open`] and reported in [`Snapshotter::name`]).
//!
//! On disk (`<root>/snapshots/`):
//! ```text
//! driver                       "overlay" or "copy": the driver chosen for this root
//! overlay/<key>/info.json      kind (active|view|committed), parent, owner pid
//! overlay/<key>/fs/            the snapshot's files (overlay: one layer, whiteouts as 0/0 devices)
//! overlay/<key>/work/          overlayfs workdir (active only)
//! ```
//! Keys map to directory names with `:` replaced by `_` (`sha256:ab…` -> `sha256_ab…`).
//!
//! Rootless with subordinate ids, trees holding files of other ids are copied and removed
//! from inside a user namespace, and [`unpack_image`] applies layers there, so files keep
//! their image owners: the snapshotter does not do that itself but asks a [`TreeOps`]
//! (and an [`ApplyLayer`]) it is given, which the sandbox, one layer up, implements.
//! [`open`] removes active snapshots of killed processes.

pub mod copy;
pub mod overlay;

use crate::error::{Error, Result};
use rbuild_image::Digest;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How to mount a snapshot (containerd's `Mount`): `fstype` `overlay` (source `overlay`,
/// options `lowerdir=…`, `upperdir=…`, `workdir=…`, `userxattr`) or `bind` (source a
/// directory, options `rbind` and `ro`/`rw`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// `overlay` or `bind`.
    pub fstype: String,
    /// The device or directory.
    pub source: PathBuf,
    /// Mount options.
    pub options: Vec<String>,
}

impl Mount {
    /// Is this mount read-only?
    pub fn readonly(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
            || (self.fstype == "overlay" && !self.options.iter().any(|o| o.starts_with("upperdir=")))
    }
}

/// What state a snapshot is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Writable, from `prepare`.
    Active,
    /// Read-only, from `view`.
    View,
    /// Immutable, from `commit`: a parent for others.
    Committed,
}

/// What is known about a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// Its key (active, view) or name (committed).
    pub key: String,
    /// Its state.
    pub kind: Kind,
    /// The committed snapshot it sits on.
    #[serde(default)]
    pub parent: Option<String>,
    /// For active snapshots: the process that made it (stale ones are pruned when it is gone).
    #[serde(default)]
    pub pid: Option<i32>,
}

/// How to read what an active snapshot changed (the differ, a layer up, reads it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffSource {
    /// An overlayfs upperdir: new and changed files as they are, deletions as whiteouts
    /// (0/0 char devices), replaced directories marked opaque by an xattr.
    Upper {
        /// The upperdir.
        upper: PathBuf,
    },
    /// Two whole trees to compare (copy driver).
    Walk {
        /// The parent's tree, `None` when there is no parent.
        lower: Option<PathBuf>,
        /// The changed tree.
        upper: PathBuf,
    },
}

/// How a layer must be applied into the directory [`Snapshotter::extract_dir`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutStyle {
    /// Into an empty directory holding only this layer: whiteouts become 0/0 char devices
    /// and opaque directories get `trusted.overlay.opaque=y` (`user.` when rootless): the
    /// applier's `WhiteoutMode::Overlay`.
    Overlay,
    /// Onto a full copy of the parent tree: whiteouts delete what they name.
    Delete,
}

/// Work on the store's trees that may need a user namespace: rootless with subordinate ids,
/// files of other ids can be read, chowned and removed only as root there, and whether
/// overlayfs mounts is known only by trying in one. The sandbox implements it.
pub trait TreeOps: Send + Sync {
    /// Remove a tree (missing is fine), including files of other ids.
    fn remove_tree(&self, path: &Path) -> Result<()>;
    /// Copy the tree `from` to `to` (which must not exist) keeping owners, modes, times
    /// and xattrs.
    fn copy_tree(&self, from: &Path, to: &Path) -> Result<()>;
    /// Can overlayfs mount under the store root? `Ok(Err(reason))` when it cannot, `Err`
    /// when the probe itself did not run.
    fn probe_overlay(&self) -> Result<std::result::Result<(), String>>;
}

/// Applies image layers where this process cannot give files their owners (rootless with
/// subordinate ids: as root of a user namespace). The sandbox implements it.
pub trait ApplyLayer {
    /// Must layers go through [`ApplyLayer::apply_layer`]? Otherwise they are applied
    /// in-process.
    fn applies_in_userns(&self) -> bool;
    /// Apply a layer blob (compressed or not) into `dir`, verifying it against `digest`
    /// (and size) and `diff_id` when given.
    fn apply_layer(
        &self,
        blob: std::fs::File,
        dir: &Path,
        style: WhiteoutStyle,
        digest: Option<(Digest, u64)>,
        diff_id: Option<Digest>,
    ) -> Result<()>;
}

/// A snapshot driver, in containerd's vocabulary.
pub trait Snapshotter: Send + Sync {
    /// `overlay` or `copy`.
    fn name(&self) -> &'static str;
    /// Make a writable snapshot `key` on `parent` (a committed name) and say how to mount it.
    fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>>;
    /// Make a read-only snapshot `key` of `parent` and say how to mount it.
    fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>>;
    /// How to mount an existing active or view snapshot.
    fn mounts(&self, key: &str) -> Result<Vec<Mount>>;
    /// Turn active snapshot `key` into committed snapshot `name`. When `name` already
    /// exists (another build committed the same chain first) `key` is dropped and that's Ok.
    fn commit(&self, name: &str, key: &str) -> Result<()>;
    /// Delete a snapshot. Committed snapshots with children are refused.
    fn remove(&self, key: &str) -> Result<()>;
    /// What is known about `key`, `None` when it does not exist.
    fn stat(&self, key: &str) -> Result<Option<Info>>;
    /// Every snapshot.
    fn list(&self) -> Result<Vec<Info>>;
    /// Where the changes of active snapshot `key` can be read.
    fn diff_source(&self, key: &str) -> Result<DiffSource>;
    /// The directory to apply a layer into for active snapshot `key` (made by `prepare`),
    /// and how whiteouts must be written there.
    fn extract_dir(&self, key: &str) -> Result<(PathBuf, WhiteoutStyle)>;
    /// The directory holding a snapshot's files (for `COPY --from` and bind mounts: the
    /// copy driver's committed trees are whole; the overlay driver's hold one layer).
    fn fs_dir(&self, key: &str) -> PathBuf;
}

/// Open the snapshotter of a store root, choosing the driver the first time: overlayfs
/// when a test mount works here (in a user namespace when not root), else the copy driver.
/// `RBUILD_SNAPSHOTTER=overlay|copy` forces one. The choice is kept in
/// `<root>/snapshots/driver` so a root never mixes drivers. `trees` removes and copies the
/// snapshots' trees and runs the overlayfs probe.
pub fn open(root: &Path, trees: Arc<dyn TreeOps>) -> Result<Box<dyn Snapshotter>> {
    let base = root.join("snapshots");
    std::fs::create_dir_all(&base).map_err(Error::io(&base))?;
    let forced = std::env::var("RBUILD_SNAPSHOTTER").ok().filter(|s| !s.is_empty());
    let recorded = std::fs::read_to_string(base.join("driver")).ok().map(|s| s.trim().to_string());
    let driver = match (forced, recorded) {
        (Some(f), _) => f,
        (None, Some(r)) => r,
        (None, None) => {
            let d = match trees.probe_overlay()? {
                Ok(()) => "overlay".to_string(),
                Err(e) => {
                    tracing::warn!("overlayfs is not usable here ({e}); snapshots fall back to copying trees");
                    "copy".to_string()
                }
            };
            crate::util::write_atomic(&base.join("driver"), d.as_bytes())?;
            d
        }
    };
    let sn: Box<dyn Snapshotter> = match driver.as_str() {
        "overlay" => Box::new(overlay::Overlay::new(&base.join("overlay"), trees)?),
        "copy" => Box::new(copy::Copy::new(&base.join("copy"), trees)?),
        other => {
            return Err(Error::Snapshot {
                key: "driver".into(),
                reason: format!("unknown snapshot driver {other:?} (overlay or copy)"),
            });
        }
    };
    remove_orphans(sn.as_ref());
    Ok(sn)
}

/// Remove the active and view snapshots of killed processes (a build's RUN, an
/// extraction), which nothing will ever commit. Containers' writable layers are kept:
/// they belong to their records, and `rbuild prune` decides.
fn remove_orphans(sn: &dyn Snapshotter) {
    let Ok(all) = sn.list() else { return };
    for i in all {
        let orphan = i.kind != Kind::Committed
            && !i.key.starts_with("container-")
            && i.pid.is_some_and(|p| p != std::process::id() as i32 && !crate::util::pid_alive(p));
        if orphan {
            tracing::debug!("removing snapshot {} left by a killed process", i.key);
            let _ = sn.remove(&i.key);
        }
    }
}

/// The chain IDs of a list of layer diffIDs (base first): `chain(L0) = diffID(L0)`,
/// `chain(Ln) = sha256(chain(Ln-1) + " " + diffID(Ln))`, as the OCI image spec defines.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => Digest::sha256_of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// Make sure every layer of an image has a committed snapshot, extracting the missing ones
/// with `apply(index, dir, style)` (index into `diff_ids`). Returns the chain ID of the top
/// layer (the parent for a RUN's `prepare`), `None` for an image without layers. Safe to
/// run concurrently with other processes: the first commit of a chain wins.
pub fn unpack(
    sn: &dyn Snapshotter,
    diff_ids: &[Digest],
    apply: &mut dyn FnMut(usize, &Path, WhiteoutStyle) -> Result<()>,
) -> Result<Option<String>> {
    let chains = chain_ids(diff_ids);
    let mut parent: Option<String> = None;
    for (i, chain) in chains.iter().enumerate() {
        let name = chain.to_string();
        if sn.stat(&name)?.is_none() {
            let key = format!("extract-{}-{}", std::process::id(), unique());
            sn.prepare(&key, parent.as_deref())?;
            let (dir, style) = sn.extract_dir(&key)?;
            if let Err(e) = apply(i, &dir, style) {
                let _ = sn.remove(&key);
                return Err(e);
            }
            sn.commit(&name, &key)?;
        }
        parent = Some(name);
    }
    Ok(parent)
}

/// [`unpack`] for an image in the store: each missing layer blob is read, verified against
/// its digest and diffID while it is applied, and committed under its chain ID. Returns
/// the top chain ID (the parent for a RUN's `prepare`). With an `applier` that
/// [applies in a user namespace](ApplyLayer::applies_in_userns) (a rootless sandbox that
/// maps subordinate ids), layers are applied there so files keep the owners the image
/// gives them (else they would all be the caller's, root inside).
pub fn unpack_image(
    sn: &dyn Snapshotter,
    store: &rbuild_image::Store,
    layers: &[rbuild_image::Descriptor],
    diff_ids: &[Digest],
    applier: Option<&dyn ApplyLayer>,
) -> Result<Option<String>> {
    use rbuild_image::digest::VerifyingReader;
    use rbuild_image::layer::{apply_tar, decompress};
    if layers.len() != diff_ids.len() {
        return Err(Error::Snapshot {
            key: "image".into(),
            reason: format!("{} layers but {} diffIDs in the config", layers.len(), diff_ids.len()),
        });
    }
    let in_userns = applier.filter(|a| a.applies_in_userns());
    unpack(sn, diff_ids, &mut |i, dir, style| {
        let blob = store.open_blob(&layers[i].digest)?;
        if let Some(sb) = in_userns {
            let digest = Some((layers[i].digest.clone(), layers[i].size));
            return sb.apply_layer(blob, dir, style, digest, Some(diff_ids[i].clone()));
        }
        let blob = VerifyingReader::new(blob, layers[i].digest.clone(), Some(layers[i].size));
        let (_, tar) = decompress(blob)?;
        let tar = VerifyingReader::new(tar, diff_ids[i].clone(), None);
        apply_tar(tar, dir, &apply_options(style))?;
        Ok(())
    })
}

/// How a layer is applied in-process into a snapshot directory of the given style.
pub fn apply_options(style: WhiteoutStyle) -> rbuild_image::layer::ApplyOptions {
    use rbuild_image::layer::{ApplyOptions, OverlayXattr, WhiteoutMode};
    let root = nix::unistd::geteuid().is_root();
    let whiteouts = match style {
        WhiteoutStyle::Overlay => {
            WhiteoutMode::Overlay { xattr: if root { OverlayXattr::Trusted } else { OverlayXattr::User } }
        }
        WhiteoutStyle::Delete => WhiteoutMode::Apply,
    };
    ApplyOptions { whiteouts, ..Default::default() }
}

/// A process-unique counter value, for temporary keys.
pub fn unique() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    (N.fetch_add(1, std::sync::atomic::Ordering::Relaxed) << 32) | t as u64
}

/// What [`prune`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PruneReport {
    /// Keys of the removed snapshots.
    pub removed: Vec<String>,
}

/// Remove every committed snapshot that is neither in `keep` nor an ancestor of something
/// kept or of a live active snapshot, and active snapshots whose process is gone: what
/// `rbuild prune` calls with the chain IDs of the images it keeps. `trees` removes them.
pub fn prune(root: &Path, trees: Arc<dyn TreeOps>, keep: &HashSet<String>) -> Result<PruneReport> {
    let base = root.join("snapshots");
    let mut report = PruneReport::default();
    for driver in ["overlay", "copy"] {
        let dir = base.join(driver);
        if !dir.is_dir() {
            continue;
        }
        let sn: Box<dyn Snapshotter> = if driver == "overlay" {
            Box::new(overlay::Overlay::new(&dir, trees.clone())?)
        } else {
            Box::new(copy::Copy::new(&dir, trees.clone())?)
        };
        let all = sn.list()?;
        let by_key: std::collections::HashMap<&str, &Info> = all.iter().map(|i| (i.key.as_str(), i)).collect();
        let mut live: HashSet<String> = HashSet::new();
        let mark = |start: &str, live: &mut HashSet<String>| {
            let mut cur = Some(start.to_string());
            while let Some(k) = cur {
                if !live.insert(k.clone()) {
                    break;
                }
                cur = by_key.get(k.as_str()).and_then(|i| i.parent.clone());
            }
        };
        for i in &all {
            let alive = match i.kind {
                Kind::Committed => keep.contains(&i.key),
                // A kept container's writable layer lives as long as its record.
                _ if i.key.starts_with("container-") => {
                    root.join("containers").join(&i.key["container-".len()..]).exists()
                }
                _ => i.pid.is_none_or(crate::util::pid_alive),
            };
            if alive {
                mark(&i.key, &mut live);
            }
        }
        // Children before parents: remove non-committed first, then committed leaves upward.
        let mut doomed: Vec<&Info> = all.iter().filter(|i| !live.contains(&i.key)).collect();
        doomed.sort_by_key(|i| (i.kind == Kind::Committed, std::cmp::Reverse(depth(&by_key, &i.key))));
        for i in doomed {
            sn.remove(&i.key)?;
            report.removed.push(i.key.clone());
        }
    }
    Ok(report)
}

fn depth(by_key: &std::collections::HashMap<&str, &Info>, key: &str) -> usize {
    let mut n = 0;
    let mut cur = by_key.get(key).and_then(|i| i.parent.clone());
    while let Some(k) = cur {
        n += 1;
        if n > 10_000 {
            break;
        }
        cur = by_key.get(k.as_str()).and_then(|i| i.parent.clone());
    }
    n
}

/// The directory name of a key: `:` becomes `_`; anything that is not a plain name is refused.
pub(crate) fn dir_name(key: &str) -> Result<String> {
    let ok = !key.is_empty()
        && key.len() <= 200
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '+'))
        && !key.starts_with('.');
    if !ok {
        return Err(Error::Snapshot {
            key: key.into(),
            reason: "a key is 1-200 characters of [A-Za-z0-9._:+-], not starting with '.'".into(),
        });
    }
    Ok(key.replace(':', "_"))
}

/// Shared on-disk bookkeeping of both drivers.
pub(crate) struct Dirs {
    pub base: PathBuf,
    trees: Arc<dyn TreeOps>,
}

impl Dirs {
    pub fn new(base: &Path, trees: Arc<dyn TreeOps>) -> Result<Dirs> {
        std::fs::create_dir_all(base).map_err(Error::io(base))?;
        Ok(Dirs { base: base.to_path_buf(), trees })
    }

    /// Remove a tree of this driver: rootless, files a non-root `USER` made belong to
    /// subordinate ids and are removed from inside the user namespace.
    pub fn remove_tree(&self, p: &Path) -> Result<()> {
        self.trees.remove_tree(p)
    }

    /// Copy a tree keeping owners: rootless with subordinate ids, from inside the user
    /// namespace (files of other users are readable and chownable only there).
    pub fn copy_tree(&self, from: &Path, to: &Path) -> Result<()> {
        self.trees.copy_tree(from, to)
    }

    pub fn dir(&self, key: &str) -> Result<PathBuf> {
        Ok(self.base.join(dir_name(key)?))
    }

    pub fn info(&self, key: &str) -> Result<Option<Info>> {
        let p = self.dir(key)?.join("info.json");
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::Snapshot { key: key.into(), reason: format!("{}: {e}", p.display()) }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(p)(e)),
        }
    }

    pub fn need(&self, key: &str) -> Result<Info> {
        self.info(key)?.ok_or_else(|| Error::Snapshot { key: key.into(), reason: "does not exist".into() })
    }

    /// Create `<key>/` with `fs/` (and `work/` when `work`), written under a temporary name
    /// and renamed, so a half-made snapshot is never seen.
    pub fn create(&self, info: &Info, work: bool, fill: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
        let dst = self.dir(&info.key)?;
        if dst.exists() {
            return Err(Error::Snapshot { key: info.key.clone(), reason: "already exists".into() });
        }
        if let Some(p) = &info.parent {
            let pi = self.need(p)?;
            if pi.kind != Kind::Committed {
                return Err(Error::Snapshot { key: p.clone(), reason: "a parent must be committed".into() });
            }
        }
        let tmp = self.base.join(format!(".tmp-{}-{}", std::process::id(), unique()));
        std::fs::create_dir(&tmp).map_err(Error::io(&tmp))?;
        let r = (|| {
            fill(&tmp.join("fs"))?;
            if work {
                std::fs::create_dir(tmp.join("work")).map_err(Error::io(&tmp))?;
            }
            let j = serde_json::to_vec(info).expect("Info serializes");
            std::fs::write(tmp.join("info.json"), j).map_err(Error::io(&tmp))?;
            std::fs::rename(&tmp, &dst).map_err(Error::io(&dst))
        })();
        if let Err(e) = r {
            let _ = self.remove_tree(&tmp);
            return Err(e);
        }
        Ok(dst)
    }

    pub fn commit(&self, name: &str, key: &str) -> Result<()> {
        let info = self.need(key)?;
        if info.kind != Kind::Active {
            return Err(Error::Snapshot { key: key.into(), reason: "only an active snapshot can be committed".into() });
        }
        let src = self.dir(key)?;
        let dst = self.dir(name)?;
        if dst.exists() {
            return self.remove(key);
        }
        let _ = crate::util::remove_tree(&src.join("work"));
        // Active snapshots are mounted `volatile`: make the files durable before they
        // become a parent for others.
        if let Ok(f) = std::fs::File::open(&src) {
            // SAFETY: syncfs on an fd we own.
            unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&f)) };
        }
        let new = Info { key: name.into(), kind: Kind::Committed, parent: info.parent, pid: None };
        crate::util::write_atomic(&src.join("info.json"), &serde_json::to_vec(&new).expect("Info serializes"))?;
        match std::fs::rename(&src, &dst) {
            Ok(()) => Ok(()),
            // Lost a race with another committer of the same chain: theirs is as good.
            Err(_) if dst.exists() => self.remove_tree(&src),
            Err(e) => Err(Error::io(&dst)(e)),
        }
    }

    pub fn remove(&self, key: &str) -> Result<()> {
        let dir = self.dir(key)?;
        if !dir.exists() {
            return Err(Error::Snapshot { key: key.into(), reason: "does not exist".into() });
        }
        if self.list()?.iter().any(|i| i.parent.as_deref() == Some(key)) {
            return Err(Error::Snapshot { key: key.into(), reason: "has children".into() });
        }
        // Rename first so a half-removed snapshot is never taken for a whole one.
        let tmp = self.base.join(format!(".rm-{}-{}", std::process::id(), unique()));
        std::fs::rename(&dir, &tmp).map_err(Error::io(&dir))?;
        self.remove_tree(&tmp)
    }

    pub fn list(&self) -> Result<Vec<Info>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.base).map_err(Error::io(&self.base))? {
            let e = e.map_err(Error::io(&self.base))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                // Leftovers of a killed process: half-made or half-removed.
                if let Some(pid) = name.split('-').nth(1).and_then(|p| p.parse::<i32>().ok()) {
                    if !crate::util::pid_alive(pid) {
                        let _ = self.remove_tree(&e.path());
                    }
                }
                continue;
            }
            if let Ok(b) = std::fs::read(e.path().join("info.json")) {
                if let Ok(i) = serde_json::from_slice::<Info>(&b) {
                    out.push(i);
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// The parent chain of `key`, nearest first (committed names).
    pub fn ancestors(&self, key: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut cur = self.need(key)?.parent;
        while let Some(p) = cur {
            if out.len() > 1000 {
                return Err(Error::Snapshot { key: key.into(), reason: "parent chain too long or cyclic".into() });
            }
            cur = self.need(&p)?.parent;
            out.push(p);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        let c = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(c[0], a);
        assert_eq!(c[1], Digest::sha256_of(format!("{a} {b}").as_bytes()));
    }

    #[test]
    fn keys_are_plain_names() {
        assert_eq!(dir_name("sha256:ab").unwrap(), "sha256_ab");
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(dir_name(bad).is_err(), "{bad}");
        }
    }
}
