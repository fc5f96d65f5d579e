//! COPY and ADD: which source paths a step reads (wildcards, directories' contents,
//! `--exclude`, `--parents`), the content hash of that selection (its cache input), and
//! the layer changes that put them at their destination with Docker's rules (trailing
//! slash, an existing directory as destination, created parents, `--chown`, `--chmod`).
//! The layer is written straight from the source files: nothing is staged.

use crate::context::StatCache;
use crate::glob;
use crate::view::{self, View};
use crate::{Error, Result};
use rbuild_frontend::dockerignore::Matcher;
use rbuild_image::inroot::InRoot;
use rbuild_image::layer::{AddEntry, Change, DirEntry, MetaOverride};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// Files a COPY can read: relative path (`""` is the root) -> host path, directories
/// included. Built by walks that never follow a symlink, so every key's parents are real
/// directories of the tree and its host path stays inside the tree's root.
pub type Tree = BTreeMap<String, PathBuf>;

/// One source of a COPY after wildcard expansion and symlink resolution.
#[derive(Debug, Clone)]
pub struct Selected {
    /// The key in the tree of what it names, symlinks resolved inside the tree (`""` for
    /// the root).
    pub rel: String,
    /// The path as the Dockerfile spelled it (wildcards expanded): its last component
    /// names the copy.
    pub name: String,
    /// What `--parents` keeps under the destination: `name` below the `/./` pivot.
    pub keep: String,
    /// Whether it is a directory (its contents are copied, not itself).
    pub is_dir: bool,
    /// For a directory: every path under it (keys of the tree), excludes applied.
    pub under: Vec<String>,
}

impl Selected {
    /// A whole tree as one directory source (an extracted archive).
    pub fn root_of(tree: &Tree) -> Selected {
        let under = tree.keys().filter(|k| !k.is_empty()).cloned().collect();
        Selected { rel: String::new(), name: String::new(), keep: String::new(), is_dir: true, under }
    }
}

/// Paths of `tree` strictly under `dir`.
pub fn descendants<'t>(tree: &'t Tree, dir: &str) -> impl Iterator<Item = &'t String> + 't {
    let (lo, hi) = if dir.is_empty() { (String::new(), None) } else { (format!("{dir}/"), Some(format!("{dir}0"))) };
    let lo2 = lo.clone();
    tree.range(lo..)
        .take_while(move |(k, _)| hi.as_ref().is_none_or(|h| k.as_str() < h.as_str()))
        .map(|(k, _)| k)
        .filter(move |k| !k.is_empty() && k.starts_with(&lo2))
}

/// The tree of everything under `dir` (an extracted stage or image, a download, an
/// archive), listed through directory fds that never follow a symlink.
pub fn tree_of_root(dir: &std::path::Path) -> Result<Tree> {
    let root = InRoot::open(dir).map_err(Error::io(dir))?;
    let mut t = Tree::new();
    t.insert(String::new(), dir.to_path_buf());
    root.walk("", &mut |rel, _| {
        t.insert(rel.to_string(), root.host_path(rel));
        Ok(())
    })
    .map_err(Error::io(dir))?;
    Ok(t)
}

