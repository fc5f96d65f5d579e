//! A container's mounts: `-v` and `--mount` parsed into [`Volume`]s; [`resolve`] adds
//! `--volumes-from` and the image's `VOLUME` paths and makes the volumes, giving the
//! [`ResolvedMount`] list kept in the container's config; [`specs`] turns that list into
//! the sandbox's mounts at every start; the sandbox seeds each empty volume from the
//! image's files at its path (docker's copy-up, done in the container's mount namespace so
//! owners are kept rootless too; `nocopy` turns it off).
//!
//! Precedence, as docker's: `-v`/`--mount` replace a `--volumes-from` mount at the same
//! destination; the image's `VOLUME` paths get an anonymous volume only where nothing else
//! is mounted. Two `-v`/`--mount` at one destination are an error.

use crate::error::{Error, Result};
use crate::sandbox::{BindSource, MountSpec};
use crate::volume::{Backing, CreateOptions, Volumes};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where a `-v` or `--mount` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// `-v /host/path:/ctr`, `--mount type=bind`: a host directory or file.
    Host(PathBuf),
    /// `-v name:/ctr`, `--mount type=volume,src=name`: the volume, created when missing.
    Named(String),
    /// `-v /ctr`, `--mount type=volume,dst=/ctr`: a new anonymous volume.
    Anonymous,
    /// `--mount type=tmpfs`.
    Tmpfs,
}

/// One `-v` or `--mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Where it comes from.
    pub source: VolumeSource,
    /// The path in the container (absolute, cleaned).
    pub target: String,
    /// `:ro`, `readonly`.
    pub readonly: bool,
    /// `:nocopy`, `volume-nocopy`: do not seed an empty volume from the image.
    pub nocopy: bool,
    /// `-v` makes a missing host directory; `--mount type=bind` refuses it (docker's).
    pub create_host_path: bool,
    /// `volume-opt=K=V`: options of a volume this mount creates.
    pub volume_options: BTreeMap<String, String>,
    /// `volume-label=K=V`: labels of a volume this mount creates.
    pub volume_labels: BTreeMap<String, String>,
    /// `tmpfs-size` in bytes.
    pub tmpfs_size: Option<u64>,
}

impl Volume {
    fn new(source: VolumeSource, target: String) -> Volume {
        Volume {
            source,
            target,
            readonly: false,
            nocopy: false,
            create_host_path: false,
            volume_options: BTreeMap::new(),
            volume_labels: BTreeMap::new(),
            tmpfs_size: None,
        }
    }

    /// Parse a `-v`: `/CTR`, `NAME:/CTR[:OPTS]` or `/HOST:/CTR[:OPTS]`, OPTS a comma
    /// list of `ro`, `rw`, `nocopy`, `z`, `Z`, `private`, `rprivate`.
    pub fn parse(s: &str) -> Result<Volume> {
        let bad = |why: String| Error::Mount(format!("invalid volume specification {s:?}: {why}"));
        let parts: Vec<&str> = s.split(':').collect();
        let (src, target, mode) = match parts.as_slice() {
            [t] if t.starts_with('/') => ("", *t, ""),
            [a, b] if !b.starts_with('/') && a.starts_with('/') => ("", *a, *b),
            [a, b] => (*a, *b, ""),
            [a, b, m] => (*a, *b, *m),
            _ => return Err(bad("expected [SOURCE:]TARGET[:ro|rw]".into())),
        };
        let target = check_target(target).map_err(bad)?;
        let source = if src.is_empty() {
            VolumeSource::Anonymous
        } else if src.starts_with('/') {
            VolumeSource::Host(PathBuf::from(src))
        } else {
            crate::volume::check_name(src).map_err(|_| {
                bad(format!(
                    "{src:?} includes invalid characters for a local volume name, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed (two at least); if you intended to pass a host directory, use an absolute path"
                ))
            })?;
            VolumeSource::Named(src.to_string())
        };
        let mut v = Volume::new(source, target);
        v.create_host_path = true;
        for m in mode.split(',').filter(|m| !m.is_empty()) {
            match m {
                "ro" => v.readonly = true,
                "rw" => v.readonly = false,
                "nocopy" if !matches!(v.source, VolumeSource::Host(_)) => v.nocopy = true,
                // SELinux relabelling and the default propagation: nothing to do.
                "z" | "Z" | "private" | "rprivate" => {}
                _ => return Err(bad(format!("unknown option {m:?} (ro, rw, nocopy, z, Z)"))),
            }
        }
        Ok(v)
    }

