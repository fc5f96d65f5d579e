//! The unprivileged user the rootless tests run as (`rbuildtest`, uid 23456, with a range of
//! 65536 subordinate ids from 200000), made when missing. Shared by tests/rootless_cli.rs and
//! runtime/tests/rootless.rs (included by path): on a fresh machine several tests, in one
//! binary or in several at once, get here together, so the user and its ranges are made
//! under one machine-wide lock and checked again once it is held.

use std::path::PathBuf;
use std::process::Command;

/// The test user's name, as `useradd` is told (an existing user with the uid keeps its own).
pub const USER: &str = "rbuildtest";
/// The test user's uid.
pub const UID: u32 = 23456;
/// The first subordinate id of its range in /etc/subuid and /etc/subgid.
pub const SUB_START: u32 = 200000;

/// An exclusive flock on a file every test process of the machine shares; held while the
/// returned file is open.
fn machine_lock() -> std::fs::File {
    use std::os::fd::AsRawFd;
    let open = |p: PathBuf| std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(p);
    let f = open("/run/lock/rbuild-test-user.lock".into())
        .or_else(|_| open(std::env::temp_dir().join("rbuild-test-user.lock")))
        .unwrap();
    // SAFETY: flock on a descriptor we own; each open() is its own lock holder.
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0, "flock");
    f
}

/// Add `line`'s user to an /etc/subuid-format file unless it has a range there already.
fn ensure_subid(file: &str, line: &str) {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let user = line.split(':').next().unwrap();
    if text.lines().any(|l| l.split(':').next() == Some(user)) {
        return;
    }
    let sep = if text.is_empty() || text.ends_with('\n') { "" } else { "\n" };
    std::fs::write(file, format!("{text}{sep}{line}\n")).unwrap();
}

/// The test user's name and gid, the user and its ranges made first when missing (needs root).
pub fn ensure() -> (String, u32) {
    let _lock = machine_lock();
    let id = |flag: &str| Command::new("id").args([flag, &UID.to_string()]).output().unwrap();
    if !id("-un").status.success() {
        let o = Command::new("useradd")
            .args(["-M", "-u", &UID.to_string(), "-U", "-s", "/usr/sbin/nologin", USER])
            .output()
            .unwrap();
        assert!(o.status.success(), "useradd: {}", String::from_utf8_lossy(&o.stderr));
    }
    let name = String::from_utf8(id("-un").stdout).unwrap().trim().to_string();
    let gid: u32 = String::from_utf8(id("-g").stdout).unwrap().trim().parse().unwrap();
    for f in ["/etc/subuid", "/etc/subgid"] {
        ensure_subid(f, &format!("{name}:{SUB_START}:65536"));
    }
    (name, gid)
}