/// The names directly inside `dir` in `tree`.
fn children<'t>(tree: &'t Tree, dir: &str) -> impl Iterator<Item = &'t str> + 't {
    let skip = if dir.is_empty() { 0 } else { dir.len() + 1 };
    descendants(tree, dir).map(move |k| &k[skip..]).filter(|n| !n.contains('/'))
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

/// How many symlinks one source path may go through (Linux's own limit).
const MAX_LINKS: usize = 40;

/// Resolve `path` in `tree` as a process chrooted into the tree would: every symlink on
/// the way (and the last one when `follow_last`) is read and its target looked up in the
/// tree again, absolute targets from the tree's root, `..` never above it. The key of
/// what it names, `None` when that is not in the tree. Only keys of the tree come out, so
/// nothing outside the tree's root can be named, whatever the links say.
pub fn resolve_in_tree(tree: &Tree, path: &str, follow_last: bool) -> Result<Option<String>> {
    let mut todo: Vec<String> = path.split('/').filter(|c| !c.is_empty() && *c != ".").map(String::from).collect();
    todo.reverse();
    let mut cur = String::new();
    let mut links = 0;
    while let Some(comp) = todo.pop() {
        if comp == ".." {
            cur = cur.rfind('/').map(|i| cur[..i].to_string()).unwrap_or_default();
            continue;
        }
        let next = join(&cur, &comp);
        let Some(host) = tree.get(&next) else { return Ok(None) };
        let md = std::fs::symlink_metadata(host).map_err(Error::io(host))?;
        if md.file_type().is_symlink() && (follow_last || !todo.is_empty()) {
            links += 1;
            if links > MAX_LINKS {
                return Err(Error::Invalid(format!("{path:?}: too many levels of symbolic links")));
            }
            let target = std::fs::read_link(host).map_err(Error::io(host))?;
            let target = target.to_string_lossy();
            if target.starts_with('/') {
                cur.clear();
            }
            todo.extend(target.split('/').filter(|c| !c.is_empty() && *c != ".").rev().map(String::from));
            continue;
        }
        if !md.is_dir() && !todo.is_empty() {
            return Ok(None);
        }
        cur = next;
    }
    Ok(Some(cur))
}

/// Why a source is missing, for the error message.
pub type MissingHint<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Expand the sources of a COPY against `tree`, as BuildKit does: each source and each
/// wildcard match is followed if it is a symlink (inside the tree: a link can never name
/// a host file), a wildcard that matches nothing adds nothing, a missing plain path is an
/// error. `--exclude` patterns match paths relative to each source: below a directory
/// source, its contents; for a wildcard match, the match below the wildcard's fixed base.
pub fn select(
    tree: &Tree,
    sources: &[String],
    exclude: &[String],
    what: &str,
    hint: MissingHint,
) -> Result<Vec<Selected>> {
    select_noting(tree, sources, exclude, what, hint, &|_| {})
}

/// [`select`], telling `note` about each wildcard that matched nothing (and why, when the
/// hint knows: a match kept out by `.dockerignore`), as BuildKit's CopyIgnoredFile check
/// warns.
pub fn select_noting(
    tree: &Tree,
    sources: &[String],
    exclude: &[String],
    what: &str,
    hint: MissingHint,
    note: &dyn Fn(&str),
) -> Result<Vec<Selected>> {
    let excl = if exclude.is_empty() {
        None
    } else {
        Some(Matcher::parse(&exclude.join("\n")).map_err(|e| Error::Invalid(format!("--exclude: {e}")))?)
    };
    let excluded = |rel: &str| excl.as_ref().is_some_and(|m| !rel.is_empty() && m.matches(rel));
    let mut out = Vec::new();
    for src in sources {
        // `--parents` keeps what follows a `/./` pivot (BuildKit cuts at the first one).
        let pivot = src.split_once("/./").map(|(p, _)| view::clean(p)).unwrap_or_default();
        let pat = view::clean(src);
        let comps: Vec<&str> = if pat.is_empty() { Vec::new() } else { pat.split('/').collect() };
        let fixed = comps.iter().take_while(|c| !glob::has_meta(c)).count();
        let wild = fixed < comps.len();
        // (spelled path, key in the tree), one component at a time.
        let mut cands: Vec<(String, String)> = vec![(String::new(), String::new())];
        // Where the expansion ran dry: in the fixed part, the wildcard's own directory is
        // missing, which BuildKit reports as not found too.
        let mut dry_at = None;
        for (i, comp) in comps.iter().enumerate() {
            let mut next = Vec::new();
            for (spelled, key) in &cands {
                let names: Vec<String> = if glob::has_meta(comp) {
                    children(tree, key).filter(|n| glob::matches(comp, n)).map(String::from).collect()
                } else {
                    vec![comp.to_string()]
                };
                for n in names {
                    let sp = join(spelled, &n);
                    if i >= fixed && wild && excluded(&comps_rel(&sp, fixed)) {
                        continue;
                    }
                    if let Some(k) = resolve_in_tree(tree, &join(key, &n), true)? {
                        next.push((sp, k));
                    }
                }
            }
            cands = next;
            if cands.is_empty() {
                dry_at = Some(i);
                break;
            }
        }
        if cands.is_empty() {
            if wild && dry_at.is_some_and(|i| i >= fixed) {
                let why = hint(&pat).map(|h| format!(" ({h})")).unwrap_or_default();
                note(&format!("{src:?} matches nothing in {what}{why}"));
                continue;
            }
            let link = tree.get(&pat).and_then(|h| std::fs::read_link(h).ok());
            let why = match link {
                Some(t) => format!(" (a symlink to {}, which {what} does not hold)", t.display()),
                None => hint(&pat).map(|h| format!(" ({h})")).unwrap_or_default(),
            };
            return Err(Error::Invalid(format!("{src:?} not found in {what}{why}")));
        }
        for (name, rel) in cands {
            let host = &tree[&rel];
            let md = std::fs::symlink_metadata(host).map_err(Error::io(host))?;
            let keep = if pivot.is_empty() {
                name.clone()
            } else {
                name.strip_prefix(&pivot).map(|k| k.trim_start_matches('/').to_string()).unwrap_or(name.clone())
            };
            if md.is_dir() {
                let skip = if rel.is_empty() { 0 } else { rel.len() + 1 };
                let under: Vec<String> = descendants(tree, &rel).filter(|d| !excluded(&d[skip..])).cloned().collect();
                out.push(Selected { rel, name, keep, is_dir: true, under });
            } else {
                out.push(Selected { rel, name, keep, is_dir: false, under: Vec::new() });
            }
        }
    }
    Ok(out)
}

/// `spelled` without its first `fixed` components.
fn comps_rel(spelled: &str, fixed: usize) -> String {
    spelled.split('/').skip(fixed).collect::<Vec<_>>().join("/")
}

/// The content hash of a selection: every path with its type, mode, owner, size, link
/// target and content digest (never mtimes), in order. Stops with [`Error::Cancelled`]
/// between files once `cancel` is set.
pub fn hash_selection(
    tree: &Tree,
    sel: &[Selected],
    stat: &StatCache,
    keep_owner: bool,
    cancel: &AtomicBool,
) -> Result<String> {
    let mut h = blake3::Hasher::new();
    let one = |h: &mut blake3::Hasher, rel: &str| -> Result<()> {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let host = &tree[rel];
        let md = std::fs::symlink_metadata(host).map_err(Error::io(host))?;
        h.update(rel.as_bytes());
        h.update(&[0]);
        h.update(&md.mode().to_le_bytes());
        if keep_owner {
            h.update(&md.uid().to_le_bytes());
            h.update(&md.gid().to_le_bytes());
        }
        if md.file_type().is_symlink() {
            let t = std::fs::read_link(host).map_err(Error::io(host))?;
            h.update(t.as_os_str().as_encoded_bytes());
        } else if md.is_file() {
            h.update(&md.size().to_le_bytes());
            h.update(&stat.digest(host, &md)?);
        }
        h.update(&[1]);
        Ok(())
    };
    for s in sel {
        h.update(b"src:");
        // The spelled name decides where the copy lands; the key what it holds.
        h.update(s.name.as_bytes());
        h.update(&[0]);
        h.update(s.keep.as_bytes());
        h.update(&[0]);
        one(&mut h, &s.rel)?;
        for d in &s.under {
            one(&mut h, d)?;
        }
    }
    Ok(h.finalize().to_hex().to_string())
}

/// How the COPY writes what it selected.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// Absolute destination; ends with `/` when it must be a directory.
    pub dest: String,
    /// Several sources or a trailing slash.
    pub dest_is_dir: bool,
    /// `--parents`: keep the source paths under the destination.
    pub parents: bool,
    /// Owner for everything copied and for created directories (`--chown`); `None` keeps
    /// the source's owner (`COPY --from`) or root (the context).
    pub owner: Option<(u32, u32)>,
    /// Owner of context files without `--chown` (root).
    pub default_owner: Option<(u32, u32)>,
    /// `--chmod` for files and directories copied.
    pub mode: Option<Chmod>,
    /// Mode for regular files only (ADD of a URL: 0600).
    pub file_mode: Option<u32>,
}

