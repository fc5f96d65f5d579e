//! The layer applier: extracts a layer tar into a directory and can never write outside it.
//!
//! Every entry path is cleaned lexically (a leading `/` is dropped, as Docker does; `..` that
//! would climb above the root is refused) and then resolved under the root with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, or, where the kernel lacks it, by a
//! userspace walk that opens one component at a time with `O_NOFOLLOW` and resolves symlinks
//! itself with the root as `/`. Symlinks already in the tree (from this layer or a lower one)
//! are therefore followed as a chroot would: `a -> /etc` then `a/passwd` writes
//! `<root>/etc/passwd`. The last component is never followed: files are created with
//! `O_CREAT | O_EXCL | O_NOFOLLOW`, and metadata is set through fds or `*at` calls with
//! `AT_SYMLINK_NOFOLLOW`. Because everything happens relative to directory fds we hold, a
//! concurrent process swapping a directory for a symlink cannot redirect a write either.
//!
//! Whiteouts follow the OCI image spec, in one of two modes ([`WhiteoutMode`]).

use super::sys::{self, cstr};
use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::ffi::{CStr, CString};
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What to do with whiteout entries (`.wh.name`, `.wh..wh..opq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhiteoutMode {
    /// Apply them to what lower layers put in the target: `.wh.name` deletes `name`;
    /// `.wh..wh..opq` empties its directory of everything this layer did not itself create
    /// (the order of entries in the tar does not matter).
    #[default]
    Apply,
    /// Keep them as overlayfs expects in a lowerdir: the layer is extracted alone into an
    /// empty directory (a snapshot), `.wh.name` becomes a `0/0` character device and
    /// `.wh..wh..opq` sets the `overlay.opaque` xattr on its directory.
    Overlay {
        /// Which xattr namespace overlayfs reads.
        xattr: OverlayXattr,
    },
}

/// The xattr namespace of overlayfs' own attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlayXattr {
    /// `trusted.overlay.*`: the default; needs CAP_SYS_ADMIN to set.
    Trusted,
    /// `user.overlay.*`: for rootless mounts with the `userxattr` option (Linux 5.11+).
    User,
}

/// How to apply a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Whiteout handling.
    pub whiteouts: WhiteoutMode,
    /// Set ownership from the tar and create device nodes (needs root). When false, files
    /// belong to the caller and character/block devices are skipped (counted in
    /// [`ApplyStats::skipped`]); fifos are always created.
    pub privileged: bool,
    /// Set extended attributes from `SCHILY.xattr.*` records. Failures on a filesystem without
    /// xattrs, and refusals of `trusted.*`/`security.*` when unprivileged, are ignored.
    pub xattrs: bool,
    /// How paths are resolved under the target.
    pub resolve: Resolve,
    /// With `privileged`, as root of a rootless user namespace (the sandbox's extraction):
    /// an owner the namespace does not map stays root's, device nodes the kernel refuses
    /// there are skipped (counted in [`ApplyStats::skipped`]), and refused `trusted.*`
    /// xattrs are ignored.
    pub userns: bool,
    /// Skip (count in [`ApplyStats::skipped`]) an entry that names the root but is not a
    /// directory, such as a file with an empty name, instead of refusing the layer: ADD's
    /// archives, which Docker's and BuildKit's unpackers read that way.
    pub lenient_root: bool,
}

/// How entry paths are resolved under the target. Both contain every path the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resolve {
    /// `openat2(RESOLVE_IN_ROOT)` where the kernel has it (5.6+), else the userspace walk.
    #[default]
    Auto,
    /// Always the userspace walk (one `O_NOFOLLOW` component at a time).
    Userspace,
}

impl Default for ApplyOptions {
    /// Apply whiteouts, xattrs on, privileged when running as root.
    fn default() -> Self {
        ApplyOptions {
            whiteouts: WhiteoutMode::Apply,
            privileged: nix::unistd::geteuid().is_root(),
            xattrs: true,
            resolve: Resolve::Auto,
            userns: false,
            lenient_root: false,
        }
    }
}

/// What applying a layer did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Tar entries read (extension headers not counted).
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Directories created or updated.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Hardlinks created.
    pub hardlinks: u64,
    /// Device nodes and fifos created.
    pub devices: u64,
    /// Whiteouts applied (or written as overlay whiteouts).
    pub whiteouts: u64,
    /// Opaque directory markers applied.
    pub opaques: u64,
    /// Entries skipped: device nodes when unprivileged, aufs metadata, global PAX headers.
    pub skipped: u64,
    /// Bytes of file contents written.
    pub bytes: u64,
}

/// Apply a layer blob (gzip, zstd or plain tar, sniffed) to `target`, which must exist.
pub fn apply_layer<R: Read + Send + 'static>(reader: R, target: &Path, opts: &ApplyOptions) -> Result<ApplyStats> {
    let (_, tar) = super::decompress(reader)?;
    apply_tar(tar, target, opts)
}

/// Apply an uncompressed layer tar to `target`, which must exist.
pub fn apply_tar<R: Read>(tar: R, target: &Path, opts: &ApplyOptions) -> Result<ApplyStats> {
    let mut root = Root::open(target)?;
    root.openat2 = opts.resolve == Resolve::Auto;
    let mut ap = Applier {
        root,
        opts: opts.clone(),
        stats: ApplyStats::default(),
        created: HashSet::new(),
        ancestors: HashSet::new(),
        dirs: BTreeMap::new(),
        buf: vec![0; 256 * 1024],
        warned_xattr: false,
    };
    let mut archive = tar::Archive::new(tar);
    let mut last = String::from("(start of layer)");
    let mut last_pos = 0u64;
    {
        let entries = archive.entries().map_err(|e| Error::CorruptLayer(format!("reading layer: {e}")))?;
        for ent in entries {
            let mut ent = ent.map_err(|e| {
                Error::CorruptLayer(format!("after entry {last:?} (header at offset {last_pos}): {}", tidy(&e)))
            })?;
            last = String::from_utf8_lossy(&ent.path_bytes()).into_owned();
            last_pos = ent.raw_header_position();
            ap.entry(&mut ent, &last, last_pos)?;
        }
    }
    ap.finish_dirs()?;
    // Read to the end of the stream so a compressed blob's trailer (gzip CRC, zstd frame end)
    // is checked too.
    io::copy(&mut archive.into_inner(), &mut io::sink())
        .map_err(|e| Error::CorruptLayer(format!("after the end of the tar: {e}")))?;
    Ok(ap.stats)
}

/// The target directory, and how paths inside it are resolved.
struct Root {
    fd: OwnedFd,
    path: Arc<Path>,
    openat2: bool,
    /// The last parent directory resolved: layers list siblings together.
    cache: Option<(Vec<u8>, OwnedFd)>,
}

impl Root {
    fn open(path: &Path) -> Result<Root> {
        let c = sys::os_cstr(path.as_os_str()).map_err(Error::io(path))?;
        let fd = sys::openat(std::os::fd::BorrowedFd::borrow_raw_cwd(), &c, libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .map_err(Error::io(path))?;
        Ok(Root { fd, path: path.into(), openat2: true, cache: None })
    }

    /// The directory at `path` (cleaned, `/`-joined; empty is the root) as an `O_PATH` fd,
    /// symlinks on the way resolved with the root as `/`. With `create`, missing directories
    /// are made (0755).
    fn dir(&mut self, path: &[u8], create: bool) -> io::Result<OwnedFd> {
        if path.is_empty() {
            return self.fd.try_clone();
        }
        if let Some((p, fd)) = &self.cache {
            if p == path {
                return fd.try_clone();
            }
        }
        let fd = self.resolve(path, create)?;
        self.cache = Some((path.to_vec(), fd.try_clone()?));
        Ok(fd)
    }

    fn resolve(&mut self, path: &[u8], create: bool) -> io::Result<OwnedFd> {
        if self.openat2 {
            let c = cstr(path)?;
            match sys::openat2_in_root(self.fd.as_fd(), &c, libc::O_PATH | libc::O_DIRECTORY) {
                Ok(fd) => return Ok(fd),
                // No openat2 (kernel < 5.6) or a seccomp filter refusing it.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) => self.openat2 = false,
                // Missing components (to create), or a race the kernel gave up on: walk.
                Err(_) => {}
            }
        }
        self.walk(path, create)
    }

    /// The userspace twin of `RESOLVE_IN_ROOT`: one component at a time, never following a
    /// symlink in `openat`, reading links ourselves and restarting absolute ones at the root,
    /// `..` clamped at the root.
    fn walk(&self, path: &[u8], create: bool) -> io::Result<OwnedFd> {
        let mut stack: Vec<OwnedFd> = vec![self.fd.try_clone()?];
        let mut queue: VecDeque<Vec<u8>> = path.split(|&b| b == b'/').map(<[u8]>::to_vec).collect();
        let mut links = 0;
        while let Some(c) = queue.pop_front() {
            if c.is_empty() || c == b"." {
                continue;
            }
            if c == b".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            let cur = stack.last().expect("root stays on the stack");
            let cc = cstr(&c)?;
            let flags = libc::O_PATH | libc::O_NOFOLLOW;
            let fd = match sys::openat(cur.as_fd(), &cc, flags, 0) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create => {
                    match sys::mkdirat(cur.as_fd(), &cc, 0o755) {
                        Err(e) if e.raw_os_error() != Some(libc::EEXIST) => return Err(e),
                        _ => {}
                    }
                    sys::openat(cur.as_fd(), &cc, flags, 0)?
                }
                Err(e) => return Err(e),
            };
            let st = sys::fstat(fd.as_fd())?;
            match sys::file_type(&st) {
                libc::S_IFDIR => stack.push(fd),
                libc::S_IFLNK => {
                    links += 1;
                    if links > 40 {
                        return Err(io::Error::from_raw_os_error(libc::ELOOP));
                    }
                    let target = sys::readlinkat(fd.as_fd(), c"")?;
                    if target.first() == Some(&b'/') {
                        stack.truncate(1);
                    }
                    for part in target.split(|&b| b == b'/').rev() {
                        queue.push_front(part.to_vec());
                    }
                }
                _ => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
            }
        }
        Ok(stack.pop().expect("root stays on the stack"))
    }

    fn forget(&mut self) {
        self.cache = None;
    }

    fn host_path(&self, p: &[u8]) -> PathBuf {
        host_path(&self.path, p)
    }
}

trait BorrowCwd {
    fn borrow_raw_cwd() -> BorrowedFd<'static>;
}

impl BorrowCwd for BorrowedFd<'_> {
    fn borrow_raw_cwd() -> BorrowedFd<'static> {
        // SAFETY: AT_FDCWD is a valid dirfd for the *at calls for the life of the process.
        unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) }
    }
}

fn host_path(root: &Path, p: &[u8]) -> PathBuf {
    root.join(String::from_utf8_lossy(p).as_ref())
}

/// What an entry's header says, read once.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(CString, Vec<u8>)>,
}

struct Applier {
    root: Root,
    opts: ApplyOptions,
    stats: ApplyStats,
    /// Paths this layer created (whiteouts never delete them).
    created: HashSet<Vec<u8>>,
    /// Every ancestor directory of a created path.
    ancestors: HashSet<Vec<u8>>,
    /// Directory modes and mtimes, set after their contents (deepest first).
    dirs: BTreeMap<Vec<u8>, (u32, i64)>,
    buf: Vec<u8>,
    warned_xattr: bool,
}

const WH: &[u8] = b".wh.";
const WH_META: &[u8] = b".wh..wh.";
const WH_OPQ: &[u8] = b".wh..wh..opq";

fn unsafe_entry(entry: &str, reason: impl Into<String>) -> Error {
    Error::UnsafeEntry { entry: entry.to_string(), reason: reason.into() }
}

/// Clean a path from the tar: drop a leading `/`, `.` and empty components, resolve `..`
/// lexically; climbing above the root is refused.
fn clean(raw: &[u8], entry: &str) -> Result<Vec<Vec<u8>>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err(unsafe_entry(entry, "path climbs above the layer root with `..`"));
                }
            }
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

/// An error message from the tar parser, which may quote garbage: printable and short.
/// Reads of zeros at least this long become holes rather than writes.
const HOLE_MIN: usize = 4096;

fn is_zero(b: &[u8]) -> bool {
    let mut words = b.chunks_exact(8);
    words.by_ref().all(|w| u64::from_ne_bytes(w.try_into().expect("8 bytes")) == 0)
        && words.remainder().iter().all(|&x| x == 0)
}

fn tidy(e: &io::Error) -> String {
    let s: String = e.to_string().chars().map(|c| if c.is_control() || c == '\u{fffd}' { '?' } else { c }).collect();
    if s.chars().count() > 200 { format!("{}…", s.chars().take(200).collect::<String>()) } else { s }
}

/// A numeric header field, where an empty one (all NULs or spaces, as some writers leave
/// unused fields) reads as 0 like Go's archive/tar does.
fn lenient(parsed: io::Result<u64>, raw: &[u8]) -> io::Result<u64> {
    match parsed {
        Err(_) if raw.iter().all(|&b| b == 0 || b == b' ') => Ok(0),
        r => r,
    }
}

fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    comps.join(&b'/')
}

impl Applier {
    fn entry<R: Read>(&mut self, ent: &mut tar::Entry<'_, R>, name: &str, pos: u64) -> Result<()> {
        let corrupt = |e: io::Error| Error::CorruptLayer(format!("entry {name:?} at offset {pos}: {e}"));
        let kind = ent.header().entry_type();
        if kind.is_pax_global_extensions() {
            self.stats.skipped += 1;
            return Ok(());
        }
        self.stats.entries += 1;
        let comps = clean(&ent.path_bytes(), name)?;
        let h = ent.header();
        let old = h.as_old();
        let mut meta = Meta {
            mode: lenient(h.mode().map(u64::from), &old.mode).map_err(corrupt)? as u32 & 0o7777,
            uid: u32::try_from(lenient(h.uid(), &old.uid).map_err(corrupt)?)
                .map_err(|_| unsafe_entry(name, "uid out of range"))?,
            gid: u32::try_from(lenient(h.gid(), &old.gid).map_err(corrupt)?)
                .map_err(|_| unsafe_entry(name, "gid out of range"))?,
            mtime: lenient(h.mtime(), &old.mtime).map_err(corrupt)? as i64,
            xattrs: Vec::new(),
        };
        if let Some(pax) = ent.pax_extensions().map_err(corrupt)? {
            for ext in pax {
                let ext = ext.map_err(corrupt)?;
                let key = ext.key_bytes();
                if let Some(x) = key.strip_prefix(b"SCHILY.xattr.") {
                    let k = cstr(x).map_err(|_| unsafe_entry(name, "NUL in an xattr name"))?;
                    meta.xattrs.push((k, ext.value_bytes().to_vec()));
                } else if key == b"mtime" {
                    let v = String::from_utf8_lossy(ext.value_bytes()).into_owned();
                    let int = v.split('.').next().unwrap_or("");
                    meta.mtime =
                        int.parse().map_err(|_| Error::CorruptLayer(format!("entry {name:?}: bad PAX mtime {v:?}")))?;
                } else if key.starts_with(b"GNU.sparse.") {
                    return Err(unsafe_entry(name, "PAX sparse files are not supported"));
                }
            }
        }

        if comps.iter().any(|c| c.starts_with(WH_META)) && comps.last().map(Vec::as_slice) != Some(WH_OPQ) {
            // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not part of the image.
            self.stats.skipped += 1;
            return Ok(());
        }
        if let Some(base) = comps.last().and_then(|b| b.strip_prefix(WH)) {
            let parent = &comps[..comps.len() - 1];
            if comps.last().map(Vec::as_slice) == Some(WH_OPQ) {
                return self.opaque(parent, name, &meta);
            }
            if base.is_empty() || base == b"." || base == b".." {
                return Err(unsafe_entry(name, "whiteout of an invalid name"));
            }
            return self.whiteout(parent, base, name, &meta);
        }

        if comps.is_empty() {
            if !kind.is_dir() {
                if self.opts.lenient_root {
                    self.stats.skipped += 1;
                    return Ok(());
                }
                return Err(unsafe_entry(name, "only a directory can stand for the layer root"));
            }
            return self.root_dir(&meta, name);
        }
        let parent_path = join(&comps[..comps.len() - 1]);
        let path = join(&comps);
        let leaf = cstr(comps.last().expect("non-empty")).map_err(|_| unsafe_entry(name, "NUL in path"))?;
        let parent = self.root.dir(&parent_path, true).map_err(|e| self.resolve_err(name, &parent_path, e))?;
        let parent = parent.as_fd();
        let rp = self.root.path.clone();
        let io_err = |e: io::Error| Error::Io { path: host_path(&rp, &path), source: e };

        use tar::EntryType as T;
        match kind {
            T::Regular | T::Continuous | T::GNUSparse => {
                self.clear_slot(parent, &leaf, false).map_err(io_err)?;
                let fd =
                    sys::openat(parent, &leaf, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW, 0o600)
                        .map_err(io_err)?;
                let mut file = std::fs::File::from(fd);
                self.copy(ent, &mut file, name, pos, &path)?;
                let fd = file.as_fd();
                if self.opts.privileged {
                    self.owned(sys::fchown(fd, meta.uid, meta.gid)).map_err(io_err)?;
                }
                // After chown, which clears setuid/setgid bits.
                sys::fchmod(fd, meta.mode).map_err(io_err)?;
                self.set_xattrs_fd(fd, &meta, name, &path)?;
                sys::futimes(fd, meta.mtime).map_err(io_err)?;
                self.stats.files += 1;
            }
            T::Directory => {
                let existed = self.clear_slot(parent, &leaf, true).map_err(io_err)?;
                if !existed {
                    sys::mkdirat(parent, &leaf, 0o700).map_err(io_err)?;
                }
                if self.opts.privileged {
                    self.owned(sys::lchownat(parent, &leaf, meta.uid, meta.gid)).map_err(io_err)?;
                }
                if self.opts.xattrs && !meta.xattrs.is_empty() {
                    let d = sys::openat(parent, &leaf, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)
                        .map_err(io_err)?;
                    self.set_xattrs_fd(d.as_fd(), &meta, name, &path)?;
                }
                self.dirs.insert(path.clone(), (meta.mode, meta.mtime));
                self.stats.dirs += 1;
            }
            T::Symlink => {
                let target = ent.link_name_bytes().ok_or_else(|| unsafe_entry(name, "symlink without a target"))?;
                let target = cstr(&target).map_err(|_| unsafe_entry(name, "NUL in symlink target"))?;
                self.clear_slot(parent, &leaf, false).map_err(io_err)?;
                sys::symlinkat(&target, parent, &leaf).map_err(io_err)?;
                if self.opts.privileged {
                    self.owned(sys::lchownat(parent, &leaf, meta.uid, meta.gid)).map_err(io_err)?;
                }
                for (k, v) in &meta.xattrs {
                    if self.opts.xattrs && !super::writer::skip_xattr(k.to_bytes()) {
                        let r = sys::lsetxattrat(parent, &leaf, k, v);
                        self.xattr_result(r, k, name, &path)?;
                    }
                }
                sys::lutimesat(parent, &leaf, meta.mtime).map_err(io_err)?;
                self.stats.symlinks += 1;
            }
            T::Link => {
                let target = ent.link_name_bytes().ok_or_else(|| unsafe_entry(name, "hardlink without a target"))?;
                let tcomps = clean(&target, name).map_err(|_| {
                    unsafe_entry(
                        name,
                        format!("hardlink target {:?} is outside the layer root", String::from_utf8_lossy(&target)),
                    )
                })?;
                if tcomps.is_empty() {
                    return Err(unsafe_entry(name, "hardlink to the layer root"));
                }
                let tpath = join(&tcomps);
                if tpath == path {
                    return Ok(());
                }
                let missing = || {
                    unsafe_entry(name, format!("hardlink target {:?} does not exist", String::from_utf8_lossy(&tpath)))
                };
                let tparent = self.root.dir(&join(&tcomps[..tcomps.len() - 1]), false).map_err(|_| missing())?;
                let tleaf = cstr(tcomps.last().expect("non-empty")).map_err(|_| missing())?;
                match sys::lstatat(tparent.as_fd(), &tleaf) {
                    Ok(st) if sys::file_type(&st) == libc::S_IFDIR => {
                        return Err(unsafe_entry(name, "hardlink to a directory"));
                    }
                    Ok(_) => {}
                    Err(_) => return Err(missing()),
                }
                // The parent fd may have been the cached one; re-resolve after clearing.
                self.clear_slot(parent, &leaf, false).map_err(io_err)?;
                sys::linkat(tparent.as_fd(), &tleaf, parent, &leaf).map_err(io_err)?;
                self.stats.hardlinks += 1;
            }
            T::Char | T::Block | T::Fifo => {
                let ft = match kind {
                    T::Char => libc::S_IFCHR,
                    T::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                if ft != libc::S_IFIFO && !self.opts.privileged {
                    tracing::debug!(entry = name, "skipping a device node: not privileged");
                    self.stats.skipped += 1;
                    return Ok(());
                }
                let major = ent.header().device_major().map_err(corrupt)?.unwrap_or(0);
                let minor = ent.header().device_minor().map_err(corrupt)?.unwrap_or(0);
                self.clear_slot(parent, &leaf, false).map_err(io_err)?;
                match sys::mknodat(parent, &leaf, ft | meta.mode, libc::makedev(major, minor)) {
                    Err(e) if self.opts.userns && ft != libc::S_IFIFO && e.raw_os_error() == Some(libc::EPERM) => {
                        tracing::debug!(entry = name, "skipping a device node: refused in a user namespace");
                        self.stats.skipped += 1;
                        return Ok(());
                    }
                    r => r.map_err(io_err)?,
                }
                if self.opts.privileged {
                    self.owned(sys::lchownat(parent, &leaf, meta.uid, meta.gid)).map_err(io_err)?;
                }
                sys::lchmodat(parent, &leaf, meta.mode).map_err(io_err)?;
                sys::lutimesat(parent, &leaf, meta.mtime).map_err(io_err)?;
                self.stats.devices += 1;
            }
            other => {
                return Err(unsafe_entry(name, format!("unsupported tar entry type {:?}", other.as_byte() as char)));
            }
        }
        self.mark_created(path);
        Ok(())
    }

    fn resolve_err(&self, entry: &str, parent: &[u8], e: io::Error) -> Error {
        match e.raw_os_error() {
            Some(libc::ENOTDIR) | Some(libc::ELOOP) => unsafe_entry(
                entry,
                format!("parent {:?} is not a directory inside the root ({e})", String::from_utf8_lossy(parent)),
            ),
            _ => Error::Io { path: self.root.host_path(parent), source: e },
        }
    }

    /// A chown's result: in a user namespace, an owner it does not map (EINVAL) is left as
    /// it is (root of the namespace).
    fn owned(&self, r: io::Result<()>) -> io::Result<()> {
        match r {
            Err(e) if self.opts.userns && e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
            r => r,
        }
    }

    fn mark_created(&mut self, path: Vec<u8>) {
        let mut p = path.as_slice();
        while let Some(i) = p.iter().rposition(|&b| b == b'/') {
            p = &p[..i];
            if !self.ancestors.insert(p.to_vec()) {
                break;
            }
        }
        self.created.insert(path);
    }

    /// Make room for a new entry at `leaf`: an existing directory stays when the new entry
    /// is a directory too (returns true); anything else there is removed.
    fn clear_slot(&mut self, parent: BorrowedFd, leaf: &CStr, new_is_dir: bool) -> io::Result<bool> {
        match sys::lstatat(parent, leaf) {
            Ok(st) if new_is_dir && sys::file_type(&st) == libc::S_IFDIR => Ok(true),
            Ok(st) => {
                if sys::file_type(&st) == libc::S_IFDIR {
                    self.root.forget();
                }
                sys::remove_all_at(parent, leaf)?;
                Ok(false)
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn copy<R: Read>(
        &mut self,
        ent: &mut tar::Entry<'_, R>,
        out: &mut std::fs::File,
        name: &str,
        pos: u64,
        path: &[u8],
    ) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let want = ent.header().entry_size().unwrap_or(0);
        let size = ent.size();
        let mut done = 0u64;
        // Zeros are not written: a run of them (a GNU sparse entry's holes, which the tar
        // reader expands, or plain zero blocks) stays a hole in the new file, so a 4 GiB
        // sparse file costs a few blocks on disk, not 4 GiB.
        let mut written = 0u64;
        loop {
            let n = match ent.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::CorruptLayer(format!("entry {name:?} at offset {pos}: {e}"))),
            };
            let chunk = &self.buf[..n];
            // Runs of non-zero blocks are written, zero blocks skipped.
            let mut i = 0;
            while i < n {
                let block = |j: usize| &chunk[j..(j + HOLE_MIN).min(n)];
                if block(i).len() == HOLE_MIN && is_zero(block(i)) {
                    i += HOLE_MIN;
                    continue;
                }
                let start = i;
                while i < n && !(block(i).len() == HOLE_MIN && is_zero(block(i))) {
                    i = (i + HOLE_MIN).min(n);
                }
                out.write_all_at(&chunk[start..i], done + start as u64)
                    .map_err(|e| Error::Io { path: self.root.host_path(path), source: e })?;
                written = done + i as u64;
            }
            done += n as u64;
        }
        if written < done {
            out.set_len(done).map_err(|e| Error::Io { path: self.root.host_path(path), source: e })?;
        }
        if done != size {
            return Err(Error::CorruptLayer(format!(
                "entry {name:?} at offset {pos}: truncated, {done} of {size} bytes (header says {want})"
            )));
        }
        self.stats.bytes += done;
        Ok(())
    }

    fn set_xattrs_fd(&mut self, fd: BorrowedFd, meta: &Meta, name: &str, path: &[u8]) -> Result<()> {
        if !self.opts.xattrs {
            return Ok(());
        }
        for (k, v) in &meta.xattrs {
            if super::writer::skip_xattr(k.to_bytes()) {
                tracing::debug!(entry = name, xattr = ?k, "dropping an overlay/selinux xattr from a layer");
                continue;
            }
            let r = sys::fsetxattr(fd, k, v);
            self.xattr_result(r, k, name, path)?;
        }
        Ok(())
    }

    fn xattr_result(&mut self, r: io::Result<()>, key: &CStr, name: &str, path: &[u8]) -> Result<()> {
        let Err(e) = r else { return Ok(()) };
        let k = key.to_bytes();
        let privileged_ns = k.starts_with(b"trusted.") || k.starts_with(b"security.");
        let ignorable = match e.raw_os_error() {
            Some(libc::ENOTSUP) => true,
            Some(libc::EPERM) | Some(libc::EACCES) => privileged_ns && (!self.opts.privileged || self.opts.userns),
            _ => false,
        };
        if ignorable {
            if !self.warned_xattr {
                tracing::warn!(entry = name, xattr = ?key, error = %e, "xattr not set (unsupported or not permitted); further ones silently skipped");
                self.warned_xattr = true;
            }
            return Ok(());
        }
        Err(Error::Io {
            path: self.root.host_path(path),
            source: io::Error::new(e.kind(), format!("setting xattr {}: {e}", String::from_utf8_lossy(k))),
        })
    }

    fn root_dir(&mut self, meta: &Meta, name: &str) -> Result<()> {
        let fd = self.root.fd.try_clone().map_err(Error::io(&*self.root.path))?;
        if self.opts.privileged {
            self.owned(sys::fchown(fd.as_fd(), meta.uid, meta.gid)).map_err(Error::io(&*self.root.path))?;
        }
        self.set_xattrs_fd(fd.as_fd(), meta, name, b"")?;
        self.dirs.insert(Vec::new(), (meta.mode, meta.mtime));
        self.stats.dirs += 1;
        Ok(())
    }

    fn whiteout(&mut self, parent: &[Vec<u8>], base: &[u8], name: &str, meta: &Meta) -> Result<()> {
        let parent_path = join(parent);
        let mut path = parent_path.clone();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(base);
        let leaf = cstr(base).map_err(|_| unsafe_entry(name, "NUL in whiteout name"))?;
        let rp = self.root.path.clone();
        let io_err = |e: io::Error| Error::Io { path: host_path(&rp, &path), source: e };
        match self.opts.whiteouts {
            WhiteoutMode::Apply => {
                let pfd = match self.root.dir(&parent_path, false) {
                    Ok(fd) => fd,
                    // Nothing below to delete.
                    Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                        self.stats.whiteouts += 1;
                        return Ok(());
                    }
                    Err(e) => return Err(self.resolve_err(name, &parent_path, e)),
                };
                self.root.forget();
                self.remove_lower(pfd.as_fd(), &path, &leaf).map_err(io_err)?;
            }
            WhiteoutMode::Overlay { .. } => {
                if self.created.contains(&path) {
                    // Same-layer content is not hidden by its own whiteout.
                    self.stats.whiteouts += 1;
                    return Ok(());
                }
                let pfd = self.root.dir(&parent_path, true).map_err(|e| self.resolve_err(name, &parent_path, e))?;
                self.clear_slot(pfd.as_fd(), &leaf, false).map_err(io_err)?;
                match sys::mknodat(pfd.as_fd(), &leaf, libc::S_IFCHR, libc::makedev(0, 0)) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                        return Err(Error::Io {
                            path: self.root.host_path(&path),
                            source: io::Error::new(
                                e.kind(),
                                "creating an overlay whiteout (0/0 character device) was refused: needs root \
                                 or Linux 5.8+; use WhiteoutMode::Apply instead",
                            ),
                        });
                    }
                    Err(e) => return Err(io_err(e)),
                }
                if self.opts.privileged {
                    self.owned(sys::lchownat(pfd.as_fd(), &leaf, meta.uid, meta.gid)).map_err(io_err)?;
                }
                sys::lutimesat(pfd.as_fd(), &leaf, meta.mtime).map_err(io_err)?;
            }
        }
        self.stats.whiteouts += 1;
        Ok(())
    }

    /// Delete what lower layers have at `dir/leaf` (path `path`), keeping anything this layer
    /// created there or below.
    fn remove_lower(&mut self, dir: BorrowedFd, path: &[u8], leaf: &CStr) -> io::Result<()> {
        if !self.created.contains(path) && !self.ancestors.contains(path) {
            return sys::remove_all_at(dir, leaf);
        }
        let st = match sys::lstatat(dir, leaf) {
            Ok(st) => st,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            Err(e) => return Err(e),
        };
        if sys::file_type(&st) != libc::S_IFDIR {
            return Ok(());
        }
        let d = sys::openat(dir, leaf, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)?;
        self.remove_lower_children(d.as_fd(), path)
    }

    fn remove_lower_children(&mut self, d: BorrowedFd, path: &[u8]) -> io::Result<()> {
        for child in sys::list_dir(d)? {
            let mut cpath = path.to_vec();
            if !cpath.is_empty() {
                cpath.push(b'/');
            }
            cpath.extend_from_slice(child.to_bytes());
            self.remove_lower(d, &cpath, &child)?;
        }
        Ok(())
    }

    fn opaque(&mut self, dir: &[Vec<u8>], name: &str, meta: &Meta) -> Result<()> {
        let path = join(dir);
        let rp = self.root.path.clone();
        let io_err = |e: io::Error| Error::Io { path: host_path(&rp, &path), source: e };
        let dfd = self.root.dir(&path, true).map_err(|e| self.resolve_err(name, &path, e))?;
        let rd = sys::openat(dfd.as_fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0).map_err(io_err)?;
        match self.opts.whiteouts {
            WhiteoutMode::Apply => {
                self.root.forget();
                self.remove_lower_children(rd.as_fd(), &path).map_err(io_err)?;
            }
            WhiteoutMode::Overlay { xattr } => {
                let key = match xattr {
                    OverlayXattr::Trusted => c"trusted.overlay.opaque",
                    OverlayXattr::User => c"user.overlay.opaque",
                };
                sys::fsetxattr(rd.as_fd(), key, b"y").map_err(|e| Error::Io {
                    path: self.root.host_path(&path),
                    source: io::Error::new(
                        e.kind(),
                        format!(
                            "setting {} for opaque directory marker {name:?}: {e}{}",
                            key.to_string_lossy(),
                            if xattr == OverlayXattr::Trusted {
                                " (trusted.* needs CAP_SYS_ADMIN; rootless overlay uses OverlayXattr::User)"
                            } else {
                                ""
                            }
                        ),
                    ),
                })?;
            }
        }
        let _ = meta;
        self.stats.opaques += 1;
        Ok(())
    }

    /// Directory modes and mtimes, deepest first, once nothing more will be written in them.
    fn finish_dirs(&mut self) -> Result<()> {
        let dirs = std::mem::take(&mut self.dirs);
        for (path, (mode, mtime)) in dirs.into_iter().rev() {
            let rp = self.root.path.clone();
            let io_err = |e: io::Error| Error::Io { path: host_path(&rp, &path), source: e };
            if path.is_empty() {
                sys::fchmod(self.root.fd.as_fd(), mode).map_err(io_err)?;
                sys::futimes(self.root.fd.as_fd(), mtime).map_err(io_err)?;
                continue;
            }
            let (parent, leaf) = match path.iter().rposition(|&b| b == b'/') {
                Some(i) => (&path[..i], &path[i + 1..]),
                None => (&b""[..], &path[..]),
            };
            let pfd = match self.root.dir(parent, false) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(io_err(e)),
            };
            let leaf = cstr(leaf).map_err(io_err)?;
            match sys::lstatat(pfd.as_fd(), &leaf) {
                Ok(st) if sys::file_type(&st) == libc::S_IFDIR => {}
                // Replaced or removed later in the same layer.
                _ => continue,
            }
            sys::lchmodat(pfd.as_fd(), &leaf, mode).map_err(io_err)?;
            sys::lutimesat(pfd.as_fd(), &leaf, mtime).map_err(io_err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_contains_and_refuses() {
        let c = |s: &str| clean(s.as_bytes(), s).map(|v| String::from_utf8(join(&v)).unwrap());
        assert_eq!(c("/etc/x").unwrap(), "etc/x");
        assert_eq!(c("./a/./b/../c").unwrap(), "a/c");
        assert_eq!(c("./").unwrap(), "");
        assert!(matches!(c("../../etc/x"), Err(Error::UnsafeEntry { .. })));
        assert!(matches!(c("a/../../x"), Err(Error::UnsafeEntry { .. })));
    }
}
