//! Containers for `rbuild run`: an image from the store, unpacked into snapshots, with a
//! writable layer of its own (the active snapshot `container-<id>`), run in the sandbox
//! with Docker's ENTRYPOINT/CMD rules, volumes and named volumes.
//!
//! On disk:
//! ```text
//! <root>/containers/<id>/container.json   id, name, image, command, status, exit code
//! <root>/containers/names/<name>          the id holding that name (created exclusively)
//! <root>/volumes/<name>/                  named volumes; they outlive containers
//! <root>/snapshots/<driver>/container-<id>/  the writable layer (upperdir), kept unless --rm
//! ```

use crate::error::{Error, Result};
use crate::sandbox::{BindSource, Executor, MountSpec, Network, RunIo, RunSpec, Sandbox};
use crate::snapshot::{self, Snapshotter};
use rbuild_image::Store;
use rbuild_image::config::ContainerConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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

/// What `rbuild run` asks for.
#[derive(Debug, Clone, Default)]
pub struct ContainerOptions {
    /// The image (name, name:tag, digest or ID prefix).
    pub image: String,
    /// CMD override (replaces the image's Cmd when not empty).
    pub cmd: Vec<String>,
    /// `--entrypoint` (replaces the image's Entrypoint and clears its Cmd; empty string
    /// clears the Entrypoint).
    pub entrypoint: Option<String>,
    /// `-e`, `--env-file`: `KEY=value`, after the image's.
    pub env: Vec<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `--network`.
    pub network: Network,
    /// `--name`, unique.
    pub name: Option<String>,
    /// `--hostname` (default: the first 12 hex of the ID).
    pub hostname: Option<String>,
    /// `-v`.
    pub volumes: Vec<Volume>,
    /// `--rm`: remove the container and its layer after it exits.
    pub rm: bool,
    /// `-i`.
    pub stdin: bool,
    /// `-t`.
    pub tty: bool,
    /// `--cap-add`, `--cap-drop`, `--security-opt`, `--device`.
    pub security: crate::sandbox::Security,
    /// `--memory`, `--cpus`, `--pids-limit`, `--ulimit`…
    pub limits: crate::cgroup::Limits,
}

/// The argv a container runs, by Docker's rules: `--entrypoint` replaces the image's
/// Entrypoint and drops its Cmd; CMD args replace the Cmd; the result is Entrypoint + Cmd.
pub fn command_line(config: &ContainerConfig, cmd: &[String], entrypoint: Option<&str>) -> Result<Vec<String>> {
    let (ep, default_cmd): (Vec<String>, Vec<String>) = match entrypoint {
        Some("") => (Vec::new(), Vec::new()),
        Some(e) => (vec![e.to_string()], Vec::new()),
        None => (config.entrypoint.clone().unwrap_or_default(), config.cmd.clone().unwrap_or_default()),
    };
    let mut argv = ep;
    argv.extend(if cmd.is_empty() { default_cmd } else { cmd.to_vec() });
    if argv.is_empty() {
        return Err(Error::Spec("no command specified: the image has no CMD or ENTRYPOINT and none was given".into()));
    }
    Ok(argv)
}

/// The record of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// 64 hex digits.
    pub id: String,
    /// `--name`.
    #[serde(default)]
    pub name: Option<String>,
    /// The image as asked.
    pub image: String,
    /// The image ID.
    pub image_id: String,
    /// argv.
    pub command: Vec<String>,
    /// `running` or `exited`.
    pub status: String,
    /// Exit code once exited.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// RFC 3339-ish creation time (seconds since the epoch).
    pub created: u64,
}

fn new_id() -> String {
    let seed = format!("{}-{}-{:?}", std::process::id(), snapshot::unique(), std::time::SystemTime::now());
    blake3::hash(seed.as_bytes()).to_hex().to_string()
}

/// Removes the name reservation, container dir and snapshot on drop unless disarmed.
struct Cleanup<'a> {
    sn: &'a dyn Snapshotter,
    key: Option<String>,
    dir: Option<PathBuf>,
    name_file: Option<PathBuf>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Some(k) = &self.key {
            let _ = self.sn.remove(k);
        }
        if let Some(d) = &self.dir {
            let _ = crate::util::remove_tree(d);
        }
        if let Some(n) = &self.name_file {
            let _ = std::fs::remove_file(n);
        }
    }
}

