//! Helpers shared by the layer tests: tree snapshots to compare, and layer bytes helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What a test compares about one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Option<i64>,
    pub content: Option<Vec<u8>>,
    pub link: Option<String>,
    pub rdev: u64,
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// Other paths sharing this inode (hardlinks), sorted, relative.
    pub links: Vec<String>,
}

pub struct SnapOpts {
    pub owners: bool,
    pub dir_mtimes: bool,
}

/// Everything under `root` (not `root` itself), keyed by relative path.
pub fn snapshot(root: &Path, o: &SnapOpts) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).follow_links(false).min_depth(1).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let md = std::fs::symlink_metadata(e.path()).unwrap();
        let ft = md.mode() & libc::S_IFMT;
        let kind = match ft {
            libc::S_IFREG => 'f',
            libc::S_IFDIR => 'd',
            libc::S_IFLNK => 'l',
            libc::S_IFCHR => 'c',
            libc::S_IFBLK => 'b',
            libc::S_IFIFO => 'p',
            _ => '?',
        };
        if kind != 'd' && md.nlink() > 1 {
            inodes.entry(md.ino()).or_default().push(rel.clone());
        }
        let node = Node {
            kind,
            mode: if kind == 'l' { 0 } else { md.mode() & 0o7777 },
            uid: if o.owners { md.uid() } else { 0 },
            gid: if o.owners { md.gid() } else { 0 },
            mtime: if kind == 'd' && !o.dir_mtimes { None } else { Some(md.mtime()) },
            content: (kind == 'f').then(|| std::fs::read(e.path()).unwrap()),
            link: (kind == 'l').then(|| std::fs::read_link(e.path()).unwrap().to_string_lossy().into_owned()),
            rdev: if kind == 'c' || kind == 'b' { md.rdev() } else { 0 },
            xattrs: if kind == 'l' { Vec::new() } else { user_xattrs(e.path()) },
            links: Vec::new(),
        };
        out.insert(rel, node);
    }
    for paths in inodes.values() {
        for p in paths {
            let mut others: Vec<String> = paths.iter().filter(|q| *q != p).cloned().collect();
            others.sort();
            out.get_mut(p).unwrap().links = others;
        }
    }
    out
}

/// `user.*` xattrs of a path (what an unprivileged test can set), sorted.
pub fn user_xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return Vec::new();
    }
    buf.truncate(n as usize);
    let mut out = Vec::new();
    for name in buf.split(|&b| b == 0).filter(|n| n.starts_with(b"user.")) {
        let cn = CString::new(name).unwrap();
        let mut v = vec![0u8; 4096];
        let m = unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        if m >= 0 {
            v.truncate(m as usize);
            out.push((String::from_utf8_lossy(name).into_owned(), v));
        }
    }
    out.sort();
    out
}

/// Read one xattr (any namespace); None when absent.
pub fn get_xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let cn = CString::new(name).unwrap();
    let mut v = vec![0u8; 4096];
    let m = unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
    (m >= 0).then(|| {
        v.truncate(m as usize);
        v
    })
}

/// Set an xattr; false when the filesystem refuses (unsupported).
pub fn set_xattr(p: &Path, name: &str, value: &[u8]) -> bool {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let cn = CString::new(name).unwrap();
    unsafe { libc::lsetxattr(c.as_ptr(), cn.as_ptr(), value.as_ptr().cast(), value.len(), 0) == 0 }
}

/// Set a path's mtime without following symlinks.
pub fn set_mtime(p: &Path, t: i64) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let ts = [libc::timespec { tv_sec: t, tv_nsec: 0 }, libc::timespec { tv_sec: t, tv_nsec: 0 }];
    let r = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    assert_eq!(r, 0, "utimensat {}", p.display());
}

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Print the differences between two snapshots, and fail if there are any.
pub fn assert_same(a: &BTreeMap<String, Node>, b: &BTreeMap<String, Node>, what: &str) {
    let mut diffs = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => diffs.push(format!("only in first: {k}")),
            Some(w) if w != v => diffs.push(format!("{k}: {v:?}\n   != {w:?}")),
            _ => {}
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            diffs.push(format!("only in second: {k}"));
        }
    }
    assert!(diffs.is_empty(), "{what}: trees differ:\n{}", diffs.join("\n"));
}
