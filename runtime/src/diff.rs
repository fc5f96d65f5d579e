//! What a RUN changed, as a layer: read from the overlay upperdir (whiteouts and opaque
//! directories become OCI whiteouts) or, for the copy driver, by walking the parent's tree
//! against the new one (containerd's double walk). The sandbox's own mount points and
//! injected files (/etc/hosts, /etc/resolv.conf, /etc/hostname, mount targets it created,
//! /run/secrets…) are left out. The layer is written in one pass by rbuild-image's writer
//! into a [`LayerBlobWriter`]: tar, compression and both digests at once.

use crate::error::{Error, Result};
use crate::sandbox::{IdMap, RunOutcome};
use crate::snapshot::DiffSource;
use rbuild_image::layer::{AddEntry, Change, LayerBlobWriter, LayerInfo, MetaOverride, WriterOptions, write_layer};
use rbuild_image::{Compression, Store};
use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Paths to keep out of a layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exclude {
    /// Left out with everything under them (mount points the sandbox made, injected files).
    pub paths: Vec<String>,
    /// Left out when nothing else in the layer is under them (directories the sandbox made
    /// to hold mount points).
    pub if_empty: Vec<String>,
    /// Left out when nothing else in the layer is under them and their mode and owner
    /// (the values given) are unchanged: existing directories that only got a new mtime
    /// because the sandbox created mount points in them.
    pub if_unchanged: Vec<(String, u32, u32, u32)>,
}

impl Exclude {
    /// What a sandbox run says it created.
    pub fn from_outcome(o: &RunOutcome) -> Exclude {
        Exclude {
            paths: o.mountpoints.clone(),
            if_empty: o.created_parents.clone(),
            if_unchanged: o.touched_dirs.clone(),
        }
    }
}

fn rel(p: &str) -> String {
    crate::util::clean_abs(p).trim_start_matches('/').to_string()
}

