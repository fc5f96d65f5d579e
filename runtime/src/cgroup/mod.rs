//! Cgroups: a container's resource limits ([`Limits`]) and the cgroups that enforce them.
//!
//! A sandbox's or container's cgroup is `rbuild-<name>`, made beneath the cgroup this
//! process runs in (never at a hierarchy's root, so limits placed on the caller keep
//! applying), before the init runs (the init joins it between fork and exec, so every
//! process of the container is in it from the start), and removed — its processes killed
//! first — when the sandbox ends ([`Cgroup`]'s drop) or the container is removed.
//!
//! Two managers behind one trait: cgroup v1 ([`v1`]: one directory per hierarchy —
//! memory, cpu, cpuacct, cpuset, pids, freezer, devices) where the v1 controllers are
//! mounted, else the v2 unified hierarchy ([`v2`]) when it has controllers. On top of the
//! limits: device rules (v1 `devices` only; on v2 the caller takes CAP_MKNOD away
//! instead), freeze/thaw (`pause`), usage figures ([`Stats`]) and OOM-kill detection.
//!
//! Written by hand rather than with youki's `libcgroups` or `cgroups-rs`: the part rbuild
//! needs is a few dozen files written with plain `write(2)`, both crates pull in large
//! dependency trees (systemd D-Bus, eBPF, procfs parsers) for what rbuild does not use,
//! and neither places cgroups the way this runtime must on a hybrid host (beneath the
//! caller's own cgroup in every v1 hierarchy at once).

pub mod limits;
pub mod v1;
pub mod v2;

pub use limits::{Limits, Ulimit};

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One device rule, `type major:minor access` as the devices controller writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    /// `c`, `b` or `a` (all).
    pub kind: char,
    /// `None`: any.
    pub major: Option<u64>,
    /// `None`: any.
    pub minor: Option<u64>,
    /// Some of `rwm`.
    pub access: String,
}

impl DeviceRule {
    /// A character device rule.
    pub fn char(major: Option<u64>, minor: Option<u64>, access: &str) -> DeviceRule {
        DeviceRule { kind: 'c', major, minor, access: access.into() }
    }

    fn line(&self) -> String {
        let n = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "*".into());
        if self.kind == 'a' {
            return "a".into();
        }
        format!("{} {}:{} {}", self.kind, n(self.major), n(self.minor), self.access)
    }
}

/// Docker's default device rules: any node may be created (`m`), and only null, zero,
/// full, random, urandom, tty, ptmx and the pts ptys opened.
pub fn default_rules() -> Vec<DeviceRule> {
    let mut v = vec![
        DeviceRule { kind: 'c', major: None, minor: None, access: "m".into() },
        DeviceRule { kind: 'b', major: None, minor: None, access: "m".into() },
    ];
    for (major, minor) in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 2)] {
        v.push(DeviceRule::char(Some(major), Some(minor), "rwm"));
    }
    v.push(DeviceRule::char(Some(136), None, "rwm"));
    v
}

/// What a cgroup's files say it used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// CPU time used, in nanoseconds.
    pub cpu_usage_ns: u64,
    /// Memory in use, bytes (page cache included; see `inactive_file`).
    pub memory_usage: u64,
    /// The memory limit, bytes (`None`: unlimited).
    pub memory_limit: Option<u64>,
    /// Inactive file cache, bytes: what docker subtracts from the usage it shows.
    pub inactive_file: u64,
    /// Processes (and threads) in the cgroup.
    pub pids: u64,
    /// The pids limit (`None`: unlimited).
    pub pids_limit: Option<u64>,
}

