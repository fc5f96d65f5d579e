//! What to run: the typed spec a caller gives the [`super::Executor`], and the resolved
//! spec the parent hands to the re-executed init over a pipe.

use crate::snapshot::Mount;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// PATH when the image sets none (Docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The network a sandbox sees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// The host's network (the default, like `docker build`).
    #[default]
    Host,
    /// A new network namespace with only `lo`, up.
    None,
}

/// How concurrent users of one cache mount share it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheSharing {
    /// Everyone uses the same directory at once.
    #[default]
    Shared,
    /// A user finding it busy gets a fresh empty directory of its own (thrown away after).
    Private,
    /// Users take turns (an exclusive flock held for the whole run).
    Locked,
}

/// Where a bind mount's files come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BindSource {
    /// A host directory or file (the build context, a stage's committed tree…).
    Host(PathBuf),
    /// A snapshot, mounted privately inside the sandbox (e.g. a stage's rootfs as a
    /// `view`'s mounts).
    Snapshot(Vec<Mount>),
}

/// One `RUN --mount` (or `-v`) of a step, typed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountSpec {
    /// `type=bind`: `subpath` of `source` (`/` for all of it) at `target`.
    Bind {
        /// Where the files come from.
        source: BindSource,
        /// The path inside `source` (`source=` of the flag); `/` for all of it.
        subpath: String,
        /// The path in the container.
        target: String,
        /// Read-only (BuildKit's default for `type=bind`).
        readonly: bool,
    },
    /// `type=cache`: a directory under `<root>/cache-mounts/<id>` that outlives builds.
    Cache {
        /// The cache's identity (default: the target).
        id: String,
        /// The path in the container.
        target: String,
        /// How concurrent builds share it.
        sharing: CacheSharing,
        /// Owner of the directory when created.
        uid: u32,
        /// Group of the directory when created.
        gid: u32,
        /// Mode of the directory when created.
        mode: u32,
        /// Mount read-only.
        readonly: bool,
    },
    /// `type=tmpfs`.
    Tmpfs {
        /// The path in the container.
        target: String,
        /// Size limit in bytes.
        size: Option<u64>,
    },
    /// A container's volume: the host directory `source` at `target`. With `seed`, an empty
    /// `source` first gets what the root filesystem has at `target` (docker's copy-up),
    /// copied inside the sandbox, where the image's owners can be kept (rootless too).
    Volume {
        /// The volume's directory on the host.
        source: PathBuf,
        /// The path in the container.
        target: String,
        /// Read-only.
        readonly: bool,
        /// Seed an empty volume from the root filesystem.
        seed: bool,
    },
    /// `type=secret`: a read-only in-memory file, at `/run/secrets/<id>` unless `target`.
    Secret {
        /// The secret's id (`--secret id=…`).
        id: String,
        /// The path in the container.
        target: Option<String>,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
        /// Mode (default 0400).
        mode: u32,
        /// Fail when the secret was not provided (else the mount is skipped).
        required: bool,
    },
    /// `type=ssh`: the agent socket at `/run/buildkit/ssh_agent.N` (or `target`), with
    /// `SSH_AUTH_SOCK` set.
    Ssh {
        /// The agent's id (`--ssh id=…`, `default`).
        id: String,
        /// The socket path in the container.
        target: Option<String>,
        /// Owner of the socket path.
        uid: u32,
        /// Group of the socket path.
        gid: u32,
        /// Mode of the socket path (default 0600).
        mode: u32,
        /// Fail when no agent was provided.
        required: bool,
    },
}

/// Where a secret's bytes come from (`--secret id=…,src=…` or `,env=…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A host file.
    File(PathBuf),
    /// A host environment variable.
    Env(String),
    /// Bytes already read.
    Bytes(Vec<u8>),
}