/// The layer changes that put `sel` where `p` says, looking at the parent image through
/// `view` (None: assume the destination's parents do not exist, as `--link` does).
pub fn plan(tree: &Tree, sel: &[Selected], p: &Placement, view: Option<&View>) -> Result<Vec<Change>> {
    let dest_clean = view::clean(&p.dest);
    // Where the destination really is, symlinks in the parent image followed.
    let (dest_real, dest_meta) = match view {
        Some(v) => v.resolve(&dest_clean, true),
        None => (dest_clean.clone(), None),
    };
    let dest_is_dir = p.dest_is_dir || dest_clean.is_empty() || dest_meta.as_ref().is_some_and(|m| m.is_dir());
    let owner = p.owner.or(p.default_owner);
    // A symbolic --chmod works from each source's own mode, as chmod(1) does.
    let meta_for = |host: &std::path::Path, is_dir: bool| -> Result<MetaOverride> {
        let mode = match (&p.mode, p.file_mode) {
            (_, Some(m)) if !is_dir => Some(m),
            (None, _) => None,
            (Some(Chmod::Octal(m)), _) => Some(*m),
            (Some(c), _) => {
                let md = std::fs::symlink_metadata(host).map_err(Error::io(host))?;
                Some(c.apply(md.mode() & 0o7777, is_dir))
            }
        };
        Ok(MetaOverride { uid: owner.map(|o| o.0), gid: owner.map(|o| o.1), mode })
    };
    let mut changes: BTreeMap<String, Change> = BTreeMap::new();
    let mut dirs_needed: Vec<String> = Vec::new();
    let strip = |d: &str, base: &str| -> String {
        if base.is_empty() { d.to_string() } else { d[base.len() + 1..].to_string() }
    };
    for s in sel {
        let base_name = s.name.rsplit('/').next().unwrap_or("").to_string();
        if s.is_dir {
            let target = if p.parents { join(&dest_real, &s.keep) } else { dest_real.clone() };
            if !target.is_empty() {
                dirs_needed.push(target.clone());
            }
            for d in &s.under {
                let rel = strip(d, &s.rel);
                let path = join(&target, &rel);
                let host = tree[d].clone();
                let is_dir = std::fs::symlink_metadata(&host).map(|m| m.is_dir()).unwrap_or(false);
                let meta = meta_for(&host, is_dir)?;
                changes.insert(path.clone(), Change::Add(AddEntry { path, source: host, meta }));
            }
        } else {
            let path = if p.parents {
                join(&dest_real, &s.keep)
            } else if dest_is_dir {
                join(&dest_real, &base_name)
            } else {
                dest_real.clone()
            };
            if path.is_empty() {
                return Err(Error::Invalid("cannot copy a file over the root directory".into()));
            }
            if let Some(parent) = path.rfind('/').map(|i| path[..i].to_string()) {
                dirs_needed.push(parent);
            }
            let host = tree[&s.rel].clone();
            let meta = meta_for(&host, false)?;
            changes.insert(path.clone(), Change::Add(AddEntry { path, source: host, meta }));
        }
    }
    // Create the destination directories and their parents that the image lacks, owned
    // by the --chown user, as Docker does.
    let (uid, gid) = p.owner.unwrap_or((0, 0));
    for d in dirs_needed {
        let mut cur = String::new();
        for comp in d.split('/') {
            cur = join(&cur, comp);
            if changes.contains_key(&cur) {
                continue;
            }
            let exists = match view {
                Some(v) => v.resolve(&cur, true).1.is_some_and(|m| m.is_dir()),
                None => false,
            };
            if !exists {
                changes.insert(
                    cur.clone(),
                    Change::Dir(DirEntry { path: cur.clone(), mode: 0o755, uid, gid, mtime: None }),
                );
            }
        }
    }
    Ok(changes.into_values().collect())
}