/// Controllers a cgroup will not have, each with why (for the warning).
pub type Missing = Vec<(&'static str, String)>;

/// What a v1 or v2 cgroup does; the [`Cgroup`] on top is what callers hold.
pub trait Manager: std::fmt::Debug + Send + Sync {
    /// The cgroup's directories (one per v1 hierarchy; one on v2).
    fn dirs(&self) -> Vec<PathBuf>;
    /// Write `limits` into the cgroup. Limits no controller here can enforce are named in
    /// `missing` (the caller warns once); a write the kernel refuses is an error.
    fn apply(&self, limits: &Limits, missing: &mut Vec<&'static str>) -> Result<()>;
    /// Allow only `rules` (v1 devices controller): false when there is none, or the
    /// parent forbids one of them.
    fn set_devices(&self, rules: &[DeviceRule]) -> bool;
    /// Freeze (true) or thaw every process, waiting until the kernel says it is done.
    fn freeze(&self, frozen: bool) -> Result<()>;
    /// Frozen? `None` without a freezer.
    fn frozen(&self) -> Option<bool>;
    /// What it used so far.
    fn stats(&self) -> Stats;
    /// How many processes the OOM killer killed in it; `None` when the kernel does not say.
    fn oom_kills(&self) -> Option<u64>;
    /// Host pids of its processes.
    fn procs(&self) -> Vec<i32>;
    /// `cgroup.procs` of each directory, for writing `0` (joining) between fork and exec.
    fn procs_files(&self) -> Result<Vec<std::fs::File>> {
        self.dirs()
            .iter()
            .map(|d| {
                let p = d.join("cgroup.procs");
                std::fs::OpenOptions::new().write(true).open(&p).map_err(Error::io(&p))
            })
            .collect()
    }
}

/// A container's or sandbox's cgroup. Dropped, its processes are killed and it is removed
/// (unless [`Cgroup::keep`] was called).
#[derive(Debug)]
pub struct Cgroup {
    m: Box<dyn Manager>,
    devices: bool,
    remove: bool,
}

/// What [`Cgroup::create`] made.
#[derive(Debug)]
pub struct Placement {
    /// The cgroup, when one could be made.
    pub cgroup: Option<Cgroup>,
    /// Why some asked-for limits are not applied (one line for the user), if so.
    pub warning: Option<String>,
}

/// Name prefix of rbuild's cgroups: `rbuild-<container id>`, or `rbuild-<pid>-<n>` for a
/// build step's sandbox.
pub const PREFIX: &str = "rbuild-";

/// Which cgroup layout this host has, for this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// v1 controllers: each controller name with this process's directory in its hierarchy.
    V1(Vec<(String, PathBuf)>),
    /// The v2 unified hierarchy with controllers: this process's directory in it.
    V2(PathBuf),
    /// No cgroup filesystem we can use.
    None,
}

/// The controllers rbuild uses in v1.
pub const V1_CONTROLLERS: &[&str] = &["memory", "cpu", "cpuacct", "cpuset", "pids", "freezer", "devices"];

/// This process's cgroups, from /proc/self/cgroup (where we are) and /proc/self/mountinfo
/// (where each hierarchy is mounted, and which cgroup the mount shows).
pub fn layout() -> Layout {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    layout_from(&own, &mi, &|p| std::fs::read_to_string(p).ok())
}

/// [`layout`] from the two files' text; `read` reads a v2 `cgroup.controllers`.
fn layout_from(own: &str, mountinfo: &str, read: &dyn Fn(&Path) -> Option<String>) -> Layout {
    // (hierarchy's controllers or "" for v2, our path in it)
    let mut ours: Vec<(Vec<&str>, &str)> = Vec::new();
    for l in own.lines() {
        let mut it = l.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else { continue };
        ours.push((ctrls.split(',').filter(|c| !c.is_empty()).collect(), path));
    }
    let mut v1 = Vec::new();
    let mut unified = None;
    for l in mountinfo.lines() {
        let Some((pre, post)) = l.split_once(" - ") else { continue };
        let mut post = post.split(' ');
        let fstype = post.next().unwrap_or("");
        let opts = post.nth(1).unwrap_or("");
        let f: Vec<&str> = pre.split(' ').collect();
        let (Some(root), Some(mountpoint)) = (f.get(3), f.get(4)) else { continue };
        let dir = |path: &str| -> Option<PathBuf> {
            let rel = Path::new(path).strip_prefix(root).ok()?;
            Some(Path::new(mountpoint).join(rel))
        };
        match fstype {
            "cgroup" => {
                for c in opts.split(',').filter(|o| V1_CONTROLLERS.contains(o)) {
                    let path = ours.iter().find(|(cs, _)| cs.contains(&c)).map(|(_, p)| *p);
                    if let Some(d) = path.and_then(dir) {
                        if !v1.iter().any(|(n, _): &(String, PathBuf)| n == c) {
                            v1.push((c.to_string(), d));
                        }
                    }
                }
            }
            "cgroup2" if unified.is_none() => {
                let path = ours.iter().find(|(cs, _)| cs.is_empty()).map(|(_, p)| *p);
                unified = path.and_then(dir);
            }
            _ => {}
        }
    }
    if v1.iter().any(|(c, _)| c != "devices") {
        return Layout::V1(v1);
    }
    if let Some(d) = unified {
        let ctrls = read(&d.join("cgroup.controllers")).unwrap_or_default();
        if ctrls.split_whitespace().any(|c| ["memory", "pids", "cpu"].contains(&c)) {
            return Layout::V2(d);
        }
    }
    if !v1.is_empty() { Layout::V1(v1) } else { Layout::None }
}

/// The flag that asks for each limit, for messages.
fn flags_of(l: &Limits) -> Vec<(&'static str, &'static str)> {
    let mut v = Vec::new();
    let mut add = |on: bool, flag, ctrl| {
        if on {
            v.push((flag, ctrl))
        }
    };
    add(l.memory.is_some(), "--memory", "memory");
    add(l.memory_swap.is_some(), "--memory-swap", "memory");
    add(l.memory_reservation.is_some(), "--memory-reservation", "memory");
    add(l.nano_cpus.is_some(), "--cpus", "cpu");
    add(l.cpu_shares.is_some(), "--cpu-shares", "cpu");
    add(l.cpuset_cpus.is_some(), "--cpuset-cpus", "cpuset");
    add(l.pids_limit.is_some(), "--pids-limit", "pids");
    v
}

impl Cgroup {
    /// Make `rbuild-<name>` beneath our cgroup(s), apply `limits` and (given) the device
    /// rules. Limits that cannot be applied (no such controller, not delegated to this
    /// user) are named in [`Placement::warning`]; a value the kernel refuses is an error.
    pub fn create(name: &str, limits: &Limits, devices: Option<&[DeviceRule]>) -> Result<Placement> {
        Cgroup::create_in(&layout(), name, limits, devices)
    }

    /// [`Cgroup::create`] in a given layout.
    pub fn create_in(
        layout: &Layout,
        name: &str,
        limits: &Limits,
        devices: Option<&[DeviceRule]>,
    ) -> Result<Placement> {
        let full = format!("{PREFIX}{name}");
        let asked = flags_of(limits);
        let mut reasons: Vec<String> = Vec::new();
        let m: Option<Box<dyn Manager>> = match layout {
            Layout::V1(dirs) => {
                let (m, failed) = v1::V1::create(dirs, &full);
                for (ctrl, why) in failed {
                    if asked.iter().any(|(_, c)| *c == ctrl) {
                        reasons.push(format!("{ctrl}: {why}"));
                    }
                }
                m.map(|m| Box::new(m) as Box<dyn Manager>)
            }
            Layout::V2(dir) => match v2::V2::create(dir, &full) {
                Ok((m, missing)) => {
                    for (ctrl, why) in missing {
                        if asked.iter().any(|(_, c)| *c == ctrl) {
                            reasons.push(format!("{ctrl}: {why}"));
                        }
                    }
                    Some(Box::new(m) as Box<dyn Manager>)
                }
                Err(why) => {
                    if !asked.is_empty() {
                        reasons.push(why);
                    }
                    None
                }
            },
            Layout::None => {
                if !asked.is_empty() {
                    reasons.push("no cgroup filesystem is mounted".into());
                }
                None
            }
        };
        let mut missing = Vec::new();
        let cgroup = match m {
            Some(m) => {
                // A container's cgroup left by a killed owner (maybe frozen, maybe with
                // processes): emptied and thawed before the new run joins it.
                kill_all(m.as_ref());
                if m.frozen() == Some(true) {
                    m.freeze(false)?;
                }
                let mut cg = Cgroup { m, devices: false, remove: true };
                cg.m.apply(limits, &mut missing)?;
                if let Some(rules) = devices {
                    cg.devices = cg.m.set_devices(rules);
                }
                Some(cg)
            }
            None => None,
        };
        for ctrl in missing {
            if ctrl == "swap" {
                reasons.push(
                    "swap: no swap accounting here (memory.memsw.* / memory.swap.max), memory limited without swap"
                        .into(),
                );
            } else if !reasons.iter().any(|r| r.starts_with(ctrl)) {
                reasons.push(format!("{ctrl}: the controller is not available"));
            }
        }
        let warning = (!reasons.is_empty()).then(|| {
            let flags: Vec<&str> = asked.iter().map(|(f, _)| *f).collect();
            let who = if nix::unistd::geteuid().is_root() {
                String::new()
            } else {
                format!(" (rootless: cgroups are not delegated to uid {})", nix::unistd::geteuid())
            };
            format!(
                "resource limits ({}) cannot all be applied{who}: {}; the container runs without them",
                flags.join(", "),
                reasons.join("; ")
            )
        });
        Ok(Placement { cgroup, warning })
    }

    /// An existing cgroup from its directories (as recorded in a container's state).
    pub fn open(dirs: &[PathBuf]) -> Option<Cgroup> {
        let dirs: Vec<PathBuf> = dirs.iter().filter(|d| d.is_dir()).cloned().collect();
        let m: Box<dyn Manager> = match dirs.as_slice() {
            [] => return None,
            [d] if d.join("cgroup.controllers").exists() => Box::new(v2::V2::open(d)),
            _ => Box::new(v1::V1::open(&dirs)),
        };
        let devices = m.dirs().iter().any(|d| d.join("devices.list").exists());
        Some(Cgroup { m, devices, remove: false })
    }

    /// `rbuild-<name>` beneath our own cgroup(s), when it exists.
    pub fn find(name: &str) -> Option<Cgroup> {
        Cgroup::open(&paths_for(name))
    }

    /// The cgroup's directories: what a container's state records.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.m.dirs()
    }

    /// Do device rules confine it?
    pub fn has_devices(&self) -> bool {
        self.devices
    }

    /// `cgroup.procs` of each directory, open for writing: a process writing `0` to each
    /// joins the cgroup.
    pub fn procs_files(&self) -> Result<Vec<std::fs::File>> {
        self.m.procs_files()
    }

    /// Change the limits of a running container (`rbuild update`, with the whole new
    /// set): the fields set in `limits` are written, no pids limit is `max`, the rest is
    /// left alone. Returns a warning for limits no controller here enforces.
    pub fn update(&self, limits: &Limits) -> Result<Option<String>> {
        let mut missing = Vec::new();
        self.m.apply(limits, &mut missing)?;
        if limits.pids_limit.is_none() {
            // `--pids-limit -1`: back to unlimited.
            for d in self.m.dirs().iter().filter(|d| d.join("pids.max").exists()) {
                set(d, "pids.max", "max", "--pids-limit")?;
            }
        }
        Ok((!missing.is_empty()).then(|| format!("no {} controller: those limits are not applied", missing.join(", "))))
    }

    /// Set (RLIMIT_*, soft, hard) limits on every process in it (prlimit): `update
    /// --ulimit` of a running container. Processes that refuse (a hard limit raised
    /// without the right) keep theirs.
    pub fn set_rlimits(&self, rlimits: &[(u32, u64, u64)]) {
        for pid in self.m.procs() {
            for &(res, soft, hard) in rlimits {
                let lim = libc::rlimit { rlim_cur: soft, rlim_max: hard };
                // SAFETY: prlimit on a pid of this cgroup with a valid struct.
                if unsafe { libc::prlimit(pid, res as _, &lim, std::ptr::null_mut()) } != 0 {
                    tracing::debug!("prlimit {pid} {res}: {}", std::io::Error::last_os_error());
                }
            }
        }
    }

    /// Freeze every process (`pause`).
    pub fn freeze(&self) -> Result<()> {
        self.m.freeze(true)
    }

    /// Thaw every process (`unpause`).
    pub fn thaw(&self) -> Result<()> {
        self.m.freeze(false)
    }

    /// Frozen? `None` without a freezer.
    pub fn frozen(&self) -> Option<bool> {
        self.m.frozen()
    }

    /// What it used so far.
    pub fn stats(&self) -> Stats {
        self.m.stats()
    }

    /// Did the OOM killer kill a process in it?
    pub fn oom_killed(&self) -> bool {
        self.m.oom_kills().is_some_and(|n| n > 0)
    }

    /// Host pids of its processes.
    pub fn procs(&self) -> Vec<i32> {
        self.m.procs()
    }

    /// Do not remove the cgroup on drop (a detached container's, removed later by
    /// [`Cgroup::destroy`]); returns its directories.
    pub fn keep(mut self) -> Vec<PathBuf> {
        self.remove = false;
        self.m.dirs()
    }

    /// Kill every process in it (thawing it first) and remove it. True when it is gone.
    pub fn destroy(mut self) -> bool {
        self.remove = false;
        destroy(self.m.as_ref())
    }
}

