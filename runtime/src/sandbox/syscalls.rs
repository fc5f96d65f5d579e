//! The system calls the init's mount stage makes, behind a trait so the stage's logic
//! (which mounts, in which order, with which flags, what gets created) is testable without
//! root through a recording fake.

use crate::error::{Error, Result};
use nix::mount::MsFlags;
use std::path::{Path, PathBuf};

/// What a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A directory.
    Dir,
    /// Anything else that exists (file, device, socket…).
    File,
}

/// The calls of the mount stage.
pub trait Sys {
    /// mount(2). `source`/`fstype`/`data` empty means NULL.
    fn mount(&self, source: &str, target: &Path, fstype: &str, flags: MsFlags, data: &str) -> Result<()>;
    /// mkdir(2), one level.
    fn mkdir(&self, path: &Path, mode: u32) -> Result<()>;
    /// Create an empty regular file.
    fn touch(&self, path: &Path, mode: u32) -> Result<()>;
    /// mknod(2) of a character device.
    fn mknod_char(&self, path: &Path, mode: u32, major: u64, minor: u64) -> Result<()>;
    /// mknod(2) of a character or block device, exactly `mode`.
    fn mknod_dev(&self, path: &Path, mode: u32, block: bool, major: u64, minor: u64) -> Result<()>;
    /// unlink(2).
    fn remove_file(&self, path: &Path) -> Result<()>;
    /// lchown(2).
    fn chown(&self, path: &Path, uid: u32, gid: u32) -> Result<()>;
    /// symlink(2).
    fn symlink(&self, target: &str, path: &Path) -> Result<()>;
    /// Write a new file with these bytes and mode, owned by uid:gid.
    fn write_file(&self, path: &Path, content: &[u8], mode: u32, uid: u32, gid: u32) -> Result<()>;
    /// What `path` is (not following a final symlink), `None` when missing.
    fn kind(&self, path: &Path) -> Option<FileKind>;
    /// What `path` is, following symlinks (bind sources).
    fn kind_follow(&self, path: &Path) -> Option<FileKind>;
    /// Mode (permission bits), uid and gid of `path`, not following a final symlink.
    fn owner(&self, path: &Path) -> Option<(u32, u32, u32)>;
    /// Resolve a container path under `root` without escaping it.
    fn resolve(&self, root: &Path, path: &str) -> Result<PathBuf>;
    /// The flags of the mount holding `path` that a bind remount must keep (nosuid,
    /// nodev, noexec, atime flags: locked in a user namespace).
    fn locked_flags(&self, path: &Path) -> MsFlags;
    /// `MS_RDONLY` when the mount holding `path` is read-only (a remount must keep it).
    fn readonly_flag(&self, path: &Path) -> MsFlags;
}

/// The real thing.
pub struct Real;

fn opt(s: &str) -> Option<&str> {
    if s.is_empty() { None } else { Some(s) }
}

impl Sys for Real {
    fn mount(&self, source: &str, target: &Path, fstype: &str, flags: MsFlags, data: &str) -> Result<()> {
        nix::mount::mount(opt(source), target, opt(fstype), flags, opt(data)).map_err(Error::sys(format!(
            "mount {} on {} (type {}, {:?}, {})",
            if source.is_empty() { "none" } else { source },
            target.display(),
            if fstype.is_empty() { "none" } else { fstype },
            flags,
            data
        )))
    }

    fn mkdir(&self, path: &Path, mode: u32) -> Result<()> {
        match nix::unistd::mkdir(path, nix::sys::stat::Mode::from_bits_truncate(mode)) {
            Ok(()) | Err(nix::Error::EEXIST) => Ok(()),
            Err(e) => Err(Error::sys(format!("mkdir {}", path.display()))(e)),
        }
    }

    fn touch(&self, path: &Path, mode: u32) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(mode)
            .open(path)
            .map(|_| ())
            .map_err(Error::io(path))
    }

    fn mknod_char(&self, path: &Path, mode: u32, major: u64, minor: u64) -> Result<()> {
        use nix::sys::stat::{Mode, SFlag, makedev, mknod};
        mknod(path, SFlag::S_IFCHR, Mode::from_bits_truncate(mode), makedev(major, minor))
            .map_err(Error::sys(format!("mknod {}", path.display())))
    }

    fn mknod_dev(&self, path: &Path, mode: u32, block: bool, major: u64, minor: u64) -> Result<()> {
        use nix::sys::stat::{Mode, SFlag, makedev, mknod};
        let kind = if block { SFlag::S_IFBLK } else { SFlag::S_IFCHR };
        mknod(path, kind, Mode::from_bits_truncate(mode), makedev(major, minor))
            .map_err(Error::sys(format!("mknod {}", path.display())))?;
        // mknod applies the umask; the node gets the host's mode.
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).map_err(Error::io(path))
    }

    fn remove_file(&self, path: &Path) -> Result<()> {
        std::fs::remove_file(path).map_err(Error::io(path))
    }

    fn chown(&self, path: &Path, uid: u32, gid: u32) -> Result<()> {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(Error::io(path))
    }

    fn symlink(&self, target: &str, path: &Path) -> Result<()> {
        match std::os::unix::fs::symlink(target, path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            r => r.map_err(Error::io(path)),
        }
    }

    fn write_file(&self, path: &Path, content: &[u8], mode: u32, uid: u32, gid: u32) -> Result<()> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let mut f =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(Error::io(path))?;
        std::io::Write::write_all(&mut f, content).map_err(Error::io(path))?;
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid)).map_err(Error::io(path))?;
        f.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(Error::io(path))
    }

    fn kind(&self, path: &Path) -> Option<FileKind> {
        std::fs::symlink_metadata(path).ok().map(|m| if m.is_dir() { FileKind::Dir } else { FileKind::File })
    }

    fn kind_follow(&self, path: &Path) -> Option<FileKind> {
        std::fs::metadata(path).ok().map(|m| if m.is_dir() { FileKind::Dir } else { FileKind::File })
    }

    fn owner(&self, path: &Path) -> Option<(u32, u32, u32)> {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(path).ok().map(|m| (m.mode() & 0o7777, m.uid(), m.gid()))
    }

    fn resolve(&self, root: &Path, path: &str) -> Result<PathBuf> {
        crate::util::secure_join(root, path)
    }

    fn readonly_flag(&self, path: &Path) -> MsFlags {
        let ro =
            nix::sys::statvfs::statvfs(path).is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
        if ro { MsFlags::MS_RDONLY } else { MsFlags::empty() }
    }

    fn locked_flags(&self, path: &Path) -> MsFlags {
        use nix::sys::statvfs::FsFlags;
        let Ok(s) = nix::sys::statvfs::statvfs(path) else { return MsFlags::empty() };
        let f = s.flags();
        let mut out = MsFlags::empty();
        for (a, b) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if f.contains(a) {
                out |= b;
            }
        }
        out
    }
}
