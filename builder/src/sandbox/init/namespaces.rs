//! The first stage: new namespaces (user when rootless, mount, pid, ipc, uts, net when
//! `none`), the id maps, and `lo` up in a new network namespace.

use crate::error::{Error, Result};
use crate::sandbox::spec::{InitSpec, Network};
use nix::sched::CloneFlags;

/// The namespaces a spec asks for.
pub fn flags(spec: &InitSpec) -> CloneFlags {
    let mut f = CloneFlags::CLONE_NEWNS;
    if spec.probe {
        if spec.rootless.is_some() {
            f |= CloneFlags::CLONE_NEWUSER;
        }
        return f;
    }
    f |= CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS;
    if spec.network == Network::None {
        f |= CloneFlags::CLONE_NEWNET;
    }
    if spec.rootless.is_some() {
        f |= CloneFlags::CLONE_NEWUSER;
    }
    f
}

/// The uid_map/gid_map lines of a rootless namespace: root inside is the caller outside.
pub fn id_maps(uid: u32, gid: u32) -> (String, String) {
    (format!("0 {uid} 1\n"), format!("0 {gid} 1\n"))
}

/// Unshare, and write the single-id maps for a rootless namespace.
pub fn enter(spec: &InitSpec) -> Result<()> {
    nix::sched::unshare(flags(spec)).map_err(Error::sys(format!("unshare {:?}", flags(spec))))?;
    if let Some((uid, gid)) = spec.rootless {
        let (u, g) = id_maps(uid, gid);
        // setgroups must be denied before an unprivileged process may write gid_map.
        std::fs::write("/proc/self/setgroups", "deny").map_err(Error::io("/proc/self/setgroups"))?;
        std::fs::write("/proc/self/uid_map", u).map_err(Error::io("/proc/self/uid_map"))?;
        std::fs::write("/proc/self/gid_map", g).map_err(Error::io("/proc/self/gid_map"))?;
    }
    Ok(())
}

/// Bring up `lo` in a fresh network namespace.
pub fn loopback_up() -> Result<()> {
    // SAFETY: plain socket/ioctl calls on a zeroed ifreq naming "lo".
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(Error::io("socket")(std::io::Error::last_os_error()));
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[0] = b'l' as libc::c_char;
        req.ifr_name[1] = b'o' as libc::c_char;
        let r = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req);
        if r == 0 {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &mut req);
        }
        let e = std::io::Error::last_os_error();
        libc::close(fd);
        if r != 0 {
            return Err(Error::io("lo")(e));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_root_to_the_caller() {
        assert_eq!(id_maps(65534, 65534), ("0 65534 1\n".into(), "0 65534 1\n".into()));
    }
}
