//! Small filesystem helpers shared by snapshots, the sandbox and the differ (and the
//! builder's COPY, which copies files the same way).

use crate::error::{Error, Result};
use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// `path` as a C string.
pub fn cstr(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::Spec(format!("path {} contains a NUL byte", path.display())))
}

/// Is a process with this pid alive (on this host's pid namespace)?
pub fn pid_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Remove a directory tree, making unreadable directories (overlay's `work/work` is mode
/// 000) readable first. Missing is fine.
pub fn remove_tree(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path)(e)),
        Ok(m) if !m.is_dir() => return std::fs::remove_file(path).map_err(Error::io(path)),
        Ok(_) => {}
    }
    if std::fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    fix_perms(path);
    std::fs::remove_dir_all(path).map_err(Error::io(path))
}

fn fix_perms(dir: &Path) {
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                fix_perms(&e.path());
            }
        }
    }
}

/// Resolve `path` (absolute, as seen inside the container) under `root`, following
/// symlinks as if `root` were `/`, so that nothing resolves outside `root`. Components that
/// do not exist are appended as they are.
pub fn secure_join(root: &Path, path: &str) -> Result<PathBuf> {
    let mut out = PathBuf::new(); // relative to root
    let mut pending: Vec<OsString> = Path::new(path)
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    let mut links = 0;
    while let Some(c) = pending.pop() {
        if c == ".." {
            out.pop();
            continue;
        }
        let candidate = out.join(&c);
        let full = root.join(&candidate);
        match std::fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return Err(Error::Spec(format!("too many symlinks resolving {path}")));
                }
                let target = std::fs::read_link(&full).map_err(Error::io(&full))?;
                if target.is_absolute() {
                    out = PathBuf::new();
                }
                for tc in target.components().rev() {
                    match tc {
                        Component::Normal(s) => pending.push(s.to_os_string()),
                        Component::ParentDir => pending.push(OsString::from("..")),
                        _ => {}
                    }
                }
            }
            _ => out = candidate,
        }
    }
    Ok(root.join(out))
}

/// Normalize a container path: absolute, no `.`/`..`/duplicate slashes. `..` at the top
/// stays at `/`.
pub fn clean_abs(path: &str) -> String {
    let mut parts: Vec<&OsStr> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(s) => parts.push(s),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    let mut s = String::from("/");
    s.push_str(&parts.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>().join("/"));
    s
}

/// The names of a file's extended attributes (not following symlinks).
pub fn list_xattrs(path: &Path) -> Vec<OsString> {
    let Ok(c) = cstr(path) else { return Vec::new() };
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::ERANGE) {
                buf.resize(buf.len() * 4, 0);
                continue;
            }
            return Vec::new();
        }
        buf.truncate(n as usize);
        return buf.split(|b| *b == 0).filter(|s| !s.is_empty()).map(|s| OsString::from_vec(s.to_vec())).collect();
    }
}

/// One extended attribute's value (not following symlinks).
pub fn get_xattr(path: &Path, name: &OsStr) -> Option<Vec<u8>> {
    let c = cstr(path).ok()?;
    let n = CString::new(name.as_bytes()).ok()?;
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: buf is valid for buf.len() bytes.
        let r = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if r < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::ERANGE) {
                buf.resize(buf.len() * 8, 0);
                continue;
            }
            return None;
        }
        buf.truncate(r as usize);
        return Some(buf);
    }
}

