//! The container records under `<root>/containers`: list, resolve an ID, name or prefix,
//! create one atomically with its name reserved, lock and change its state, remove it.
//!
//! ```text
//! <root>/containers/<id>/config.json       what it is (Config), written atomically
//! <root>/containers/<id>/state.json        what it does (State), changed under `lock`
//! <root>/containers/<id>/lock              flock(LOCK_EX) while reading-modifying-writing
//! <root>/containers/<id>/<id>-json.log     docker's json-file log
//! <root>/containers/names/<name>           the name reservation (created exclusively; holds the id)
//! <root>/containers/.new-<pid>-<id>/       a record being created (renamed into place)
//! ```

use super::config::Config;
use super::state::{State, Status};
use crate::error::{Error, Result};
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The container records of a store.
#[derive(Debug, Clone)]
pub struct Containers {
    root: PathBuf,
    dir: PathBuf,
}

/// One container record (its directory); read its parts with [`Container::config`] and
/// [`Container::state`], change the state with [`Container::update`].
#[derive(Debug, Clone)]
pub struct Container {
    /// 64 hex digits.
    pub id: String,
    /// `<root>/containers/<id>`.
    pub dir: PathBuf,
}

/// The container's lock, held; the state and config can be read and written through it.
pub struct Locked<'a> {
    c: &'a Container,
    _file: File,
}

fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Is `name` a valid container name (docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]+`)?
pub fn valid_name(name: &str) -> bool {
    name.len() >= 2
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A new random container ID (64 hex).
pub fn new_id() -> String {
    let mut seed = [0u8; 32];
    if let Ok(mut f) = File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut seed);
    }
    let extra = format!("{}-{}-{:?}", std::process::id(), crate::snapshot::unique(), std::time::SystemTime::now());
    let mut h = blake3::Hasher::new();
    h.update(&seed);
    h.update(extra.as_bytes());
    h.finalize().to_hex().to_string()
}

const ADJECTIVES: &[&str] = &[
    "admiring",
    "brave",
    "clever",
    "dazzling",
    "eager",
    "festive",
    "gallant",
    "happy",
    "inspiring",
    "jolly",
    "keen",
    "lucid",
    "modest",
    "nifty",
    "optimistic",
    "peaceful",
    "quirky",
    "relaxed",
    "serene",
    "tender",
    "upbeat",
    "vibrant",
    "wizardly",
    "youthful",
    "zealous",
    "bold",
    "calm",
    "elated",
    "focused",
    "gracious",
];
const SURNAMES: &[&str] = &[
    "agnesi",
    "babbage",
    "curie",
    "dijkstra",
    "euler",
    "fermi",
    "gauss",
    "hopper",
    "ishizaka",
    "jennings",
    "knuth",
    "lovelace",
    "meitner",
    "noether",
    "ostrom",
    "pascal",
    "ritchie",
    "shannon",
    "turing",
    "varahamihira",
    "wozniak",
    "yalow",
    "zuse",
    "bohr",
    "darwin",
    "einstein",
    "franklin",
    "galileo",
    "hamilton",
    "kepler",
];

fn random_name(id: &str, attempt: usize) -> String {
    let h = blake3::hash(format!("{id}-{attempt}").as_bytes());
    let b = h.as_bytes();
    let name = format!(
        "{}_{}",
        ADJECTIVES[usize::from(b[0]) % ADJECTIVES.len()],
        SURNAMES[usize::from(b[1]) % SURNAMES.len()]
    );
    // Docker's habit: a digit on retries.
    if attempt >= 5 { format!("{name}{}", b[2] % 10) } else { name }
}

impl Containers {
    /// The records of the store at `root` (nothing is created until a container is).
    pub fn open(root: &Path) -> Containers {
        Containers { root: root.to_path_buf(), dir: root.join("containers") }
    }

    /// The store root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn names_dir(&self) -> PathBuf {
        self.dir.join("names")
    }

    fn handle(&self, id: &str) -> Container {
        Container { id: id.to_string(), dir: self.dir.join(id) }
    }

    /// The IDs of every container (directories with a config.json), unsorted.
    pub fn ids(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        rd.flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_id(n) && self.dir.join(n).join("config.json").exists())
            .collect()
    }

    /// Every container.
    pub fn list(&self) -> Vec<Container> {
        self.ids().iter().map(|id| self.handle(id)).collect()
    }

    /// The container with this full ID.
    pub fn get(&self, id: &str) -> Result<Container> {
        if is_id(id) && self.dir.join(id).join("config.json").exists() {
            Ok(self.handle(id))
        } else {
            Err(Error::NoSuchContainer(id.to_string()))
        }
    }

    /// The container `what` names, by docker's rules: a full ID, a name (with or without
    /// a leading `/`), else a unique ID prefix.
    pub fn resolve(&self, what: &str) -> Result<Container> {
        if what.is_empty() {
            return Err(Error::NoSuchContainer(String::new()));
        }
        if let Ok(c) = self.get(what) {
            return Ok(c);
        }
        let name = what.strip_prefix('/').unwrap_or(what);
        if valid_name(name) {
            if let Ok(id) = std::fs::read_to_string(self.names_dir().join(name)) {
                let id = id.trim();
                if let Ok(c) = self.get(id) {
                    return Ok(c);
                }
            }
        }
        if what.bytes().all(|b| b.is_ascii_hexdigit()) {
            let lower = what.to_ascii_lowercase();
            let hits: Vec<String> = self.ids().into_iter().filter(|id| id.starts_with(&lower)).collect();
            match hits.len() {
                1 => return Ok(self.handle(&hits[0])),
                0 => {}
                _ => {
                    return Err(Error::Container {
                        name: what.to_string(),
                        reason: "multiple IDs found with provided prefix".into(),
                    });
                }
            }
        }
        Err(Error::NoSuchContainer(what.to_string()))
    }

    /// The ID holding `name`, if it is taken.
    pub fn name_owner(&self, name: &str) -> Option<String> {
        let name = name.strip_prefix('/').unwrap_or(name);
        std::fs::read_to_string(self.names_dir().join(name)).ok().map(|s| s.trim().to_string())
    }

    /// Reserve `name` for `id` (exclusively: of two callers, one wins).
    pub fn reserve_name(&self, name: &str, id: &str) -> Result<()> {
        if !valid_name(name) {
            return Err(Error::Container {
                name: name.to_string(),
                reason: "invalid container name, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed".into(),
            });
        }
        let names = self.names_dir();
        std::fs::create_dir_all(&names).map_err(Error::io(&names))?;
        let f = names.join(name);
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&f) {
            Ok(mut file) => {
                if let Err(e) = file.write_all(id.as_bytes()) {
                    let _ = std::fs::remove_file(&f);
                    return Err(Error::io(&f)(e));
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let other = std::fs::read_to_string(&f).unwrap_or_default();
                // A reservation whose record never appeared and whose creator is gone is
                // stale only when the record does not exist; we never guess: report it.
                Err(Error::Container {
                    name: name.to_string(),
                    reason: format!(
                        "the container name \"/{name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name",
                        other.trim()
                    ),
                })
            }
            Err(e) => Err(Error::io(&f)(e)),
        }
    }

    /// Give up a name reservation, if `id` holds it.
    pub fn release_name(&self, name: &str, id: &str) {
        let f = self.names_dir().join(name);
        if std::fs::read_to_string(&f).is_ok_and(|s| s.trim() == id) {
            let _ = std::fs::remove_file(&f);
        }
    }

    /// Create the record for `config` (its `id` set; an empty `name` gets a made-up one):
    /// the name reserved first, then config.json + state.json (status created) written in
    /// a new directory renamed into place. On error nothing is left.
    pub fn create(&self, config: &mut Config) -> Result<Container> {
        if !is_id(&config.id) {
            return Err(Error::Container { name: config.id.clone(), reason: "not a 64-hex container ID".into() });
        }
        if config.name.is_empty() {
            let mut attempt = 0;
            loop {
                let n = random_name(&config.id, attempt);
                match self.reserve_name(&n, &config.id) {
                    Ok(()) => {
                        config.name = n;
                        break;
                    }
                    Err(Error::Container { .. }) if attempt < 20 => attempt += 1,
                    Err(e) => return Err(e),
                }
            }
        } else {
            let n = config.name.strip_prefix('/').unwrap_or(&config.name).to_string();
            config.name = n;
            self.reserve_name(&config.name, &config.id)?;
        }
        let r = self.write_new(config);
        if r.is_err() {
            self.release_name(&config.name, &config.id);
        }
        r
    }

    fn write_new(&self, config: &Config) -> Result<Container> {
        let tmp = self.dir.join(format!(".new-{}-{}", std::process::id(), config.id));
        let r = (|| {
            std::fs::create_dir_all(&tmp).map_err(Error::io(&tmp))?;
            let cfg = serde_json::to_vec_pretty(config).expect("config serializes");
            crate::util::write_atomic(&tmp.join("config.json"), &cfg)?;
            let st = serde_json::to_vec_pretty(&State::default()).expect("state serializes");
            crate::util::write_atomic(&tmp.join("state.json"), &st)?;
            File::create(tmp.join("lock")).map_err(Error::io(tmp.join("lock")))?;
            let dest = self.dir.join(&config.id);
            std::fs::rename(&tmp, &dest).map_err(Error::io(&dest))?;
            Ok(self.handle(&config.id))
        })();
        if r.is_err() {
            let _ = crate::util::remove_tree(&tmp);
        }
        r
    }

    /// Remove the record (directory and name). The caller holds no lock on it afterwards
    /// worth anything; the writable layer, cgroup and volumes are the caller's to remove
    /// first.
    pub fn remove_record(&self, c: &Container) -> Result<()> {
        let name = c.config().map(|cfg| cfg.name).unwrap_or_default();
        // The config goes first: without it the record is no longer listed.
        let cfg = c.dir.join("config.json");
        match std::fs::remove_file(&cfg) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&cfg)(e)),
        }
        crate::util::remove_tree(&c.dir)?;
        if !name.is_empty() {
            self.release_name(&name, &c.id);
        }
        Ok(())
    }

    /// Rename a container: the new name reserved, the config changed under the lock, the
    /// old name released.
    pub fn rename(&self, c: &Container, new_name: &str) -> Result<()> {
        let new_name = new_name.strip_prefix('/').unwrap_or(new_name);
        let lock = c.lock()?;
        let mut cfg = lock.config()?;
        if cfg.name == new_name {
            return Err(Error::Container {
                name: new_name.to_string(),
                reason: "renaming a container with the same name as its current name".into(),
            });
        }
        self.reserve_name(new_name, &c.id)?;
        let old = std::mem::replace(&mut cfg.name, new_name.to_string());
        if let Err(e) = lock.write_config(&cfg) {
            self.release_name(new_name, &c.id);
            return Err(e);
        }
        self.release_name(&old, &c.id);
        Ok(())
    }

    /// Remove `.new-<pid>-*` directories whose creator is gone.
    pub fn cleanup_stale(&self) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else { return };
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = n.strip_prefix(".new-").and_then(|r| r.split_once('-')).and_then(|(p, _)| p.parse().ok())
            else {
                continue;
            };
            if !crate::util::pid_alive(pid) {
                let _ = crate::util::remove_tree(&e.path());
            }
        }
    }
}

impl Container {
    /// `config.json`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// `state.json`.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// `<id>-json.log`, docker's json-file log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(format!("{}-json.log", self.id))
    }

    /// Read the config.
    pub fn config(&self) -> Result<Config> {
        read_json(&self.config_path(), &self.id)
    }

    /// Read the state as it is on disk (written atomically, so never half), without the
    /// liveness check ([`Container::checked_state`]).
    pub fn state(&self) -> Result<State> {
        read_json(&self.state_path(), &self.id)
    }

    /// Take the container's lock (blocks while another process holds it). Fails with
    /// [`Error::NoSuchContainer`] when the record was removed meanwhile.
    pub fn lock(&self) -> Result<Locked<'_>> {
        let p = self.dir.join("lock");
        let f = std::fs::OpenOptions::new().write(true).open(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NoSuchContainer(self.id.clone())
            } else {
                Error::io(&p)(e)
            }
        })?;
        loop {
            // SAFETY: flock on an fd we own; released when the File drops.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(Error::io(&p)(e));
            }
        }
        if !self.config_path().exists() {
            return Err(Error::NoSuchContainer(self.id.clone()));
        }
        Ok(Locked { c: self, _file: f })
    }

    /// Lock, read the state, let `f` change it, write it back (only when `f` returns Ok).
    pub fn update<T>(&self, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let l = self.lock()?;
        let mut st = l.state()?;
        let out = f(&mut st)?;
        l.write_state(&st)?;
        Ok(out)
    }

    /// The state, with the liveness check: a container recorded as running, paused or
    /// restarting whose owner (monitor or foreground run) is gone is recorded as exited
    /// (137, with the reason in `error`) and returned so.
    pub fn checked_state(&self) -> Result<State> {
        let st = self.state()?;
        if !st.status.is_active() || st.monitor_alive() {
            return Ok(st);
        }
        self.update(|st| {
            if st.status.is_active() && !st.monitor_alive() {
                mark_monitor_dead(st);
            }
            Ok(st.clone())
        })
    }
}

/// Record that the owner of an active container died: the container went with it
/// (its init dies with its parent).
pub(crate) fn mark_monitor_dead(st: &mut State) {
    let pid = st.monitor_pid;
    if st.status != Status::Restarting {
        st.exit_code = 137;
    }
    st.status = Status::Exited;
    st.error = format!("the container's monitor (pid {pid}) died; the container was killed with it");
    st.finished_at = Some(super::state::now_rfc3339());
    st.pid = 0;
    st.init_pid = 0;
    st.monitor_pid = 0;
    st.monitor_start = 0;
}

impl Locked<'_> {
    /// Read the state.
    pub fn state(&self) -> Result<State> {
        self.c.state()
    }

    /// Write the state atomically.
    pub fn write_state(&self, st: &State) -> Result<()> {
        crate::util::write_atomic(&self.c.state_path(), &serde_json::to_vec_pretty(st).expect("state serializes"))
    }

    /// Read the config.
    pub fn config(&self) -> Result<Config> {
        self.c.config()
    }

    /// Write the config atomically (`update`, `rename`).
    pub fn write_config(&self, cfg: &Config) -> Result<()> {
        crate::util::write_atomic(&self.c.config_path(), &serde_json::to_vec_pretty(cfg).expect("config serializes"))
    }
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path, id: &str) -> Result<T> {
    let b = std::fs::read(p).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound { Error::NoSuchContainer(id.to_string()) } else { Error::io(p)(e) }
    })?;
    serde_json::from_slice(&b)
        .map_err(|e| Error::Container { name: id.to_string(), reason: format!("{}: {e}", p.display()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(name: &str) -> Config {
        Config { id: new_id(), name: name.into(), image: "img".into(), ..Default::default() }
    }

    #[test]
    fn create_resolve_remove() {
        let d = tempfile::tempdir().unwrap();
        let cs = Containers::open(d.path());
        assert!(cs.list().is_empty());
        let mut a = cfg("web");
        let ca = cs.create(&mut a).unwrap();
        let mut b = cfg("");
        let cb = cs.create(&mut b).unwrap();
        assert!(valid_name(&b.name), "{}", b.name);
        assert_eq!(cs.list().len(), 2);
        assert_eq!(cs.resolve("web").unwrap().id, ca.id);
        assert_eq!(cs.resolve("/web").unwrap().id, ca.id);
        assert_eq!(cs.resolve(&ca.id).unwrap().id, ca.id);
        assert_eq!(cs.resolve(&b.name).unwrap().id, cb.id);
        assert_eq!(cs.resolve(&ca.id[..12]).unwrap().id, ca.id);
        assert!(matches!(cs.resolve("nope"), Err(Error::NoSuchContainer(_))));
        assert_eq!(ca.state().unwrap().status, Status::Created);
        assert_eq!(ca.config().unwrap().image, "img");

        let e = cs.create(&mut cfg("web")).unwrap_err().to_string();
        assert!(e.contains("already in use"), "{e}");
        assert_eq!(cs.list().len(), 2, "a failed create leaves nothing");
        let e = cs.create(&mut cfg("-bad")).unwrap_err().to_string();
        assert!(e.contains("invalid container name"), "{e}");

        ca.update(|st| {
            st.status = Status::Exited;
            st.exit_code = 3;
            Ok(())
        })
        .unwrap();
        assert_eq!(ca.state().unwrap().exit_code, 3);

        cs.rename(&ca, "web2").unwrap();
        assert_eq!(cs.resolve("web2").unwrap().id, ca.id);
        assert!(cs.resolve("web").is_err());
        cs.remove_record(&ca).unwrap();
        assert!(cs.resolve("web2").is_err());
        assert!(matches!(ca.lock(), Err(Error::NoSuchContainer(_))));
        assert_eq!(cs.list().len(), 1);
        // The freed name can be taken again.
        cs.create(&mut cfg("web2")).unwrap();
    }

    #[test]
    fn names_race_one_wins() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().to_path_buf();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let root = root.clone();
                std::thread::spawn(move || Containers::open(&root).create(&mut cfg("same")).is_ok())
            })
            .collect();
        let wins = threads.into_iter().map(|t| t.join().unwrap()).filter(|w| *w).count();
        assert_eq!(wins, 1);
        assert_eq!(Containers::open(&root).list().len(), 1);
    }

    #[test]
    fn dead_monitor_is_found_out() {
        let d = tempfile::tempdir().unwrap();
        let cs = Containers::open(d.path());
        let c = cs.create(&mut cfg("x1")).unwrap();
        c.update(|st| {
            st.status = Status::Running;
            st.monitor_pid = std::process::id() as i32;
            st.monitor_start = 1; // not our start time: a reused pid
            Ok(())
        })
        .unwrap();
        let st = c.checked_state().unwrap();
        assert_eq!(st.status, Status::Exited);
        assert_eq!(st.exit_code, 137);
        assert!(st.error.contains("monitor"), "{}", st.error);
        assert_eq!(c.state().unwrap(), st);
    }

    #[test]
    fn ambiguous_prefix() {
        let d = tempfile::tempdir().unwrap();
        let cs = Containers::open(d.path());
        let mut ids = Vec::new();
        for i in 0..40 {
            let mut c = cfg(&format!("c{i}"));
            cs.create(&mut c).unwrap();
            ids.push(c.id);
        }
        // With 40 IDs, some first hex digit is shared.
        let shared = (0..16).map(|n| format!("{n:x}")).find(|p| ids.iter().filter(|i| i.starts_with(p)).count() > 1);
        let e = cs.resolve(&shared.unwrap()).unwrap_err().to_string();
        assert!(e.contains("multiple IDs"), "{e}");
    }
}
