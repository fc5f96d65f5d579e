//! The first stage: new namespaces (user when rootless, mount, pid, ipc, uts, net when
//! `none`), the id maps, and `lo` up in a new network namespace.

use crate::error::{Error, Result};
use crate::sandbox::spec::{InitSpec, Network};
use nix::sched::CloneFlags;

/// The namespaces a spec asks for.
pub fn flags(spec: &InitSpec) -> CloneFlags {
    let mut f = CloneFlags::CLONE_NEWNS;
    // Probing, removing and extracting need the user namespace (and a mount namespace
    // for the probe), nothing else.
    if spec.probe || !spec.remove.is_empty() || spec.extract.is_some() || spec.copy.is_some() || spec.join.is_some() {
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

/// The fd on which the parent writes subordinate maps for us (see the parent's
/// `spawn_init_with`).
const MAP_FD: i32 = 6;

/// Unshare, and get the id maps of a rootless namespace: subordinate maps written by the
/// parent with newuidmap/newgidmap (we say when we have unshared, and wait for its word),
/// else the single-id maps written here.
pub fn enter(spec: &InitSpec) -> Result<()> {
    nix::sched::unshare(flags(spec)).map_err(Error::sys(format!("unshare {:?}", flags(spec))))?;
    if spec.id_map.as_ref().is_some_and(|m| m.is_multi()) {
        return parent_writes_maps();
    }
    if let Some((uid, gid)) = spec.rootless {
        let (u, g) = id_maps(uid, gid);
        // setgroups must be denied before an unprivileged process may write gid_map.
        std::fs::write("/proc/self/setgroups", "deny").map_err(Error::io("/proc/self/setgroups"))?;
        std::fs::write("/proc/self/uid_map", u).map_err(Error::io("/proc/self/uid_map"))?;
        std::fs::write("/proc/self/gid_map", g).map_err(Error::io("/proc/self/gid_map"))?;
    }
    Ok(())
}

fn parent_writes_maps() -> Result<()> {
    let mut b = [b'u'];
    // SAFETY: one-byte read/write on the socket the parent gave us on fd 6, then close it
    // (it must not reach the command).
    let (w, r) = unsafe {
        let w = libc::write(MAP_FD, b.as_ptr().cast(), 1);
        let r = if w == 1 { libc::read(MAP_FD, b.as_mut_ptr().cast(), 1) } else { -1 };
        libc::close(MAP_FD);
        (w, r)
    };
    if w != 1 || r != 1 || b[0] != b'1' {
        return Err(Error::Sandbox(
            "the id maps of the user namespace were not written (newuidmap/newgidmap failed)".into(),
        ));
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