fn destroy(m: &dyn Manager) -> bool {
    kill_all(m);
    let mut ok = true;
    for d in m.dirs() {
        ok &= remove_dir(&d);
    }
    ok
}

/// SIGKILL every process in the cgroup until it is empty or a deadline passes. Frozen
/// first when a freezer is there, so nothing forks (a fork bomb) while the kills go out,
/// then thawed, since frozen processes do not die.
fn kill_all(m: &dyn Manager) {
    if m.procs().is_empty() {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let froze = m.frozen().is_some() && m.freeze(true).is_ok();
        for p in m.procs() {
            // SAFETY: kill(2) with a pid read from the cgroup.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        if froze || m.frozen() == Some(true) {
            let _ = m.freeze(false);
        }
        if poll(Duration::from_millis(500), || m.procs().is_empty()) || Instant::now() > deadline {
            return;
        }
    }
}

/// Remove an empty cgroup directory, waiting (a bounded while) for exiting processes to
/// leave it.
fn remove_dir(dir: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(_) => return false,
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if self.remove && !destroy(self.m.as_ref()) {
            tracing::debug!("cgroup {:?} left behind (still busy)", self.m.dirs());
        }
    }
}

/// Where `rbuild-<name>` is (or would be) beneath our own cgroup(s).
pub fn paths_for(name: &str) -> Vec<PathBuf> {
    let full = format!("{PREFIX}{name}");
    match layout() {
        Layout::V1(dirs) => {
            let mut out: Vec<PathBuf> = Vec::new();
            for (_, d) in dirs {
                let p = d.join(&full);
                if !out.contains(&p) {
                    out.push(p);
                }
            }
            out
        }
        Layout::V2(d) => vec![d.join(full)],
        Layout::None => Vec::new(),
    }
}