/// A `--chmod` value: octal (`755`), or symbolic as chmod(1) and BuildKit (Dockerfile 1.14)
/// take it (`u=rwx,g=rx,o=`, `+x`, `a+r,u+w`, `go-w`, `a+X`), applied to each file's own mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    /// The same mode for everything.
    Octal(u32),
    /// Clauses applied in order to each source's mode.
    Symbolic(Vec<ChmodClause>),
}

/// One `[ugoa]*([-+=]perms)+` clause of a symbolic mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChmodClause {
    /// The bits `u`, `g`, `o` select (all when none is given; no umask in a build).
    who: u32,
    /// Operator and what it applies.
    ops: Vec<(char, ChmodPerm)>,
}

/// The right-hand side of a clause operator.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ChmodPerm {
    /// `r`, `w`, `x`, `s`, `t` as bits; `X` separately (execute only for directories and
    /// files some execute bit is already set on).
    Bits { bits: u32, big_x: bool },
    /// `u`, `g` or `o`: copy that class's current permissions.
    Copy(char),
}

impl Chmod {
    /// The mode a source with `mode` gets.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let clauses = match self {
            Chmod::Octal(m) => return *m,
            Chmod::Symbolic(c) => c,
        };
        let mut cur = mode & 0o7777;
        for c in clauses {
            for (op, perm) in &c.ops {
                let val = match perm {
                    ChmodPerm::Bits { bits, big_x } => {
                        let x = if *big_x && (is_dir || cur & 0o111 != 0) { 0o111 } else { 0 };
                        bits | x
                    }
                    ChmodPerm::Copy(class) => {
                        let b = match class {
                            'u' => (cur >> 6) & 7,
                            'g' => (cur >> 3) & 7,
                            _ => cur & 7,
                        };
                        b * 0o111
                    }
                };
                let val = val & c.who;
                cur = match op {
                    '+' => cur | val,
                    '-' => cur & !val,
                    _ => (cur & !c.who) | val,
                };
            }
        }
        cur
    }
}

