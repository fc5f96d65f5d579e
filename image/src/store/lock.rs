//! Locks between rbuild processes sharing one store, on `flock(2)`.
//!
//! Two locks. `index.lock` serializes every read-modify-write of index.json, and gc holds it
//! from mark to sweep so a tag cannot appear between the two. `lease.lock` protects blobs
//! written but not yet tagged: every process that writes blobs holds it shared until it
//! exits (or the store lease is released), and gc takes it exclusively, so gc waits for
//! writers instead of sweeping their fresh blobs.

use crate::error::{Error, Result};
use nix::fcntl::{Flock, FlockArg};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// An held flock; released on drop.
#[derive(Debug)]
pub struct LockGuard {
    _lock: Flock<File>,
}

fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new().create(true).truncate(false).read(true).write(true).open(path).map_err(Error::io(path))
}

/// Take `path` exclusively, waiting for other holders.
pub(crate) fn exclusive(path: &Path) -> Result<LockGuard> {
    take(path, FlockArg::LockExclusive)
}

fn take(path: &Path, arg: FlockArg) -> Result<LockGuard> {
    let f = open_lock_file(path)?;
    let lock = Flock::lock(f, arg)
        .map_err(|(_, errno)| Error::Io { path: path.to_path_buf(), source: std::io::Error::from(errno) })?;
    Ok(LockGuard { _lock: lock })
}

/// This process's shared leases, one per store root. Process-wide (not per `Store` value)
/// because flock locks belong to open files: a second, exclusive open of the same lock in
/// this process would otherwise wait forever on our own shared lock.
static LEASES: Mutex<Option<HashMap<PathBuf, LockGuard>>> = Mutex::new(None);

/// Make sure this process holds a shared lease on `path`.
pub(crate) fn ensure_lease(path: &Path) -> Result<()> {
    let mut g = LEASES.lock().unwrap_or_else(|p| p.into_inner());
    let map = g.get_or_insert_with(HashMap::new);
    if !map.contains_key(path) {
        let guard = take(path, FlockArg::LockShared)?;
        map.insert(path.to_path_buf(), guard);
    }
    Ok(())
}

/// Drop this process's lease on `path`, if it holds one.
pub(crate) fn release_lease(path: &Path) {
    let mut g = LEASES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(map) = g.as_mut() {
        map.remove(path);
    }
}

/// Take the lease lock exclusively (for gc), after dropping our own shared lease. With
/// `wait` false, `None` when another process holds a lease.
pub(crate) fn exclusive_lease(path: &Path, wait: bool) -> Result<Option<LockGuard>> {
    release_lease(path);
    if wait {
        return exclusive(path).map(Some);
    }
    let f = open_lock_file(path)?;
    match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(LockGuard { _lock: lock })),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(Error::Io { path: path.to_path_buf(), source: std::io::Error::from(errno) }),
    }
}

/// Take `f`'s exclusive flock without waiting; false when another open file holds it (in
/// this process or another). Held until `f` is closed.
pub(crate) fn try_lock(f: &File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on an fd the caller owns; no memory is involved.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) { Ok(false) } else { Err(e) }
}