/// Remove build-step cgroups (`rbuild-<pid>-<n>`) left by rbuild processes that were
/// killed. Container cgroups (`rbuild-<id>`) are their container's to remove.
pub fn cleanup_stale() {
    let parents: Vec<PathBuf> = match layout() {
        Layout::V1(dirs) => dirs.into_iter().map(|(_, d)| d).collect(),
        Layout::V2(d) => vec![d],
        Layout::None => return,
    };
    for parent in parents {
        let Ok(rd) = std::fs::read_dir(&parent) else { continue };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) =
                name.strip_prefix(PREFIX).and_then(|r| r.split_once('-')).and_then(|(p, _)| p.parse::<i32>().ok())
            else {
                continue;
            };
            if pid != std::process::id() as i32 && !crate::util::pid_alive(pid) {
                if let Some(cg) = Cgroup::open(&[e.path()]) {
                    cg.destroy();
                }
            }
        }
    }
}

/// Write `value` to the cgroup file `dir/file` in one write(2).
pub(crate) fn write(dir: &Path, file: &str, value: &str) -> std::io::Result<()> {
    let p = dir.join(file);
    // The kernel makes cgroup files; the tests' fake directories need them made.
    let mut f = std::fs::OpenOptions::new().write(true).truncate(true).create(cfg!(test)).open(&p)?;
    std::io::Write::write_all(&mut f, value.as_bytes())
}

