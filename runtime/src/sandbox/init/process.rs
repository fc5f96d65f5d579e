//! The last stage: the command's environment, its executable, its credentials and
//! capabilities, then exec.

use super::user::ExecUser;
use crate::sandbox::spec::DEFAULT_PATH;
use std::ffi::CString;
use std::path::{Path, PathBuf};

/// The environment the command gets: the spec's, then PATH (Docker's default) and HOME
/// (the user's) when missing, and TERM with a tty. Later duplicates win, like Docker.
pub fn environment(env: &[String], user: &ExecUser, tty: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for kv in env {
        let key = kv.split_once('=').map(|(k, _)| k).unwrap_or(kv);
        out.retain(|e| e.split_once('=').map(|(k, _)| k).unwrap_or(e) != key);
        out.push(kv.clone());
    }
    let has = |out: &Vec<String>, k: &str| out.iter().any(|e| e.starts_with(&format!("{k}=")));
    if !has(&out, "PATH") {
        out.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    if !has(&out, "HOME") {
        out.push(format!("HOME={}", user.home));
    }
    if tty && !has(&out, "TERM") {
        out.push("TERM=xterm".into());
    }
    out
}

/// Find `arg0` in the container's PATH (the environment's, after pivot_root). `None` when
/// no executable file has that name.
pub fn find_executable(arg0: &str, env: &[String], is_exec: &dyn Fn(&Path) -> bool) -> Option<PathBuf> {
    if arg0.contains('/') {
        return Some(PathBuf::from(arg0));
    }
    let path = env.iter().rev().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH);
    path.split(':').filter(|d| !d.is_empty()).map(|d| Path::new(d).join(arg0)).find(|p| is_exec(p))
}

/// Is `p` an executable regular file (following symlinks)?
pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn last_cap() -> u32 {
    // PR_CAPBSET_READ fails with EINVAL past the last capability. (Reading
    // /proc/sys/kernel/cap_last_cap in a fresh procfs costs milliseconds.)
    (0..64u32)
        // SAFETY: prctl with integer arguments.
        .take_while(|c| unsafe { libc::prctl(libc::PR_CAPBSET_READ, *c as libc::c_ulong, 0, 0, 0) } >= 0)
        .last()
        .unwrap_or(40)
}

