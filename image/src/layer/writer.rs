//! The layer writer: a deterministic layer tar from a list of changes.
//!
//! Format: ustar headers, with a PAX extended header (`x`) in front of an entry only when
//! ustar cannot say it — a path or link name longer than 100 bytes or not ASCII, a uid, gid,
//! size or mtime out of the octal fields' range, or xattrs (`SCHILY.xattr.<name>`). uname and
//! gname are empty, mtimes are whole seconds (clamped to `SOURCE_DATE_EPOCH` when given),
//! directories end in `/`, nothing is sparse.
//!
//! Order: entries are sorted by path component by component, each component by bytes (what a
//! walk that sorts each directory gives, like containerd's and BuildKit's differs), so parents
//! come before their children. An opaque-directory marker comes right after its directory.
//!
//! Hardlinks: within one layer, the first path (in that order) of a (device, inode) pair is
//! written as a file, the later ones as hardlink entries pointing at it.
//!
//! Sources are `lstat`ed and never followed: a symlink is written as a symlink. File contents
//! are streamed from disk into the output; nothing is held whole in memory.

use super::sys;
use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::ffi::CStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// One change a layer records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A file, directory, symlink, device or fifo copied from the host.
    Add(AddEntry),
    /// A directory made up on the spot (parents of a COPY destination, a WORKDIR).
    Dir(DirEntry),
    /// A path deleted from the layers below: written as `dir/.wh.name`.
    Whiteout(String),
    /// A directory whose contents from the layers below are hidden: written as
    /// `dir/.wh..wh..opq` right after the directory's own entry (which the caller adds too).
    /// The empty string is the root.
    Opaque(String),
}

/// A host file to record at a path inside the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddEntry {
    /// Path inside the layer: relative, `/`-separated, no `.` or `..` components (a leading
    /// `/` or `./` is dropped).
    pub path: String,
    /// Host path; `lstat`ed, never followed.
    pub source: PathBuf,
    /// Ownership and permission overrides (COPY `--chown`, `--chmod`).
    pub meta: MetaOverride,
}

/// Overrides for what a host file says about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetaOverride {
    /// Owner to record instead of the file's.
    pub uid: Option<u32>,
    /// Group to record instead of the file's.
    pub gid: Option<u32>,
    /// Permission bits (`0o7777` mask) to record instead of the file's.
    pub mode: Option<u32>,
}

/// A directory entry not backed by a host directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Path inside the layer, as in [`AddEntry::path`].
    pub path: String,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time (seconds since the epoch); `None` means `SOURCE_DATE_EPOCH`, or 0.
    pub mtime: Option<i64>,
}

impl DirEntry {
    /// A `0755 root:root` directory at `path`.
    pub fn new(path: impl Into<String>) -> DirEntry {
        DirEntry { path: path.into(), mode: 0o755, uid: 0, gid: 0, mtime: None }
    }
}

/// How to write a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterOptions {
    /// Clamp every mtime to this (`mtime = min(mtime, epoch)`); also the time of synthesized
    /// entries and whiteouts.
    pub source_date_epoch: Option<i64>,
    /// Record extended attributes (`SCHILY.xattr.*`). Overlay bookkeeping
    /// (`trusted.overlay.*`, `user.overlay.*`) and `security.selinux` are never recorded.
    pub xattrs: bool,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions { source_date_epoch: None, xattrs: true }
    }
}

