//! Volumes: directories in the store that outlive the containers using them, like
//! docker's `local` driver. Named ones come from `volume create` or `-v NAME:/path`;
//! anonymous ones (a random 64-hex name, labelled [`ANONYMOUS_LABEL`]) from `-v /path`,
//! `--mount type=volume,dst=/path` and the image's `VOLUME` paths.
//!
//! On disk (`<root>` = the store root):
//! ```text
//! <root>/volumes/<name>/_data         the files (the volume's Mountpoint)
//! <root>/volumes/<name>/volume.json   name, driver, labels, options, created (written first)
//! <root>/volumes/.lock                flock'd while creating, migrating or removing
//! <root>/volumes/.new-*, .gone-*      a volume being made or being removed (never listed)
//! ```
//! A volume appears whole: it is made under `.new-*` and renamed into place; removal
//! renames it away first. Volumes of the old layout (files straight in `<name>/`) are
//! moved into `_data` the first time they are looked up.
//!
//! A container uses a volume when its `<root>/containers/<id>/config.json` names it (the
//! `volumes` list, or a `mounts` entry of type `volume`); such a volume is not removed.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The label docker puts on anonymous volumes (`volume prune` without `-a` removes only
/// those).
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// What `volume.json` says about a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeInfo {
    /// `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, or 64 hex for an anonymous volume.
    pub name: String,
    /// Always `local`.
    pub driver: String,
    /// `--label`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `--opt` (the local driver's `type`, `device`, `o`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// RFC 3339, seconds, UTC.
    pub created_at: String,
}

impl VolumeInfo {
    /// Made for a container rather than by name?
    pub fn anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
    }
}

/// How a volume with options is mounted instead of binding its `_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    /// Its `_data` directory.
    Data(PathBuf),
    /// `--opt type=tmpfs [--opt o=size=64m]`: a fresh tmpfs at every mount.
    Tmpfs {
        /// `o=size=`.
        size: Option<u64>,
    },
    /// `--opt type=none --opt o=bind --opt device=/host/dir`: a host directory.
    Bind(PathBuf),
}

/// `volume create`'s flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateOptions {
    /// `-d` (only `local`; empty = local).
    pub driver: String,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// `--opt`.
    pub options: BTreeMap<String, String>,
}

/// Check a volume name as docker does.
pub fn check_name(name: &str) -> Result<()> {
    let ok = name.len() >= 2
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        return Ok(());
    }
    Err(Error::Volume {
        name: name.to_string(),
        reason: "invalid volume name: it must match [a-zA-Z0-9][a-zA-Z0-9_.-]+ (two characters at least)".into(),
    })
}

/// A size as the local driver's `o=size=` takes it: bytes, or with k, m, g (powers of 1024).
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&s[..i], 1 << 20),
        (i, 'g' | 'G') => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// How a volume with `options` is mounted; the options are checked here.