/// A command to run in a sandbox.
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    /// How to mount the root filesystem (a snapshot's mounts).
    pub rootfs: Vec<Mount>,
    /// argv; `args[0]` is looked up in the container's PATH when it has no `/`.
    pub args: Vec<String>,
    /// `KEY=value` (image ENV, then the step's); PATH and HOME are added when missing.
    pub env: Vec<String>,
    /// Working directory (created when missing, owned by the user); empty means `/`.
    pub cwd: String,
    /// `USER`: `name`, `uid`, `name:group`, `uid:gid`; `None` is root.
    pub user: Option<String>,
    /// The container's hostname (default `rbuild`).
    pub hostname: Option<String>,
    /// Host or none.
    pub network: Network,
    /// Extra mounts, in order.
    pub mounts: Vec<MountSpec>,
    /// Secrets by id, for [`MountSpec::Secret`].
    pub secrets: BTreeMap<String, SecretSource>,
    /// SSH agent sockets by id, for [`MountSpec::Ssh`] (`default`: `$SSH_AUTH_SOCK`).
    pub ssh_agents: BTreeMap<String, PathBuf>,
    /// `/etc/hosts` extra lines (`host ip`), after the defaults.
    pub extra_hosts: Vec<(String, String)>,
    /// Kill the whole sandbox after this long.
    pub timeout: Option<Duration>,
    /// Capabilities, seccomp, devices.
    pub security: Security,
    /// Resource limits (cgroup and ulimits); the default limits nothing.
    pub limits: crate::cgroup::Limits,
    /// Name the run's cgroup `rbuild-<this>` (a container's ID) and give it every
    /// controller (pause, stats); `None`: `rbuild-<pid>-<n>`, devices only unless limited.
    pub cgroup: Option<String>,
}

/// What confines the command, and how it was loosened (`rbuild run --cap-add`,
/// `--security-opt`, `--device`; `RUN --security=insecure`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    /// `RUN --security=insecure` (with `--allow security.insecure`): every capability, no
    /// seccomp, no device rules, no masked paths.
    pub privileged: bool,
    /// `--cap-add` (names, `ALL`).
    pub cap_add: Vec<String>,
    /// `--cap-drop` (names, `ALL`).
    pub cap_drop: Vec<String>,
    /// The seccomp profile.
    pub seccomp: Seccomp,
    /// `--security-opt no-new-privileges`: setuid binaries and file capabilities give
    /// nothing.
    pub no_new_privileges: bool,
    /// `--device`: host devices made available in the container.
    pub devices: Vec<Device>,
}

/// Which seccomp filter the command runs under.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Seccomp {
    /// Docker's default profile.
    #[default]
    Default,
    /// None (`--security-opt seccomp=unconfined`).
    Unconfined,
    /// A profile file (`--security-opt seccomp=FILE.json`).
    Profile(Box<crate::sandbox::seccomp::Profile>),
}

/// A host device given to the container (`--device HOST[:CONTAINER][:rwm]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The device node on the host.
    pub host: PathBuf,
    /// Its path in the container (default: the host path).
    pub container: String,
    /// Some of `rwm` (default all).
    pub access: String,
}

impl Device {
    /// Parse `HOST[:CONTAINER][:PERMISSIONS]` as docker does.
    pub fn parse(s: &str) -> crate::error::Result<Device> {
        let bad = |why: &str| crate::error::Error::Spec(format!("--device {s}: {why}"));
        let perms = |p: &str| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| "rwm".contains(c));
        let parts: Vec<&str> = s.split(':').collect();
        let (host, container, access) = match parts.as_slice() {
            [h] => (*h, *h, "rwm"),
            [h, p] if perms(p) => (*h, *h, *p),
            [h, c] => (*h, *c, "rwm"),
            [h, c, p] if perms(p) => (*h, *c, *p),
            [_, _, _] => return Err(bad("permissions must be some of r, w and m")),
            _ => return Err(bad("expected HOST[:CONTAINER][:PERMISSIONS]")),
        };
        if !host.starts_with('/') || !container.starts_with('/') {
            return Err(bad("paths must be absolute"));
        }
        Ok(Device { host: host.into(), container: container.into(), access: access.into() })
    }
}

/// What the sandbox sends back over its status pipe, and what a run yields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOutcome {
    /// Exit code: the command's, or 128 + signal when killed.
    pub code: i32,
    /// The signal that killed the command, if any.
    pub signal: Option<i32>,
    /// The last lines of output (captured output only), for error messages.
    pub tail: Vec<String>,
    /// Killed because the timeout passed.
    pub timed_out: bool,
    /// Killed because the caller cancelled (Ctrl-C).
    pub cancelled: bool,
    /// Paths (in the container) that the sandbox created as mount points and that must
    /// stay out of the layer: what the differ leaves out.
    pub mountpoints: Vec<String>,
    /// Directories the sandbox created only to hold mount points: left out of the layer
    /// when the command put nothing else in them.
    pub created_parents: Vec<String>,
    /// Existing directories the sandbox created mount points in (copied up by overlayfs
    /// with a new mtime): path and mode, uid, gid before. Left out of the layer when
    /// nothing else changed in or under them.
    pub touched_dirs: Vec<(String, u32, u32, u32)>,
    /// Set when the command could not be started (not found, not executable).
    pub exec_error: Option<String>,
    /// The kernel's OOM killer killed a process of the run (its memory limit was hit).
    pub oom_killed: bool,
}