/// Write `changes` as a layer tar into `out` (typically a
/// [`LayerBlobWriter`](super::LayerBlobWriter)) and return it. The order of `changes` does
/// not matter; two changes at the same path are an error.
pub fn write_layer<W: Write>(changes: Vec<Change>, out: W, opts: &WriterOptions) -> Result<W> {
    let mut items: Vec<(Vec<u8>, Change)> = Vec::with_capacity(changes.len());
    for c in changes {
        let key = match &c {
            Change::Add(a) => sort_key(&clean_path(&a.path)?, None),
            Change::Dir(d) => sort_key(&clean_path(&d.path)?, None),
            Change::Whiteout(p) => {
                let p = clean_path(p)?;
                let (dir, base) = split_last(&p);
                sort_key(&join(dir, &format!(".wh.{base}")), None)
            }
            Change::Opaque(p) => sort_key(&clean_path_allow_root(p)?, Some(())),
        };
        items.push((key, c));
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    for w in items.windows(2) {
        if w[0].0 == w[1].0 {
            return Err(bad_change(change_path(&w[1].1), "more than one change at this path"));
        }
    }
    let mut tw = TarWriter::new(out, opts);
    for (_, c) in items {
        match c {
            Change::Add(a) => tw.add(&a)?,
            Change::Dir(d) => tw.synthetic_dir(&d)?,
            Change::Whiteout(p) => {
                let p = clean_path(&p)?;
                let (dir, base) = split_last(&p);
                tw.marker(&join(dir, &format!(".wh.{base}")))?;
            }
            Change::Opaque(p) => {
                let p = clean_path_allow_root(&p)?;
                tw.marker(&join(&p, ".wh..wh..opq"))?;
            }
        }
    }
    tw.finish()
}

/// Write the whole tree under `dir` (not `dir` itself) as a layer: a rootfs import, or the
/// layer of a COPY of a directory.
pub fn write_dir<W: Write>(dir: &Path, out: W, opts: &WriterOptions) -> Result<W> {
    write_layer(changes_from_dir(dir, "", &MetaOverride::default())?, out, opts)
}

/// One [`Change::Add`] for everything under `dir` (not `dir` itself), at `prefix/<relative
/// path>` in the layer, with `meta` applied to each. Symlinks are not followed. A file name
/// that is not UTF-8 is an error.
pub fn changes_from_dir(dir: &Path, prefix: &str, meta: &MetaOverride) -> Result<Vec<Change>> {
    let prefix = clean_path_allow_root(prefix)?;
    let mut out = Vec::new();
    for ent in walkdir::WalkDir::new(dir).follow_links(false).min_depth(1) {
        let ent = ent.map_err(|e| {
            let path = e.path().unwrap_or(dir).to_path_buf();
            Error::Io { path, source: e.into_io_error().unwrap_or_else(|| std::io::Error::other("walk failed")) }
        })?;
        let rel = ent.path().strip_prefix(dir).expect("walkdir yields paths under its root");
        let rel = rel.to_str().ok_or_else(|| bad_change(&rel.to_string_lossy(), "file name is not UTF-8"))?;
        out.push(Change::Add(AddEntry { path: join(&prefix, rel), source: ent.into_path(), meta: *meta }));
    }
    Ok(out)
}

/// The changes an overlayfs upper directory records, as the sandbox leaves it after a RUN:
/// a `0/0` character device is a [`Change::Whiteout`]; a directory with
/// `trusted.overlay.opaque=y` (or `user.overlay.opaque=y`) is added and made
/// [`Change::Opaque`]; everything else is a [`Change::Add`].
pub fn changes_from_overlay_upper(upper: &Path) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    for ch in changes_from_dir(upper, "", &MetaOverride::default())? {
        let Change::Add(a) = ch else { unreachable!("changes_from_dir only adds") };
        let md = std::fs::symlink_metadata(&a.source).map_err(Error::io(&a.source))?;
        let ft = md.mode() & libc::S_IFMT;
        if ft == libc::S_IFCHR && md.rdev() == 0 {
            out.push(Change::Whiteout(a.path));
            continue;
        }
        if ft == libc::S_IFDIR && is_overlay_opaque(&a.source)? {
            out.push(Change::Opaque(a.path.clone()));
        }
        out.push(Change::Add(a));
    }
    Ok(out)
}

fn is_overlay_opaque(dir: &Path) -> Result<bool> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(dir)
        .map_err(Error::io(dir))?;
    for key in [c"trusted.overlay.opaque", c"user.overlay.opaque"] {
        let v = sys::fgetxattr(std::os::fd::AsFd::as_fd(&f), key).map_err(Error::io(dir))?;
        if v.as_deref() == Some(b"y") {
            return Ok(true);
        }
    }
    Ok(false)
}

fn change_path(c: &Change) -> &str {
    match c {
        Change::Add(a) => &a.path,
        Change::Dir(d) => &d.path,
        Change::Whiteout(p) | Change::Opaque(p) => p,
    }
}

fn bad_change(path: &str, reason: &str) -> Error {
    Error::UnsafeEntry { entry: path.to_string(), reason: reason.to_string() }
}

/// Normalize a path inside the layer: drop a leading `/`, `.` and empty components; refuse
/// `..` and the root itself.
fn clean_path(p: &str) -> Result<String> {
    let c = clean_path_allow_root(p)?;
    if c.is_empty() {
        return Err(bad_change(p, "the layer root cannot be added, deleted or replaced"));
    }
    Ok(c)
}

