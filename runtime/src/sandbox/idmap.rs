//! The id maps of a rootless sandbox's user namespace, the way rootless podman/buildah
//! make them: root inside is the caller outside; with a range for the caller in
//! `/etc/subuid` and `/etc/subgid` and the setuid helpers `newuidmap`/`newgidmap`
//! (package `uidmap`), ids 1..=N inside are the subordinate ids outside, so a `USER` other
//! than root works. Without them, only root (one id) is mapped.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A run of ids: `inside..inside+count` in the namespace are `outside..outside+count` on
/// the host (one uid_map/gid_map line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    /// First id in the namespace.
    pub inside: u32,
    /// First id on the host.
    pub outside: u32,
    /// How many ids.
    pub count: u32,
}

/// The uid and gid maps of a rootless user namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    /// uid_map lines.
    pub uids: Vec<IdRange>,
    /// gid_map lines.
    pub gids: Vec<IdRange>,
    /// The caller's user name (or uid when it has no passwd entry), for messages.
    pub user: String,
    /// The helpers that write the subordinate maps (`newuidmap`, `newgidmap`); `None`
    /// when only the caller's own ids are mapped (the namespace writes those itself).
    pub helpers: Option<(PathBuf, PathBuf)>,
    /// Why only one id is mapped, when it is (for the `USER` error).
    pub single_reason: Option<String>,
}

/// Where the helpers are looked for (their usual places; `PATH` is not trusted for
/// setuid programs).
const HELPER_DIRS: &[&str] = &["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"];

/// The `start:count` ranges of `name` (or numeric `id`) in an /etc/subuid-format text.
pub fn subordinate_ranges(text: &str, name: &str, id: u32) -> Vec<(u32, u32)> {
    let id = id.to_string();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split(':');
            let (who, start, count) = (f.next()?, f.next()?.trim(), f.next()?.trim());
            (who == name || who == id).then_some(())?;
            let (start, count) = (start.parse::<u32>().ok()?, count.parse::<u32>().ok()?);
            (count > 0 && start.checked_add(count - 1).is_some()).then_some((start, count))
        })
        .collect()
}

/// 0 → `own`, then the subordinate ranges one after another from 1 (at most 340 lines,
/// the kernel's limit).
fn ranges(own: u32, sub: &[(u32, u32)]) -> Vec<IdRange> {
    let mut out = vec![IdRange { inside: 0, outside: own, count: 1 }];
    let mut next: u32 = 1;
    for &(start, count) in sub.iter().take(339) {
        let count = count.min(u32::MAX - next);
        if count == 0 {
            break;
        }
        out.push(IdRange { inside: next, outside: start, count });
        next += count;
    }
    out
}

fn find_helper(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    HELPER_DIRS
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

impl IdMap {
    /// Root inside is `uid`/`gid` outside, nothing else is mapped.
    pub fn single(uid: u32, gid: u32, user: &str, reason: &str) -> IdMap {
        IdMap {
            uids: ranges(uid, &[]),
            gids: ranges(gid, &[]),
            user: user.to_string(),
            helpers: None,
            single_reason: Some(reason.to_string()),
        }
    }

    /// The maps for a caller with these ids, from the texts of /etc/subuid and
    /// /etc/subgid and the helpers found (pure: what [`IdMap::for_caller`] decides with).
    pub fn from_parts(
        uid: u32,
        gid: u32,
        user: &str,
        subuid: &str,
        subgid: &str,
        helpers: Option<(PathBuf, PathBuf)>,
    ) -> IdMap {
        let (su, sg) = (subordinate_ranges(subuid, user, uid), subordinate_ranges(subgid, user, uid));
        let reason = match (&helpers, su.is_empty(), sg.is_empty()) {
            (_, true, _) | (_, _, true) => Some(format!("{user} has no range in /etc/subuid and /etc/subgid")),
            (None, _, _) => Some("newuidmap/newgidmap (package uidmap) are not installed".to_string()),
            _ => None,
        };
        if let Some(r) = reason {
            return IdMap::single(uid, gid, user, &r);
        }
        IdMap { uids: ranges(uid, &su), gids: ranges(gid, &sg), user: user.to_string(), helpers, single_reason: None }
    }

    /// The maps for a rootless caller with these ids: subordinate ranges when it has
    /// some and the helpers are installed, else the single id.
    pub fn for_caller(uid: u32, gid: u32) -> IdMap {
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| uid.to_string());
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let helpers = find_helper("newuidmap").zip(find_helper("newgidmap"));
        IdMap::from_parts(uid, gid, &user, &read("/etc/subuid"), &read("/etc/subgid"), helpers)
    }

    /// Does the map cover more than root (written by the helpers from the parent)?
    pub fn is_multi(&self) -> bool {
        self.helpers.is_some()
    }

    /// The caller's own uid and gid (what root inside is).
    pub fn caller(&self) -> (u32, u32) {
        (self.uids[0].outside, self.gids[0].outside)
    }

    /// Is uid `id` (in the namespace) mapped?
    pub fn maps_uid(&self, id: u32) -> bool {
        inside_to_outside(&self.uids, id).is_some()
    }

    /// Is gid `id` (in the namespace) mapped?
    pub fn maps_gid(&self, id: u32) -> bool {
        inside_to_outside(&self.gids, id).is_some()
    }

    /// The namespace uid of host uid `id`, if mapped.
    pub fn uid_inside(&self, id: u32) -> Option<u32> {
        outside_to_inside(&self.uids, id)
    }

    /// The namespace gid of host gid `id`, if mapped.
    pub fn gid_inside(&self, id: u32) -> Option<u32> {
        outside_to_inside(&self.gids, id)
    }

    /// The error for a `USER` whose uid or gid is not mapped here, saying what to do.
    pub fn unmapped_error(&self, what: &str, id: u32) -> Error {
        let fix = match &self.single_reason {
            Some(reason) => format!(
                "rootless, only root is mapped ({reason}): add a range for {u} to /etc/subuid and /etc/subgid \
                 (e.g. `{u}:100000:65536`) and install uidmap (newuidmap/newgidmap), or run as root",
                u = self.user
            ),
            None => format!(
                "rootless, the user namespace maps {what}s 0-{} only: widen the ranges for {} in /etc/subuid and /etc/subgid",
                self.uids.iter().map(|r| r.inside as u64 + r.count as u64).max().unwrap_or(1) - 1,
                self.user
            ),
        };
        Error::User(format!("USER {what} {id} is not mapped in the user namespace: {fix}"))
    }

    /// Write the maps of process `pid` (which has unshared its user namespace) with the
    /// helpers.
    pub fn write_with_helpers(&self, pid: i32) -> Result<()> {
        let Some((nu, ng)) = &self.helpers else {
            return Err(Error::Sandbox("no newuidmap/newgidmap to write the id maps with".into()));
        };
        for (helper, map) in [(nu, &self.uids), (ng, &self.gids)] {
            let mut cmd = std::process::Command::new(helper);
            cmd.arg(pid.to_string());
            for r in map {
                cmd.args([r.inside.to_string(), r.outside.to_string(), r.count.to_string()]);
            }
            let o = cmd
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| Error::Sandbox(format!("running {}: {e}", helper.display())))?;
            if !o.status.success() {
                return Err(Error::Sandbox(format!(
                    "{} {pid} failed ({}): {} (check the ranges for {} in /etc/subuid and /etc/subgid)",
                    helper.display(),
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim(),
                    self.user
                )));
            }
        }
        Ok(())
    }

    /// The uid_map and gid_map texts (what the single map writes itself).
    pub fn map_texts(&self) -> (String, String) {
        let text = |m: &[IdRange]| m.iter().map(|r| format!("{} {} {}\n", r.inside, r.outside, r.count)).collect();
        (text(&self.uids), text(&self.gids))
    }
}

