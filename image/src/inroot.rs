//! Reading a tree (an extracted rootfs, a build stage, a container's filesystem) as if its
//! directory were `/`: no path, `..` or symlink read from the tree can reach the host.
//!
//! Paths are resolved one component at a time from a directory fd we hold, each opened
//! with `O_NOFOLLOW`; a symlink met on the way is read and its target resolved again from
//! the tree's root (absolute) or from where it sits (relative), `..` stops at the root.
//! Files are opened with `openat2(RESOLVE_IN_ROOT)` where the kernel has it, else through
//! the same walk. [`InRoot::walk`] lists a tree through fds too, so a directory swapped
//! for a symlink while we read cannot redirect the walk.
//!
//! ```no_run
//! use rbuild_image::inroot::InRoot;
//! # fn main() -> std::io::Result<()> {
//! let root = InRoot::open("/tmp/rootfs".as_ref())?;
//! // `/hostroot -> /` inside the tree: this is the tree's own /etc/shadow.
//! let rel = root.resolve("/hostroot/etc/shadow", true)?;
//! assert_eq!(rel.as_deref(), Some("etc/shadow"));
//! # Ok(()) }
//! ```

use crate::layer::sys;
use std::collections::VecDeque;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// How many symlinks one resolution may follow (Linux's own limit).
const MAX_LINKS: usize = 40;

/// What an entry of the tree is (its own type: symlinks are not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A device, fifo or socket.
    Other,
}

impl Kind {
    fn of(st: &libc::stat) -> Kind {
        match sys::file_type(st) {
            libc::S_IFREG => Kind::File,
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFLNK => Kind::Symlink,
            _ => Kind::Other,
        }
    }
}

/// A directory held open as the root of a tree.
#[derive(Debug)]
pub struct InRoot {
    fd: OwnedFd,
    path: PathBuf,
}

fn at_cwd() -> BorrowedFd<'static> {
    // SAFETY: AT_FDCWD is a valid dirfd for the *at calls for the life of the process.
    unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) }
}

/// The components of a tree path (`/`-separated, absolute or not), `.` and empty ones dropped.
fn components(path: &str) -> VecDeque<String> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".").map(String::from).collect()
}

impl InRoot {
    /// Hold `path` (a directory on the host, trusted) open as a tree's root.
    pub fn open(path: &Path) -> io::Result<InRoot> {
        let c = sys::os_cstr(path.as_os_str())?;
        let fd = sys::openat(at_cwd(), &c, libc::O_PATH | libc::O_DIRECTORY, 0)?;
        Ok(InRoot { fd, path: path.to_path_buf() })
    }

    /// The root's host path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The host path of `rel`, a path [`resolve`](Self::resolve) or [`walk`](Self::walk)
    /// returned (no symlink in it).
    pub fn host_path(&self, rel: &str) -> PathBuf {
        if rel.is_empty() { self.path.clone() } else { self.path.join(rel) }
    }