pub fn backing(name: &str, data: PathBuf, options: &BTreeMap<String, String>) -> Result<Backing> {
    let bad = |reason: String| Error::Volume { name: name.to_string(), reason };
    for k in options.keys() {
        if !matches!(k.as_str(), "type" | "device" | "o") {
            return Err(bad(format!("unknown option {k:?} for the local driver (type, device, o)")));
        }
    }
    let o: Vec<&str> = options.get("o").map(|o| o.split(',').filter(|x| !x.is_empty()).collect()).unwrap_or_default();
    match options.get("type").map(String::as_str) {
        None if options.is_empty() => Ok(Backing::Data(data)),
        None => Err(bad("options device and o need a type (tmpfs, or none with o=bind)".into())),
        Some("tmpfs") => {
            let mut size = None;
            for opt in o {
                match opt.split_once('=') {
                    Some(("size", v)) => {
                        size = Some(parse_size(v).ok_or_else(|| bad(format!("o=size={v}: not a size")))?);
                    }
                    None if matches!(opt, "nodev" | "nosuid" | "noexec") => {}
                    _ => return Err(bad(format!("o={opt}: unsupported for type=tmpfs (size=N[kmg])"))),
                }
            }
            Ok(Backing::Tmpfs { size })
        }
        Some("none") if o.contains(&"bind") => {
            let dev = options
                .get("device")
                .filter(|d| d.starts_with('/'))
                .ok_or_else(|| bad("type=none,o=bind needs device=/absolute/host/path".into()))?;
            Ok(Backing::Bind(PathBuf::from(dev)))
        }
        Some(t) => Err(bad(format!("type={t}: unsupported by rbuild's local driver (tmpfs, or none with o=bind)"))),
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A random 64-hex name for an anonymous volume.
pub fn random_name() -> String {
    let seed = format!("vol-{}-{}-{:?}", std::process::id(), crate::snapshot::unique(), std::time::SystemTime::now());
    blake3::hash(seed.as_bytes()).to_hex().to_string()
}

/// The volumes of one store.
#[derive(Debug, Clone)]
pub struct Volumes {
    store: PathBuf,
    dir: PathBuf,
}

/// Holds `<root>/volumes/.lock` until dropped.
struct Lock(#[allow(dead_code)] std::fs::File);

impl Volumes {
    /// The volumes of the store at `root` (nothing is created until needed).
    pub fn open(root: &Path) -> Volumes {
        Volumes { store: root.to_path_buf(), dir: root.join("volumes") }
    }

    /// `<root>/volumes`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a volume's files are (docker's Mountpoint).
    pub fn mountpoint(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("_data")
    }

    fn lock(&self) -> Result<Lock> {
        std::fs::create_dir_all(&self.dir).map_err(Error::io(&self.dir))?;
        let p = self.dir.join(".lock");
        let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&p).map_err(Error::io(&p))?;
        raw_flock(&f, &p)?;
        Ok(Lock(f))
    }

    /// The volume named `name`, reading (and migrating from the old layout) its record.
    pub fn get(&self, name: &str) -> Result<VolumeInfo> {
        self.lookup(name, false)
    }

    /// [`Volumes::get`]; `held`: the caller holds the lock.
    fn lookup(&self, name: &str, held: bool) -> Result<VolumeInfo> {
        check_name(name)?;
        match self.read(name)? {
            Some(v) => Ok(v),
            None => {
                let d = self.dir.join(name);
                if d.is_dir() {
                    let _l = if held { None } else { Some(self.lock()?) };
                    if let Some(v) = self.read(name)? {
                        return Ok(v);
                    }
                    return self.migrate(name);
                }
                Err(Error::Volume { name: name.to_string(), reason: "no such volume".into() })
            }
        }
    }

    fn read(&self, name: &str) -> Result<Option<VolumeInfo>> {
        let p = self.dir.join(name).join("volume.json");
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::Volume { name: name.to_string(), reason: format!("{}: {e}", p.display()) }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&p)(e)),
        }
    }

    /// A volume of the old layout (files straight in `volumes/<name>/`): its files move to
    /// `_data` and it gets a record. Called under the lock.
    fn migrate(&self, name: &str) -> Result<VolumeInfo> {
        let old = self.dir.join(name);
        let tmp = self.dir.join(format!(".new-{}", crate::snapshot::unique()));
        std::fs::create_dir(&tmp).map_err(Error::io(&tmp))?;
        let info = VolumeInfo {
            name: name.to_string(),
            driver: "local".into(),
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
            created_at: now_rfc3339(),
        };
        let json = tmp.join("volume.json");
        crate::util::write_atomic(&json, &serde_json::to_vec_pretty(&info).expect("volume info serializes"))?;
        // Files first into the new directory's _data, then the new directory into place.
        std::fs::rename(&old, tmp.join("_data")).map_err(Error::io(&old))?;
        std::fs::rename(&tmp, &old).map_err(Error::io(&old))?;
        Ok(info)
    }

    /// Create a volume; `None` names it at random. A volume of that name already there is
    /// returned as it is (docker's `volume create` of an existing name). Returns whether
    /// this call made it.
    pub fn create(&self, name: Option<&str>, opts: &CreateOptions) -> Result<(VolumeInfo, bool)> {
        let name = match name {
            Some(n) => {
                check_name(n)?;
                n.to_string()
            }
            None => random_name(),
        };
        if !opts.driver.is_empty() && opts.driver != "local" {
            return Err(Error::Volume {
                name,
                reason: format!("driver {:?} is not available (only local)", opts.driver),
            });
        }
        backing(&name, PathBuf::new(), &opts.options)?;
        let _l = self.lock()?;
        if self.dir.join(&name).is_dir() {
            let v = match self.read(&name)? {
                Some(v) => v,
                None => self.migrate(&name)?,
            };
            return Ok((v, false));
        }
        let info = VolumeInfo {
            name: name.clone(),
            driver: "local".into(),
            labels: opts.labels.clone(),
            options: opts.options.clone(),
            created_at: now_rfc3339(),
        };
        let tmp = self.dir.join(format!(".new-{}", crate::snapshot::unique()));
        let made = (|| {
            std::fs::create_dir(&tmp).map_err(Error::io(&tmp))?;
            let data = tmp.join("_data");
            std::fs::create_dir(&data).map_err(Error::io(&data))?;
            std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .map_err(Error::io(&data))?;
            crate::util::write_atomic(
                &tmp.join("volume.json"),
                &serde_json::to_vec_pretty(&info).expect("volume info serializes"),
            )?;
            let to = self.dir.join(&name);
            std::fs::rename(&tmp, &to).map_err(Error::io(&to))
        })();
        if let Err(e) = made {
            let _ = crate::util::remove_tree(&tmp);
            return Err(e);
        }
        Ok((info, true))
    }

    /// The volume `name`, created (with no labels or options) when missing: `-v NAME:/path`.
    pub fn ensure(&self, name: &str) -> Result<(VolumeInfo, bool)> {
        check_name(name)?;
        if let Some(v) = self.read(name)? {
            return Ok((v, false));
        }
        self.create(Some(name), &CreateOptions::default())
    }

    /// Make an anonymous volume.
    pub fn create_anonymous(&self) -> Result<VolumeInfo> {
        let opts = CreateOptions {
            labels: BTreeMap::from([(ANONYMOUS_LABEL.to_string(), String::new())]),
            ..Default::default()
        };
        Ok(self.create(None, &opts)?.0)
    }

    /// Every volume, by name.
    pub fn list(&self) -> Result<Vec<VolumeInfo>> {
        self.list_inner(false)
    }

    fn list_inner(&self, held: bool) -> Result<Vec<VolumeInfo>> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io(&self.dir)(e)),
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !e.path().is_dir() || check_name(&name).is_err() {
                continue;
            }
            match self.lookup(&name, held) {
                Ok(v) => out.push(v),
                // Removed meanwhile.
                Err(Error::Volume { .. }) if !e.path().exists() => {}
                Err(err) => return Err(err),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Which containers use which volumes: volume name -> container IDs, from every
    /// `<root>/containers/<id>/config.json`.
    pub fn users(&self) -> Result<BTreeMap<String, Vec<String>>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let dir = self.store.join("containers");
        let Ok(rd) = std::fs::read_dir(&dir) else { return Ok(out) };
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            let Ok(bytes) = std::fs::read(e.path().join("config.json")) else { continue };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else { continue };
            let mut names: Vec<String> = Vec::new();
            if let Some(list) = v.get("volumes").and_then(|x| x.as_array()) {
                names.extend(list.iter().filter_map(|x| x.as_str().map(str::to_string)));
            }
            if let Some(list) = v.get("mounts").and_then(|x| x.as_array()) {
                for m in list {
                    if m.get("type").and_then(|t| t.as_str()) == Some("volume") {
                        names.extend(m.get("name").and_then(|n| n.as_str()).map(str::to_string));
                    }
                }
            }
            names.sort();
            names.dedup();
            for n in names {
                out.entry(n).or_default().push(id.clone());
            }
        }
        Ok(out)
    }

    /// Remove a volume that no container uses. `force`: a missing volume is no error
    /// (returns false).
    pub fn remove(&self, name: &str, force: bool) -> Result<bool> {
        let _l = self.lock()?;
        self.remove_locked(name, force, &self.users()?)
    }

    /// Remove a volume whatever the records say (`rm -v` of the container that names it).
    /// Returns false when it was not there.
    pub fn remove_unchecked(&self, name: &str) -> Result<bool> {
        let _l = self.lock()?;
        self.remove_locked(name, true, &BTreeMap::new())
    }

    fn remove_locked(&self, name: &str, force: bool, users: &BTreeMap<String, Vec<String>>) -> Result<bool> {
        check_name(name)?;
        let d = self.dir.join(name);
        if !d.is_dir() {
            if force {
                return Ok(false);
            }
            return Err(Error::Volume { name: name.to_string(), reason: "no such volume".into() });
        }
        if let Some(ids) = users.get(name).filter(|ids| !ids.is_empty()) {
            return Err(Error::Volume {
                name: name.to_string(),
                reason: format!("volume is in use - [{}]", ids.join(", ")),
            });
        }
        let gone = self.dir.join(format!(".gone-{}", crate::snapshot::unique()));
        std::fs::rename(&d, &gone).map_err(Error::io(&d))?;
        crate::sandbox::store_trees(&self.store).remove_tree(&gone)?;
        Ok(true)
    }

    /// Remove the volumes no container uses: anonymous ones, or all with `all`, and only
    /// those `keep` does not keep. Returns the names removed with the bytes they held.
    pub fn prune(&self, all: bool, keep: impl Fn(&VolumeInfo) -> bool) -> Result<Vec<(String, u64)>> {
        let _l = self.lock()?;
        let users = self.users()?;
        let mut out = Vec::new();
        for v in self.list_inner(true)? {
            if (!all && !v.anonymous()) || users.contains_key(&v.name) || keep(&v) {
                continue;
            }
            let size = self.size(&v.name);
            if self.remove_locked(&v.name, true, &users)? {
                out.push((v.name, size));
            }
        }
        // Leftovers of interrupted creates and removals.
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with(".gone-") || n.starts_with(".new-") {
                    let _ = crate::sandbox::store_trees(&self.store).remove_tree(&e.path());
                }
            }
        }
        Ok(out)
    }

    /// Bytes of the files in a volume (what `volume prune` reclaims).
    pub fn size(&self, name: &str) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(m) = std::fs::symlink_metadata(p) else { return 0 };
            if m.is_dir() {
                std::fs::read_dir(p).map(|rd| rd.flatten().map(|e| walk(&e.path())).sum()).unwrap_or(0)
            } else if m.is_file() {
                std::os::unix::fs::MetadataExt::blocks(&m) * 512
            } else {
                0
            }
        }
        walk(&self.mountpoint(name))
    }
}