/// Run a container to completion with the caller's stdio; returns its exit code.
pub fn run_container(store: &Store, opts: &ContainerOptions, sandbox: &Sandbox) -> Result<i32> {
    let root = store.root();
    let image = store.resolve(&opts.image)?;
    let config = image.config.config.clone().unwrap_or_default();
    let argv = command_line(&config, &opts.cmd, opts.entrypoint.as_deref())?;
    let sn = snapshot::open(root, crate::sandbox::store_trees(root))?;
    let top = snapshot::unpack_image(sn.as_ref(), store, image.layers(), &image.config.rootfs.diff_ids, Some(sandbox))?;

    let id = new_id();
    let containers = root.join("containers");
    let names = containers.join("names");
    std::fs::create_dir_all(&names).map_err(Error::io(&names))?;
    let mut cleanup = Cleanup { sn: sn.as_ref(), key: None, dir: None, name_file: None };
    if let Some(name) = &opts.name {
        let ok = !name.is_empty()
            && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok {
            return Err(Error::Container {
                name: name.clone(),
                reason: "invalid name: [a-zA-Z0-9][a-zA-Z0-9_.-]*".into(),
            });
        }
        let f = names.join(name);
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&f) {
            Ok(mut file) => {
                std::io::Write::write_all(&mut file, id.as_bytes()).map_err(Error::io(&f))?;
                cleanup.name_file = Some(f);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let other = std::fs::read_to_string(&f).unwrap_or_default();
                return Err(Error::Container {
                    name: name.clone(),
                    reason: format!("the name is already in use by container {}", &other[..other.len().min(12)]),
                });
            }
            Err(e) => return Err(Error::io(&f)(e)),
        }
    }
    let dir = containers.join(&id);
    std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
    cleanup.dir = Some(dir.clone());
    let key = format!("container-{id}");
    let mounts = sn.prepare(&key, top.as_deref())?;
    cleanup.key = Some(key.clone());

    let mut record = ContainerRecord {
        id: id.clone(),
        name: opts.name.clone(),
        image: opts.image.clone(),
        image_id: image.config_digest.to_string(),
        command: argv.clone(),
        status: "running".into(),
        exit_code: None,
        created: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    };
    let record_path = dir.join("container.json");
    crate::util::write_atomic(&record_path, &serde_json::to_vec_pretty(&record).expect("record serializes"))?;
    if !opts.rm {
        // Kept after exit: the record and the layer stay.
        cleanup.key = None;
        cleanup.dir = None;
        cleanup.name_file = None;
    }

    let hostname = opts.hostname.clone().unwrap_or_else(|| id[..12].to_string());
    let mut env = config.env.clone();
    env.push(format!("HOSTNAME={hostname}"));
    env.extend(opts.env.iter().cloned());
    let mut mounts_spec = Vec::new();
    for v in &opts.volumes {
        let source = match &v.source {
            VolumeSource::Host(p) => {
                if !p.exists() {
                    std::fs::create_dir_all(p).map_err(Error::io(p))?;
                }
                p.clone()
            }
            VolumeSource::Named(n) => {
                let p = root.join("volumes").join(n);
                std::fs::create_dir_all(&p).map_err(Error::io(&p))?;
                p
            }
        };
        mounts_spec.push(MountSpec::Bind {
            source: BindSource::Host(source),
            subpath: "/".into(),
            target: v.target.clone(),
            readonly: v.readonly,
        });
    }
    let spec = RunSpec {
        rootfs: mounts,
        args: argv,
        env,
        cwd: opts
            .workdir
            .clone()
            .or(config.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into()),
        user: opts.user.clone().or(config.user.clone()).filter(|u| !u.is_empty()),
        hostname: Some(hostname),
        network: opts.network,
        mounts: mounts_spec,
        security: opts.security.clone(),
        limits: opts.limits.clone(),
        ..Default::default()
    };
    let out = sandbox.run(&spec, RunIo::inherit(opts.stdin, opts.tty))?;
    record.status = "exited".into();
    record.exit_code = Some(out.code);
    if !opts.rm {
        crate::util::write_atomic(&record_path, &serde_json::to_vec_pretty(&record).expect("record serializes"))?;
    }
    Ok(out.code)
}

/// Every container record under `root`.
pub fn list(root: &Path) -> Result<Vec<ContainerRecord>> {
    let dir = root.join("containers");
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(&dir) else { return Ok(out) };
    for e in rd.flatten() {
        if let Ok(b) = std::fs::read(e.path().join("container.json")) {
            if let Ok(r) = serde_json::from_slice(&b) {
                out.push(r);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(ep: Option<&[&str]>, cmd: Option<&[&str]>) -> ContainerConfig {
        ContainerConfig {
            entrypoint: ep.map(|v| v.iter().map(|s| s.to_string()).collect()),
            cmd: cmd.map(|v| v.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn docker_entrypoint_and_cmd_rules() {
        let c = cfg(Some(&["/ep"]), Some(&["a", "b"]));
        assert_eq!(command_line(&c, &[], None).unwrap(), s(&["/ep", "a", "b"]));
        assert_eq!(command_line(&c, &s(&["x"]), None).unwrap(), s(&["/ep", "x"]));
        assert_eq!(command_line(&c, &[], Some("/other")).unwrap(), s(&["/other"]));
        assert_eq!(command_line(&c, &s(&["y"]), Some("/other")).unwrap(), s(&["/other", "y"]));
        assert_eq!(command_line(&c, &s(&["echo", "hi"]), Some("")).unwrap(), s(&["echo", "hi"]));
        let shell_form = cfg(None, Some(&["/bin/sh", "-c", "echo hi"]));
        assert_eq!(command_line(&shell_form, &[], None).unwrap(), s(&["/bin/sh", "-c", "echo hi"]));
        assert!(command_line(&cfg(None, None), &[], None).unwrap_err().to_string().contains("no command"));
    }

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
