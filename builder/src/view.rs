//! A read-only look at a chain of layers without extracting them: each layer's tar listing
//! (paths, types, owners, modes, link targets), merged with whiteouts and opaque
//! directories as a container would see them. COPY asks it whether a destination exists
//! and is a directory; WORKDIR whether to create one; `--chown` reads /etc/passwd through
//! it. Listings are cached on disk per diffID (`<root>/cache/listings/`).

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::Arc;

/// One path in a layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// `f` file, `d` dir, `l` symlink, `h` hardlink, `o` other.
    pub kind: char,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Symlink or hardlink target.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub link: String,
    /// Size (files).
    #[serde(default)]
    pub size: u64,
}

impl Meta {
    /// Is it a directory?
    pub fn is_dir(&self) -> bool {
        self.kind == 'd'
    }
}

/// What one layer holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Listing {
    /// Paths (relative, no trailing `/`).
    pub entries: BTreeMap<String, Meta>,
    /// Paths deleted from lower layers.
    pub whiteouts: BTreeSet<String>,
    /// Directories whose lower contents are hidden.
    pub opaques: BTreeSet<String>,
}

/// Clean a path inside the image: no leading `/`, no `.`, `..` resolved (never above root).
pub fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

fn parent_of(p: &str) -> Option<&str> {
    if p.is_empty() {
        return None;
    }
    Some(p.rfind('/').map(|i| &p[..i]).unwrap_or(""))
}

/// Read the listing of a layer (plain or compressed tar).
pub fn listing_of(blob: impl Read + Send + 'static) -> Result<Listing> {
    let (_, tar) = rbuild_image::layer::decompress(blob)?;
    let mut ar = tar::Archive::new(tar);
    let mut l = Listing::default();
    let bad = |e: std::io::Error| Error::Image(rbuild_image::Error::CorruptLayer(format!("listing a layer: {e}")));
    for ent in ar.entries().map_err(bad)? {
        let ent = ent.map_err(bad)?;
        let raw = String::from_utf8_lossy(&ent.path_bytes()).into_owned();
        let path = clean(&raw);
        let (dir, base) = match path.rfind('/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => ("", path.as_str()),
        };
        if base == ".wh..wh..opq" {
            l.opaques.insert(dir.to_string());
            continue;
        }
        if let Some(name) = base.strip_prefix(".wh.") {
            l.whiteouts.insert(if dir.is_empty() { name.to_string() } else { format!("{dir}/{name}") });
            continue;
        }
        if path.is_empty() {
            continue;
        }
        let h = ent.header();
        let kind = match h.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => 'f',
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Link => 'h',
            _ => 'o',
        };
        let link = ent.link_name_bytes().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        let meta = Meta {
            kind,
            mode: h.mode().unwrap_or(0o644) & 0o7777,
            uid: h.uid().unwrap_or(0) as u32,
            gid: h.gid().unwrap_or(0) as u32,
            link: if kind == 'h' { clean(&link) } else { link },
            size: h.size().unwrap_or(0),
        };
        l.entries.insert(path, meta);
    }
    Ok(l)
}

/// The merged view of layers, bottom first.
#[derive(Debug, Clone, Default)]
pub struct View {
    layers: Vec<Arc<Listing>>,
}

impl View {
    /// A view over `layers` (bottom first).
    pub fn new(layers: Vec<Arc<Listing>>) -> View {
        View { layers }
    }

    /// The entry at `path` (cleaned, symlinks not followed) and the index of the layer
    /// holding it.
    pub fn lookup_raw(&self, path: &str) -> Option<(usize, &Meta)> {
        let path = clean(path);
        if path.is_empty() {
            return None;
        }
        for (i, l) in self.layers.iter().enumerate().rev() {
            if let Some(m) = l.entries.get(&path) {
                return Some((i, m));
            }
            let mut p = Some(path.as_str());
            while let Some(cur) = p {
                if l.whiteouts.contains(cur) {
                    return None;
                }
                p = parent_of(cur);
                if let Some(parent) = p {
                    if l.opaques.contains(parent) {
                        return None;
                    }
                }
            }
        }
        None
    }