/// Parse `--chmod`: octal up to 7777, or a symbolic mode. The error names the mode and
/// what is wrong in it (the step adds the Dockerfile line).
pub fn parse_chmod(s: &str) -> Result<Chmod> {
    let bad = |why: String| {
        Error::Invalid(format!("--chmod={s}: {why} (use an octal mode like 755 or a symbolic one like u=rwx,g=rx,o=)"))
    };
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return u32::from_str_radix(s, 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .map(Chmod::Octal)
            .ok_or_else(|| bad("an octal mode is between 0 and 7777".into()));
    }
    if s.is_empty() {
        return Err(bad("the mode is empty".into()));
    }
    let mut clauses = Vec::new();
    for part in s.split(',') {
        let mut chars = part.chars().peekable();
        let mut who = 0u32;
        while let Some(&c) = chars.peek() {
            who |= match c {
                'u' => 0o4700,
                'g' => 0o2070,
                'o' => 0o1007,
                'a' => 0o7777,
                _ => break,
            };
            chars.next();
        }
        if who == 0 {
            who = 0o7777;
        }
        let mut ops = Vec::new();
        while let Some(op) = chars.next() {
            if !matches!(op, '+' | '-' | '=') {
                return Err(bad(format!("{op:?} in {part:?} is not an operator (+, - or =)")));
            }
            let mut bits = 0u32;
            let mut big_x = false;
            let mut copy = None;
            let mut any_bits = false;
            while let Some(&c) = chars.peek() {
                match c {
                    'r' => bits |= 0o444,
                    'w' => bits |= 0o222,
                    'x' => bits |= 0o111,
                    'X' => big_x = true,
                    's' => bits |= 0o6000,
                    't' => bits |= 0o1000,
                    'u' | 'g' | 'o' if copy.is_none() && !any_bits => {
                        copy = Some(c);
                        chars.next();
                        break;
                    }
                    '+' | '-' | '=' => break,
                    c => return Err(bad(format!("{c:?} in {part:?} is not a permission (r, w, x, X, s, t, u, g, o)"))),
                }
                any_bits = true;
                chars.next();
            }
            ops.push((op, copy.map(ChmodPerm::Copy).unwrap_or(ChmodPerm::Bits { bits, big_x })));
        }
        if ops.is_empty() {
            return Err(bad(format!("{part:?} has no operator (+, - or =)")));
        }
        clauses.push(ChmodClause { who, ops });
    }
    Ok(Chmod::Symbolic(clauses))
}

