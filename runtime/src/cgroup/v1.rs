//! cgroup v1: one directory per hierarchy (memory, cpu, cpuacct, cpuset, pids, freezer,
//! devices; co-mounted controllers such as `cpu,cpuacct` share one).

use super::{DeviceRule, Limits, Manager, Stats, keyed, poll, read, read_num, read_procs, set, write};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A v1 cgroup: each controller with its directory.
#[derive(Debug, Clone)]
pub struct V1 {
    dirs: Vec<(String, PathBuf)>,
}

/// The file that tells a v1 directory's controller (for [`V1::open`]).
const MARKERS: &[(&str, &str)] = &[
    ("memory", "memory.limit_in_bytes"),
    ("cpu", "cpu.shares"),
    ("cpuacct", "cpuacct.usage"),
    ("cpuset", "cpuset.cpus"),
    ("pids", "pids.max"),
    ("freezer", "freezer.state"),
    ("devices", "devices.list"),
];

impl V1 {
    /// Make `name` beneath each of `parents` (controller, our directory there). Returns the
    /// cgroup (`None` when no directory could be made) and the controllers that failed, with
    /// why.
    pub fn create(parents: &[(String, PathBuf)], name: &str) -> (Option<V1>, super::Missing) {
        let mut dirs: Vec<(String, PathBuf)> = Vec::new();
        let mut failed = Vec::new();
        for ctrl in super::V1_CONTROLLERS {
            let Some((_, parent)) = parents.iter().find(|(c, _)| c == ctrl) else {
                failed.push((*ctrl, "not mounted".to_string()));
                continue;
            };
            let dir = parent.join(name);
            if !dirs.iter().any(|(_, d)| *d == dir) {
                match std::fs::create_dir(&dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => {
                        failed.push((*ctrl, format!("cannot make {}: {e}", dir.display())));
                        continue;
                    }
                }
                if *ctrl == "cpuset" {
                    // A new cpuset has no CPUs and no memory nodes: nothing could join it.
                    let ok = ["cpuset.cpus", "cpuset.mems"].iter().all(|f| {
                        let v = read(parent, f).unwrap_or_default();
                        v.is_empty() || write(&dir, f, &v).is_ok()
                    });
                    if !ok {
                        let _ = std::fs::remove_dir(&dir);
                        failed.push((*ctrl, format!("cannot copy the parent's cpus and mems into {}", dir.display())));
                        continue;
                    }
                }
            }
            dirs.push((ctrl.to_string(), dir));
        }
        ((!dirs.is_empty()).then_some(V1 { dirs }), failed)
    }

    /// An existing cgroup from its directories; each one's controllers told by its files.
    pub fn open(dirs: &[PathBuf]) -> V1 {
        let mut out = Vec::new();
        for d in dirs {
            for (ctrl, marker) in MARKERS {
                if d.join(marker).exists() {
                    out.push((ctrl.to_string(), d.clone()));
                }
            }
        }
        V1 { dirs: out }
    }

    /// The directory of `ctrl`, if it has one.
    fn dir(&self, ctrl: &str) -> Option<&Path> {
        self.dirs.iter().find(|(c, _)| c == ctrl).map(|(_, d)| d.as_path())
    }

    fn memory(&self, d: &Path, l: &Limits) -> Result<()> {
        if let Some(m) = l.memory {
            let swap = l.effective_swap();
            let has_memsw = d.join("memory.memsw.limit_in_bytes").exists();
            // memory <= memory+swap at every moment: raising, memsw goes first.
            let cur_memsw = read(d, "memory.memsw.limit_in_bytes").and_then(|s| s.parse::<i64>().ok());
            let memsw_first = has_memsw && swap.is_some_and(|s| s >= 0) && cur_memsw.is_some_and(|c| c < m as i64);
            let set_memsw = || -> Result<()> {
                if let (true, Some(s)) = (has_memsw, swap) {
                    set(d, "memory.memsw.limit_in_bytes", &s.to_string(), "--memory-swap")?;
                }
                Ok(())
            };
            if memsw_first {
                set_memsw()?;
                set(d, "memory.limit_in_bytes", &m.to_string(), "--memory")?;
            } else {
                set(d, "memory.limit_in_bytes", &m.to_string(), "--memory")?;
                set_memsw()?;
            }
        } else if let Some(s) = l.memory_swap.filter(|s| *s >= 0) {
            if d.join("memory.memsw.limit_in_bytes").exists() {
                set(d, "memory.memsw.limit_in_bytes", &s.to_string(), "--memory-swap")?;
            }
        }
        if let Some(r) = l.memory_reservation {
            set(d, "memory.soft_limit_in_bytes", &r.to_string(), "--memory-reservation")?;
        }
        Ok(())
    }
}

/// The CFS quota for `nano_cpus` over a 100 ms period, in µs (at least the kernel's 1 ms).
pub fn cfs_quota(nano_cpus: u64) -> u64 {
    (nano_cpus / 10_000).max(1000)
}

