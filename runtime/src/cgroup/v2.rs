//! cgroup v2: one directory in the unified hierarchy, with the controllers our own
//! cgroup delegates (`cgroup.subtree_control`).

use super::{DeviceRule, Limits, Manager, Stats, keyed, poll, read, read_num, read_procs, set, write};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A v2 cgroup.
#[derive(Debug, Clone)]
pub struct V2 {
    dir: PathBuf,
}

/// The controllers rbuild enables for its cgroups.
const CONTROLLERS: &[&str] = &["memory", "pids", "cpu", "cpuset"];

/// docker's (runc's) conversion of v1 cpu.shares (2..262144) to v2 cpu.weight (1..10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

impl V2 {
    /// Enable our controllers in `parent` (our own cgroup) and make `name` beneath it.
    /// Returns the cgroup and the controllers it will not have, with why; Err (why) when
    /// the directory could not be made.
    pub fn create(parent: &Path, name: &str) -> std::result::Result<(V2, super::Missing), String> {
        let available = read(parent, "cgroup.controllers").unwrap_or_default();
        let enabled = read(parent, "cgroup.subtree_control").unwrap_or_default();
        let mut missing = Vec::new();
        for c in CONTROLLERS {
            if enabled.split_whitespace().any(|e| e == *c) {
                continue;
            }
            if !available.split_whitespace().any(|a| a == *c) {
                missing.push((*c, format!("not delegated to {}", parent.display())));
                continue;
            }
            if let Err(e) = write(parent, "cgroup.subtree_control", &format!("+{c}")) {
                let hint = if e.raw_os_error() == Some(libc::EBUSY) {
                    " (a cgroup holding processes cannot hand controllers down: run rbuild in a cgroup of its own)"
                } else {
                    ""
                };
                missing
                    .push((*c, format!("cannot enable it in {}/cgroup.subtree_control: {e}{hint}", parent.display())));
            }
        }
        let dir = parent.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot make {}: {e}", dir.display())),
        }
        Ok((V2 { dir }, missing))
    }

    /// An existing cgroup.
    pub fn open(dir: &Path) -> V2 {
        V2 { dir: dir.to_path_buf() }
    }

    /// Is `ctrl` enabled here (its files exist)?
    fn has(&self, file: &str) -> bool {
        self.dir.join(file).exists()
    }
}

impl Manager for V2 {
    fn dirs(&self) -> Vec<PathBuf> {
        vec![self.dir.clone()]
    }