    /// Resolve `path` as the container would, following symlinks in every component (and
    /// in the last one when `follow_last`), never above the root. Returns the resolved
    /// path (relative) and its entry, if it exists.
    pub fn resolve(&self, path: &str, follow_last: bool) -> (String, Option<Meta>) {
        let root = || Some(Meta { kind: 'd', mode: 0o755, uid: 0, gid: 0, link: String::new(), size: 0 });
        let mut todo: Vec<String> = path.split('/').filter(|c| !c.is_empty()).map(String::from).collect();
        todo.reverse();
        let mut cur = String::new();
        let mut meta = root();
        let mut hops = 0;
        while let Some(comp) = todo.pop() {
            if comp == "." {
                continue;
            }
            if comp == ".." {
                cur = parent_of(&cur).unwrap_or("").to_string();
                meta = if cur.is_empty() { root() } else { self.lookup_raw(&cur).map(|(_, m)| m.clone()) };
                continue;
            }
            let next = if cur.is_empty() { comp.clone() } else { format!("{cur}/{comp}") };
            let m = self.lookup_raw(&next).map(|(_, m)| m.clone());
            if let Some(m) = &m {
                if m.kind == 'l' && (follow_last || !todo.is_empty()) && hops < 40 {
                    hops += 1;
                    if m.link.starts_with('/') {
                        cur = String::new();
                    }
                    todo.extend(m.link.split('/').filter(|c| !c.is_empty()).rev().map(String::from));
                    continue;
                }
            }
            cur = next;
            meta = m;
        }
        (cur, meta)
    }

    /// Which layer (index) holds the content of the file at `path` (symlinks followed).
    pub fn file_layer(&self, path: &str) -> Option<(usize, String)> {
        let (p, m) = self.resolve(path, true);
        let m = m?;
        if m.kind == 'h' {
            return self.lookup_raw(&m.link).map(|(i, _)| (i, m.link.clone()));
        }
        (m.kind == 'f').then(|| (self.lookup_raw(&p).map(|(i, _)| i).unwrap_or(0), p))
    }
}

/// Read the file `path` from an uncompressed or compressed layer tar (at most `limit` bytes).
pub fn read_from_layer(blob: impl Read + Send + 'static, path: &str, limit: u64) -> Result<Option<Vec<u8>>> {
    let (_, tar) = rbuild_image::layer::decompress(blob)?;
    let mut ar = tar::Archive::new(tar);
    let bad = |e: std::io::Error| Error::Image(rbuild_image::Error::CorruptLayer(format!("reading a layer: {e}")));
    for ent in ar.entries().map_err(bad)? {
        let mut ent = ent.map_err(bad)?;
        if clean(&String::from_utf8_lossy(&ent.path_bytes())) == path {
            let mut v = Vec::new();
            (&mut ent).take(limit).read_to_end(&mut v).map_err(bad)?;
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// Look up a user (`name` or uid) in passwd text: (uid, gid).
pub fn lookup_passwd(passwd: &str, user: &str) -> Option<(u32, u32)> {
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 4 && (f[0] == user || f[2] == user) {
            return Some((f[2].parse().ok()?, f[3].parse().ok()?));
        }
    }
    None
}

/// Look up a group (`name` or gid) in group text.
pub fn lookup_group(group: &str, name: &str) -> Option<u32> {
    for line in group.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 3 && (f[0] == name || f[2] == name) {
            return f[2].parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(kind: char, link: &str) -> Meta {
        Meta { kind, mode: 0o755, uid: 0, gid: 0, link: link.into(), size: 0 }
    }

    #[test]
    fn whiteouts_opaques_and_symlinks() {
        let mut a = Listing::default();
        a.entries.insert("usr".into(), meta('d', ""));
        a.entries.insert("usr/bin".into(), meta('d', ""));
        a.entries.insert("bin".into(), meta('l', "usr/bin"));
        a.entries.insert("etc".into(), meta('d', ""));
        a.entries.insert("etc/old".into(), meta('f', ""));
        a.entries.insert("opt".into(), meta('d', ""));
        a.entries.insert("opt/x".into(), meta('f', ""));
        let mut b = Listing::default();
        b.whiteouts.insert("etc/old".into());
        b.opaques.insert("opt".into());
        b.entries.insert("opt".into(), meta('d', ""));
        let v = View::new(vec![Arc::new(a), Arc::new(b)]);
        assert!(v.lookup_raw("etc/old").is_none());
        assert!(v.lookup_raw("opt/x").is_none());
        assert!(v.lookup_raw("/etc").is_some());
        let (p, m) = v.resolve("/bin/sh", true);
        assert_eq!(p, "usr/bin/sh");
        assert!(m.is_none());
        let (p, m) = v.resolve("/bin", true);
        assert_eq!(p, "usr/bin");
        assert!(m.unwrap().is_dir());
        let (p, _) = v.resolve("/bin", false);
        assert_eq!(p, "bin");
    }

    #[test]
    fn passwd_lookup() {
        let p = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n";
        assert_eq!(lookup_passwd(p, "app"), Some((1000, 1001)));
        assert_eq!(lookup_passwd(p, "1000"), Some((1000, 1001)));
        assert_eq!(lookup_passwd(p, "nobody"), None);
        assert_eq!(lookup_group("staff:x:50:\n", "staff"), Some(50));
    }
}