fn clean_path_allow_root(p: &str) -> Result<String> {
    let mut parts = Vec::new();
    for comp in p.split('/') {
        match comp {
            "" | "." => {}
            ".." => return Err(bad_change(p, "`..` is not allowed in a layer path")),
            c if c.contains('\0') => return Err(bad_change(p, "NUL byte in path")),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

fn split_last(p: &str) -> (&str, &str) {
    match p.rfind('/') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => ("", p),
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() { name.to_string() } else { format!("{dir}/{name}") }
}

/// Component-wise order: `/` sorts before every other byte. The opaque marker of a directory
/// gets the directory's key plus a separator, so it sorts right after the directory and
/// before its first child.
fn sort_key(p: &str, opaque: Option<()>) -> Vec<u8> {
    let mut k: Vec<u8> = p.bytes().map(|b| if b == b'/' { 0 } else { b }).collect();
    if opaque.is_some() && !k.is_empty() {
        k.push(0);
    }
    k
}

const BLOCK: usize = 512;
const MAX_OCTAL_7: u64 = 0o7777777;
const MAX_OCTAL_11: u64 = 0o77777777777;

/// One entry's header, before encoding.
struct Hdr {
    path: Vec<u8>,
    typeflag: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: i64,
    linkname: Vec<u8>,
    devmajor: u64,
    devminor: u64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Hdr {
    fn new(path: Vec<u8>, typeflag: u8) -> Hdr {
        Hdr {
            path,
            typeflag,
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            linkname: Vec::new(),
            devmajor: 0,
            devminor: 0,
            xattrs: Vec::new(),
        }
    }
}

struct TarWriter<'o, W: Write> {
    out: W,
    opts: &'o WriterOptions,
    links: HashMap<(u64, u64), String>,
    buf: Vec<u8>,
}

impl<'o, W: Write> TarWriter<'o, W> {
    fn new(out: W, opts: &'o WriterOptions) -> Self {
        TarWriter { out, opts, links: HashMap::new(), buf: vec![0; 256 * 1024] }
    }

    fn clamp(&self, t: i64) -> i64 {
        match self.opts.source_date_epoch {
            Some(e) => t.min(e),
            None => t,
        }
    }

    fn default_time(&self) -> i64 {
        self.opts.source_date_epoch.unwrap_or(0)
    }

    fn marker(&mut self, path: &str) -> Result<()> {
        let mut h = Hdr::new(path.as_bytes().to_vec(), b'0');
        h.mtime = self.default_time();
        self.header(&h)
    }

    fn synthetic_dir(&mut self, d: &DirEntry) -> Result<()> {
        let mut path = clean_path(&d.path)?.into_bytes();
        path.push(b'/');
        let mut h = Hdr::new(path, b'5');
        h.mode = d.mode & 0o7777;
        h.uid = d.uid.into();
        h.gid = d.gid.into();
        h.mtime = d.mtime.map(|t| self.clamp(t)).unwrap_or_else(|| self.default_time());
        self.header(&h)
    }

    fn add(&mut self, a: &AddEntry) -> Result<()> {
        let path = clean_path(&a.path)?;
        let src = &a.source;
        let md = std::fs::symlink_metadata(src).map_err(Error::io(src))?;
        let ft = md.mode() & libc::S_IFMT;
        let mut h = Hdr::new(path.clone().into_bytes(), b'0');
        h.mode = a.meta.mode.unwrap_or(md.mode()) & 0o7777;
        h.uid = a.meta.uid.unwrap_or(md.uid()).into();
        h.gid = a.meta.gid.unwrap_or(md.gid()).into();
        h.mtime = self.clamp(md.mtime());
        if ft != libc::S_IFDIR && md.nlink() > 1 {
            let key = (md.dev(), md.ino());
            if let Some(first) = self.links.get(&key) {
                h.typeflag = b'1';
                h.linkname = first.clone().into_bytes();
                return self.header(&h);
            }
            self.links.insert(key, path.clone());
        }
        if self.opts.xattrs && ft != libc::S_IFLNK {
            h.xattrs = read_xattrs(src)?;
        }
        match ft {
            libc::S_IFREG => {
                // O_NOFOLLOW and the inode check: if the path was swapped since the lstat we
                // fail instead of reading whatever is there now.
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(src)
                    .map_err(Error::io(src))?;
                let fmd = f.metadata().map_err(Error::io(src))?;
                if (fmd.dev(), fmd.ino()) != (md.dev(), md.ino()) {
                    return Err(Error::Io {
                        path: src.clone(),
                        source: std::io::Error::other("file replaced while writing the layer"),
                    });
                }
                h.size = fmd.len();
                self.header(&h)?;
                self.copy_contents(f, h.size, src)?;
            }
            libc::S_IFDIR => {
                h.typeflag = b'5';
                h.path.push(b'/');
                self.header(&h)?;
            }
            libc::S_IFLNK => {
                h.typeflag = b'2';
                h.linkname = std::fs::read_link(src).map_err(Error::io(src))?.as_os_str().as_bytes().to_vec();
                self.header(&h)?;
            }
            libc::S_IFCHR | libc::S_IFBLK => {
                h.typeflag = if ft == libc::S_IFCHR { b'3' } else { b'4' };
                h.devmajor = libc::major(md.rdev()).into();
                h.devminor = libc::minor(md.rdev()).into();
                self.header(&h)?;
            }
            libc::S_IFIFO => {
                h.typeflag = b'6';
                self.header(&h)?;
            }
            _ => {
                // Sockets have no tar representation; like containerd, leave them out.
                tracing::warn!(path = %src.display(), "skipping a socket: tar cannot record it");
            }
        }
        Ok(())
    }

    fn copy_contents(&mut self, f: File, size: u64, src: &Path) -> Result<()> {
        let mut r = f.take(size);
        let mut done = 0u64;
        loop {
            let n = match r.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(src)(e)),
            };
            self.out.write_all(&self.buf[..n])?;
            done += n as u64;
        }
        if done != size {
            return Err(Error::Io {
                path: src.to_path_buf(),
                source: std::io::Error::other(format!("file shrank from {size} to {done} bytes while being written")),
            });
        }
        self.pad(size)
    }

    fn pad(&mut self, size: u64) -> Result<()> {
        let rem = (size % BLOCK as u64) as usize;
        if rem != 0 {
            self.out.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    /// Write the PAX header (when needed) and the ustar header of one entry.
    fn header(&mut self, h: &Hdr) -> Result<()> {
        let mut pax: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        if h.path.len() > 100 || !h.path.is_ascii() {
            pax.insert(b"path".to_vec(), h.path.clone());
        }
        if h.linkname.len() > 100 || !h.linkname.is_ascii() {
            pax.insert(b"linkpath".to_vec(), h.linkname.clone());
        }
        if h.uid > MAX_OCTAL_7 {
            pax.insert(b"uid".to_vec(), h.uid.to_string().into_bytes());
        }
        if h.gid > MAX_OCTAL_7 {
            pax.insert(b"gid".to_vec(), h.gid.to_string().into_bytes());
        }
        if h.size > MAX_OCTAL_11 {
            pax.insert(b"size".to_vec(), h.size.to_string().into_bytes());
        }
        if h.mtime < 0 || h.mtime as u64 > MAX_OCTAL_11 {
            pax.insert(b"mtime".to_vec(), h.mtime.to_string().into_bytes());
        }
        if h.devmajor > MAX_OCTAL_7 || h.devminor > MAX_OCTAL_7 {
            let p = String::from_utf8_lossy(&h.path).into_owned();
            return Err(bad_change(&p, "device number too large for a tar header"));
        }
        for (k, v) in &h.xattrs {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(k);
            pax.insert(key, v.clone());
        }
        let mtime_field = if (0..=MAX_OCTAL_11 as i64).contains(&h.mtime) { h.mtime as u64 } else { 0 };
        if !pax.is_empty() {
            let mut body = Vec::new();
            for (k, v) in &pax {
                pax_record(&mut body, k, v);
            }
            let mut ph = Hdr::new(pax_header_name(&h.path), b'x');
            ph.mode = 0o644;
            ph.size = body.len() as u64;
            let block = encode(&ph, mtime_field);
            self.out.write_all(&block)?;
            self.out.write_all(&body)?;
            self.pad(body.len() as u64)?;
        }
        let block = encode(h, mtime_field);
        self.out.write_all(&block)?;
        Ok(())
    }

    fn finish(mut self) -> Result<W> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// `dir/PaxHeaders.0/base`, as Go's archive/tar names them (only old readers ever see it).
fn pax_header_name(path: &[u8]) -> Vec<u8> {
    let trimmed = path.strip_suffix(b"/").unwrap_or(path);
    let (dir, base) = match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => (&trimmed[..i + 1], &trimmed[i + 1..]),
        None => (&b""[..], trimmed),
    };
    let mut n = dir.to_vec();
    n.extend_from_slice(b"PaxHeaders.0/");
    n.extend_from_slice(base);
    n
}

/// `"<len> <key>=<value>\n"`, where len counts the whole record including its own digits.
fn pax_record(out: &mut Vec<u8>, k: &[u8], v: &[u8]) {
    let base = k.len() + v.len() + 3;
    let mut len = base + 1;
    while base + len.to_string().len() != len {
        len = base + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(k);
    out.push(b'=');
    out.extend_from_slice(v);
    out.push(b'\n');
}

fn put_octal(field: &mut [u8], v: u64) {
    // Zero-padded octal, NUL-terminated; callers route values that do not fit through PAX.
    let width = field.len() - 1;
    let s = format!("{v:0width$o}");
    let s = if s.len() > width { "0".repeat(width) } else { s };
    field[..width].copy_from_slice(s.as_bytes());
    field[width] = 0;
}

fn put_str(field: &mut [u8], s: &[u8]) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s[..n]);
}

fn encode(h: &Hdr, mtime_field: u64) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    put_str(&mut b[0..100], &h.path);
    put_octal(&mut b[100..108], h.mode.into());
    put_octal(&mut b[108..116], if h.uid > MAX_OCTAL_7 { 0 } else { h.uid });
    put_octal(&mut b[116..124], if h.gid > MAX_OCTAL_7 { 0 } else { h.gid });
    put_octal(&mut b[124..136], if h.size > MAX_OCTAL_11 { 0 } else { h.size });
    put_octal(&mut b[136..148], if h.typeflag == b'x' { 0 } else { mtime_field });
    b[156] = h.typeflag;
    put_str(&mut b[157..257], &h.linkname);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    put_octal(&mut b[329..337], h.devmajor);
    put_octal(&mut b[337..345], h.devminor);
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    let s = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(s.as_bytes());
    b
}

/// The xattrs of `path` worth recording, sorted by name.
fn read_xattrs(path: &Path) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let cpath = sys::os_cstr(path.as_os_str()).map_err(Error::io(path))?;
    let names = match llistxattr(&cpath) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path)(e)),
    };
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if skip_xattr(name) {
            continue;
        }
        let cname = sys::cstr(name).map_err(Error::io(path))?;
        match lgetxattr(&cpath, &cname) {
            Ok(Some(v)) => out.push((name.to_vec(), v)),
            Ok(None) => {}
            Err(e) => return Err(Error::io(path)(e)),
        }
    }
    out.sort();
    Ok(out)
}

