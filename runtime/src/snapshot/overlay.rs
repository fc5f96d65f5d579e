//! The overlayfs driver: each committed snapshot holds one layer (whiteouts as 0/0 char
//! devices, opaque directories by xattr); an active snapshot is an empty upperdir mounted
//! over its ancestors.

use super::{DiffSource, Dirs, Info, Kind, Mount, Snapshotter, TreeOps, WhiteoutStyle};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The overlayfs snapshotter over `<root>/snapshots/overlay`.
pub struct Overlay {
    dirs: Dirs,
    rootless: bool,
}

impl Overlay {
    /// Open (creating) the driver's directory; `trees` removes and copies its trees. Rootless (euid != 0) mounts use `userxattr`.
    pub fn new(base: &Path, trees: Arc<dyn TreeOps>) -> Result<Overlay> {
        Ok(Overlay { dirs: Dirs::new(base, trees)?, rootless: !nix::unistd::geteuid().is_root() })
    }

    fn lowers(&self, parent: Option<&str>) -> Result<Vec<PathBuf>> {
        let Some(p) = parent else { return Ok(Vec::new()) };
        let mut names = vec![p.to_string()];
        names.extend(self.dirs.ancestors(p)?);
        names.iter().map(|n| Ok(self.dirs.dir(n)?.join("fs"))).collect()
    }

    fn mounts_of(&self, info: &Info) -> Result<Vec<Mount>> {
        let dir = self.dirs.dir(&info.key)?;
        let lowers = self.lowers(info.parent.as_deref())?;
        let join = |v: &[PathBuf]| v.iter().map(|p| p.to_string_lossy().into_owned()).collect::<Vec<_>>().join(":");
        let mut extra = Vec::new();
        if self.rootless {
            extra.push("userxattr".to_string());
        }
        Ok(vec![match (info.kind, lowers.len()) {
            (Kind::Active, 0) => bind(dir.join("fs"), false),
            (Kind::Active, _) => {
                let mut o = vec![
                    format!("lowerdir={}", join(&lowers)),
                    format!("upperdir={}", dir.join("fs").display()),
                    format!("workdir={}", dir.join("work").display()),
                    // No sync of the upper filesystem at every unmount (milliseconds per RUN):
                    // an active snapshot is scratch until `commit`, which syncs it.
                    "volatile".to_string(),
                ];
                o.extend(extra);
                Mount { fstype: "overlay".into(), source: "overlay".into(), options: o }
            }
            (_, 0) => bind(dir.join("fs"), true),
            (_, 1) => bind(lowers[0].clone(), true),
            (_, _) => {
                let mut o = vec![format!("lowerdir={}", join(&lowers))];
                o.extend(extra);
                Mount { fstype: "overlay".into(), source: "overlay".into(), options: o }
            }
        }])
    }
}

pub(crate) fn bind(source: PathBuf, ro: bool) -> Mount {
    Mount { fstype: "bind".into(), source, options: vec!["rbind".into(), if ro { "ro" } else { "rw" }.into()] }
}

impl Snapshotter for Overlay {
    fn name(&self) -> &'static str {
        "overlay"
    }

    fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>> {
        let info = Info {
            key: key.into(),
            kind: Kind::Active,
            parent: parent.map(Into::into),
            pid: Some(std::process::id() as i32),
        };
        self.dirs.create(&info, true, |fs| std::fs::create_dir(fs).map_err(Error::io(fs)))?;
        self.mounts_of(&info)
    }

    fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>> {
        let info = Info {
            key: key.into(),
            kind: Kind::View,
            parent: parent.map(Into::into),
            pid: Some(std::process::id() as i32),
        };
        self.dirs.create(&info, false, |fs| std::fs::create_dir(fs).map_err(Error::io(fs)))?;
        self.mounts_of(&info)
    }

    fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let info = self.dirs.need(key)?;
        self.mounts_of(&info)
    }

    fn commit(&self, name: &str, key: &str) -> Result<()> {
        self.dirs.commit(name, key)
    }

    fn remove(&self, key: &str) -> Result<()> {
        self.dirs.remove(key)
    }

    fn stat(&self, key: &str) -> Result<Option<Info>> {
        self.dirs.info(key)
    }

    fn list(&self) -> Result<Vec<Info>> {
        self.dirs.list()
    }

    fn diff_source(&self, key: &str) -> Result<DiffSource> {
        let info = self.dirs.need(key)?;
        if info.kind != Kind::Active {
            return Err(Error::Snapshot { key: key.into(), reason: "only an active snapshot has changes".into() });
        }
        Ok(DiffSource::Upper { upper: self.dirs.dir(key)?.join("fs") })
    }

    fn extract_dir(&self, key: &str) -> Result<(PathBuf, WhiteoutStyle)> {
        self.dirs.need(key)?;
        Ok((self.dirs.dir(key)?.join("fs"), WhiteoutStyle::Overlay))
    }

    fn fs_dir(&self, key: &str) -> PathBuf {
        self.dirs.dir(key).map(|d| d.join("fs")).unwrap_or_default()
    }
}