    /// Parse a `--mount`: comma-separated `key=value` (a field may be "quoted"), keys
    /// `type` (bind, volume (the default), tmpfs), `source`/`src`, `destination`/`dst`/
    /// `target`, `readonly`/`ro`, `volume-nocopy`, `volume-opt`, `volume-label`,
    /// `volume-driver` (local), `bind-propagation` (private, rprivate), `tmpfs-size`,
    /// `consistency` (ignored).
    pub fn parse_mount(s: &str) -> Result<Volume> {
        let bad = |why: String| Error::Mount(format!("invalid argument {s:?} for \"--mount\" flag: {why}"));
        let mut kind = "volume".to_string();
        let mut source = None;
        let mut target = None;
        let mut readonly = false;
        let mut nocopy = false;
        let mut vopts = BTreeMap::new();
        let mut vlabels = BTreeMap::new();
        let mut tmpfs_size = None;
        let (mut has_volume, mut has_bind, mut has_tmpfs) = (false, false, false);
        for field in csv_fields(s).map_err(&bad)? {
            let (k, v) = match field.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.to_string())),
                None => (field.trim().to_ascii_lowercase(), None),
            };
            let flag = |v: &Option<String>| -> Result<bool> {
                match v.as_deref() {
                    None | Some("1" | "true" | "True" | "TRUE") => Ok(true),
                    Some("0" | "false" | "False" | "FALSE") => Ok(false),
                    Some(x) => Err(bad(format!("invalid value for {k}: {x:?} (true or false)"))),
                }
            };
            let need =
                |v: Option<String>| v.ok_or_else(|| bad(format!("invalid field {k:?}: must be a key=value pair")));
            match k.as_str() {
                "type" => kind = need(v)?,
                "source" | "src" => source = Some(need(v)?),
                "target" | "dst" | "destination" => target = Some(need(v)?),
                "readonly" | "ro" => readonly = flag(&v)?,
                "volume-nocopy" => {
                    nocopy = flag(&v)?;
                    has_volume = true;
                }
                "volume-opt" | "volume-label" => {
                    let kv = need(v)?;
                    let (a, b) = kv.split_once('=').ok_or_else(|| bad(format!("{k} {kv:?}: expected KEY=VALUE")))?;
                    if k == "volume-opt" { &mut vopts } else { &mut vlabels }.insert(a.to_string(), b.to_string());
                    has_volume = true;
                }
                "volume-driver" => {
                    let d = need(v)?;
                    if d != "local" {
                        return Err(bad(format!("volume driver {d:?} is not available (only local)")));
                    }
                    has_volume = true;
                }
                "bind-propagation" => {
                    let p = need(v)?;
                    if !matches!(p.as_str(), "private" | "rprivate") {
                        return Err(bad(format!("bind-propagation {p:?} is not supported (private, rprivate)")));
                    }
                    has_bind = true;
                }
                "tmpfs-size" => {
                    let x = need(v)?;
                    tmpfs_size = Some(parse_bytes(&x).ok_or_else(|| bad(format!("tmpfs-size {x:?}: not a size")))?);
                    has_tmpfs = true;
                }
                "consistency" => {}
                _ => return Err(bad(format!("unexpected key {k:?}"))),
            }
        }
        let target = check_target(&target.ok_or_else(|| bad("target is required".into()))?).map_err(bad)?;
        let mix = |opts: &str| bad(format!("cannot mix '{opts}-*' options with mount type '{kind}'"));
        let source = match kind.as_str() {
            "bind" => {
                if has_volume {
                    return Err(mix("volume"));
                }
                if has_tmpfs {
                    return Err(mix("tmpfs"));
                }
                let src = source.ok_or_else(|| bad("source is required when specifying type=bind".into()))?;
                if !src.starts_with('/') {
                    return Err(bad(format!(
                        "invalid mount config for type \"bind\": source {src:?} must be an absolute host path"
                    )));
                }
                VolumeSource::Host(PathBuf::from(src))
            }
            "volume" => {
                if has_bind {
                    return Err(mix("bind"));
                }
                if has_tmpfs {
                    return Err(mix("tmpfs"));
                }
                match source {
                    None => VolumeSource::Anonymous,
                    Some(n) => {
                        crate::volume::check_name(&n).map_err(|e| bad(e.to_string()))?;
                        VolumeSource::Named(n)
                    }
                }
            }
            "tmpfs" => {
                if has_volume {
                    return Err(mix("volume"));
                }
                if has_bind {
                    return Err(mix("bind"));
                }
                if source.is_some() {
                    return Err(bad("invalid mount config for type \"tmpfs\": source must not be given".into()));
                }
                VolumeSource::Tmpfs
            }
            t => return Err(bad(format!("unsupported mount type {t:?} (bind, volume, tmpfs)"))),
        };
        let mut v = Volume::new(source, target);
        v.readonly = readonly;
        v.nocopy = nocopy;
        v.volume_options = vopts;
        v.volume_labels = vlabels;
        v.tmpfs_size = tmpfs_size;
        Ok(v)
    }
}

