//! USER resolution against the image's own /etc/passwd and /etc/group, the way runc does
//! it: names or numeric ids, `user:group`, supplementary groups from /etc/group.

use crate::error::{Error, Result};

/// Who the command runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Supplementary gids.
    pub groups: Vec<u32>,
    /// Home directory (from passwd, else `/`).
    pub home: String,
}

struct Passwd<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct Group<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn passwd(text: &str) -> Vec<Passwd<'_>> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4).then(|| {
                Some(Passwd {
                    name: f[0],
                    uid: f[2].parse().ok()?,
                    gid: f[3].parse().ok()?,
                    home: f.get(5).copied().unwrap_or(""),
                })
            })?
        })
        .collect()
}

fn group(text: &str) -> Vec<Group<'_>> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3).then(|| {
                Some(Group {
                    name: f[0],
                    gid: f[2].parse().ok()?,
                    members: f
                        .get(3)
                        .map(|m| m.split(',').map(str::trim).filter(|s| !s.is_empty()).collect())
                        .unwrap_or_default(),
                })
            })?
        })
        .collect()
}

/// Resolve `spec` (`""`, `name`, `uid`, `name:group`, `uid:gid`…) with the contents of
/// /etc/passwd and /etc/group (empty when the image has none). An unknown name is an error
/// naming it; numeric ids need no entry.
pub fn resolve(spec: &str, passwd_text: &str, group_text: &str) -> Result<ExecUser> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let users = passwd(passwd_text);
    let groups = group(group_text);
    let user = if user.is_empty() { "0" } else { user };
    let entry = users
        .iter()
        .find(|p| p.name == user)
        .or_else(|| user.parse::<u32>().ok().and_then(|id| users.iter().find(|p| p.uid == id)));
    let (uid, mut gid, home, name) = match (entry, user.parse::<u32>()) {
        (Some(p), _) => (p.uid, p.gid, p.home.to_string(), Some(p.name)),
        (None, Ok(id)) => (id, 0, String::new(), None),
        (None, Err(_)) => {
            return Err(Error::User(format!("unable to find user {user}: no matching entries in passwd file")));
        }
    };
    let mut supplementary = Vec::new();
    match grp {
        Some(g) if !g.is_empty() => {
            gid = match groups.iter().find(|e| e.name == g) {
                Some(e) => e.gid,
                None => g
                    .parse::<u32>()
                    .map_err(|_| Error::User(format!("unable to find group {g}: no matching entries in group file")))?,
            };
        }
        _ => {
            if let Some(n) = name {
                supplementary = groups.iter().filter(|e| e.members.contains(&n)).map(|e| e.gid).collect();
            }
        }
    }
    supplementary.retain(|g| *g != gid);
    supplementary.dedup();
    let mut all = vec![gid];
    all.extend(supplementary);
    Ok(ExecUser { uid, gid, groups: all, home: if home.is_empty() { "/".into() } else { home } })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:App:/home/app:/bin/sh\n# comment\nweird\n";
    const GROUP: &str = "root:x:0:\napp:x:1000:\nwheel:x:10:app,other\ndocker:x:999:app\n";

    #[test]
    fn names_ids_and_groups() {
        assert_eq!(
            resolve("", PASSWD, GROUP).unwrap(),
            ExecUser { uid: 0, gid: 0, groups: vec![0], home: "/root".into() }
        );
        assert_eq!(
            resolve("app", PASSWD, GROUP).unwrap(),
            ExecUser { uid: 1000, gid: 1000, groups: vec![1000, 10, 999], home: "/home/app".into() }
        );
        assert_eq!(resolve("1000", PASSWD, GROUP).unwrap().home, "/home/app");
        assert_eq!(
            resolve("app:wheel", PASSWD, GROUP).unwrap(),
            ExecUser { uid: 1000, gid: 10, groups: vec![10], home: "/home/app".into() }
        );
        assert_eq!(
            resolve("4242:77", PASSWD, GROUP).unwrap(),
            ExecUser { uid: 4242, gid: 77, groups: vec![77], home: "/".into() }
        );
        assert_eq!(resolve("4242", "", "").unwrap(), ExecUser { uid: 4242, gid: 0, groups: vec![0], home: "/".into() });
    }

    #[test]
    fn unknown_names_are_errors_naming_them() {
        let e = resolve("nobody", PASSWD, GROUP).unwrap_err().to_string();
        assert!(e.contains("unable to find user nobody"), "{e}");
        let e = resolve("app:staff", PASSWD, GROUP).unwrap_err().to_string();
        assert!(e.contains("unable to find group staff"), "{e}");
    }
}