/// [`write`], as an error naming the flag, the value and the file.
pub(crate) fn set(dir: &Path, file: &str, value: &str, flag: &str) -> Result<()> {
    write(dir, file, value)
        .map_err(|e| Error::Cgroup(format!("{flag}: writing {value} to {}: {e}", dir.join(file).display())))
}

/// Read a cgroup file, trimmed.
pub(crate) fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok().map(|s| s.trim().to_string())
}

/// A number from a cgroup file; `max` (and v1's near-i64::MAX "unlimited") are `None`.
pub(crate) fn read_num(dir: &Path, file: &str) -> Option<u64> {
    let s = read(dir, file)?;
    let n: u64 = s.parse().ok()?;
    (n < (1 << 62)).then_some(n)
}

/// The value of `key` in a flat keyed file (`memory.stat`, `memory.events`, `cpu.stat`).
pub(crate) fn keyed(dir: &Path, file: &str, key: &str) -> Option<u64> {
    let s = read(dir, file)?;
    s.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Pids in `cgroup.procs`.
pub(crate) fn read_procs(dir: &Path) -> Vec<i32> {
    read(dir, "cgroup.procs").map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect()).unwrap_or_default()
}

/// Poll `done` every millisecond or so until it holds or `limit` passes.
pub(crate) fn poll(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_lines() {
        let r = default_rules();
        let lines: Vec<String> = r.iter().map(DeviceRule::line).collect();
        assert!(lines.contains(&"c *:* m".to_string()));
        assert!(lines.contains(&"c 1:3 rwm".to_string()));
        assert!(lines.contains(&"c 136:* rwm".to_string()));
        assert!(!lines.iter().any(|l| l.starts_with("c 1:11") || l.starts_with("c 10:")));
    }

    const MOUNTINFO: &str = "\
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
33 30 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
35 30 0:31 /outer /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices
";

    #[test]
    fn v1_layout_is_beneath_our_own_cgroups() {
        let own = "5:devices:/outer/me\n4:pids:/\n3:memory:/user/x\n2:cpu,cpuacct:/a\n0::/u\n";
        let Layout::V1(dirs) = layout_from(own, MOUNTINFO, &|_| None) else { panic!("not v1") };
        let get = |c: &str| dirs.iter().find(|(n, _)| n == c).map(|(_, d)| d.clone()).unwrap();
        assert_eq!(get("memory"), Path::new("/sys/fs/cgroup/memory/user/x"));
        assert_eq!(get("pids"), Path::new("/sys/fs/cgroup/pids"));
        assert_eq!(get("cpu"), Path::new("/sys/fs/cgroup/cpu,cpuacct/a"));
        assert_eq!(get("cpuacct"), Path::new("/sys/fs/cgroup/cpu,cpuacct/a"));
        // The mount shows /outer: our /outer/me is its me.
        assert_eq!(get("devices"), Path::new("/sys/fs/cgroup/devices/me"));
    }

    #[test]
    fn v2_layout_when_the_unified_hierarchy_has_controllers() {
        let mi = "31 30 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let own = "0::/user.slice/me\n";
        let read = |p: &Path| {
            (p == Path::new("/sys/fs/cgroup/user.slice/me/cgroup.controllers")).then(|| "cpu memory pids\n".to_string())
        };
        assert_eq!(layout_from(own, mi, &read), Layout::V2("/sys/fs/cgroup/user.slice/me".into()));
        // An empty unified hierarchy (this hybrid host's) is no use.
        assert_eq!(layout_from(own, mi, &|_| Some("hugetlb\n".into())), Layout::None);
    }
}