fn under(path: &str, dir: &str) -> bool {
    path == dir || (path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/'))
}

fn change_path(c: &Change) -> &str {
    match c {
        Change::Add(a) => &a.path,
        Change::Dir(d) => &d.path,
        Change::Whiteout(p) | Change::Opaque(p) => p,
    }
}

/// Drop excluded paths from `changes`.
pub fn apply_exclude(changes: Vec<Change>, ex: &Exclude) -> Vec<Change> {
    let hard: Vec<String> = ex.paths.iter().map(|p| rel(p)).filter(|p| !p.is_empty()).collect();
    let mut out: Vec<Change> = changes
        .into_iter()
        .filter(|c| {
            let p = change_path(c).trim_start_matches('/');
            !hard.iter().any(|h| under(p, h))
        })
        .collect();
    // Deepest first, so a chain of created parents empties from the bottom up.
    let mut soft: Vec<String> = ex.if_empty.iter().map(|p| rel(p)).filter(|p| !p.is_empty()).collect();
    soft.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for s in soft {
        let has_child = out.iter().any(|c| {
            let p = change_path(c).trim_start_matches('/');
            p != s && under(p, &s)
        });
        if !has_child {
            out.retain(|c| change_path(c).trim_start_matches('/') != s);
        }
    }
    for (dir, mode, uid, gid) in &ex.if_unchanged {
        let d = rel(dir);
        let has_child = out.iter().any(|c| {
            let p = change_path(c).trim_start_matches('/');
            p != d && under(p, &d)
        });
        if has_child {
            continue;
        }
        out.retain(|c| match c {
            // The owner the sandbox reported is the one inside its user namespace: compare
            // with the mapped owner (rootless), not the host's.
            Change::Add(a) if a.path.trim_start_matches('/') == d => std::fs::symlink_metadata(&a.source)
                .map(|m| {
                    let owner = (a.meta.uid.unwrap_or(m.uid()), a.meta.gid.unwrap_or(m.gid()));
                    !(m.is_dir() && (m.mode() & 0o7777, owner.0, owner.1) == (*mode, *uid, *gid))
                })
                .unwrap_or(true),
            _ => true,
        });
    }
    out
}

/// Map host ids back to what they were inside the rootless sandbox's user namespace
/// (the caller's ids to 0, subordinate ids to 1..). Ids outside the map, and ids a
/// change already overrides, are left as they are.
fn map_ids(changes: &mut [Change], map: &IdMap) -> Result<()> {
    for c in changes {
        if let Change::Add(a) = c {
            let m = std::fs::symlink_metadata(&a.source).map_err(Error::io(&a.source))?;
            if a.meta.uid.is_none() {
                a.meta.uid = map.uid_inside(m.uid());
            }
            if a.meta.gid.is_none() {
                a.meta.gid = map.gid_inside(m.gid());
            }
        }
    }
    Ok(())
}

/// The changes of a snapshot's diff source, without excluded paths. `host_ids`: the
/// rootless caller's uid/gid (recorded as 0), `None` when root. A sandbox that maps
/// subordinate ids too needs [`changes_mapped`] with its [`Sandbox::id_map`](crate::sandbox::Sandbox::id_map).
pub fn changes(source: &DiffSource, exclude: &Exclude, host_ids: Option<(u32, u32)>) -> Result<Vec<Change>> {
    let map = host_ids.map(|(u, g)| IdMap::single(u, g, &u.to_string(), ""));
    changes_mapped(source, exclude, map.as_ref())
}

/// The changes of a snapshot's diff source, without excluded paths, with the owners the
/// command saw in its user namespace (`map`: the rootless sandbox's id maps; `None` when
/// root, ids as they are on the host).
pub fn changes_mapped(source: &DiffSource, exclude: &Exclude, map: Option<&IdMap>) -> Result<Vec<Change>> {
    let mut ch = match source {
        DiffSource::Upper { upper } => rbuild_image::layer::changes_from_overlay_upper(upper)?,
        DiffSource::Walk { lower, upper } => walk_changes(lower.as_deref(), upper)?,
    };
    if let Some(map) = map {
        map_ids(&mut ch, map)?;
    }
    Ok(apply_exclude(ch, exclude))
}

/// Write the changes as a compressed layer blob into the store; returns its digests.
pub fn write_to_store(
    store: &Store,
    changes: Vec<Change>,
    compression: Compression,
    opts: &WriterOptions,
) -> Result<LayerInfo> {
    let bw = store.ingest()?;
    let lw = LayerBlobWriter::new(bw, compression, None)?;
    let lw = write_layer(changes, lw, opts)?;
    let (bw, info) = lw.finish()?;
    bw.commit(Some(&info.digest), Some(info.size))?;
    Ok(info)
}

/// Write the changes as a compressed layer into any writer; returns it and the digests.
pub fn write_to<W: std::io::Write>(
    out: W,
    changes: Vec<Change>,
    compression: Compression,
    opts: &WriterOptions,
) -> Result<(W, LayerInfo)> {
    write_to_level(out, changes, compression, None, opts)
}

/// [`write_to`] at a compression level (`None`: the default, gzip 1 / zstd 3).
pub fn write_to_level<W: std::io::Write>(
    out: W,
    changes: Vec<Change>,
    compression: Compression,
    level: Option<i32>,
    opts: &WriterOptions,
) -> Result<(W, LayerInfo)> {
    let lw = LayerBlobWriter::new(out, compression, level)?;
    let lw = write_layer(changes, lw, opts)?;
    Ok(lw.finish()?)
}

#[derive(PartialEq, Eq, Debug)]
struct Meta {
    kind: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
    rdev: u64,
    link: Option<PathBuf>,
    xattrs: BTreeMap<std::ffi::OsString, Vec<u8>>,
}

fn meta(p: &Path) -> Result<Meta> {
    let m = std::fs::symlink_metadata(p).map_err(Error::io(p))?;
    let link = m.file_type().is_symlink().then(|| std::fs::read_link(p)).transpose().map_err(Error::io(p))?;
    let xattrs = crate::util::list_xattrs(p)
        .into_iter()
        .filter(|n| !n.to_string_lossy().contains(".overlay."))
        .filter_map(|n| crate::util::get_xattr(p, &n).map(|v| (n, v)))
        .collect();
    Ok(Meta {
        kind: m.mode() & libc::S_IFMT,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        size: if m.is_dir() { 0 } else { m.size() },
        mtime: (m.mtime(), m.mtime_nsec()),
        rdev: m.rdev(),
        link,
        xattrs,
    })
}

/// Files are the same when kind, mode, owner, size, mtime (ns), device, link target and
/// xattrs agree; when only the mtime differs and neither side has nanoseconds (a
/// filesystem or tar that lost them), the contents decide, as containerd does.
fn same(a: &Path, b: &Path) -> Result<bool> {
    let (ma, mb) = (meta(a)?, meta(b)?);
    if ma == mb {
        return Ok(true);
    }
    let mtime_only = Meta { mtime: mb.mtime, ..ma } == mb;
    if mtime_only && ma.kind == libc::S_IFREG && ma.mtime.0 == mb.mtime.0 && (ma.mtime.1 == 0 || mb.mtime.1 == 0) {
        return same_content(a, b);
    }
    Ok(false)
}

fn same_content(a: &Path, b: &Path) -> Result<bool> {
    use std::io::Read;
    let mut fa = std::fs::File::open(a).map_err(Error::io(a))?;
    let mut fb = std::fs::File::open(b).map_err(Error::io(b))?;
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let na = fa.read(&mut ba).map_err(Error::io(a))?;
        let mut nb = 0;
        while nb < na {
            let n = fb.read(&mut bb[nb..na]).map_err(Error::io(b))?;
            if n == 0 {
                return Ok(false);
            }
            nb += n;
        }
        if ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(fb.read(&mut bb[..1]).map_err(Error::io(b))? == 0);
        }
    }
}

fn names(dir: &Path) -> Result<Vec<std::ffi::OsString>> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map_err(Error::io(dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .map_err(Error::io(dir))?;
    v.sort();
    Ok(v)
}

/// The double walk: additions and modifications from `upper`, deletions as whiteouts.
pub fn walk_changes(lower: Option<&Path>, upper: &Path) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    walk_dir(lower, upper, "", &mut out)?;
    Ok(out)
}