/// Drop every capability outside `keep` from the bounding set, then (for uid 0, whose
/// sets survive exec) from effective, permitted and inheritable.
pub fn drop_capabilities(keep: &[u32]) -> std::io::Result<()> {
    for cap in 0..=last_cap() {
        if !keep.contains(&cap) {
            // SAFETY: prctl with integer arguments.
            if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EINVAL) {
                    return Err(e);
                }
            }
        }
    }
    let mut mask = [0u32; 2];
    for c in keep.iter().filter(|c| **c < 64) {
        mask[(*c / 32) as usize] |= 1 << (c % 32);
    }
    let mut hdr = CapHeader { version: 0x2008_0522, pid: 0 };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and two data structs, as _LINUX_CAPABILITY_VERSION_3 requires.
    if unsafe { libc::syscall(libc::SYS_capget, &mut hdr as *mut CapHeader, data.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    for i in 0..2 {
        data[i].effective &= mask[i];
        data[i].permitted &= mask[i];
        data[i].inheritable = data[i].permitted;
    }
    // SAFETY: as above.
    if unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// How the command is confined (from the spec).
pub struct Confinement<'a> {
    /// Capabilities kept.
    pub caps: &'a [u32],
    /// Seccomp programs.
    pub seccomp: &'a crate::sandbox::seccomp::Programs,
    /// Set no_new_privs.
    pub no_new_privs: bool,
    /// `--ulimit`s: (RLIMIT_*, soft, hard).
    pub rlimits: &'a [(u32, u64, u64)],
}

/// Set the `--ulimit`s (while the capabilities still allow raising a hard limit).
pub fn set_rlimits(rlimits: &[(u32, u64, u64)]) -> Result<(), String> {
    for &(res, soft, hard) in rlimits {
        let lim = libc::rlimit { rlim_cur: soft, rlim_max: hard };
        // SAFETY: setrlimit with a valid struct.
        if unsafe { libc::setrlimit(res as _, &lim) } != 0 {
            return Err(format!(
                "setrlimit (ulimit resource {res}, {soft}:{hard}): {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Become `user` and exec. Returns only on failure, with the message and exit code
/// (127: not found, 126: not executable). The seccomp filter goes on last thing before
/// exec with no_new_privs (as runc); without it, before the capabilities are dropped
/// (installing needs CAP_SYS_ADMIN then), so what follows must be calls the profile allows.
pub fn exec(
    args: &[String],
    env: &[String],
    cwd: &str,
    user: &ExecUser,
    tty: bool,
    confine: &Confinement,
) -> (String, i32) {
    use nix::unistd::{Gid, Uid};
    // SAFETY: setsid/ioctl on our own stdin in a fresh single-threaded child.
    unsafe {
        libc::setsid();
        if tty {
            libc::ioctl(0, libc::TIOCSCTTY as _, 0);
        }
    }
    if let Err(e) = set_rlimits(confine.rlimits) {
        return (e, 126);
    }
    if confine.no_new_privs {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return (format!("no_new_privs: {}", std::io::Error::last_os_error()), 126);
        }
    } else if let Err(e) = crate::sandbox::seccomp::install(confine.seccomp) {
        return (format!("installing the seccomp filter: {e}"), 126);
    }
    if let Err(e) = drop_capabilities(confine.caps) {
        return (format!("dropping capabilities: {e}"), 126);
    }
    let gids: Vec<Gid> = user.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    // setgroups is denied in a rootless namespace with a single-id map; only fail when it
    // would have mattered.
    if let Err(e) = nix::unistd::setgroups(&gids) {
        if user.groups.iter().any(|g| *g != 0) {
            return (format!("setgroups {:?}: {e}", user.groups), 126);
        }
    }
    if let Err(e) = nix::unistd::setgid(Gid::from_raw(user.gid)) {
        return (format!("setgid {}: {e} (is gid {} mapped in this user namespace?)", user.gid, user.gid), 126);
    }
    if let Err(e) = nix::unistd::setuid(Uid::from_raw(user.uid)) {
        return (format!("setuid {}: {e} (is uid {} mapped in this user namespace?)", user.uid, user.uid), 126);
    }
    if let Err(e) = std::env::set_current_dir(cwd) {
        return (format!("chdir {cwd}: {e}"), 126);
    }
    // SAFETY: umask has no failure mode.
    unsafe { libc::umask(0o022) };
    let Some(arg0) = args.first() else { return ("no command given".into(), 127) };
    let Some(path) = find_executable(arg0, env, &is_executable) else {
        return (format!("exec: \"{arg0}\": executable file not found in $PATH"), 127);
    };
    let c = |s: &str| CString::new(s.as_bytes()).unwrap_or_default();
    let cpath = c(&path.to_string_lossy());
    let cargs: Vec<CString> = args.iter().map(|a| c(a)).collect();
    let cenv: Vec<CString> = env.iter().map(|a| c(a)).collect();
    if confine.no_new_privs {
        if let Err(e) = crate::sandbox::seccomp::install(confine.seccomp) {
            return (format!("installing the seccomp filter: {e}"), 126);
        }
    }
    let e = nix::unistd::execve(&cpath, &cargs, &cenv).unwrap_err();
    let code = if e == nix::Error::ENOENT { 127 } else { 126 };
    (format!("exec {}: {e}", path.display()), code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> ExecUser {
        ExecUser { uid: 1000, gid: 1000, groups: vec![1000], home: "/home/app".into() }
    }

    #[test]
    fn env_defaults_and_overrides() {
        let e = environment(&["A=1".into(), "A=2".into()], &user(), false);
        assert_eq!(e, [format!("PATH={DEFAULT_PATH}"), "A=2".into(), "HOME=/home/app".into()]);
        let e = environment(&["PATH=/x".into(), "HOME=/h".into()], &user(), true);
        assert_eq!(e, ["PATH=/x", "HOME=/h", "TERM=xterm"]);
    }

    #[test]
    fn executable_lookup_uses_the_container_path() {
        let env = vec!["PATH=/a:/b".to_string()];
        let found = find_executable("sh", &env, &|p| p == Path::new("/b/sh"));
        assert_eq!(found, Some(PathBuf::from("/b/sh")));
        assert_eq!(find_executable("/bin/x", &env, &|_| false), Some(PathBuf::from("/bin/x")));
        assert_eq!(find_executable("nope", &env, &|_| false), None);
        assert_eq!(find_executable("ls", &[], &|p| p == Path::new("/bin/ls")), Some(PathBuf::from("/bin/ls")));
    }
}
