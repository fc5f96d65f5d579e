//! Thin fd-relative wrappers over the Linux calls the writer and the applier need.
//!
//! Everything here works relative to a directory fd and never follows a symlink in the last
//! component, so callers can keep every operation inside a directory they hold open.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// A C string from raw bytes; a NUL inside is an `InvalidInput` error.
pub(crate) fn cstr(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

/// Retry a call that failed with EINTR.
fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// `openat(2)` with O_CLOEXEC added.
pub(crate) fn openat(dir: BorrowedFd, name: &CStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let fd = retry(|| {
        cvt(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) })
    })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat2(2)` with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`: `path` is resolved as if `dir`
/// were `/`, so neither `..` nor a symlink can leave it.
pub(crate) fn openat2_in_root(dir: BorrowedFd, path: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: open_how is plain integers; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    let fd = retry(|| {
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r as libc::c_int) }
    })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fstatat(2)`; `AT_SYMLINK_NOFOLLOW` is always added.
pub(crate) fn lstatat(dir: BorrowedFd, name: &CStr) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    cvt(unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), st.as_mut_ptr(), libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(unsafe { st.assume_init() })
}

/// `fstat(2)`.
pub(crate) fn fstat(fd: BorrowedFd) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    Ok(unsafe { st.assume_init() })
}

/// The file type bits of a stat result.
pub(crate) fn file_type(st: &libc::stat) -> libc::mode_t {
    st.st_mode & libc::S_IFMT
}

/// `mkdirat(2)`.
pub(crate) fn mkdirat(dir: BorrowedFd, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }).map(drop)
}

/// `symlinkat(2)`: create `name` in `dir` pointing at `target`.
pub(crate) fn symlinkat(target: &CStr, dir: BorrowedFd, name: &CStr) -> io::Result<()> {
    cvt(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }).map(drop)
}

/// `linkat(2)` without `AT_SYMLINK_FOLLOW`: a symlink is linked, not its target.
pub(crate) fn linkat(odir: BorrowedFd, oname: &CStr, ndir: BorrowedFd, nname: &CStr) -> io::Result<()> {
    cvt(unsafe { libc::linkat(odir.as_raw_fd(), oname.as_ptr(), ndir.as_raw_fd(), nname.as_ptr(), 0) }).map(drop)
}

/// `mknodat(2)`.
pub(crate) fn mknodat(dir: BorrowedFd, name: &CStr, mode: libc::mode_t, dev: libc::dev_t) -> io::Result<()> {
    cvt(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode, dev) }).map(drop)
}

/// `unlinkat(2)`; `dir_flag` removes a directory.
pub(crate) fn unlinkat(dir: BorrowedFd, name: &CStr, remove_dir: bool) -> io::Result<()> {
    let flags = if remove_dir { libc::AT_REMOVEDIR } else { 0 };
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(drop)
}

/// `fchownat(2)` with `AT_SYMLINK_NOFOLLOW`.
pub(crate) fn lchownat(dir: BorrowedFd, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    cvt(unsafe { libc::fchownat(dir.as_raw_fd(), name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) }).map(drop)
}

/// `fchown(2)`.
pub(crate) fn fchown(fd: BorrowedFd, uid: u32, gid: u32) -> io::Result<()> {
    cvt(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) }).map(drop)
}

/// `fchmod(2)`.
pub(crate) fn fchmod(fd: BorrowedFd, mode: libc::mode_t) -> io::Result<()> {
    cvt(unsafe { libc::fchmod(fd.as_raw_fd(), mode) }).map(drop)
}

fn timespecs(mtime: i64) -> [libc::timespec; 2] {
    let t = libc::timespec { tv_sec: mtime as libc::time_t, tv_nsec: 0 };
    [t, t]
}

/// Set atime and mtime of `name` in `dir`, not following a symlink.
pub(crate) fn lutimesat(dir: BorrowedFd, name: &CStr, mtime: i64) -> io::Result<()> {
    let ts = timespecs(mtime);
    cvt(unsafe { libc::utimensat(dir.as_raw_fd(), name.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) }).map(drop)
}

/// Set atime and mtime of an open file.
pub(crate) fn futimes(fd: BorrowedFd, mtime: i64) -> io::Result<()> {
    let ts = timespecs(mtime);
    cvt(unsafe { libc::futimens(fd.as_raw_fd(), ts.as_ptr()) }).map(drop)
}

/// `fsetxattr(2)`.
pub(crate) fn fsetxattr(fd: BorrowedFd, name: &CStr, value: &[u8]) -> io::Result<()> {
    cvt(unsafe { libc::fsetxattr(fd.as_raw_fd(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) }).map(drop)
}

/// `lsetxattr(2)` on `name` in `dir`, reached through `/proc/self/fd` so the directory stays
/// the one we hold (there is no fd-relative setxattr that leaves a symlink alone).
pub(crate) fn lsetxattrat(dir: BorrowedFd, name: &CStr, key: &CStr, value: &[u8]) -> io::Result<()> {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name.to_bytes());
    let p = cstr(&p)?;
    cvt(unsafe { libc::lsetxattr(p.as_ptr(), key.as_ptr(), value.as_ptr().cast(), value.len(), 0) }).map(drop)
}

/// `fgetxattr(2)`: `None` when the attribute is absent or xattrs are unsupported.
pub(crate) fn fgetxattr(fd: BorrowedFd, key: &CStr) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        let r = unsafe { libc::fgetxattr(fd.as_raw_fd(), key.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if r >= 0 {
            buf.truncate(r as usize);
            return Ok(Some(buf));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::ENOTSUP) => return Ok(None),
            Some(libc::ERANGE) => buf.resize(buf.len() * 4, 0),
            _ => return Err(e),
        }
    }
}

/// Change the mode of `name` in `dir` without following a symlink: open it with `O_PATH`,
/// then chmod the inode through `/proc/self/fd` (fchmod refuses O_PATH fds). Symlinks are left
/// alone (they have no mode of their own).
pub(crate) fn lchmodat(dir: BorrowedFd, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    let fd = openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
    let st = fstat(fd.as_fd())?;
    if file_type(&st) == libc::S_IFLNK {
        return Ok(());
    }
    let p = cstr(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_bytes())?;
    match cvt(unsafe { libc::chmod(p.as_ptr(), mode) }) {
        Ok(_) => Ok(()),
        // No /proc: glibc's fchmodat emulates AT_SYMLINK_NOFOLLOW on its own when it can.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            cvt(unsafe { libc::fchmodat(dir.as_raw_fd(), name.as_ptr(), mode, libc::AT_SYMLINK_NOFOLLOW) }).map(drop)
        }
        Err(e) => Err(e),
    }
}

/// `readlinkat(2)`; an empty `name` reads the symlink an `O_PATH` fd refers to.
pub(crate) fn readlinkat(dir: BorrowedFd, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        let r = unsafe { libc::readlinkat(dir.as_raw_fd(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = r as usize;
        if n < buf.len() {
            buf.truncate(n);
            return Ok(buf);
        }
        buf.resize(buf.len() * 4, 0);
    }
}

/// The names in an open directory (not `.` or `..`). `dir` must be opened for reading.
pub(crate) fn list_dir(dir: BorrowedFd) -> io::Result<Vec<CString>> {
    // fdopendir takes ownership of the fd it is given, so hand it a duplicate.
    let dup = cvt(unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })?;
    // The duplicate shares the file offset: rewind so a directory read before is read whole.
    unsafe { libc::lseek(dup, 0, libc::SEEK_SET) };
    let d = unsafe { libc::fdopendir(dup) };
    if d.is_null() {
        let e = io::Error::last_os_error();
        unsafe { libc::close(dup) };
        return Err(e);
    }
    let mut names = Vec::new();
    let result = loop {
        // readdir returns NULL both at the end and on error; errno tells them apart.
        unsafe { *libc::__errno_location() = 0 };
        let ent = unsafe { libc::readdir64(d) };
        if ent.is_null() {
            let errno = unsafe { *libc::__errno_location() };
            break if errno == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(errno)) };
        }
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
        let b = name.to_bytes();
        if b != b"." && b != b".." {
            names.push(name.to_owned());
        }
    };
    unsafe { libc::closedir(d) };
    result.map(|_| names)
}

/// A `CStr` for an `OsStr`.
pub(crate) fn os_cstr(s: &OsStr) -> io::Result<CString> {
    cstr(s.as_bytes())
}

/// Remove `name` in `dir` and, when it is a directory, everything below it. Never follows a
/// symlink; iterative, so a deep tree cannot overflow the stack.
pub(crate) fn remove_all_at(dir: BorrowedFd, name: &CStr) -> io::Result<()> {
    let st = match lstatat(dir, name) {
        Ok(st) => st,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    if file_type(&st) != libc::S_IFDIR {
        return unlinkat(dir, name, false);
    }
    // Frames: (open dir, its name in the parent frame, names still to remove).
    let mut stack: Vec<(OwnedFd, CString, Vec<CString>)> = Vec::new();
    let first = open_dir_for_removal(dir, name)?;
    let names = list_dir(first.as_fd())?;
    stack.push((first, name.to_owned(), names));
    while let Some((fd, _, names)) = stack.last_mut() {
        match names.pop() {
            Some(child) => {
                let st = match lstatat(fd.as_fd(), &child) {
                    Ok(st) => st,
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                    Err(e) => return Err(e),
                };
                if file_type(&st) == libc::S_IFDIR {
                    let cfd = open_dir_for_removal(fd.as_fd(), &child)?;
                    let cnames = list_dir(cfd.as_fd())?;
                    stack.push((cfd, child, cnames));
                } else {
                    unlinkat(fd.as_fd(), &child, false)?;
                }
            }
            None => {
                let (_, dname, _) = stack.pop().expect("non-empty stack");
                let parent = match stack.last() {
                    Some((pfd, _, _)) => pfd.as_fd(),
                    None => dir,
                };
                unlinkat(parent, &dname, true)?;
            }
        }
    }
    Ok(())
}

/// Open a directory for listing and removing its entries, making it writable first when we
/// own it but its mode forbids it (a read-only directory from a layer).
fn open_dir_for_removal(dir: BorrowedFd, name: &CStr) -> io::Result<OwnedFd> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
    let fd = match openat(dir, name, flags, 0) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
            lchmodat(dir, name, 0o700)?;
            openat(dir, name, flags, 0)?
        }
        Err(e) => return Err(e),
    };
    let st = fstat(fd.as_fd())?;
    if st.st_mode & 0o300 != 0o300 && unsafe { libc::geteuid() } != 0 {
        fchmod(fd.as_fd(), (st.st_mode & 0o7777) | 0o700)?;
    }
    Ok(fd)
}