/// The resolved spec the init receives (internal; JSON over fd 3).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct InitSpec {
    pub probe: bool,
    pub sandbox_dir: PathBuf,
    pub rootfs: Vec<Mount>,
    /// Rootless: map uid/gid 0 in the new user namespace to these host ids.
    pub rootless: Option<(u32, u32)>,
    /// Rootless: the full id maps (written by the parent with newuidmap/newgidmap when
    /// they cover more than root; else by the init itself from `rootless`).
    #[serde(default)]
    pub id_map: Option<crate::sandbox::idmap::IdMap>,
    /// Remove mode: enter the user namespace, remove these trees, report `P ok`.
    #[serde(default)]
    pub remove: Vec<PathBuf>,
    /// Extract mode: enter the user namespace, apply the layer read from stdin, report
    /// `P ok`.
    #[serde(default)]
    pub extract: Option<ExtractSpec>,
    /// Copy mode: enter the user namespace, copy the tree `.0` to `.1` keeping owners,
    /// report `P ok`.
    #[serde(default)]
    pub copy: Option<(PathBuf, PathBuf)>,
    pub network: Network,
    pub hostname: String,
    pub mounts: Vec<InitMount>,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: Option<String>,
    pub tty: bool,
    /// The capabilities the command keeps (numbers).
    #[serde(default)]
    pub caps: Vec<u32>,
    /// Seccomp programs to install right before exec ([`crate::sandbox::seccomp::Programs`]).
    #[serde(default)]
    pub seccomp: Vec<Vec<u64>>,
    /// Set no_new_privs before exec.
    #[serde(default)]
    pub no_new_privs: bool,
    /// Leave Docker's masked and read-only paths alone (privileged).
    #[serde(default)]
    pub unmasked: bool,
    /// Device nodes to make in /dev (`--device`).
    #[serde(default)]
    pub devices: Vec<InitDevice>,
    /// Mount the root filesystem nodev (no device cgroup confines this run).
    #[serde(default)]
    pub nodev: bool,
    /// Join mode: enter a running container (or a stopped one's rootfs) and exec or copy.
    #[serde(default)]
    pub join: Option<crate::sandbox::init::join::JoinSpec>,
    /// `--ulimit`s: (RLIMIT_*, soft, hard), set right before exec.
    #[serde(default)]
    pub rlimits: Vec<(u32, u64, u64)>,
}

/// A device node the init makes (or binds, rootless) in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InitDevice {
    /// The host's node (bound when mknod is not possible).
    pub host: PathBuf,
    /// The path in the container.
    pub target: String,
    /// Block device (else character).
    pub block: bool,
    pub major: u64,
    pub minor: u64,
    /// Permission bits of the node.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// A layer the init applies as root of the rootless user namespace, so its files get
/// the owners the image gives them (internal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ExtractSpec {
    /// The directory to apply into (an extraction snapshot).
    pub dir: PathBuf,
    /// Overlay whiteouts (0/0 devices, `user.overlay.opaque`), else whiteouts delete.
    pub overlay: bool,
    /// Verify the bytes read against this digest and size (a blob from the store).
    pub digest: Option<(rbuild_image::Digest, u64)>,
    /// Verify the uncompressed tar against this diffID.
    pub diff_id: Option<rbuild_image::Digest>,
}

/// A mount the init performs, every source already resolved on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum InitMount {
    /// Bind `source` (a host path) at `target`.
    Bind { source: PathBuf, target: String, readonly: bool },
    /// Mount `mounts` privately, then bind their `subpath` at `target`.
    Staged { mounts: Vec<Mount>, subpath: String, target: String, readonly: bool },
    /// A tmpfs.
    Tmpfs { target: String, size: Option<u64>, mode: u32 },
    /// Bind the directory `source` at `target`, first seeding it (when `seed` and empty) from
    /// what the rootfs has there.
    Volume { source: PathBuf, target: String, readonly: bool, seed: bool },
    /// A file with these bytes on a private tmpfs, bound at `target`. `injected` files
    /// (/etc/hosts…) are left out of layers even when they existed before.
    File { target: String, content: Vec<u8>, uid: u32, gid: u32, mode: u32, readonly: bool, injected: bool },
}

impl InitMount {
    pub fn target(&self) -> &str {
        match self {
            InitMount::Bind { target, .. }
            | InitMount::Staged { target, .. }
            | InitMount::Tmpfs { target, .. }
            | InitMount::Volume { target, .. }
            | InitMount::File { target, .. } => target,
        }
    }
}