fn add(out: &mut Vec<Change>, path: &str, source: PathBuf) {
    out.push(Change::Add(AddEntry { path: path.to_string(), source, meta: MetaOverride::default() }));
}

fn add_all(dir: &Path, prefix: &str, out: &mut Vec<Change>) -> Result<()> {
    out.extend(rbuild_image::layer::changes_from_dir(dir, prefix, &MetaOverride::default())?);
    Ok(())
}

fn walk_dir(lower: Option<&Path>, upper: &Path, prefix: &str, out: &mut Vec<Change>) -> Result<()> {
    let un = names(upper)?;
    let ln: Vec<std::ffi::OsString> = match lower {
        Some(l) => names(l)?,
        None => Vec::new(),
    };
    let uset: HashSet<&std::ffi::OsString> = un.iter().collect();
    for n in &ln {
        if !uset.contains(n) {
            let name = n.to_str().ok_or_else(|| Error::Spec(format!("file name {n:?} is not UTF-8")))?;
            out.push(Change::Whiteout(join(prefix, name)));
        }
    }
    let lset: HashSet<&std::ffi::OsString> = ln.iter().collect();
    for n in &un {
        let name = n.to_str().ok_or_else(|| Error::Spec(format!("file name {n:?} is not UTF-8")))?;
        let path = join(prefix, name);
        let up = upper.join(n);
        let um = std::fs::symlink_metadata(&up).map_err(Error::io(&up))?;
        let lp = lower.filter(|_| lset.contains(n)).map(|l| l.join(n));
        match lp {
            None => {
                add(out, &path, up.clone());
                if um.is_dir() {
                    add_all(&up, &path, out)?;
                }
            }
            Some(lp) => {
                let lm = std::fs::symlink_metadata(&lp).map_err(Error::io(&lp))?;
                if um.is_dir() && lm.is_dir() {
                    if !same(&lp, &up)? {
                        add(out, &path, up.clone());
                    }
                    walk_dir(Some(&lp), &up, &path, out)?;
                } else if um.is_dir() {
                    add(out, &path, up.clone());
                    add_all(&up, &path, out)?;
                } else if !same(&lp, &up)? {
                    add(out, &path, up.clone());
                }
            }
        }
    }
    Ok(())
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_string() } else { format!("{prefix}/{name}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add_c(p: &str) -> Change {
        Change::Add(AddEntry { path: p.into(), source: PathBuf::from("/x"), meta: MetaOverride::default() })
    }

    #[test]
    fn excludes_mountpoints_and_empty_created_parents() {
        let ch = vec![
            add_c("etc"),
            add_c("etc/hosts"),
            add_c("run"),
            add_c("run/secrets"),
            add_c("run/secrets/tok"),
            add_c("cache"),
            add_c("cache/keep"),
            add_c("data"),
            add_c("data/inside"),
            Change::Whiteout("gone".into()),
        ];
        let ex = Exclude {
            paths: vec!["/etc/hosts".into(), "/run/secrets/tok".into(), "/data".into()],
            if_empty: vec!["/run".into(), "/run/secrets".into(), "/cache".into()],
            if_unchanged: vec![],
        };
        let kept: Vec<String> = apply_exclude(ch, &ex).iter().map(|c| change_path(c).to_string()).collect();
        assert_eq!(kept, ["etc", "cache", "cache/keep", "gone"]);
    }

    #[test]
    fn walk_finds_adds_changes_and_deletions() {
        let d = tempfile::tempdir().unwrap();
        let (l, u) = (d.path().join("l"), d.path().join("u"));
        for r in [&l, &u] {
            std::fs::create_dir_all(r.join("keep/sub")).unwrap();
            std::fs::write(r.join("keep/same"), "same").unwrap();
        }
        std::fs::write(l.join("gone"), "x").unwrap();
        std::fs::create_dir_all(l.join("olddir/deep")).unwrap();
        std::fs::write(u.join("new"), "n").unwrap();
        std::fs::create_dir_all(u.join("newdir/x")).unwrap();
        std::fs::write(l.join("mod"), "a").unwrap();
        std::fs::write(u.join("mod"), "bb").unwrap();
        // Equal metadata on the unchanged files.
        for p in ["keep/same", "keep/sub", "keep"] {
            let m = std::fs::metadata(l.join(p)).unwrap();
            let t = std::fs::FileTimes::new().set_modified(m.modified().unwrap());
            std::fs::File::options().read(true).open(u.join(p)).unwrap().set_times(t).unwrap();
        }
        let got: Vec<String> = walk_changes(Some(&l), &u)
            .unwrap()
            .iter()
            .map(|c| match c {
                Change::Whiteout(p) => format!("-{p}"),
                c => change_path(c).to_string(),
            })
            .collect();
        assert_eq!(got, ["-gone", "-olddir", "mod", "new", "newdir", "newdir/x"]);
    }
}