/// A `--volumes-from CONTAINER[:ro|rw]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumesFrom {
    /// The container's name, ID or ID prefix.
    pub container: String,
    /// `:ro` / `:rw`; `None` keeps each mount's own mode.
    pub readonly: Option<bool>,
}

impl VolumesFrom {
    /// Parse `CONTAINER[:ro|rw]`.
    pub fn parse(s: &str) -> Result<VolumesFrom> {
        let (c, mode) = s.split_once(':').unwrap_or((s, ""));
        let readonly = match mode {
            "" => None,
            "ro" => Some(true),
            "rw" => Some(false),
            m => return Err(Error::Mount(format!("--volumes-from {s:?}: unknown mode {m:?} (ro or rw)"))),
        };
        if c.is_empty() {
            return Err(Error::Mount(format!("--volumes-from {s:?}: a container name or ID is needed")));
        }
        Ok(VolumesFrom { container: c.to_string(), readonly })
    }
}

/// What kind of mount a [`ResolvedMount`] is (docker's `Mounts[].Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    /// A host path.
    Bind,
    /// A volume in the store.
    Volume,
    /// A tmpfs.
    Tmpfs,
}

/// One mount of a container, as kept in its config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedMount {
    /// bind, volume or tmpfs.
    #[serde(rename = "type")]
    pub kind: MountType,
    /// The volume's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The host path: a bind's source, a volume's `_data`; empty for tmpfs.
    #[serde(default)]
    pub source: PathBuf,
    /// The path in the container.
    pub destination: String,
    /// Read-only.
    #[serde(default)]
    pub readonly: bool,
    /// An anonymous volume (removed by `rm -v` and `run --rm`).
    #[serde(default)]
    pub anonymous: bool,
    /// Never seed the volume from the image.
    #[serde(default)]
    pub nocopy: bool,
    /// tmpfs size limit in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs_size: Option<u64>,
}

/// What [`resolve`] gives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// The mounts, in order (keep them in the container's config).
    pub mounts: Vec<ResolvedMount>,
    /// The names of the volumes used (the config's `volumes`).
    pub volumes: Vec<String>,
    /// The volumes this call created (what [`Resolved::undo`] removes).
    pub created: Vec<String>,
}

impl Resolved {
    /// Remove the volumes [`resolve`] created, for a container create that failed after it.
    pub fn undo(&self, root: &Path) {
        let vols = Volumes::open(root);
        for n in &self.created {
            let _ = vols.remove(n, true);
        }
    }
}