    /// Resolve `path` as a process chrooted into the tree would: symlinks on the way are
    /// followed inside the tree (the last one too when `follow_last`). The result is the
    /// path of what it names relative to the root, free of symlinks (`""` is the root), or
    /// `None` when that does not exist. A component that is not a directory, or more than
    /// 40 symlinks, is an error (`ENOTDIR`, `ELOOP`).
    pub fn resolve(&self, path: &str, follow_last: bool) -> io::Result<Option<String>> {
        let mut stack: Vec<(String, OwnedFd)> = Vec::new();
        let mut queue = components(path);
        let mut links = 0;
        while let Some(c) = queue.pop_front() {
            if c == ".." {
                stack.pop();
                continue;
            }
            let cur = stack.last().map(|(_, fd)| fd.as_fd()).unwrap_or(self.fd.as_fd());
            let cc = sys::cstr(c.as_bytes())?;
            let fd = match sys::openat(cur, &cc, libc::O_PATH | libc::O_NOFOLLOW, 0) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
                Err(e) => return Err(e),
            };
            let st = sys::fstat(fd.as_fd())?;
            match Kind::of(&st) {
                Kind::Symlink if follow_last || !queue.is_empty() => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(io::Error::from_raw_os_error(libc::ELOOP));
                    }
                    let target = sys::readlinkat(fd.as_fd(), c"")?;
                    if target.first() == Some(&b'/') {
                        stack.clear();
                    }
                    let target = String::from_utf8_lossy(&target).into_owned();
                    for part in components(&target).into_iter().rev() {
                        queue.push_front(part);
                    }
                }
                Kind::Dir => stack.push((c, fd)),
                _ if queue.is_empty() => stack.push((c, fd)),
                _ => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
            }
        }
        Ok(Some(stack.into_iter().map(|(n, _)| n).collect::<Vec<_>>().join("/")))
    }

    /// Open the file at `rel` for reading, resolved inside the tree; a symlink as the last
    /// component is refused (`ELOOP`), never followed.
    pub fn open_file(&self, rel: &str) -> io::Result<std::fs::File> {
        let c = sys::cstr(rel.trim_start_matches('/').as_bytes())?;
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW;
        match sys::openat2_in_root(self.fd.as_fd(), &c, flags) {
            Ok(fd) => return Ok(fd.into()),
            // No openat2 (kernel < 5.6) or a seccomp filter refusing it: walk ourselves.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) => {}
            Err(e) => return Err(e),
        }
        let (dir, leaf) = match rel.trim_matches('/').rsplit_once('/') {
            Some((d, l)) => (d, l),
            None => ("", rel.trim_matches('/')),
        };
        let parent = match self.resolve(dir, true)? {
            Some(p) => p,
            None => return Err(io::Error::from_raw_os_error(libc::ENOENT)),
        };
        let pfd = self.open_dir_fd(&parent)?;
        Ok(sys::openat(pfd.as_fd(), &sys::cstr(leaf.as_bytes())?, flags, 0)?.into())
    }

    /// A readable fd of the directory at `rel` (symlink-free, as `resolve` returns).
    fn open_dir_fd(&self, rel: &str) -> io::Result<OwnedFd> {
        let mut fd = sys::openat(self.fd.as_fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        for c in components(rel) {
            if c == ".." {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            let cc = sys::cstr(c.as_bytes())?;
            fd = sys::openat(fd.as_fd(), &cc, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)?;
        }
        Ok(fd)
    }

    /// Call `f` with every path under the directory `rel` (a path `resolve` returned),
    /// relative to the root, and its type, parents before children, names sorted. Symlinks
    /// are reported, never followed.
    pub fn walk(&self, rel: &str, f: &mut dyn FnMut(&str, Kind) -> io::Result<()>) -> io::Result<()> {
        let fd = self.open_dir_fd(rel)?;
        let base = components(rel).into_iter().collect::<Vec<_>>().join("/");
        walk_dir(fd.as_fd(), &base, f)
    }
}

fn walk_dir(dir: BorrowedFd, base: &str, f: &mut dyn FnMut(&str, Kind) -> io::Result<()>) -> io::Result<()> {
    let mut names: Vec<CString> = sys::list_dir(dir)?;
    names.sort();
    for name in names {
        let st = sys::lstatat(dir, &name)?;
        let kind = Kind::of(&st);
        let n = String::from_utf8_lossy(name.to_bytes()).into_owned();
        let rel = if base.is_empty() { n } else { format!("{base}/{n}") };
        f(&rel, kind)?;
        if kind == Kind::Dir {
            let sub = sys::openat(dir, &name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)?;
            walk_dir(sub.as_fd(), &rel, f)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::create_dir_all(r.join("data/sub")).unwrap();
        std::fs::write(r.join("etc/shadow"), "inside").unwrap();
        std::fs::write(r.join("data/sub/f"), "f").unwrap();
        symlink("/", r.join("hostroot")).unwrap();
        symlink("../../../../..", r.join("up")).unwrap();
        symlink("data/sub", r.join("mid")).unwrap();
        symlink("/etc/shadow", r.join("abs")).unwrap();
        symlink("loop", r.join("loop")).unwrap();
        d
    }

    #[test]
    fn resolves_inside_the_root() {
        let d = tree();
        let t = InRoot::open(d.path()).unwrap();
        let r = |p: &str, follow| t.resolve(p, follow).unwrap();
        assert_eq!(r("/hostroot/etc/shadow", true).as_deref(), Some("etc/shadow"));
        assert_eq!(r("up/etc/shadow", true).as_deref(), Some("etc/shadow"));
        assert_eq!(r("/../../etc", true).as_deref(), Some("etc"));
        assert_eq!(r("mid/f", true).as_deref(), Some("data/sub/f"));
        assert_eq!(r("abs", true).as_deref(), Some("etc/shadow"));
        assert_eq!(r("abs", false).as_deref(), Some("abs"));
        assert_eq!(r("hostroot", true).as_deref(), Some(""));
        assert_eq!(r("hostroot/nope", true), None);
        assert_eq!(t.resolve("loop/x", true).unwrap_err().raw_os_error(), Some(libc::ELOOP));
        assert_eq!(t.resolve("etc/shadow/x", true).unwrap_err().raw_os_error(), Some(libc::ENOTDIR));
        let mut s = String::new();
        std::io::Read::read_to_string(&mut t.open_file("hostroot/etc/shadow").unwrap(), &mut s).unwrap();
        assert_eq!(s, "inside");
        assert!(t.open_file("abs").is_err(), "a symlink as the last component is not followed");
    }

    #[test]
    fn walks_without_following_links() {
        let d = tree();
        let t = InRoot::open(d.path()).unwrap();
        let mut seen = Vec::new();
        t.walk("", &mut |p, k| {
            seen.push(format!("{p}:{k:?}"));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                "abs:Symlink",
                "data:Dir",
                "data/sub:Dir",
                "data/sub/f:File",
                "etc:Dir",
                "etc/shadow:File",
                "hostroot:Symlink",
                "loop:Symlink",
                "mid:Symlink",
                "up:Symlink"
            ]
        );
        let mut under = Vec::new();
        t.walk("data", &mut |p, _| {
            under.push(p.to_string());
            Ok(())
        })
        .unwrap();
        assert_eq!(under, ["data/sub", "data/sub/f"]);
    }
}