/// Set an extended attribute (not following symlinks).
pub fn set_xattr(path: &Path, name: &OsStr, value: &[u8]) -> std::io::Result<()> {
    let c = cstr(path).map_err(|e| std::io::Error::other(e.to_string()))?;
    let n = CString::new(name.as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: pointers valid for the given lengths.
    let r = unsafe { libc::lsetxattr(c.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// Is this an overlay whiteout (a 0/0 character device)?
pub fn is_whiteout(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    m.file_type().is_char_device() && m.rdev() == 0
}

/// Copy a tree from `src` to `dst` (which must not exist), keeping owners, modes, times,
/// xattrs, symlinks, hard links, devices and fifos: the copy-and-walk snapshotter's
/// `prepare`.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let mut links = std::collections::HashMap::new();
    copy_entry(src, dst, &mut links)?;
    Ok(())
}

fn copy_entry(src: &Path, dst: &Path, links: &mut std::collections::HashMap<(u64, u64), PathBuf>) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let m = std::fs::symlink_metadata(src).map_err(Error::io(src))?;
    let ft = m.file_type();
    if ft.is_dir() {
        std::fs::create_dir(dst).map_err(Error::io(dst))?;
        let mut entries: Vec<_> =
            std::fs::read_dir(src).map_err(Error::io(src))?.collect::<std::io::Result<_>>().map_err(Error::io(src))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            copy_entry(&e.path(), &dst.join(e.file_name()), links)?;
        }
    } else if ft.is_symlink() {
        let t = std::fs::read_link(src).map_err(Error::io(src))?;
        std::os::unix::fs::symlink(&t, dst).map_err(Error::io(dst))?;
    } else {
        if m.nlink() > 1 {
            if let Some(first) = links.get(&(m.dev(), m.ino())) {
                return std::fs::hard_link(first, dst).map_err(Error::io(dst));
            }
            links.insert((m.dev(), m.ino()), dst.to_path_buf());
        }
        if ft.is_file() {
            copy_file(src, dst)?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() || ft.is_socket() {
            let kind = if ft.is_char_device() {
                libc::S_IFCHR
            } else if ft.is_block_device() {
                libc::S_IFBLK
            } else if ft.is_fifo() {
                libc::S_IFIFO
            } else {
                libc::S_IFSOCK
            };
            let c = cstr(dst)?;
            // SAFETY: valid C string; mknod has no memory effects.
            if unsafe { libc::mknod(c.as_ptr(), kind | (m.mode() & 0o7777), m.rdev()) } != 0 {
                return Err(Error::io(dst)(std::io::Error::last_os_error()));
            }
        }
    }
    copy_meta(dst, &m, src)
}

/// Copy a regular file's bytes into a new file `dst`, keeping its holes as holes: only
/// the data extents (`SEEK_DATA`/`SEEK_HOLE`) are copied, in the kernel where it can
/// (`copy_file_range`), and the length is set at the end. A 4 GiB sparse file stays a few
/// blocks on disk instead of 4 GiB of zeros. Returns the length.
pub fn copy_file(src: &Path, dst: &Path) -> Result<u64> {
    use std::os::fd::AsRawFd;
    let from = std::fs::File::open(src).map_err(Error::io(src))?;
    let to = std::fs::OpenOptions::new().write(true).create_new(true).open(dst).map_err(Error::io(dst))?;
    let len = from.metadata().map_err(Error::io(src))?.len();
    let mut off: i64 = 0;
    while (off as u64) < len {
        // SAFETY: lseek on an fd we own.
        let data = unsafe { libc::lseek(from.as_raw_fd(), off, libc::SEEK_DATA) };
        if data < 0 {
            match std::io::Error::last_os_error().raw_os_error() {
                // No data past `off`: the rest is a hole.
                Some(libc::ENXIO) => break,
                // No SEEK_DATA here: all of it is data.
                _ => {
                    copy_range(&from, &to, off, len as i64 - off).map_err(Error::io(dst))?;
                    break;
                }
            }
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(from.as_raw_fd(), data, libc::SEEK_HOLE) };
        let end = if hole < 0 { len as i64 } else { hole.min(len as i64) };
        copy_range(&from, &to, data, end - data).map_err(Error::io(dst))?;
        off = end;
    }
    to.set_len(len).map_err(Error::io(dst))?;
    Ok(len)
}

/// Copy `n` bytes at offset `at` of `from` to the same offset of `to`.
fn copy_range(from: &std::fs::File, to: &std::fs::File, at: i64, n: i64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;
    let (mut off_in, mut off_out, mut left) = (at, at, n);
    while left > 0 {
        // SAFETY: fds we own, offsets we own; no memory is shared with the kernel.
        let r = unsafe {
            libc::copy_file_range(from.as_raw_fd(), &mut off_in, to.as_raw_fd(), &mut off_out, left as usize, 0)
        };
        if r > 0 {
            left -= r as i64;
            continue;
        }
        if r == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EXDEV | libc::ENOSYS | libc::EINVAL | libc::EOPNOTSUPP | libc::EPERM) => break,
            _ => return Err(e),
        }
    }
    let mut buf = vec![0u8; 256 << 10];
    while left > 0 {
        let want = buf.len().min(left as usize);
        let r = from.read_at(&mut buf[..want], off_in as u64)?;
        if r == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        to.write_all_at(&buf[..r], off_out as u64)?;
        off_in += r as i64;
        off_out += r as i64;
        left -= r as i64;
    }
    Ok(())
}

/// Give `dst` the owner, mode, times and xattrs of `src` (whose metadata is `m`).
pub fn copy_meta(dst: &Path, m: &std::fs::Metadata, src: &Path) -> Result<()> {
    let c = cstr(dst)?;
    // Ownership first: chown clears setuid bits, the chmod below restores them. EPERM is
    // expected rootless (files keep the caller's uid).
    // SAFETY: valid C string.
    unsafe { libc::lchown(c.as_ptr(), m.uid(), m.gid()) };
    for name in list_xattrs(src) {
        if let Some(v) = get_xattr(src, &name) {
            let _ = set_xattr(dst, &name, &v);
        }
    }
    if !m.file_type().is_symlink() {
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(m.mode() & 0o7777)).map_err(Error::io(dst))?;
    }
    let times = [
        libc::timespec { tv_sec: m.atime(), tv_nsec: m.atime_nsec() },
        libc::timespec { tv_sec: m.mtime(), tv_nsec: m.mtime_nsec() },
    ];
    // SAFETY: valid pointers; AT_SYMLINK_NOFOLLOW keeps symlinks' own times.
    unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    Ok(())
}

/// Write a file atomically (temp + rename) in the same directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(Error::io(dir))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(Error::io(path))?;
    tmp.persist(path).map_err(|e| Error::io(path)(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_join_stays_inside() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", r.join("etc/hosts")).unwrap();
        std::os::unix::fs::symlink("../../../../..", r.join("up")).unwrap();
        std::os::unix::fs::symlink("etc", r.join("e")).unwrap();
        assert_eq!(secure_join(r, "/etc/hosts").unwrap(), r.join("etc/passwd"));
        assert_eq!(secure_join(r, "/up/etc/shadow").unwrap(), r.join("etc/shadow"));
        assert_eq!(secure_join(r, "/../../x").unwrap(), r.join("x"));
        assert_eq!(secure_join(r, "/e/new/dir").unwrap(), r.join("etc/new/dir"));
        std::os::unix::fs::symlink("loop", r.join("loop")).unwrap();
        assert!(secure_join(r, "/loop/x").is_err());
    }

    #[test]
    fn clean_abs_normalizes() {
        assert_eq!(clean_abs("a/b/../c//d/."), "/a/c/d");
        assert_eq!(clean_abs("/../.."), "/");
    }
}