/// Is the file at `path` an archive ADD extracts (tar, possibly gzip/zstd compressed)?
pub fn is_archive(path: &std::path::Path) -> bool {
    use std::io::Read;
    let Ok(f) = std::fs::File::open(path) else { return false };
    let mut head = vec![0u8; 512];
    let mut r = f.take(512);
    let n = r.read(&mut head).unwrap_or(0);
    head.truncate(n);
    match rbuild_image::Compression::sniff(&head) {
        rbuild_image::Compression::Gzip | rbuild_image::Compression::Zstd => {
            // Compressed: look at the tar header inside.
            let Ok(f) = std::fs::File::open(path) else { return false };
            let Ok((_, mut inner)) = rbuild_image::layer::decompress(f) else { return false };
            let mut h = vec![0u8; 512];
            let mut got = 0;
            while got < 512 {
                match inner.read(&mut h[got..]) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => got += k,
                }
            }
            got == 512 && &h[257..262] == b"ustar"
        }
        _ => n == 512 && &head[257..262] == b"ustar",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree_of(dir: &std::path::Path) -> Tree {
        let mut t = Tree::new();
        t.insert(String::new(), dir.to_path_buf());
        for e in walkdir::WalkDir::new(dir).min_depth(1) {
            let e = e.unwrap();
            t.insert(e.path().strip_prefix(dir).unwrap().to_str().unwrap().to_string(), e.path().to_path_buf());
        }
        t
    }

    fn paths(ch: &[Change]) -> Vec<String> {
        ch.iter()
            .map(|c| match c {
                Change::Add(a) => a.path.clone(),
                Change::Dir(d) => format!("{}/", d.path),
                _ => String::new(),
            })
            .collect()
    }

    #[test]
    fn docker_copy_rules() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("src/sub")).unwrap();
        std::fs::write(d.path().join("src/a.txt"), "a").unwrap();
        std::fs::write(d.path().join("src/sub/b.txt"), "b").unwrap();
        std::fs::write(d.path().join("top.txt"), "t").unwrap();
        let t = tree_of(d.path());
        let none = |_: &str| None;
        // A directory's contents, not the directory.
        let sel = select(&t, &["src".into()], &[], "ctx", &none).unwrap();
        let ch =
            plan(&t, &sel, &Placement { dest: "/app/".into(), dest_is_dir: true, ..Default::default() }, None).unwrap();
        assert_eq!(paths(&ch), ["app/", "app/a.txt", "app/sub", "app/sub/b.txt"]);
        // A file to a path without slash: that path.
        let sel = select(&t, &["top.txt".into()], &[], "ctx", &none).unwrap();
        let ch = plan(&t, &sel, &Placement { dest: "/x/y".into(), ..Default::default() }, None).unwrap();
        assert_eq!(paths(&ch), ["x/", "x/y"]);
        // Wildcards match one level.
        let sel = select(&t, &["src/*.txt".into()], &[], "ctx", &none).unwrap();
        assert_eq!(sel.len(), 1);
        // --exclude.
        let sel = select(&t, &["src".into()], &["**/b.txt".into()], "ctx", &none).unwrap();
        assert_eq!(sel[0].under, ["src/a.txt", "src/sub"]);
        // --parents.
        let sel = select(&t, &["src/sub/b.txt".into()], &[], "ctx", &none).unwrap();
        let ch = plan(
            &t,
            &sel,
            &Placement { dest: "/p/".into(), dest_is_dir: true, parents: true, ..Default::default() },
            None,
        )
        .unwrap();
        assert_eq!(paths(&ch), ["p/", "p/src/", "p/src/sub/", "p/src/sub/b.txt"]);
        // Missing source names the path.
        let e = select(&t, &["nope".into()], &[], "the build context", &|_| Some("excluded by .dockerignore".into()))
            .unwrap_err();
        assert!(e.to_string().contains("\"nope\" not found in the build context (excluded by .dockerignore)"), "{e}");
    }

    #[test]
    fn sources_resolve_inside_the_tree_like_buildkit() {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("app/storage/views")).unwrap();
        std::fs::create_dir_all(r.join("x/y")).unwrap();
        std::fs::write(r.join("app/index.php"), "i").unwrap();
        std::fs::write(r.join("app/storage/views/v.php"), "v").unwrap();
        std::fs::write(r.join("x/y/a.txt"), "a").unwrap();
        symlink("x/y/a.txt", r.join("link")).unwrap();
        symlink("/", r.join("root")).unwrap();
        symlink("/etc/passwd", r.join("host")).unwrap();
        let t = tree_of(r);
        let none = |_: &str| None;
        // A link named as a source: followed inside the tree, named as spelled.
        let s = select(&t, &["link".into()], &[], "ctx", &none).unwrap();
        assert_eq!((s[0].rel.as_str(), s[0].name.as_str(), s[0].is_dir), ("x/y/a.txt", "link", false));
        let s = select(&t, &["root/root/x".into()], &[], "ctx", &none).unwrap();
        assert_eq!(s[0].rel, "x");
        // A link to a host path names nothing in the tree.
        let e = select(&t, &["host".into()], &[], "the build context", &none).unwrap_err();
        assert!(
            e.to_string().contains("\"host\" not found in the build context (a symlink to /etc/passwd, which the build context does not hold)"),
            "{e}"
        );
        // An empty wildcard adds nothing; a missing plain path is an error.
        let s = select(&t, &["link".into(), "missing*".into()], &[], "ctx", &none).unwrap();
        assert_eq!(s.len(), 1);
        assert!(select(&t, &["missing".into()], &[], "ctx", &none).is_err());
        // ...but a wildcard whose own directory is missing is not found, as in BuildKit.
        assert!(select(&t, &["nodir/*.txt".into()], &[], "ctx", &none).is_err());
        let noted = std::cell::RefCell::new(Vec::new());
        select_noting(&t, &["x/*.md".into()], &[], "ctx", &none, &|w| noted.borrow_mut().push(w.to_string())).unwrap();
        assert_eq!(*noted.borrow(), ["\"x/*.md\" matches nothing in ctx"]);
        // --exclude is relative to the source.
        let s = select(&t, &["app/".into()], &["storage/views".into()], "ctx", &none).unwrap();
        assert_eq!(s[0].under, ["app/index.php", "app/storage"]);
        // The --parents pivot.
        let s = select(&t, &["./x/./y/a.txt".into()], &[], "ctx", &none).unwrap();
        assert_eq!(s[0].keep, "y/a.txt");
        let s = select(&t, &["x/*/a.txt".into()], &[], "ctx", &none).unwrap();
        assert_eq!((s[0].keep.as_str(), s[0].rel.as_str()), ("x/y/a.txt", "x/y/a.txt"));
    }

    #[test]
    fn chmod_octal_and_symbolic_like_chmod1() {
        let m = |s: &str, mode: u32, dir: bool| parse_chmod(s).unwrap().apply(mode, dir);
        assert_eq!(m("755", 0o600, false), 0o755);
        assert_eq!(m("0640", 0o777, true), 0o640);
        assert_eq!(m("u=rwx,g=rx,o=", 0o666, false), 0o750);
        assert_eq!(m("+x", 0o644, false), 0o755);
        assert_eq!(m("a+r,u+w", 0o000, false), 0o644);
        assert_eq!(m("go-w", 0o777, false), 0o755);
        assert_eq!(m("=r", 0o777, false), 0o444);
        assert_eq!(m("u+s,g+s", 0o755, false), 0o6755);
        assert_eq!(m("+t", 0o777, true), 0o1777);
        // X: execute for directories and for files already executable by someone.
        assert_eq!(m("a+X", 0o644, false), 0o644);
        assert_eq!(m("a+X", 0o744, false), 0o755);
        assert_eq!(m("a+X", 0o600, true), 0o711);
        assert_eq!(m("a=rX,u+w", 0o600, true), 0o755);
        assert_eq!(m("a=rX,u+w", 0o600, false), 0o644);
        // Copying a class; several operators in one clause.
        assert_eq!(m("go=u", 0o750, false), 0o777);
        assert_eq!(m("g=u-w", 0o640, false), 0o640);
        assert_eq!(m("u=rw,go=r", 0o777, false), 0o644);
        for bad in ["", "u", "u=rwz", "8", "10000", "u=rwx,,o=", "a+x;", "=uw"] {
            let e = parse_chmod(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("--chmod={bad}: ")), "{bad}: {e}");
        }
        assert!(parse_chmod("u=rwz").unwrap_err().to_string().contains("'z'"));
    }

    #[test]
    fn symbolic_chmod_applies_per_file() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("src/sub")).unwrap();
        std::fs::write(d.path().join("src/run.sh"), "x").unwrap();
        std::fs::write(d.path().join("src/data"), "d").unwrap();
        std::fs::set_permissions(d.path().join("src/run.sh"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(d.path().join("src/data"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(d.path().join("src/sub"), std::fs::Permissions::from_mode(0o700)).unwrap();
        let t = tree_of(d.path());
        let sel = select(&t, &["src".into()], &[], "ctx", &|_| None).unwrap();
        let p = Placement {
            dest: "/app/".into(),
            dest_is_dir: true,
            mode: Some(parse_chmod("a+rX").unwrap()),
            ..Default::default()
        };
        let modes: Vec<(String, Option<u32>)> = plan(&t, &sel, &p, None)
            .unwrap()
            .into_iter()
            .filter_map(|c| match c {
                Change::Add(a) => Some((a.path, a.meta.mode)),
                _ => None,
            })
            .collect();
        assert_eq!(
            modes,
            [
                ("app/data".to_string(), Some(0o644)),
                ("app/run.sh".to_string(), Some(0o755)),
                ("app/sub".to_string(), Some(0o755))
            ]
        );
    }
}