impl Manager for V1 {
    fn dirs(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for (_, d) in &self.dirs {
            if !out.contains(d) {
                out.push(d.clone());
            }
        }
        out
    }

    fn apply(&self, l: &Limits, missing: &mut Vec<&'static str>) -> Result<()> {
        let mut no_swap = false;
        let mut need = |ctrl: &'static str, on: bool| -> Option<&Path> {
            if !on {
                return None;
            }
            let d = self.dir(ctrl);
            if d.is_none() && !missing.contains(&ctrl) {
                missing.push(ctrl);
            }
            d
        };
        if let Some(d) = need("memory", l.memory.is_some() || l.memory_swap.is_some() || l.memory_reservation.is_some())
        {
            self.memory(d, l)?;
            no_swap = l.memory_swap.is_some_and(|s| s >= 0) && !d.join("memory.memsw.limit_in_bytes").exists();
        }
        if let Some(d) = need("cpu", l.nano_cpus.is_some() || l.cpu_shares.is_some()) {
            if let Some(n) = l.nano_cpus {
                set(d, "cpu.cfs_period_us", "100000", "--cpus")?;
                set(d, "cpu.cfs_quota_us", &cfs_quota(n).to_string(), "--cpus")?;
            }
            if let Some(s) = l.cpu_shares {
                set(d, "cpu.shares", &s.to_string(), "--cpu-shares")?;
            }
        }
        if let Some(d) = need("cpuset", l.cpuset_cpus.is_some()) {
            let cpus = l.cpuset_cpus.as_deref().unwrap_or_default();
            set(d, "cpuset.cpus", cpus, "--cpuset-cpus").map_err(|e| {
                let avail = d.parent().and_then(|p| read(p, "cpuset.cpus")).unwrap_or_default();
                match e {
                    Error::Cgroup(m) => Error::Cgroup(format!("{m} (available CPUs: {avail})")),
                    e => e,
                }
            })?;
        }
        if let Some(d) = need("pids", l.pids_limit.is_some()) {
            set(d, "pids.max", &l.pids_limit.unwrap_or_default().to_string(), "--pids-limit")?;
        }
        if no_swap {
            missing.push("swap");
        }
        Ok(())
    }

    fn set_devices(&self, rules: &[DeviceRule]) -> bool {
        let Some(d) = self.dir("devices") else { return false };
        // One rule per write(2). A parent cgroup that forbids one of them (nested
        // containers) makes the rules useless: none, and the caller takes CAP_MKNOD away.
        let allow: Vec<String> = rules.iter().map(DeviceRule::line).collect();
        let r = (|| -> std::io::Result<()> {
            write(d, "devices.deny", "a")?;
            let mut f = std::fs::OpenOptions::new().write(true).open(d.join("devices.allow"))?;
            for line in allow {
                std::io::Write::write_all(&mut f, line.as_bytes())?;
            }
            Ok(())
        })();
        if let Err(e) = &r {
            tracing::debug!("devices cgroup {}: writing the rules: {e}", d.display());
        }
        r.is_ok()
    }

    fn freeze(&self, frozen: bool) -> Result<()> {
        let Some(d) = self.dir("freezer") else {
            return Err(Error::Cgroup("no freezer controller: cannot pause or unpause".into()));
        };
        let want = if frozen { "FROZEN" } else { "THAWED" };
        let ok = poll(Duration::from_secs(10), || {
            // Writing FROZEN again nudges tasks that were busy the first time.
            if read(d, "freezer.state").as_deref() == Some(want) {
                return true;
            }
            let _ = write(d, "freezer.state", want);
            read(d, "freezer.state").as_deref() == Some(want)
        });
        if !ok {
            return Err(Error::Cgroup(format!("{}: still not {want}", d.join("freezer.state").display())));
        }
        Ok(())
    }

    fn frozen(&self) -> Option<bool> {
        let d = self.dir("freezer")?;
        Some(read(d, "freezer.state")? != "THAWED")
    }

    fn stats(&self) -> Stats {
        let mut s = Stats::default();
        if let Some(d) = self.dir("cpuacct") {
            s.cpu_usage_ns = read_num(d, "cpuacct.usage").unwrap_or(0);
        }
        if let Some(d) = self.dir("memory") {
            s.memory_usage = read_num(d, "memory.usage_in_bytes").unwrap_or(0);
            s.memory_limit = read_num(d, "memory.limit_in_bytes");
            s.inactive_file = keyed(d, "memory.stat", "total_inactive_file").unwrap_or(0);
        }
        if let Some(d) = self.dir("pids") {
            s.pids = read_num(d, "pids.current").unwrap_or(0);
            s.pids_limit = read_num(d, "pids.max");
        }
        s
    }

    fn oom_kills(&self) -> Option<u64> {
        keyed(self.dir("memory")?, "memory.oom_control", "oom_kill")
    }

    fn procs(&self) -> Vec<i32> {
        let mut all: Vec<i32> = self.dirs().iter().flat_map(|d| read_procs(d)).collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(root: &Path) -> Vec<(String, PathBuf)> {
        let mut parents = Vec::new();
        for c in super::super::V1_CONTROLLERS {
            let p = root.join(c);
            std::fs::create_dir_all(&p).unwrap();
            parents.push((c.to_string(), p));
        }
        std::fs::write(root.join("cpuset/cpuset.cpus"), "0-1\n").unwrap();
        std::fs::write(root.join("cpuset/cpuset.mems"), "0\n").unwrap();
        parents
    }

    fn touch(dir: &Path, files: &[&str]) {
        for f in files {
            std::fs::write(dir.join(f), "").unwrap();
        }
    }

    #[test]
    fn writes_each_limit_to_its_hierarchy() {
        let t = tempfile::tempdir().unwrap();
        let (cg, failed) = V1::create(&fake(t.path()), "rbuild-x");
        assert!(failed.is_empty(), "{failed:?}");
        let cg = cg.unwrap();
        assert_eq!(std::fs::read_to_string(t.path().join("cpuset/rbuild-x/cpuset.mems")).unwrap(), "0");
        let m = t.path().join("memory/rbuild-x");
        touch(&m, &["memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.soft_limit_in_bytes"]);
        touch(&t.path().join("cpu/rbuild-x"), &["cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.shares"]);
        touch(&t.path().join("pids/rbuild-x"), &["pids.max"]);
        let l = Limits {
            memory: Some(16 << 20),
            memory_reservation: Some(8 << 20),
            nano_cpus: Some(1_500_000_000),
            cpu_shares: Some(512),
            cpuset_cpus: Some("1".into()),
            pids_limit: Some(64),
            ..Default::default()
        };
        let mut missing = Vec::new();
        cg.apply(&l, &mut missing).unwrap();
        assert!(missing.is_empty());
        let r = |p: &str| std::fs::read_to_string(t.path().join(p)).unwrap();
        assert_eq!(r("memory/rbuild-x/memory.limit_in_bytes"), (16u64 << 20).to_string());
        assert_eq!(r("memory/rbuild-x/memory.memsw.limit_in_bytes"), (32u64 << 20).to_string());
        assert_eq!(r("memory/rbuild-x/memory.soft_limit_in_bytes"), (8u64 << 20).to_string());
        assert_eq!(r("cpu/rbuild-x/cpu.cfs_quota_us"), "150000");
        assert_eq!(r("cpu/rbuild-x/cpu.cfs_period_us"), "100000");
        assert_eq!(r("cpu/rbuild-x/cpu.shares"), "512");
        assert_eq!(r("cpuset/rbuild-x/cpuset.cpus"), "1");
        assert_eq!(r("pids/rbuild-x/pids.max"), "64");
        // Reopened from its directories, it knows its controllers by their files.
        let again = V1::open(&cg.dirs());
        assert!(again.dir("memory").is_some() && again.dir("pids").is_some());
    }

    #[test]
    fn a_missing_hierarchy_is_named() {
        let t = tempfile::tempdir().unwrap();
        let parents: Vec<_> = fake(t.path()).into_iter().filter(|(c, _)| c != "pids").collect();
        let (cg, failed) = V1::create(&parents, "rbuild-y");
        assert!(failed.iter().any(|(c, _)| *c == "pids"));
        let mut missing = Vec::new();
        cg.unwrap().apply(&Limits { pids_limit: Some(10), ..Default::default() }, &mut missing).unwrap();
        assert_eq!(missing, ["pids"]);
    }

    #[test]
    fn oom_and_stats_are_read_from_the_files() {
        let t = tempfile::tempdir().unwrap();
        let (cg, _) = V1::create(&fake(t.path()), "rbuild-z");
        let cg = cg.unwrap();
        let m = t.path().join("memory/rbuild-z");
        std::fs::write(m.join("memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n").unwrap();
        std::fs::write(m.join("memory.usage_in_bytes"), "1000\n").unwrap();
        std::fs::write(m.join("memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        std::fs::write(m.join("memory.stat"), "cache 5\ntotal_inactive_file 300\n").unwrap();
        std::fs::write(t.path().join("pids/rbuild-z/pids.current"), "3\n").unwrap();
        std::fs::write(t.path().join("pids/rbuild-z/pids.max"), "max\n").unwrap();
        std::fs::write(t.path().join("cpuacct/rbuild-z/cpuacct.usage"), "123456\n").unwrap();
        assert_eq!(cg.oom_kills(), Some(1));
        let s = cg.stats();
        assert_eq!(
            s,
            Stats {
                cpu_usage_ns: 123456,
                memory_usage: 1000,
                memory_limit: None,
                inactive_file: 300,
                pids: 3,
                pids_limit: None
            }
        );
    }
}
