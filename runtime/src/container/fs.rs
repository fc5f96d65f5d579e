//! A container's files from outside: `cp` in and out, `diff` of its writable layer, and
//! `export` of its whole root filesystem.
//!
//! Everything read or written in the container is resolved by the sandbox's join mode
//! inside the container's own root ([`Sandbox::tar_from`], [`Sandbox::tar_into`]): a
//! running container's mount namespace (volumes included), or a stopped one's snapshot
//! mounted privately. A symlink in the container therefore leads where it leads in the
//! container, never to the host; the host side applies what comes out with the layer
//! applier, which never writes outside the destination directory.
//! Docker's `cp` rules: a destination that is a directory receives the source under its
//! own name (`SRC/.`: its contents); one that does not exist becomes the copy; a file is
//! replaced by a file, never by a directory.

use crate::error::{Error, Result};
use crate::sandbox::{JoinTarget, PathKind, Sandbox, copy_dir_of};
use crate::snapshot::{DiffSource, Mount, Snapshotter};
use rbuild_image::layer::{AddEntry, ApplyOptions, Change, MetaOverride, WhiteoutMode, WriterOptions};
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One side of `rbuild cp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpArg {
    /// `CONTAINER:PATH`.
    Container {
        /// Name, ID or ID prefix.
        container: String,
        /// The path in the container (relative paths are from `/`).
        path: String,
    },
    /// A host path (`-` is a tar on stdin or stdout, as docker's).
    Host(PathBuf),
}

impl CpArg {
    /// Docker's reading: `NAME:PATH` is in a container; a path starting with `/` or `.`,
    /// or without a `:`, is on the host.
    pub fn parse(s: &str) -> Result<CpArg> {
        if s.is_empty() {
            return Err(Error::Spec("cp: an empty path".into()));
        }
        if s.starts_with('/') || s.starts_with('.') {
            return Ok(CpArg::Host(PathBuf::from(s)));
        }
        match s.split_once(':') {
            Some((c, p)) if !c.is_empty() => {
                let path = if p.is_empty() { "/".to_string() } else { p.to_string() };
                Ok(CpArg::Container { container: c.to_string(), path })
            }
            Some(_) => Err(Error::Spec(format!("cp: {s:?}: no container name before ':'"))),
            None => Ok(CpArg::Host(PathBuf::from(s))),
        }
    }
}

/// A container path made absolute (`.` and `..` kept for the container to resolve), with
/// whether it names a directory's contents (`SRC/.`).
fn container_path(p: &str) -> (String, bool) {
    let abs = if p.starts_with('/') { p.to_string() } else { format!("/{p}") };
    let contents = abs.ends_with("/.") || abs == "/";
    (abs, contents)
}

/// The last component of a path (`""` for `/`).
fn base_name(p: &str) -> String {
    let t = p.trim_end_matches('/');
    let t = t.strip_suffix("/.").unwrap_or(t);
    t.rsplit('/').next().unwrap_or("").to_string()
}

/// The name a copy takes in the directory it goes into: the source's (or, with `SRC/.`,
/// its contents at the top) when the destination is a directory, else the destination's.
fn copy_name(dest: &str, kind: PathKind, src: &str, contents: bool) -> String {
    match kind {
        PathKind::Dir if contents => String::new(),
        PathKind::Dir => base_name(src),
        _ => base_name(dest),
    }
}

/// Where a `cp` or `export` reads from: a running container's pid 1, or its snapshot's
/// mounts when stopped.
pub fn target(pid1: Option<i32>, snapshot_mounts: impl FnOnce() -> Result<Vec<Mount>>) -> Result<JoinTarget> {
    Ok(match pid1 {
        Some(p) if crate::sandbox::process_running(p) => JoinTarget::Process(p),
        _ => JoinTarget::Rootfs(snapshot_mounts()?),
    })
}

/// A read-only view of an active snapshot's mounts, safe to mount while the container
/// runs on the same upperdir: the upperdir becomes the top lowerdir (its whiteouts and
/// opaque directories still apply), the workdir is left alone.
pub fn readonly_view(mounts: &[Mount]) -> Vec<Mount> {
    mounts
        .iter()
        .map(|m| {
            if m.fstype == "overlay" {
                let get = |k: &str| m.options.iter().find_map(|o| o.strip_prefix(k)).map(str::to_string);
                let (upper, lower) = (get("upperdir="), get("lowerdir="));
                let lowerdir = match (upper, lower) {
                    (Some(u), Some(l)) => format!("{u}:{l}"),
                    (Some(u), None) => u,
                    (None, Some(l)) => l,
                    (None, None) => return m.clone(),
                };
                let mut options = vec![format!("lowerdir={lowerdir}")];
                options.extend(m.options.iter().filter(|o| o.as_str() == "userxattr").cloned());
                if !lowerdir.contains(':') {
                    // overlayfs wants two lowers without an upper: bind the one read-only.
                    return Mount {
                        fstype: "bind".into(),
                        source: lowerdir.into(),
                        options: vec!["rbind".into(), "ro".into()],
                    };
                }
                Mount { fstype: "overlay".into(), source: m.source.clone(), options }
            } else {
                let mut options: Vec<String> = m.options.iter().filter(|o| *o != "rw" && *o != "ro").cloned().collect();
                options.push("ro".into());
                Mount { fstype: m.fstype.clone(), source: m.source.clone(), options }
            }
        })
        .collect()
}

/// Copy `src` in the container to `dest` on the host (`rbuild cp CONTAINER:SRC DEST`).
/// The files belong to the caller; what the container's tar holds is applied under the
/// destination directory only.
pub fn copy_out(sb: &Sandbox, target: &JoinTarget, src: &str, dest: &Path) -> Result<()> {
    let (src, contents) = container_path(src);
    let dest_s = dest.to_string_lossy().into_owned();
    let kind = PathKind::of(dest);
    if kind == PathKind::NoParent || (kind == PathKind::Missing && dest_s.ends_with('/')) {
        return Err(Error::Copy(format!("{}: no such directory", dest.display())));
    }
    let dir = PathBuf::from(copy_dir_of(&dest_s, kind));
    let name = copy_name(&dest_s, kind, &src, contents);
    let name = if contents && kind != PathKind::Dir { base_name(&dest_s) } else { name };
    let path = if contents { src.trim_end_matches('.').to_string() } else { src.clone() };
    let opts = ApplyOptions { whiteouts: WhiteoutMode::Apply, privileged: false, xattrs: false, ..Default::default() };
    apply_stream(&dir, &opts, |w| sb.tar_from(target, &path, &name, kind == PathKind::File, w))
}

/// Write `export`'s tar: the container's root filesystem (its snapshot, without volumes,
/// /proc or /dev) to `out`.
pub fn export(sb: &Sandbox, snapshot_mounts: &[Mount], out: &mut dyn std::io::Write) -> Result<()> {
    sb.tar_from(&JoinTarget::Rootfs(readonly_view(snapshot_mounts)), "/", "", false, out)
}

/// Write the tar of container path `src` to `out` (`rbuild cp CONTAINER:SRC -`): entries
/// under the source's name, or its contents at the top for `SRC/.`.
pub fn tar_out(sb: &Sandbox, target: &JoinTarget, src: &str, out: &mut dyn std::io::Write) -> Result<()> {
    let (src, contents) = container_path(src);
    let name = if contents { String::new() } else { base_name(&src) };
    let path = if contents { src.trim_end_matches('.').to_string() } else { src.clone() };
    sb.tar_from(target, &path, &name, false, out)
}

/// Run `produce` writing into a pipe while the other end is applied into `dir`.
fn apply_stream(
    dir: &Path,
    opts: &ApplyOptions,
    produce: impl FnOnce(&mut dyn std::io::Write) -> Result<()>,
) -> Result<()> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(Error::sys("pipe"))?;
    let (r, w) = (std::fs::File::from(r), std::fs::File::from(w));
    let dir2 = dir.to_path_buf();
    let opts = opts.clone();
    let applier = std::thread::spawn(move || {
        let mut r = std::io::BufReader::with_capacity(256 << 10, r);
        let res = rbuild_image::layer::apply_tar(&mut r, &dir2, &opts);
        // Drain, so the producer never blocks on a full pipe after an error.
        let _ = std::io::copy(&mut r, &mut std::io::sink());
        res
    });
    let mut w = w;
    let produced = produce(&mut w);
    drop(w);
    let applied = applier.join().map_err(|_| Error::Copy("the applier panicked".into()))?;
    produced?;
    applied.map_err(|e| Error::Copy(format!("copying into {}: {e}", dir.display())))?;
    Ok(())
}

/// How `copy_in` records owners.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyInOptions {
    /// `-a`: keep the host files' uid and gid (else root's, as docker's `cp`).
    pub archive: bool,
}

/// Copy the host path `src` into the container at `dest` (`rbuild cp SRC CONTAINER:DEST`).
pub fn copy_in(sb: &Sandbox, target: &JoinTarget, src: &Path, dest: &str, opts: CopyInOptions) -> Result<()> {
    let src_s = src.to_string_lossy().into_owned();
    let contents = src_s.ends_with("/.");
    let m = std::fs::symlink_metadata(src).map_err(|e| Error::Copy(format!("{}: {e}", src.display())))?;
    let src_dir = m.is_dir();
    if contents && !src_dir {
        return Err(Error::Copy(format!("{}: not a directory", src.display())));
    }
    let (dest, _) = container_path(dest);
    let meta =
        if opts.archive { MetaOverride::default() } else { MetaOverride { uid: Some(0), gid: Some(0), mode: None } };
    let src = src.to_path_buf();
    sb.tar_into(target, &dest, &mut |kind, w| {
        if kind == PathKind::File && src_dir {
            return Err(Error::Copy(format!("cannot overwrite non-directory {dest} with directory {}", src.display())));
        }
        if kind == PathKind::Missing && dest.ends_with('/') && !src_dir {
            return Err(Error::Copy(format!("{dest}: no such directory")));
        }
        let name =
            if contents && kind != PathKind::Dir { base_name(&dest) } else { copy_name(&dest, kind, &src_s, contents) };
        let mut changes = Vec::new();
        if !name.is_empty() {
            changes.push(Change::Add(AddEntry { path: name.clone(), source: src.clone(), meta }));
        }
        if src_dir {
            changes.extend(rbuild_image::layer::changes_from_dir(&src, &name, &meta)?);
        }
        rbuild_image::layer::write_layer(changes, w, &WriterOptions { source_date_epoch: None, xattrs: false })?;
        Ok(())
    })
}

/// A change `diff` reports: docker's `A` (added), `C` (changed), `D` (deleted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DiffKind {
    /// Added.
    Added,
    /// Changed.
    Changed,
    /// Deleted.
    Deleted,
}

impl DiffKind {
    /// `A`, `C` or `D`.
    pub fn letter(self) -> char {
        match self {
            DiffKind::Added => 'A',
            DiffKind::Changed => 'C',
            DiffKind::Deleted => 'D',
        }
    }
}

/// Paths the sandbox puts in every container's layer: mount points and the injected
/// files. Neither `diff` nor `commit` reports them.
pub const SANDBOX_PATHS: &[&str] = &["/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/proc", "/sys", "/dev"];

fn excluded(rel: &str, exclude: &[String]) -> bool {
    exclude.iter().any(|e| {
        let e = e.trim_matches('/');
        !e.is_empty() && (rel == e || (rel.starts_with(e) && rel.as_bytes().get(e.len()) == Some(&b'/')))
    })
}

/// The lower directories of an active snapshot, top first.
fn lowers_of(sn: &dyn Snapshotter, key: &str, source: &DiffSource) -> Result<Vec<PathBuf>> {
    Ok(match source {
        DiffSource::Walk { lower, .. } => lower.iter().cloned().collect(),
        DiffSource::Upper { .. } => sn
            .mounts(key)?
            .iter()
            .flat_map(|m| m.options.iter().filter_map(|o| o.strip_prefix("lowerdir=")).map(str::to_string))
            .flat_map(|l| l.split(':').map(PathBuf::from).collect::<Vec<_>>())
            .collect(),
    })
}

/// What a path was below the writable layer: its metadata in the topmost lower that has
/// it (`None`: absent there, or whited out).
fn lower_meta(lowers: &[PathBuf], rel: &str) -> Option<std::fs::Metadata> {
    for l in lowers {
        if let Ok(m) = std::fs::symlink_metadata(l.join(rel)) {
            return (!crate::util::is_whiteout(&m)).then_some(m);
        }
    }
    None
}

/// The writable layer's changes without the sandbox's own paths (and `exclude`: the
/// container's mount targets), and without directories that overlayfs only copied up (no
/// change below them, mode and owner as below).
pub fn layer_changes(sn: &dyn Snapshotter, key: &str, exclude: &[String]) -> Result<(Vec<Change>, Vec<PathBuf>)> {
    let source = sn.diff_source(key)?;
    let lowers = lowers_of(sn, key, &source)?;
    let mut ex: Vec<String> = SANDBOX_PATHS.iter().map(|s| s.to_string()).collect();
    ex.extend(exclude.iter().cloned());
    let raw = match &source {
        DiffSource::Upper { upper } => rbuild_image::layer::changes_from_overlay_upper(upper)?,
        DiffSource::Walk { lower, upper } => crate::diff::walk_changes(lower.as_deref(), upper)?,
    };
    let path_of = |c: &Change| match c {
        Change::Add(a) => a.path.trim_start_matches('/').to_string(),
        Change::Dir(d) => d.path.trim_start_matches('/').to_string(),
        Change::Whiteout(p) | Change::Opaque(p) => p.trim_start_matches('/').to_string(),
    };
    let kept: Vec<Change> = raw.into_iter().filter(|c| !excluded(&path_of(c), &ex)).collect();
    let opaque: HashSet<String> = kept
        .iter()
        .filter_map(|c| if let Change::Opaque(p) = c { Some(p.trim_matches('/').to_string()) } else { None })
        .collect();
    let paths: Vec<String> = kept.iter().map(&path_of).collect();
    let has_below =
        |d: &str| paths.iter().any(|p| p.len() > d.len() && p.starts_with(d) && p.as_bytes()[d.len()] == b'/');
    let out = kept
        .into_iter()
        .filter(|c| {
            let Change::Add(a) = c else { return true };
            let rel = a.path.trim_matches('/');
            let Ok(m) = std::fs::symlink_metadata(&a.source) else { return true };
            if !m.is_dir() || opaque.contains(rel) || has_below(rel) {
                return true;
            }
            match lower_meta(&lowers, rel) {
                Some(l) => !(l.is_dir() && (l.mode(), l.uid(), l.gid()) == (m.mode(), m.uid(), m.gid())),
                None => true,
            }
        })
        .collect();
    Ok((out, lowers))
}

/// `rbuild diff`: what the container changed in its root filesystem, sorted by path, each
/// as docker prints it (`A /new`, `C /etc`, `D /gone`).
pub fn diff(sn: &dyn Snapshotter, key: &str, exclude: &[String]) -> Result<Vec<(DiffKind, String)>> {
    let (changes, lowers) = layer_changes(sn, key, exclude)?;
    let mut out = Vec::new();
    for c in changes {
        match c {
            Change::Add(a) => {
                let rel = a.path.trim_matches('/').to_string();
                let kind = if lower_meta(&lowers, &rel).is_some() { DiffKind::Changed } else { DiffKind::Added };
                out.push((kind, format!("/{rel}")));
            }
            Change::Dir(d) => out.push((DiffKind::Added, format!("/{}", d.path.trim_matches('/')))),
            Change::Whiteout(p) => out.push((DiffKind::Deleted, format!("/{}", p.trim_matches('/')))),
            Change::Opaque(_) => {}
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp_arguments_as_docker_reads_them() {
        assert_eq!(
            CpArg::parse("web:/etc/hosts").unwrap(),
            CpArg::Container { container: "web".into(), path: "/etc/hosts".into() }
        );
        assert_eq!(CpArg::parse("web:").unwrap(), CpArg::Container { container: "web".into(), path: "/".into() });
        assert_eq!(CpArg::parse("./a:b").unwrap(), CpArg::Host("./a:b".into()));
        assert_eq!(CpArg::parse("/abs:x").unwrap(), CpArg::Host("/abs:x".into()));
        assert_eq!(CpArg::parse("file").unwrap(), CpArg::Host("file".into()));
        assert!(CpArg::parse(":x").is_err());
        assert!(CpArg::parse("").is_err());
    }

    #[test]
    fn names_follow_dockers_cp_rules() {
        assert_eq!(base_name("/etc/hosts"), "hosts");
        assert_eq!(base_name("/etc/"), "etc");
        assert_eq!(base_name("/etc/."), "etc");
        assert_eq!(base_name("/"), "");
        assert_eq!(copy_name("/tmp", PathKind::Dir, "/etc", false), "etc");
        assert_eq!(copy_name("/tmp", PathKind::Dir, "/etc/.", true), "");
        assert_eq!(copy_name("/tmp/new", PathKind::Missing, "/etc", false), "new");
        assert_eq!(copy_name("/tmp/f", PathKind::File, "/x", false), "f");
        assert_eq!(container_path("etc/x"), ("/etc/x".to_string(), false));
        assert_eq!(container_path("/etc/."), ("/etc/.".to_string(), true));
    }

    #[test]
    fn a_readonly_view_stacks_the_upperdir_on_the_lowers() {
        let m = Mount {
            fstype: "overlay".into(),
            source: "overlay".into(),
            options: vec![
                "lowerdir=/l1:/l2".into(),
                "upperdir=/u".into(),
                "workdir=/w".into(),
                "volatile".into(),
                "userxattr".into(),
            ],
        };
        let v = readonly_view(&[m]);
        assert_eq!(v[0].options, ["lowerdir=/u:/l1:/l2", "userxattr"]);
        assert!(v[0].readonly());
        let b = Mount { fstype: "bind".into(), source: "/fs".into(), options: vec!["rbind".into(), "rw".into()] };
        assert_eq!(readonly_view(&[b])[0].options, ["rbind", "ro"]);
        let single = Mount {
            fstype: "overlay".into(),
            source: "overlay".into(),
            options: vec!["upperdir=/u".into(), "workdir=/w".into()],
        };
        assert_eq!(readonly_view(&[single])[0].fstype, "bind");
    }

    #[test]
    fn sandbox_paths_and_mount_targets_are_excluded() {
        let ex: Vec<String> = ["/etc/hosts", "/data"].iter().map(|s| s.to_string()).collect();
        assert!(excluded("etc/hosts", &ex));
        assert!(excluded("data/x", &ex));
        assert!(!excluded("etc/hostsx", &ex));
        assert!(!excluded("database", &ex));
    }
}
