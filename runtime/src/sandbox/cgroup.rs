//! Cgroups of sandboxes, made beneath the cgroup rbuild runs in (never at a hierarchy's
//! root) and removed when the sandbox ends. For now one job: the device rules (cgroup v1's
//! `devices` controller), so a container may create device nodes but open only the ones
//! Docker allows and those `--device` adds. Where no v1 devices controller is writable (a
//! pure cgroup v2 host would need a device eBPF program: not done yet), [`Cgroup::create`]
//! returns `None` and the caller takes CAP_MKNOD away instead.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

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

/// The directory of our own cgroup in the v1 hierarchy that has `controller`, from
/// /proc/self/mountinfo (where it is mounted, and which cgroup the mount shows) and
/// /proc/self/cgroup (where we are).
fn v1_dir(controller: &str) -> Option<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own.lines().find_map(|l| {
        let mut it = l.splitn(3, ':');
        let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
        ctrls.split(',').any(|c| c == controller).then(|| path.to_string())
    })?;
    let mi = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    for l in mi.lines() {
        let (pre, post) = l.split_once(" - ")?;
        let mut post = post.split(' ');
        if post.next() != Some("cgroup") {
            continue;
        }
        let opts = post.nth(1).unwrap_or("");
        if !opts.split(',').any(|o| o == controller) {
            continue;
        }
        let f: Vec<&str> = pre.split(' ').collect();
        let (root, mountpoint) = (f.get(3)?, f.get(4)?);
        let rel = Path::new(&path).strip_prefix(root).ok()?;
        return Some(Path::new(mountpoint).join(rel));
    }
    None
}

/// A sandbox's cgroup; removed on drop.
#[derive(Debug)]
pub struct Cgroup {
    dir: PathBuf,
}

/// Name prefix of sandbox cgroups: `rbuild-<pid>-<n>`.
const PREFIX: &str = "rbuild-";

impl Cgroup {
    /// A new devices cgroup beneath ours allowing only `rules`; `None` when there is no
    /// writable v1 devices controller.
    pub fn create(rules: &[DeviceRule]) -> Result<Option<Cgroup>> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let Some(parent) = v1_dir("devices") else { return Ok(None) };
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = parent.join(format!("{PREFIX}{}-{n}", std::process::id()));
        if let Err(e) = std::fs::create_dir(&dir) {
            tracing::debug!("no devices cgroup ({}: {e})", dir.display());
            return Ok(None);
        }
        let cg = Cgroup { dir };
        // One rule per write(2), on one open file each. A parent cgroup that forbids one of
        // them (nested containers) makes the whole cgroup useless: none, and no CAP_MKNOD.
        let write = || -> std::io::Result<()> {
            let allow: Vec<String> = rules.iter().map(DeviceRule::line).collect();
            for (file, lines) in [("devices.deny", vec!["a".to_string()]), ("devices.allow", allow)] {
                let mut f = std::fs::OpenOptions::new().write(true).open(cg.dir.join(file))?;
                for line in lines {
                    std::io::Write::write_all(&mut f, line.as_bytes())?;
                }
            }
            Ok(())
        };
        if let Err(e) = write() {
            tracing::debug!("devices cgroup {}: writing the rules: {e}", cg.dir.display());
            return Ok(None);
        }
        Ok(Some(cg))
    }

    /// `cgroup.procs`, open for writing: a process writing `0` to it joins the cgroup.
    pub fn procs(&self) -> Result<std::fs::File> {
        let p = self.dir.join("cgroup.procs");
        std::fs::OpenOptions::new().write(true).open(&p).map_err(Error::io(&p))
    }

    /// The cgroup's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Remove an empty cgroup directory, waiting (a bounded while) for exiting processes to
/// leave it.
fn remove(dir: &Path) -> bool {
    for _ in 0..2000 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => std::thread::sleep(std::time::Duration::from_millis(1)),
            Err(_) => return false,
        }
    }
    false
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if !remove(&self.dir) {
            tracing::debug!("cgroup {} left behind (still busy)", self.dir.display());
        }
    }
}

/// Remove sandbox cgroups left by rbuild processes that were killed.
pub fn cleanup_stale() {
    let Some(parent) = v1_dir("devices") else { return };
    let Ok(rd) = std::fs::read_dir(&parent) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(PREFIX).and_then(|r| r.split_once('-')).and_then(|(p, _)| p.parse().ok())
        else {
            continue;
        };
        if pid != std::process::id() as i32 && !crate::util::pid_alive(pid) {
            let _ = std::fs::remove_dir(e.path());
        }
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
}