fn raw_flock(f: &std::fs::File, p: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: flock on an fd we own; the lock goes with the file.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(Error::io(p)(e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_like_dockers() {
        for ok in ["data", "my-vol_1.x", "a1"] {
            check_name(ok).unwrap();
        }
        for bad in ["a", "", "-x", ".x", "a/b", "a b", "../x"] {
            assert!(check_name(bad).unwrap_err().to_string().contains("invalid volume name"), "{bad}");
        }
    }

    #[test]
    fn create_get_list_remove_and_the_old_layout() {
        let d = tempfile::tempdir().unwrap();
        let v = Volumes::open(d.path());
        assert!(v.list().unwrap().is_empty());
        let opts = CreateOptions { labels: BTreeMap::from([("a".into(), "b".into())]), ..Default::default() };
        let (info, made) = v.create(Some("data"), &opts).unwrap();
        assert!(made && info.labels["a"] == "b" && info.driver == "local" && !info.anonymous());
        assert!(v.mountpoint("data").is_dir());
        // Again: the same volume, not an error.
        let (again, made) = v.create(Some("data"), &CreateOptions::default()).unwrap();
        assert!(!made);
        assert_eq!(again, info);
        let anon = v.create_anonymous().unwrap();
        assert_eq!(anon.name.len(), 64);
        assert!(anon.anonymous());
        // An old-layout volume: files straight in the directory.
        std::fs::create_dir_all(d.path().join("volumes/old")).unwrap();
        std::fs::write(d.path().join("volumes/old/f"), "x").unwrap();
        let names: Vec<_> = v.list().unwrap().into_iter().map(|v| v.name).collect();
        assert_eq!(names.len(), 3);
        assert_eq!(std::fs::read_to_string(v.mountpoint("old").join("f")).unwrap(), "x");
        // In use: refused, naming the container.
        let c = d.path().join("containers/abc");
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(c.join("config.json"), r#"{"id":"abc","volumes":["data"]}"#).unwrap();
        let e = v.remove("data", false).unwrap_err().to_string();
        assert!(e.contains("in use") && e.contains("abc"), "{e}");
        // prune: anonymous unused only, then all unused.
        let pruned = v.prune(false, |_| false).unwrap();
        assert_eq!(pruned.iter().map(|p| p.0.clone()).collect::<Vec<_>>(), vec![anon.name.clone()]);
        let pruned = v.prune(true, |_| false).unwrap();
        assert_eq!(pruned.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(), vec!["old"]);
        std::fs::remove_dir_all(&c).unwrap();
        assert!(v.remove("data", false).unwrap());
        assert!(!v.remove("data", true).unwrap());
        assert!(v.remove("data", false).unwrap_err().to_string().contains("no such volume"));
        assert!(v.list().unwrap().is_empty());
        // Nothing left behind but the lock.
        let left: Vec<_> = std::fs::read_dir(v.dir()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from(".lock")]);
    }

    #[test]
    fn racing_creates_make_one_volume() {
        let d = tempfile::tempdir().unwrap();
        let made: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| Volumes::open(d.path()).create(Some("same"), &CreateOptions::default()).unwrap().1))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap() as usize).sum()
        });
        assert_eq!(made, 1);
        assert_eq!(Volumes::open(d.path()).list().unwrap().len(), 1);
    }

    #[test]
    fn driver_options() {
        let none = BTreeMap::new();
        assert_eq!(backing("v1", "/d".into(), &none).unwrap(), Backing::Data("/d".into()));
        let o = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(
            backing("v1", "/d".into(), &o(&[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=64m")])).unwrap(),
            Backing::Tmpfs { size: Some(64 << 20) }
        );
        assert_eq!(
            backing("v1", "/d".into(), &o(&[("type", "none"), ("o", "bind"), ("device", "/srv")])).unwrap(),
            Backing::Bind("/srv".into())
        );
        for bad in [
            o(&[("type", "nfs")]),
            o(&[("colour", "red")]),
            o(&[("type", "none"), ("o", "bind")]),
            o(&[("type", "tmpfs"), ("o", "size=lots")]),
        ] {
            assert!(backing("v1", "/d".into(), &bad).is_err(), "{bad:?}");
        }
    }
}