/// Resolve a container's mounts at create: `--volumes-from` first, then `-v`/`--mount`
/// (`volumes`), then an anonymous volume for each of the image's `VOLUME` paths
/// (`image_volumes`) not already mounted. Named volumes are created when missing,
/// anonymous ones made, `-v` host directories made when missing; a bind source that is
/// missing is an error. On error nothing this call created is left.
pub fn resolve(
    root: &Path,
    volumes: &[Volume],
    volumes_from: &[VolumesFrom],
    image_volumes: &[String],
) -> Result<Resolved> {
    let mut out = Resolved::default();
    match resolve_into(root, volumes, volumes_from, image_volumes, &mut out) {
        Ok(()) => Ok(out),
        Err(e) => {
            out.undo(root);
            Err(e)
        }
    }
}

fn resolve_into(
    root: &Path,
    volumes: &[Volume],
    volumes_from: &[VolumesFrom],
    image_volumes: &[String],
    out: &mut Resolved,
) -> Result<()> {
    let vols = Volumes::open(root);
    // destination -> mount, in order of first appearance.
    let mut mounts: Vec<ResolvedMount> = Vec::new();
    for f in volumes_from {
        for mut m in container_mounts(root, &f.container)? {
            if m.kind == MountType::Tmpfs {
                continue;
            }
            if let Some(ro) = f.readonly {
                m.readonly = ro;
            }
            mounts.retain(|x| x.destination != m.destination);
            mounts.push(m);
        }
    }
    let mut explicit: Vec<&str> = Vec::new();
    for v in volumes {
        if explicit.contains(&v.target.as_str()) {
            return Err(Error::Mount(format!("Duplicate mount point: {}", v.target)));
        }
        explicit.push(&v.target);
        let m = match &v.source {
            VolumeSource::Host(p) => {
                if !p.exists() {
                    if !v.create_host_path {
                        return Err(Error::Mount(format!(
                            "invalid mount config for type \"bind\": bind source path does not exist: {}",
                            p.display()
                        )));
                    }
                    std::fs::create_dir_all(p).map_err(Error::io(p))?;
                }
                ResolvedMount {
                    kind: MountType::Bind,
                    name: None,
                    source: p.clone(),
                    destination: v.target.clone(),
                    readonly: v.readonly,
                    anonymous: false,
                    nocopy: false,
                    tmpfs_size: None,
                }
            }
            VolumeSource::Named(_) | VolumeSource::Anonymous => {
                let opts = CreateOptions {
                    driver: String::new(),
                    labels: v.volume_labels.clone(),
                    options: v.volume_options.clone(),
                };
                let info = match &v.source {
                    VolumeSource::Named(n) => {
                        let (info, made) = vols.create(Some(n), &opts)?;
                        if made {
                            out.created.push(info.name.clone());
                        }
                        info
                    }
                    _ => {
                        let mut opts = opts;
                        opts.labels.insert(crate::volume::ANONYMOUS_LABEL.into(), String::new());
                        let info = vols.create(None, &opts)?.0;
                        out.created.push(info.name.clone());
                        info
                    }
                };
                ResolvedMount {
                    kind: MountType::Volume,
                    source: vols.mountpoint(&info.name),
                    anonymous: info.anonymous(),
                    name: Some(info.name),
                    destination: v.target.clone(),
                    readonly: v.readonly,
                    nocopy: v.nocopy,
                    tmpfs_size: None,
                }
            }
            VolumeSource::Tmpfs => ResolvedMount {
                kind: MountType::Tmpfs,
                name: None,
                source: PathBuf::new(),
                destination: v.target.clone(),
                readonly: v.readonly,
                anonymous: false,
                nocopy: false,
                tmpfs_size: v.tmpfs_size,
            },
        };
        mounts.retain(|x| x.destination != m.destination);
        mounts.push(m);
    }
    for p in image_volumes {
        let dst = crate::util::clean_abs(p);
        if dst == "/" || mounts.iter().any(|m| m.destination == dst) {
            continue;
        }
        let info = vols.create_anonymous()?;
        out.created.push(info.name.clone());
        mounts.push(ResolvedMount {
            kind: MountType::Volume,
            source: vols.mountpoint(&info.name),
            name: Some(info.name),
            destination: dst,
            readonly: false,
            anonymous: true,
            nocopy: false,
            tmpfs_size: None,
        });
    }
    for m in &mounts {
        if let Some(n) = &m.name {
            if !out.volumes.contains(n) {
                out.volumes.push(n.clone());
            }
        }
    }
    out.mounts = mounts;
    Ok(())
}

