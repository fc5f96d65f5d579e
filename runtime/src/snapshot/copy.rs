//! The copy-and-walk driver, for hosts where overlayfs cannot mount: every snapshot holds
//! its whole tree; `prepare` copies the parent's, and a diff walks both trees.

use super::overlay::bind;
use super::{DiffSource, Dirs, Info, Kind, Mount, Snapshotter, TreeOps, WhiteoutStyle};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The copying snapshotter over `<root>/snapshots/copy`.
pub struct Copy {
    dirs: Dirs,
}

impl Copy {
    /// Open (creating) the driver's directory; `trees` removes and copies its trees.
    pub fn new(base: &Path, trees: Arc<dyn TreeOps>) -> Result<Copy> {
        Ok(Copy { dirs: Dirs::new(base, trees)? })
    }

    fn parent_fs(&self, info: &Info) -> Result<Option<PathBuf>> {
        info.parent.as_deref().map(|p| Ok(self.dirs.dir(p)?.join("fs"))).transpose()
    }
}

impl Snapshotter for Copy {
    fn name(&self) -> &'static str {
        "copy"
    }

    fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>> {
        let info = Info {
            key: key.into(),
            kind: Kind::Active,
            parent: parent.map(Into::into),
            pid: Some(std::process::id() as i32),
        };
        let src = self.parent_fs(&info)?;
        self.dirs.create(&info, false, |fs| match &src {
            Some(s) => self.dirs.copy_tree(s, fs),
            None => std::fs::create_dir(fs).map_err(Error::io(fs)),
        })?;
        self.mounts(key)
    }

    fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>> {
        let info = Info {
            key: key.into(),
            kind: Kind::View,
            parent: parent.map(Into::into),
            pid: Some(std::process::id() as i32),
        };
        self.dirs.create(&info, false, |fs| std::fs::create_dir(fs).map_err(Error::io(fs)))?;
        self.mounts(key)
    }

    fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let info = self.dirs.need(key)?;
        let own = self.dirs.dir(key)?.join("fs");
        Ok(vec![match info.kind {
            Kind::Active => bind(own, false),
            _ => bind(self.parent_fs(&info)?.unwrap_or(own), true),
        }])
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
        Ok(DiffSource::Walk { lower: self.parent_fs(&info)?, upper: self.dirs.dir(key)?.join("fs") })
    }

    fn extract_dir(&self, key: &str) -> Result<(PathBuf, WhiteoutStyle)> {
        self.dirs.need(key)?;
        Ok((self.dirs.dir(key)?.join("fs"), WhiteoutStyle::Delete))
    }

    fn fs_dir(&self, key: &str) -> PathBuf {
        self.dirs.dir(key).map(|d| d.join("fs")).unwrap_or_default()
    }
}