    fn apply(&self, l: &Limits, missing: &mut Vec<&'static str>) -> Result<()> {
        let d = &self.dir;
        let mut no_swap = false;
        let mut need = |ctrl: &'static str, file: &str, on: bool| -> bool {
            if !on {
                return false;
            }
            let ok = self.has(file);
            if !ok && !missing.contains(&ctrl) {
                missing.push(ctrl);
            }
            ok
        };
        if need("memory", "memory.max", l.memory.is_some() || l.memory_reservation.is_some()) {
            if let Some(m) = l.memory {
                set(d, "memory.max", &m.to_string(), "--memory")?;
                no_swap = l.memory_swap.is_some_and(|s| s >= 0) && !self.has("memory.swap.max");
                if let Some(s) = l.effective_swap() {
                    if self.has("memory.swap.max") {
                        let v = if s < 0 { "max".to_string() } else { (s as u64).saturating_sub(m).to_string() };
                        set(d, "memory.swap.max", &v, "--memory-swap")?;
                    }
                }
            }
            if let Some(r) = l.memory_reservation {
                set(d, "memory.low", &r.to_string(), "--memory-reservation")?;
            }
        }
        if need("cpu", "cpu.max", l.nano_cpus.is_some() || l.cpu_shares.is_some()) {
            if let Some(n) = l.nano_cpus {
                set(d, "cpu.max", &format!("{} 100000", super::v1::cfs_quota(n)), "--cpus")?;
            }
            if let Some(s) = l.cpu_shares {
                set(d, "cpu.weight", &shares_to_weight(s).to_string(), "--cpu-shares")?;
            }
        }
        if need("cpuset", "cpuset.cpus", l.cpuset_cpus.is_some()) {
            let cpus = l.cpuset_cpus.as_deref().unwrap_or_default();
            set(d, "cpuset.cpus", cpus, "--cpuset-cpus").map_err(|e| {
                let avail = read(d, "cpuset.cpus.effective").unwrap_or_default();
                match e {
                    Error::Cgroup(m) => Error::Cgroup(format!("{m} (available CPUs: {avail})")),
                    e => e,
                }
            })?;
        }
        if need("pids", "pids.max", l.pids_limit.is_some()) {
            set(d, "pids.max", &l.pids_limit.unwrap_or_default().to_string(), "--pids-limit")?;
        }
        if no_swap {
            missing.push("swap");
        }
        Ok(())
    }

    fn set_devices(&self, _rules: &[DeviceRule]) -> bool {
        // v2 confines devices with an eBPF program: not done; the caller drops CAP_MKNOD.
        false
    }

    fn freeze(&self, frozen: bool) -> Result<()> {
        if !self.has("cgroup.freeze") {
            return Err(Error::Cgroup(format!("{}: no cgroup.freeze (kernel older than 5.2)", self.dir.display())));
        }
        let v = if frozen { "1" } else { "0" };
        set(&self.dir, "cgroup.freeze", v, if frozen { "pause" } else { "unpause" })?;
        let want = if frozen { 1 } else { 0 };
        if !poll(Duration::from_secs(10), || keyed(&self.dir, "cgroup.events", "frozen") == Some(want)) {
            return Err(Error::Cgroup(format!(
                "{}: frozen is still not {want}",
                self.dir.join("cgroup.events").display()
            )));
        }
        Ok(())
    }

    fn frozen(&self) -> Option<bool> {
        if !self.has("cgroup.freeze") {
            return None;
        }
        Some(keyed(&self.dir, "cgroup.events", "frozen")? == 1)
    }

    fn stats(&self) -> Stats {
        let d = &self.dir;
        Stats {
            cpu_usage_ns: keyed(d, "cpu.stat", "usage_usec").unwrap_or(0).saturating_mul(1000),
            memory_usage: read_num(d, "memory.current").unwrap_or(0),
            memory_limit: read_num(d, "memory.max"),
            inactive_file: keyed(d, "memory.stat", "inactive_file").unwrap_or(0),
            pids: read_num(d, "pids.current").unwrap_or(0),
            pids_limit: read_num(d, "pids.max"),
        }
    }

    fn oom_kills(&self) -> Option<u64> {
        keyed(&self.dir, "memory.events", "oom_kill")
    }

    fn procs(&self) -> Vec<i32> {
        read_procs(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enables_controllers_and_writes_v2_files() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path();
        std::fs::write(p.join("cgroup.controllers"), "cpuset cpu io memory pids\n").unwrap();
        std::fs::write(p.join("cgroup.subtree_control"), "cpu\n").unwrap();
        let (cg, missing) = V2::create(p, "rbuild-x").unwrap();
        assert!(missing.is_empty(), "{missing:?}");
        let d = p.join("rbuild-x");
        for f in ["memory.max", "memory.swap.max", "memory.low", "cpu.max", "cpu.weight", "cpuset.cpus", "pids.max"] {
            std::fs::write(d.join(f), "").unwrap();
        }
        let l = Limits {
            memory: Some(16 << 20),
            memory_swap: Some(-1),
            memory_reservation: Some(1 << 20),
            nano_cpus: Some(500_000_000),
            cpu_shares: Some(1024),
            cpuset_cpus: Some("0".into()),
            pids_limit: Some(64),
            ..Default::default()
        };
        let mut missing = Vec::new();
        cg.apply(&l, &mut missing).unwrap();
        assert!(missing.is_empty());
        let r = |f: &str| std::fs::read_to_string(d.join(f)).unwrap();
        assert_eq!(r("memory.max"), (16u64 << 20).to_string());
        assert_eq!(r("memory.swap.max"), "max");
        assert_eq!(r("memory.low"), (1u64 << 20).to_string());
        assert_eq!(r("cpu.max"), "50000 100000");
        assert_eq!(r("cpu.weight"), "39");
        assert_eq!(r("pids.max"), "64");
        // Default swap: as much swap as memory.
        cg.apply(&Limits { memory: Some(16 << 20), ..Default::default() }, &mut missing).unwrap();
        assert_eq!(r("memory.swap.max"), (16u64 << 20).to_string());
        std::fs::write(d.join("memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n").unwrap();
        assert_eq!(cg.oom_kills(), Some(1));
    }

    #[test]
    fn undelegated_controllers_are_named() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("cgroup.controllers"), "memory\n").unwrap();
        let (cg, missing) = V2::create(t.path(), "rbuild-y").unwrap();
        assert!(missing.iter().any(|(c, why)| *c == "pids" && why.contains("not delegated")), "{missing:?}");
        let mut m = Vec::new();
        cg.apply(&Limits { pids_limit: Some(5), ..Default::default() }, &mut m).unwrap();
        assert_eq!(m, ["pids"]);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }
}