/// The sandbox mounts for a container's `mounts` at a start. A volume (not `nocopy`) that
/// is empty then is first seeded by the sandbox with what the container's root filesystem
/// has at its destination, with the directory's owner and mode ([`MountSpec::Volume`]).
pub fn specs(root: &Path, mounts: &[ResolvedMount]) -> Result<Vec<MountSpec>> {
    let vols = Volumes::open(root);
    let mut out = Vec::new();
    for m in mounts {
        let bind = |source: PathBuf| MountSpec::Bind {
            source: BindSource::Host(source),
            subpath: "/".into(),
            target: m.destination.clone(),
            readonly: m.readonly,
        };
        match m.kind {
            MountType::Bind => out.push(bind(m.source.clone())),
            MountType::Tmpfs => out.push(MountSpec::Tmpfs { target: m.destination.clone(), size: m.tmpfs_size }),
            MountType::Volume => {
                let name = m.name.as_deref().unwrap_or_default();
                let info = vols.get(name)?;
                match crate::volume::backing(name, vols.mountpoint(name), &info.options)? {
                    Backing::Data(source) => out.push(MountSpec::Volume {
                        source,
                        target: m.destination.clone(),
                        readonly: m.readonly,
                        seed: !m.nocopy,
                    }),
                    Backing::Bind(dev) => out.push(bind(dev)),
                    Backing::Tmpfs { size } => {
                        out.push(MountSpec::Tmpfs { target: m.destination.clone(), size });
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Remove the anonymous volumes among `mounts` that no container but `id` uses (`rm -v`,
/// `run --rm`). Returns the names removed.
pub fn remove_anonymous(root: &Path, id: &str, mounts: &[ResolvedMount]) -> Result<Vec<String>> {
    let vols = Volumes::open(root);
    let users = vols.users()?;
    let mut out = Vec::new();
    for m in mounts.iter().filter(|m| m.kind == MountType::Volume && m.anonymous) {
        let Some(n) = &m.name else { continue };
        if users.get(n).is_some_and(|ids| ids.iter().any(|i| i != id)) {
            continue;
        }
        // The container's own record may still name it: remove without the users check.
        if vols.remove_unchecked(n)? {
            out.push(n.clone());
        }
    }
    Ok(out)
}

/// The mounts of another container (`--volumes-from`), read from its config.
fn container_mounts(root: &Path, reference: &str) -> Result<Vec<ResolvedMount>> {
    let c = super::Containers::open(root).resolve(reference).map_err(|e| match e {
        Error::NoSuchContainer(what) => Error::Mount(format!("--volumes-from: No such container: {what}")),
        e => e,
    })?;
    let p = c.config_path();
    let bytes = std::fs::read(&p).map_err(Error::io(&p))?;
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| Error::Mount(format!("{}: {e}", p.display())))?;
    match v.get("mounts") {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(m) => serde_json::from_value(m.clone()).map_err(|e| Error::Mount(format!("{}: mounts: {e}", p.display()))),
    }
}

fn check_target(t: &str) -> std::result::Result<String, String> {
    if !t.starts_with('/') {
        return Err(format!("the target {t:?} must be an absolute path"));
    }
    let clean = crate::util::clean_abs(t);
    if clean == "/" {
        return Err("the target can't be '/'".into());
    }
    Ok(clean)
}

/// Split a `--mount` value as docker's csv reader does: commas separate fields, a field
/// may be "quoted" (with "" for a quote) to hold commas.
fn csv_fields(s: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    out.push(cur);
    Ok(out.into_iter().filter(|f| !f.trim().is_empty()).collect())
}

/// Bytes with an optional unit (b, k, m, g; powers of 1024), as docker's `tmpfs-size`.
fn parse_bytes(s: &str) -> Option<u64> {
    let l = s.trim().to_ascii_lowercase();
    let l = l.strip_suffix('b').filter(|x| x.ends_with(['k', 'm', 'g'])).unwrap_or(&l);
    let (num, mult) = match l.chars().last()? {
        'k' => (&l[..l.len() - 1], 1u64 << 10),
        'm' => (&l[..l.len() - 1], 1 << 20),
        'g' => (&l[..l.len() - 1], 1 << 30),
        'b' => (&l[..l.len() - 1], 1),
        _ => (l, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(source: VolumeSource, target: &str) -> Volume {
        Volume::new(source, target.into())
    }

    #[test]
    fn dash_v() {
        let mut want = vol(VolumeSource::Host("/h".into()), "/c");
        want.readonly = true;
        want.create_host_path = true;
        assert_eq!(Volume::parse("/h:/c:ro").unwrap(), want);
        assert_eq!(Volume::parse("data:/data").unwrap().source, VolumeSource::Named("data".into()));
        assert_eq!(Volume::parse("/data").unwrap().source, VolumeSource::Anonymous);
        assert_eq!(Volume::parse("/data/../x/").unwrap().target, "/x");
        let v = Volume::parse("/data:ro,nocopy").unwrap();
        assert!(v.readonly && v.nocopy && v.source == VolumeSource::Anonymous);
        assert!(Volume::parse("data:/data:Z,rw").is_ok());
        for (bad, why) in [
            ("x", "SOURCE"),
            ("/h:rel", "\"rel\""),
            ("h:rel", "absolute"),
            ("../x:/c", "invalid characters"),
            ("a:/c", "invalid characters"),
            ("/h:/c:rx", "rx"),
            ("a:b:c:d", "SOURCE"),
            ("/h:/", "'/'"),
        ] {
            let e = Volume::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn dash_dash_mount() {
        let v = Volume::parse_mount("type=bind,src=/h,dst=/c,ro").unwrap();
        assert_eq!(
            (v.source, v.target.as_str(), v.readonly, v.create_host_path),
            (VolumeSource::Host("/h".into()), "/c", true, false)
        );
        let v =
            Volume::parse_mount("source=data,target=/d,volume-nocopy,volume-opt=type=tmpfs,volume-label=a=b").unwrap();
        assert_eq!(v.source, VolumeSource::Named("data".into()));
        assert!(v.nocopy && !v.readonly);
        assert_eq!(v.volume_options["type"], "tmpfs");
        assert_eq!(v.volume_labels["a"], "b");
        assert_eq!(Volume::parse_mount("dst=/anon").unwrap().source, VolumeSource::Anonymous);
        let v = Volume::parse_mount("type=tmpfs,destination=/t,tmpfs-size=64m").unwrap();
        assert_eq!((v.source, v.tmpfs_size), (VolumeSource::Tmpfs, Some(64 << 20)));
        let v = Volume::parse_mount(r#"type=volume,dst=/q,"volume-opt=o=size=1m,nodev",readonly=false"#).unwrap();
        assert_eq!(v.volume_options["o"], "size=1m,nodev");
        for (bad, why) in [
            ("type=bind,dst=/c", "source is required"),
            ("type=bind,src=rel,dst=/c", "absolute"),
            ("type=tmpfs,src=x,dst=/c", "source must not"),
            ("type=bind,src=/h,dst=/c,volume-nocopy", "cannot mix"),
            ("type=volume,dst=/c,tmpfs-size=1m", "cannot mix"),
            ("type=nfs,dst=/c", "unsupported mount type"),
            ("src=data", "target is required"),
            ("dst=/c,colour=red", "colour"),
            ("dst=/c,ro=maybe", "maybe"),
            ("src=a,dst=/c", "invalid volume name"),
            ("type=tmpfs,dst=/c,tmpfs-size=huge", "huge"),
            ("dst=/c,\"ro", "quote"),
            ("type=bind,src=/h,dst=/c,bind-propagation=shared", "shared"),
        ] {
            let e = Volume::parse_mount(bad).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("--mount"), "{bad}: {e}");
        }
    }

    #[test]
    fn volumes_from_parses() {
        assert_eq!(VolumesFrom::parse("web").unwrap(), VolumesFrom { container: "web".into(), readonly: None });
        assert_eq!(VolumesFrom::parse("web:ro").unwrap().readonly, Some(true));
        assert!(VolumesFrom::parse("web:rx").is_err());
        assert!(VolumesFrom::parse(":ro").is_err());
    }

    #[test]
    fn resolve_orders_and_undoes() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let host = root.join("host-made");
        let vs = vec![
            Volume::parse(&format!("{}:/h", host.display())).unwrap(),
            Volume::parse("named:/n").unwrap(),
            Volume::parse("/anon").unwrap(),
            Volume::parse_mount("type=tmpfs,dst=/t").unwrap(),
        ];
        let r = resolve(root, &vs, &[], &["/n".into(), "/img/".into()]).unwrap();
        assert!(host.is_dir(), "-v makes a missing host directory");
        let kinds: Vec<_> = r.mounts.iter().map(|m| (m.kind, m.destination.as_str(), m.anonymous)).collect();
        assert_eq!(
            kinds,
            vec![
                (MountType::Bind, "/h", false),
                (MountType::Volume, "/n", false),
                (MountType::Volume, "/anon", true),
                (MountType::Tmpfs, "/t", false),
                (MountType::Volume, "/img", true),
            ]
        );
        assert_eq!(r.volumes.len(), 3);
        assert_eq!(r.created.len(), 3);
        assert_eq!(r.mounts[1].source, root.join("volumes/named/_data"));
        // --volumes-from copies another container's binds and volumes.
        let c = root.join("containers").join("a".repeat(64));
        std::fs::create_dir_all(&c).unwrap();
        let cfg = serde_json::json!({"id": "a".repeat(64), "mounts": r.mounts, "volumes": r.volumes});
        std::fs::write(c.join("config.json"), serde_json::to_vec(&cfg).unwrap()).unwrap();
        std::fs::create_dir_all(root.join("containers/names")).unwrap();
        std::fs::write(root.join("containers/names/src"), "a".repeat(64)).unwrap();
        for reference in ["src:ro", "aaaa:ro"] {
            let f =
                resolve(root, &[Volume::parse("/n").unwrap()], &[VolumesFrom::parse(reference).unwrap()], &[]).unwrap();
            let got: Vec<_> = f.mounts.iter().map(|m| (m.destination.as_str(), m.readonly, m.anonymous)).collect();
            assert_eq!(
                got,
                vec![("/h", true, false), ("/anon", true, true), ("/img", true, true), ("/n", false, true)]
            );
            f.undo(root);
        }
        assert!(
            resolve(root, &[], &[VolumesFrom::parse("nope").unwrap()], &[])
                .unwrap_err()
                .to_string()
                .contains("No such container")
        );
        // Errors leave nothing made.
        let before = Volumes::open(root).list().unwrap().len();
        let dup = vec![Volume::parse("/x").unwrap(), Volume::parse("fresh:/x").unwrap()];
        assert!(resolve(root, &dup, &[], &[]).unwrap_err().to_string().contains("Duplicate mount point"));
        let missing =
            vec![Volume::parse("/y").unwrap(), Volume::parse_mount("type=bind,src=/nonexistent/zz,dst=/z").unwrap()];
        assert!(resolve(root, &missing, &[], &[]).unwrap_err().to_string().contains("does not exist"));
        assert_eq!(Volumes::open(root).list().unwrap().len(), before);
        // rm -v: the anonymous volumes go, the named one stays.
        std::fs::remove_dir_all(&c).unwrap();
        let gone = remove_anonymous(root, &"a".repeat(64), &r.mounts).unwrap();
        assert_eq!(gone.len(), 2);
        let left: Vec<_> = Volumes::open(root).list().unwrap().into_iter().map(|v| v.name).collect();
        assert_eq!(left, vec!["named".to_string()]);
    }
}