fn inside_to_outside(m: &[IdRange], id: u32) -> Option<u32> {
    m.iter().find(|r| id >= r.inside && id - r.inside < r.count).map(|r| r.outside + (id - r.inside))
}

fn outside_to_inside(m: &[IdRange], id: u32) -> Option<u32> {
    m.iter().find(|r| id >= r.outside && id - r.outside < r.count).map(|r| r.inside + (id - r.outside))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "# comment\nother:100000:65536\nalice:200000:65536\n1001:300000:10\nbad:x:1\nzero:1:0\n";

    fn helpers() -> Option<(PathBuf, PathBuf)> {
        Some(("/usr/bin/newuidmap".into(), "/usr/bin/newgidmap".into()))
    }

    #[test]
    fn finds_ranges_by_name_or_uid() {
        assert_eq!(subordinate_ranges(SUB, "alice", 1000), [(200000, 65536)]);
        assert_eq!(subordinate_ranges(SUB, "bob", 1001), [(300000, 10)]);
        assert!(subordinate_ranges(SUB, "zero", 5).is_empty());
        assert!(subordinate_ranges(SUB, "bad", 5).is_empty());
    }

    #[test]
    fn maps_root_to_the_caller_and_the_rest_to_the_range() {
        let m = IdMap::from_parts(1000, 1000, "alice", SUB, SUB, helpers());
        assert!(m.is_multi());
        assert_eq!(
            m.uids,
            [IdRange { inside: 0, outside: 1000, count: 1 }, IdRange { inside: 1, outside: 200000, count: 65536 }]
        );
        assert_eq!(m.uid_inside(1000), Some(0));
        assert_eq!(m.uid_inside(200999), Some(1000));
        assert_eq!(m.gid_inside(200000), Some(1));
        assert_eq!(m.uid_inside(5), None);
        assert!(m.maps_uid(65536) && !m.maps_uid(65537));
        assert_eq!(m.map_texts().0, "0 1000 1\n1 200000 65536\n");
    }

    #[test]
    fn single_without_ranges_or_helpers_says_what_to_do() {
        let m = IdMap::from_parts(1000, 1000, "alice", SUB, SUB, None);
        assert!(!m.is_multi());
        assert_eq!(m.map_texts(), ("0 1000 1\n".into(), "0 1000 1\n".into()));
        let e = m.unmapped_error("uid", 1000).to_string();
        assert!(e.contains("add a range for alice to /etc/subuid and /etc/subgid"), "{e}");
        assert!(e.contains("install uidmap"), "{e}");
        let m = IdMap::from_parts(1000, 1000, "carol", SUB, SUB, helpers());
        assert!(!m.is_multi());
        assert!(m.maps_uid(0) && !m.maps_uid(1));
        assert!(m.single_reason.as_deref().unwrap().contains("carol has no range"));
    }
}