/// Xattrs that describe this host rather than the file: overlayfs bookkeeping (turned into
/// whiteouts and opaque markers instead) and SELinux labels.
pub(crate) fn skip_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") || name == b"security.selinux"
}

fn llistxattr(path: &CStr) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        let r = unsafe { libc::llistxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if r >= 0 {
            buf.truncate(r as usize);
            return Ok(buf);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ERANGE) {
            return Err(e);
        }
        buf.resize(buf.len() * 4, 0);
    }
}

fn lgetxattr(path: &CStr, name: &CStr) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        let r = unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if r >= 0 {
            buf.truncate(r as usize);
            return Ok(Some(buf));
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENODATA) => return Ok(None),
            Some(libc::ERANGE) => buf.resize(buf.len() * 4, 0),
            _ => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let mut v = Vec::new();
        pax_record(&mut v, b"path", b"a");
        assert_eq!(v, b"9 path=a\n");
        let mut v = Vec::new();
        pax_record(&mut v, b"path", &[b'x'; 91]);
        assert_eq!(&v[..4], b"101 ");
        assert_eq!(v.len(), 101);
    }

    #[test]
    fn order_is_component_wise_and_opaque_follows_dir() {
        let mut keys = vec![
            sort_key("a-c", None),
            sort_key("a/b", None),
            sort_key("a", None),
            sort_key("a", Some(())),
            sort_key("a/!x", None),
        ];
        keys.sort();
        let want = vec![
            sort_key("a", None),
            sort_key("a", Some(())),
            sort_key("a/!x", None),
            sort_key("a/b", None),
            sort_key("a-c", None),
        ];
        assert_eq!(keys, want);
    }

    #[test]
    fn paths_are_cleaned_and_dotdot_refused() {
        assert_eq!(clean_path("/a//b/./c").unwrap(), "a/b/c");
        assert!(clean_path("a/../b").is_err());
        assert!(clean_path("/").is_err());
    }
}
