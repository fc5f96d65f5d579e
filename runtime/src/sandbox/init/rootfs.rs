//! Entering the root filesystem: pivot_root into it and let go of the host's tree, the way
//! runc does (pivot_root(".", ".") then a lazy unmount of the old root stacked underneath).

use crate::error::{Error, Result};
use nix::mount::MsFlags;
use std::path::Path;

/// Make every mount in this (new) namespace private, so nothing propagates to the host.
pub fn make_private() -> Result<()> {
    nix::mount::mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(Error::sys("making / private"))
}

/// pivot_root into `rootfs` (a mount point) and detach the old root.
pub fn pivot(rootfs: &Path) -> Result<()> {
    nix::unistd::chdir(rootfs).map_err(Error::sys(format!("chdir {}", rootfs.display())))?;
    nix::unistd::pivot_root(".", ".").map_err(Error::sys(format!("pivot_root {}", rootfs.display())))?;
    nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH).map_err(Error::sys("detaching the old root"))?;
    nix::unistd::chdir("/").map_err(Error::sys("chdir /"))?;
    Ok(())
}
