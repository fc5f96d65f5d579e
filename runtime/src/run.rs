//! `-v` for `rbuild run` and `rbuild create`: a host path or a named volume
//! (`<root>/volumes/<name>/`, outliving containers). Containers themselves are
//! [`crate::container`].

use crate::error::{Error, Result};
use std::path::PathBuf;

/// Where a `-v` volume comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// `-v /host/path:/ctr`: a host directory or file.
    Host(PathBuf),
    /// `-v name:/ctr`: `<root>/volumes/<name>`, created when missing.
    Named(String),
}

/// One `-v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Where it comes from.
    pub source: VolumeSource,
    /// The path in the container.
    pub target: String,
    /// `:ro`.
    pub readonly: bool,
}

impl Volume {
    /// Parse `HOST:CTR[:ro|rw]` or `NAME:CTR[:ro|rw]`.
    pub fn parse(s: &str) -> Result<Volume> {
        let parts: Vec<&str> = s.split(':').collect();
        let (src, target, mode) = match parts.as_slice() {
            [a, b] => (*a, *b, "rw"),
            [a, b, m] => (*a, *b, *m),
            _ => return Err(Error::Spec(format!("volume {s:?}: expected SOURCE:TARGET[:ro|rw]"))),
        };
        let readonly = match mode {
            "ro" => true,
            "rw" | "" => false,
            m => return Err(Error::Spec(format!("volume {s:?}: unknown mode {m:?} (ro or rw)"))),
        };
        if !target.starts_with('/') {
            return Err(Error::Spec(format!("volume {s:?}: the target {target:?} must be an absolute path")));
        }
        let source = if src.starts_with('/') {
            VolumeSource::Host(PathBuf::from(src))
        } else {
            let ok = !src.is_empty()
                && src.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                && src.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !ok {
                return Err(Error::Spec(format!(
                    "volume {s:?}: {src:?} is neither an absolute host path nor a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)"
                )));
            }
            VolumeSource::Named(src.to_string())
        };
        Ok(Volume { source, target: target.to_string(), readonly })
    }
}

impl Volume {
    /// As a container mount ([`crate::container::Mount`]).
    pub fn to_mount(&self) -> crate::container::Mount {
        let (kind, source) = match &self.source {
            VolumeSource::Host(p) => (crate::container::MountKind::Bind, p.display().to_string()),
            VolumeSource::Named(n) => (crate::container::MountKind::Volume, n.clone()),
        };
        crate::container::Mount {
            kind,
            source,
            target: self.target.clone(),
            readonly: self.readonly,
            tmpfs_size: None,
            options: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_parse() {
        assert_eq!(
            Volume::parse("/h:/c:ro").unwrap(),
            Volume { source: VolumeSource::Host("/h".into()), target: "/c".into(), readonly: true }
        );
        assert_eq!(Volume::parse("data:/data").unwrap().source, VolumeSource::Named("data".into()));
        for bad in ["x", "/h:rel", "../x:/c", "/h:/c:rx", "a:b:c:d"] {
            assert!(Volume::parse(bad).is_err(), "{bad}");
        }
    }
}
