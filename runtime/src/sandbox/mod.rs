//! The sandbox: a command in new namespaces on a snapshot's root filesystem.
//!
//! The parent side ([`Sandbox`], an [`Executor`]) resolves a [`RunSpec`] (cache
//! directories, secrets, agent sockets, /etc/hosts…), re-executes the current binary with
//! [`init_hook`]'s variable set, hands it the resolved spec over a pipe, streams or passes
//! through its output, enforces the timeout and cancellation, and cleans up. The init side
//! ([`init`]) does the namespaces, mounts, pivot_root, user and exec. Everything the
//! sandbox mounts lives in its own mount namespace and vanishes with it; its scratch
//! directory `<root>/tmp/sandbox-<pid>-<n>` is removed after the run, and by the next
//! [`Sandbox::new`] when its process was killed.
//!
//! Rootless with subordinate ids, files belong to ids the caller cannot chown to, read or
//! delete on the host; the same init, in its user namespace as root there, applies image
//! layers ([`Sandbox::apply_layer`], [`Sandbox::layer_applier`]), copies snapshot trees
//! ([`Sandbox::copy_tree`]) and removes them ([`Sandbox::remove_tree`]).

pub mod caps;
pub use crate::cgroup;
pub mod idmap;
pub(crate) mod init;
pub mod seccomp;
pub mod spec;
pub mod syscalls;
pub mod tty;

pub use idmap::{IdMap, IdRange};
pub use init::join::{ExecSpec, JoinTarget, PathKind, copy_dir_of, process_running};
pub use spec::{
    BindSource, CacheSharing, DEFAULT_PATH, Device, MountSpec, Network, RunOutcome, RunSpec, Seccomp, SecretSource,
    Security,
};

use crate::error::{Error, Result};
use crate::snapshot::{self, ApplyLayer, TreeOps, WhiteoutStyle};
use spec::{InitDevice, InitMount, InitSpec};
use std::collections::VecDeque;
use std::io::{BufRead, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Call first thing in `main` of any binary that uses the sandbox: when the process is a
/// re-executed sandbox init, runs it and returns its exit code (exit with it); otherwise
/// returns `None` at once.
pub fn init_hook() -> Option<i32> {
    std::env::var_os(init::ENV)?;
    Some(init::main())
}

/// The environment variable [`init_hook`] looks for (to keep it from other re-executed
/// helpers, such as a container's monitor).
pub fn init_env() -> &'static str {
    init::ENV
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// stdout.
    Stdout,
    /// stderr.
    Stderr,
}

/// Where the command's output goes.
pub enum Output {
    /// The caller's own stdout/stderr (`rbuild run`).
    Inherit,
    /// Each chunk to this sink as it comes (a build's progress); the last lines are kept
    /// for [`RunOutcome::tail`].
    Capture(Sink),
}

/// Receives output chunks as they come.
pub type Sink = Box<dyn FnMut(Stream, &[u8]) + Send>;

/// How the command talks to the caller.
pub struct RunIo {
    /// Pass the caller's stdin (`-i`); else /dev/null.
    pub stdin: bool,
    /// Allocate a pty (`-t`): the caller's terminal goes raw, window size follows.
    pub tty: bool,
    /// Where output goes.
    pub output: Output,
    /// Set to true to kill the whole sandbox (Ctrl-C in a build).
    pub cancel: Option<Arc<AtomicBool>>,
    /// Forward SIGINT/SIGTERM/SIGHUP/SIGQUIT received by this process to the command
    /// (`rbuild run`), for the duration of the run.
    pub forward_signals: bool,
    /// Called once the container is set up, right before its command is started, with
    /// the pids a container record keeps ([`Started`]).
    pub on_start: Option<OnStart>,
}

/// Receives [`Started`] (see [`RunIo::on_start`]).
pub type OnStart = Box<dyn FnOnce(Started) + Send>;

/// A sandbox that is set up and about to run its command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Started {
    /// The outer init (our child, in the caller's pid namespace).
    pub init_pid: i32,
    /// The new pid namespace's pid 1, as the caller's pid namespace numbers it: the
    /// process whose namespaces `exec` joins.
    pub pid: i32,
    /// The sandbox's cgroup directories, if it has some.
    pub cgroup: Vec<PathBuf>,
}

impl RunIo {
    /// Captured output for a build step, sent to `sink`.
    pub fn capture(sink: impl FnMut(Stream, &[u8]) + Send + 'static) -> RunIo {
        RunIo {
            stdin: false,
            tty: false,
            output: Output::Capture(Box::new(sink)),
            cancel: None,
            forward_signals: false,
            on_start: None,
        }
    }

    /// The caller's stdio, signals forwarded (`rbuild run`).
    pub fn inherit(stdin: bool, tty: bool) -> RunIo {
        RunIo { stdin, tty, output: Output::Inherit, cancel: None, forward_signals: true, on_start: None }
    }
}

/// Runs commands in sandboxes (BuildKit's `Executor`).
pub trait Executor {
    /// Run `spec` to completion: Ok with the exit code (non-zero included) and what the
    /// stage created; Err when the sandbox itself could not be set up.
    fn run(&self, spec: &RunSpec, io: RunIo) -> Result<RunOutcome>;
}

/// The namespace sandbox.
#[derive(Debug, Clone)]
pub struct Sandbox {
    root: PathBuf,
    exe: PathBuf,
    rootless: Option<(u32, u32)>,
    id_map: Option<IdMap>,
}

const TAIL_BYTES: usize = 16 * 1024;
const TAIL_LINES: usize = 20;

impl Sandbox {
    /// A sandbox keeping its scratch and cache directories under the store `root`.
    /// Removes what killed runs left behind. Rootless when the effective uid is not 0:
    /// root inside is the caller, and ids 1.. are the caller's ranges in /etc/subuid and
    /// /etc/subgid when it has some and newuidmap/newgidmap are installed ([`IdMap`]).
    pub fn new(root: &Path) -> Result<Sandbox> {
        let sb = Sandbox::open(root)?;
        sb.cleanup_stale();
        Ok(sb)
    }

    /// [`Sandbox::new`] without the cleanup.
    fn open(root: &Path) -> Result<Sandbox> {
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(Error::io(&tmp))?;
        let uid = nix::unistd::geteuid();
        let rootless = (!uid.is_root()).then(|| (uid.as_raw(), nix::unistd::getegid().as_raw()));
        let id_map = rootless.map(|(u, g)| IdMap::for_caller(u, g));
        if let Some(m) = id_map.as_ref().filter(|m| !m.is_multi()) {
            tracing::debug!("rootless with one id mapped: {}", m.single_reason.as_deref().unwrap_or(""));
        }
        Ok(Sandbox { root: root.to_path_buf(), exe: PathBuf::from("/proc/self/exe"), rootless, id_map })
    }

    /// Rootless only: use these id maps instead of the ones found for the caller (e.g.
    /// [`IdMap::single`] to run without the subordinate ranges).
    pub fn with_id_map(mut self, map: IdMap) -> Sandbox {
        if self.rootless.is_some() {
            self.rootless = Some(map.caller());
            self.id_map = Some(map);
        }
        self
    }

    /// The rootless user namespace's id maps (`None` when root): what the differ needs so a
    /// layer records the ids the command saw.
    pub fn id_map(&self) -> Option<&IdMap> {
        self.id_map.as_ref()
    }

    /// Use another binary as the init (it must call [`init_hook`] first).
    pub fn with_init_exe(mut self, exe: impl Into<PathBuf>) -> Sandbox {
        self.exe = exe.into();
        self
    }

    /// Is this sandbox rootless?
    pub fn rootless(&self) -> bool {
        self.rootless.is_some()
    }

    /// Remove a tree the sandbox wrote to (a writable layer, a snapshot). Rootless with
    /// subordinate ids, files a non-root `USER` made belong to ids the caller cannot
    /// remove on the host: what the plain removal leaves is removed from inside the user
    /// namespace, as root there (podman's `unshare rm`).
    pub fn remove_tree(&self, path: &Path) -> Result<()> {
        let first = crate::util::remove_tree(path);
        if first.is_ok() || !self.extracts_in_userns() {
            return first;
        }
        let mut spec = self.base_spec(&self.root.join("tmp"));
        spec.remove = vec![path.to_path_buf()];
        self.in_userns(&spec, &format!("removing {} in the user namespace", path.display()))
    }

    /// Copy the tree `from` to `to` (which must not exist) keeping owners, modes, times
    /// and xattrs: rootless with subordinate ids, from inside the user namespace, where
    /// files of other users can be read and chowned; else here.
    pub fn copy_tree(&self, from: &Path, to: &Path) -> Result<()> {
        if !self.extracts_in_userns() {
            return crate::util::copy_tree(from, to);
        }
        let mut spec = self.base_spec(&self.root.join("tmp"));
        spec.copy = Some((from.to_path_buf(), to.to_path_buf()));
        self.in_userns(&spec, &format!("copying {} in the user namespace", from.display()))
    }

    /// Run the init in one of its user-namespace modes (remove, copy) and wait for `P ok`.
    fn in_userns(&self, spec: &InitSpec, what: &str) -> Result<()> {
        let (mut child, mut status) = self.spawn_init(spec, [Stdio::null(), Stdio::null(), Stdio::inherit()])?;
        let mut msg = String::new();
        let _ = status.read_to_string(&mut msg);
        child.wait().map_err(|e| Error::Sandbox(format!("{what}: waiting: {e}")))?;
        match msg.trim() {
            "P ok" => Ok(()),
            m => Err(Error::Sandbox(format!("{what}: {}", m.strip_prefix("S ").unwrap_or(NO_INIT)))),
        }
    }

    /// Must layers be applied through [`Sandbox::apply_layer`] / [`Sandbox::layer_applier`]
    /// (rootless with subordinate ids: only root of the user namespace can give files the
    /// owners the image says)? Otherwise apply them in-process.
    pub fn extracts_in_userns(&self) -> bool {
        self.id_map.as_ref().is_some_and(|m| m.is_multi())
    }

    /// Apply a layer blob (compressed or not) into `dir` as root of the user namespace,
    /// verifying it against `digest` (and size) and `diff_id` when given. Rootless with
    /// subordinate ids only (see [`Sandbox::extracts_in_userns`]).
    pub fn apply_layer(
        &self,
        blob: std::fs::File,
        dir: &Path,
        style: WhiteoutStyle,
        digest: Option<(rbuild_image::Digest, u64)>,
        diff_id: Option<rbuild_image::Digest>,
    ) -> Result<()> {
        self.spawn_applier(Stdio::from(blob), dir, style, digest, diff_id)?.finish()
    }

    /// A writer whose bytes (a layer tar, compressed or not) are applied into `dir` as
    /// root of the user namespace; [`LayerApplier::finish`] says whether it worked.
    pub fn layer_applier(&self, dir: &Path, style: WhiteoutStyle) -> Result<LayerApplier> {
        self.spawn_applier(Stdio::piped(), dir, style, None, None)
    }

    fn spawn_applier(
        &self,
        input: Stdio,
        dir: &Path,
        style: WhiteoutStyle,
        digest: Option<(rbuild_image::Digest, u64)>,
        diff_id: Option<rbuild_image::Digest>,
    ) -> Result<LayerApplier> {
        if !self.extracts_in_userns() {
            return Err(Error::Sandbox(
                "layers are applied in a user namespace only when rootless with subordinate ids".into(),
            ));
        }
        let mut spec = self.base_spec(&self.root.join("tmp"));
        spec.extract = Some(spec::ExtractSpec {
            dir: dir.to_path_buf(),
            overlay: style == WhiteoutStyle::Overlay,
            digest,
            diff_id,
        });
        let (mut child, status) = self.spawn_init(&spec, [input, Stdio::null(), Stdio::inherit()])?;
        let input = child.stdin.take();
        Ok(LayerApplier { child: Some(child), input, status, dir: dir.to_path_buf() })
    }

    fn scratch(&self) -> Result<PathBuf> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let d =
            self.root.join("tmp").join(format!("sandbox-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(d.join("rootfs")).map_err(Error::io(&d))?;
        std::fs::create_dir_all(d.join("stage")).map_err(Error::io(&d))?;
        Ok(d)
    }

    /// Resolve the caller's mounts into what the init mounts; returns held cache locks.
    fn resolve_mounts(
        &self,
        spec: &RunSpec,
        scratch: &Path,
        env: &mut Vec<String>,
    ) -> Result<(Vec<InitMount>, Vec<std::fs::File>)> {
        let mut out = Vec::new();
        let mut locks = Vec::new();
        let hostname = spec.hostname.clone().unwrap_or_else(|| "rbuild".into());
        let mut hosts = format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n127.0.1.1\t{hostname}\n"
        );
        for (h, ip) in &spec.extra_hosts {
            hosts.push_str(&format!("{ip}\t{h}\n"));
        }
        let resolv = std::fs::read("/etc/resolv.conf").unwrap_or_else(|_| b"nameserver 127.0.0.1\n".to_vec());
        for (target, content) in [
            ("/etc/hosts", hosts.into_bytes()),
            ("/etc/resolv.conf", resolv),
            ("/etc/hostname", format!("{hostname}\n").into_bytes()),
        ] {
            out.push(InitMount::File {
                target: target.into(),
                content,
                uid: 0,
                gid: 0,
                mode: 0o644,
                readonly: false,
                injected: true,
            });
        }
        let mut ssh_n = 0;
        for m in &spec.mounts {
            match m {
                MountSpec::Bind { source: BindSource::Host(p), subpath, target, readonly } => {
                    // The whole source (a file too: joining "/" to a file names no file).
                    let whole = subpath.trim_matches('/').is_empty();
                    let src = if whole { p.clone() } else { crate::util::secure_join(p, subpath)? };
                    if !src.exists() {
                        let what =
                            if whole { p.display().to_string() } else { format!("{subpath} in {}", p.display()) };
                        return Err(Error::Spec(format!("bind mount source {what} (for {target}) not found")));
                    }
                    out.push(InitMount::Bind { source: src, target: target.clone(), readonly: *readonly });
                }
                MountSpec::Bind { source: BindSource::Snapshot(mounts), subpath, target, readonly } => {
                    out.push(InitMount::Staged {
                        mounts: mounts.clone(),
                        subpath: subpath.clone(),
                        target: target.clone(),
                        readonly: *readonly,
                    });
                }
                MountSpec::Cache { id, target, sharing, uid, gid, mode, readonly } => {
                    let (dir, lock) = self.cache_dir(id, *sharing, *uid, *gid, *mode, scratch)?;
                    locks.extend(lock);
                    out.push(InitMount::Bind { source: dir, target: target.clone(), readonly: *readonly });
                }
                MountSpec::Tmpfs { target, size } => {
                    out.push(InitMount::Tmpfs { target: target.clone(), size: *size, mode: 0o1777 })
                }
                MountSpec::Volume { source, target, readonly, seed } => {
                    if !source.is_dir() {
                        return Err(Error::Spec(format!(
                            "volume directory {} (for {target}) not found",
                            source.display()
                        )));
                    }
                    out.push(InitMount::Volume {
                        source: source.clone(),
                        target: target.clone(),
                        readonly: *readonly,
                        seed: *seed,
                    });
                }
                MountSpec::Secret { id, target, uid, gid, mode, required } => {
                    let content = match spec.secrets.get(id) {
                        Some(SecretSource::Bytes(b)) => b.clone(),
                        Some(SecretSource::File(p)) => std::fs::read(p).map_err(Error::io(p))?,
                        Some(SecretSource::Env(v)) => std::env::var_os(v)
                            .map(std::os::unix::ffi::OsStringExt::into_vec)
                            .ok_or_else(|| Error::Spec(format!("secret {id}: environment variable {v} is not set")))?,
                        None if *required => {
                            return Err(Error::Spec(format!(
                                "secret {id} is required but was not provided (--secret id={id},src=FILE)"
                            )));
                        }
                        None => continue,
                    };
                    let target = target.clone().unwrap_or_else(|| format!("/run/secrets/{id}"));
                    out.push(InitMount::File {
                        target,
                        content,
                        uid: *uid,
                        gid: *gid,
                        mode: *mode,
                        readonly: true,
                        injected: false,
                    });
                }
                MountSpec::Ssh { id, target, required, .. } => {
                    let sock = spec.ssh_agents.get(id).cloned().or_else(|| {
                        (id == "default").then(|| std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from)).flatten()
                    });
                    let Some(sock) = sock else {
                        if *required {
                            return Err(Error::Spec(format!(
                                "ssh agent {id} is required but none was provided (--ssh {id}, SSH_AUTH_SOCK)"
                            )));
                        }
                        continue;
                    };
                    let target = target.clone().unwrap_or_else(|| format!("/run/buildkit/ssh_agent.{ssh_n}"));
                    if ssh_n == 0 {
                        env.push(format!("SSH_AUTH_SOCK={target}"));
                    }
                    ssh_n += 1;
                    out.push(InitMount::Bind { source: sock, target, readonly: false });
                }
            }
        }
        Ok((out, locks))
    }

    fn cache_dir(
        &self,
        id: &str,
        sharing: CacheSharing,
        uid: u32,
        gid: u32,
        mode: u32,
        scratch: &Path,
    ) -> Result<(PathBuf, Option<std::fs::File>)> {
        let base = self.root.join("cache-mounts");
        std::fs::create_dir_all(&base).map_err(Error::io(&base))?;
        let readable: String = id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
            .take(60)
            .collect();
        let name = format!("{}-{}", readable.trim_matches('_'), &blake3::hash(id.as_bytes()).to_hex()[..16]);
        let dir = base.join(&name);
        let lock_path = base.join(format!("{name}.lock"));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(Error::io(&lock_path))?;
        let how = match sharing {
            CacheSharing::Shared => libc::LOCK_SH,
            CacheSharing::Locked => libc::LOCK_EX,
            CacheSharing::Private => libc::LOCK_EX | libc::LOCK_NB,
        };
        // SAFETY: flock on an fd we own; released when the File drops after the run.
        let got = unsafe { libc::flock(lock.as_raw_fd(), how) } == 0;
        let dir = if got {
            dir
        } else {
            // private and busy: a throwaway directory of our own.
            scratch.join(format!("cache-{name}"))
        };
        if !dir.exists() {
            let tmp = base.join(format!(".new-{}-{}", std::process::id(), snapshot::unique()));
            let target = if got { &tmp } else { &dir };
            std::fs::create_dir(target).map_err(Error::io(target))?;
            let _ = std::os::unix::fs::chown(target, Some(uid), Some(gid));
            std::fs::set_permissions(target, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .map_err(Error::io(target))?;
            if got && std::fs::rename(&tmp, &dir).is_err() {
                let _ = std::fs::remove_dir(&tmp);
            }
        }
        Ok((dir, got.then_some(lock)))
    }

    fn spawn_init(&self, spec: &InitSpec, stdio: [Stdio; 3]) -> Result<(std::process::Child, std::fs::File)> {
        self.spawn_init_with(spec, stdio, None, &[])
    }

    /// The capabilities, seccomp programs, device nodes and device cgroup of a run. The
    /// cgroup (when one could be made) must live until the sandbox has exited.
    fn confine(&self, spec: &RunSpec, init: &mut InitSpec) -> Result<Option<cgroup::Cgroup>> {
        spec.limits.validate()?;
        let sec = &spec.security;
        let mut caps = if sec.privileged {
            caps::all()
        } else {
            caps::effective(&sec.cap_add, &sec.cap_drop, spec.network == Network::Host)?
        };
        let mut rules = cgroup::default_rules();
        for d in &sec.devices {
            let (dev, block) = host_device(&d.host)?;
            let (major, minor) = (nix::sys::stat::major(dev.st_rdev), nix::sys::stat::minor(dev.st_rdev));
            rules.push(cgroup::DeviceRule {
                kind: if block { 'b' } else { 'c' },
                major: Some(major),
                minor: Some(minor),
                access: d.access.clone(),
            });
            init.devices.push(InitDevice {
                host: d.host.clone(),
                target: d.container.clone(),
                block,
                major,
                minor,
                mode: dev.st_mode & 0o7777,
                uid: 0,
                gid: 0,
            });
        }
        let devices = !sec.privileged && self.rootless.is_none();
        let cg = self.cgroup(spec, devices.then_some(&rules[..]))?;
        if devices && !cg.as_ref().is_some_and(|c| c.has_devices()) {
            // Without device rules, a node made with mknod, or brought by a layer, opens
            // the host's device.
            caps.retain(|c| *c != caps::MKNOD);
            init.nodev = true;
        }
        init.rlimits = spec.limits.ulimits.iter().filter_map(|u| u.rlimit()).collect();
        init.seccomp = match (&sec.seccomp, sec.privileged) {
            (_, true) | (Seccomp::Unconfined, _) => Vec::new(),
            (Seccomp::Default, _) => seccomp::default_programs(&caps)?,
            (Seccomp::Profile(p), _) => seccomp::compile(p, &caps)?,
        };
        init.caps = caps;
        init.no_new_privs = sec.no_new_privileges;
        init.unmasked = sec.privileged;
        Ok(cg)
    }

    /// The run's cgroup, `rbuild-<spec.cgroup>` (`rbuild-<pid>-<n>` unnamed): every
    /// controller for a named one (a container: pause, stats) or one with limits, else
    /// only the devices hierarchy (a build step's device rules). Rootless, only when limits
    /// ask for one; limits that cannot be applied are one warning.
    fn cgroup(&self, spec: &RunSpec, devices: Option<&[cgroup::DeviceRule]>) -> Result<Option<cgroup::Cgroup>> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let full = spec.cgroup.is_some() || spec.limits.needs_cgroup();
        if (!full && devices.is_none()) || (self.rootless.is_some() && !spec.limits.needs_cgroup()) {
            return Ok(None);
        }
        let mut layout = cgroup::layout();
        match (full, &mut layout) {
            (false, cgroup::Layout::V1(dirs)) => dirs.retain(|(c, _)| c == "devices"),
            (false, _) => return Ok(None),
            _ => {}
        }
        let name = spec
            .cgroup
            .clone()
            .unwrap_or_else(|| format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        let placed = cgroup::Cgroup::create_in(&layout, &name, &spec.limits, devices)?;
        if let Some(w) = &placed.warning {
            tracing::warn!("{w}");
        }
        Ok(placed.cgroup)
    }

    /// Spawn the init: spec on fd 3, status on fd 4, `tty_sock` (if any) on fd 5, and,
    /// when subordinate ids are mapped, a socket on fd 6 over which the init says it has
    /// unshared its user namespace and waits for us to write the maps with
    /// newuidmap/newgidmap (setuid helpers it cannot run from inside).
    fn spawn_init_with(
        &self,
        spec: &InitSpec,
        stdio: [Stdio; 3],
        tty_sock: Option<OwnedFd>,
        cgroup_procs: &[i32],
    ) -> Result<(std::process::Child, std::fs::File)> {
        let cgroup_procs = cgroup_procs.to_vec();
        let multi = spec.id_map.as_ref().filter(|m| m.is_multi());
        let (map_ours, map_theirs) = match multi {
            Some(_) => {
                let (a, b) = std::os::unix::net::UnixStream::pair().map_err(Error::io("socketpair"))?;
                (Some(a), Some(OwnedFd::from(b)))
            }
            None => (None, None),
        };
        let c = tty_sock.as_ref().map(|f| f.as_raw_fd()).unwrap_or(-1);
        let m = map_theirs.as_ref().map(|f| f.as_raw_fd()).unwrap_or(-1);
        let (spec_r, spec_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(Error::sys("pipe"))?;
        let (st_r, st_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(Error::sys("pipe"))?;
        let (a, b) = (spec_r.as_raw_fd(), st_w.as_raw_fd());
        let [i, o, e] = stdio;
        let mut cmd = Command::new(&self.exe);
        cmd.env(init::ENV, "1").stdin(i).stdout(o).stderr(e);
        // SAFETY: only async-signal-safe calls (fcntl, dup2, close, write, prctl, setpgid) between
        // fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // Into the sandbox's cgroup before anything runs (children inherit it), and
                // before the fd shuffle below can reuse its number.
                for &fd in &cgroup_procs {
                    if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                // Copies above 10 first, so a source already on 3..6 is not clobbered.
                let mut copies = [-1; 4];
                for (k, fd) in [a, b, c, m].into_iter().enumerate() {
                    if fd >= 0 {
                        copies[k] = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10);
                        if copies[k] < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                }
                for (k, fd) in copies.into_iter().enumerate() {
                    // dup2 clears FD_CLOEXEC on 3..6; the copies close on exec.
                    if fd >= 0 && libc::dup2(fd, 3 + k as i32) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                // Our own process group: a terminal's Ctrl-C reaches the caller, which
                // decides (forward, cancel, or die and take the sandbox with it).
                libc::setpgid(0, 0);
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::Sandbox(format!("starting the sandbox init {}: {e}", self.exe.display())))?;
        drop(spec_r);
        drop(st_w);
        drop(tty_sock);
        drop(map_theirs);
        let json = serde_json::to_vec(spec).expect("InitSpec serializes");
        let mut w = std::fs::File::from(spec_w);
        // The init reads all of it before anything else; a failure here shows in its status.
        let _ = w.write_all(&json);
        drop(w);
        if let (Some(map), Some(mut sock)) = (multi, map_ours) {
            let mut b = [0u8; 1];
            // EOF: the init failed before unsharing; its status says why.
            if matches!(sock.read(&mut b), Ok(1)) {
                if let Err(e) = map.write_with_helpers(child.id() as i32) {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(e);
                }
                let _ = sock.write_all(b"1");
            }
        }
        Ok((child, std::fs::File::from(st_r)))
    }

    fn base_spec(&self, scratch: &Path) -> InitSpec {
        InitSpec {
            probe: false,
            sandbox_dir: scratch.to_path_buf(),
            rootfs: Vec::new(),
            rootless: self.rootless,
            id_map: self.id_map.clone(),
            remove: Vec::new(),
            extract: None,
            copy: None,
            network: Network::Host,
            hostname: "rbuild".into(),
            mounts: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: "/".into(),
            user: None,
            tty: false,
            caps: caps::DEFAULT.to_vec(),
            seccomp: Vec::new(),
            no_new_privs: false,
            unmasked: false,
            devices: Vec::new(),
            nodev: false,
            join: None,
            rlimits: Vec::new(),
        }
    }
}

/// Applies a layer written into it in the rootless user namespace (from
/// [`Sandbox::layer_applier`]). Dropped unfinished, the applier is killed.
pub struct LayerApplier {
    child: Option<std::process::Child>,
    input: Option<std::process::ChildStdin>,
    status: std::fs::File,
    dir: PathBuf,
}

impl LayerApplier {
    /// Close the input and wait: Ok when the whole layer was applied (and verified).
    pub fn finish(mut self) -> Result<()> {
        drop(self.input.take());
        let mut msg = String::new();
        let _ = self.status.read_to_string(&mut msg);
        let mut child = self.child.take().expect("not finished");
        child.wait().map_err(|e| Error::Sandbox(format!("waiting for the layer applier: {e}")))?;
        match msg.trim() {
            "P ok" => Ok(()),
            m => Err(Error::Sandbox(format!(
                "applying a layer into {} in the user namespace: {}",
                self.dir.display(),
                m.strip_prefix("S ").unwrap_or(NO_INIT)
            ))),
        }
    }
}

impl Write for LayerApplier {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match &mut self.input {
            Some(w) => w.write(b),
            None => Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the applier reads a file")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.input.as_mut().map_or(Ok(()), |w| w.flush())
    }
}

impl Drop for LayerApplier {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Remove `<root>/tmp/sandbox-<pid>-*` directories whose process is gone (a killed parent).
pub fn cleanup_stale(root: &Path) {
    if let Ok(sb) = Sandbox::open(root) {
        sb.cleanup_stale();
    }
}

impl Sandbox {
    /// Remove what killed processes left under `<root>/tmp`: sandbox scratch and probe
    /// directories, and build and context directories named `build-<pid>-…`, `context-<pid>-…`, whose
    /// process is gone. Rootless, what a non-root `USER` wrote there (a private cache mount) is
    /// removed from inside the user namespace.
    fn cleanup_stale(&self) {
        let Ok(rd) = std::fs::read_dir(self.root.join("tmp")) else { return };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = ["sandbox-", "probe-", "build-", "context-"].iter().find_map(|p| name.strip_prefix(p))
            else {
                continue;
            };
            // `<prefix><pid>-<anything>`: a name without the pid is not ours to judge.
            let Some(pid) = rest.split_once('-').and_then(|(p, _)| p.parse::<i32>().ok()) else { continue };
            if pid != std::process::id() as i32 && !crate::util::pid_alive(pid) {
                tracing::debug!("removing {} left by a killed process", e.path().display());
                let _ = self.remove_tree(&e.path());
            }
        }
        if self.rootless.is_none() {
            cgroup::cleanup_stale();
        }
    }
}

/// The stat of a `--device` path: it must be a character or block device.
fn host_device(p: &Path) -> Result<(nix::sys::stat::FileStat, bool)> {
    let st = nix::sys::stat::stat(p).map_err(Error::sys(format!("--device {}", p.display())))?;
    match st.st_mode & libc::S_IFMT {
        libc::S_IFCHR => Ok((st, false)),
        libc::S_IFBLK => Ok((st, true)),
        _ => Err(Error::Spec(format!("--device {}: not a device node", p.display()))),
    }
}

/// The trees of the store under `root` as the snapshotter needs them handled ([`TreeOps`]): plainly when
/// root; rootless, what a plain removal leaves (files of subordinate ids) is removed, and
/// trees are copied, from inside the user namespace ([`Sandbox::remove_tree`],
/// [`Sandbox::copy_tree`]). Opens a sandbox on the store root only when it needs one.
/// What [`snapshot::open`] and [`snapshot::prune`] take.
pub fn store_trees(root: &Path) -> Arc<dyn TreeOps> {
    Arc::new(StoreTrees { root: root.to_path_buf() })
}

#[derive(Debug, Clone)]
struct StoreTrees {
    root: PathBuf,
}

impl TreeOps for StoreTrees {
    fn remove_tree(&self, path: &Path) -> Result<()> {
        let first = crate::util::remove_tree(path);
        if first.is_ok() || nix::unistd::geteuid().is_root() {
            return first;
        }
        match Sandbox::open(&self.root) {
            Ok(sb) if sb.extracts_in_userns() => sb.remove_tree(path),
            _ => first,
        }
    }

    fn copy_tree(&self, from: &Path, to: &Path) -> Result<()> {
        if nix::unistd::geteuid().is_root() {
            return crate::util::copy_tree(from, to);
        }
        Sandbox::open(&self.root)?.copy_tree(from, to)
    }

    fn probe_overlay(&self) -> Result<std::result::Result<(), String>> {
        probe_overlay(&self.root)
    }
}

impl ApplyLayer for Sandbox {
    fn applies_in_userns(&self) -> bool {
        self.extracts_in_userns()
    }

    fn apply_layer(
        &self,
        blob: std::fs::File,
        dir: &Path,
        style: WhiteoutStyle,
        digest: Option<(rbuild_image::Digest, u64)>,
        diff_id: Option<rbuild_image::Digest>,
    ) -> Result<()> {
        Sandbox::apply_layer(self, blob, dir, style, digest, diff_id)
    }
}

/// Can overlayfs mount under `root` (through a user namespace when not root)? Runs the
/// init in probe mode: Ok(Ok(())) when it can, Ok(Err(reason)) when it cannot, Err when
/// the init itself did not run.
fn probe_overlay(root: &Path) -> Result<std::result::Result<(), String>> {
    let sb = Sandbox::new(root)?;
    let d = root.join("tmp").join(format!("probe-{}-{}", std::process::id(), snapshot::unique()));
    for sub in ["l", "u", "w", "m"] {
        std::fs::create_dir_all(d.join(sub)).map_err(Error::io(&d))?;
    }
    std::fs::write(d.join("l/a"), b"a").map_err(Error::io(&d))?;
    let mut spec = sb.base_spec(&d);
    spec.probe = true;
    let r = (|| {
        let (mut child, mut status) = sb.spawn_init(&spec, [Stdio::null(), Stdio::null(), Stdio::null()])?;
        let mut msg = String::new();
        let _ = status.read_to_string(&mut msg);
        child.wait()?;
        let msg = msg.trim();
        if msg == "P ok" {
            Ok(Ok(()))
        } else if let Some(reason) = msg.strip_prefix("S ") {
            Ok(Err(reason.to_string()))
        } else {
            Err(Error::Sandbox(NO_INIT.into()))
        }
    })();
    let _ = crate::util::remove_tree(&d);
    r
}

const NO_INIT: &str = "the sandbox init did not run: the binary's main must call \
    rbuild_runtime::sandbox::init_hook() before anything else";

static PARENT_FORWARD: AtomicI32 = AtomicI32::new(0);
static WINCH: AtomicBool = AtomicBool::new(false);

extern "C" fn parent_forward(sig: libc::c_int) {
    if sig == libc::SIGWINCH {
        WINCH.store(true, Ordering::Relaxed);
        return;
    }
    let pid = PARENT_FORWARD.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Restores the previous handlers when dropped.
struct SignalGuard(Vec<(i32, libc::sigaction)>);

impl SignalGuard {
    fn install(pid: i32, sigs: &[i32]) -> SignalGuard {
        PARENT_FORWARD.store(pid, Ordering::Relaxed);
        let mut old = Vec::new();
        for &sig in sigs {
            // SAFETY: the handler only calls kill(2) or stores an atomic.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = parent_forward as *const () as usize;
                libc::sigemptyset(&mut sa.sa_mask);
                let mut prev: libc::sigaction = std::mem::zeroed();
                libc::sigaction(sig, &sa, &mut prev);
                old.push((sig, prev));
            }
        }
        SignalGuard(old)
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        for (sig, prev) in &self.0 {
            // SAFETY: restoring what was there.
            unsafe { libc::sigaction(*sig, prev, std::ptr::null_mut()) };
        }
        PARENT_FORWARD.store(0, Ordering::Relaxed);
    }
}

fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open returns a new fd we own, or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    // SAFETY: fd is ours.
    (fd >= 0).then(|| unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Wait for `pid` to exit (without reaping), waking to check `stop` every 100 ms. Returns
/// the reason to stop early, if any.
fn wait_exit(
    pid: i32,
    deadline: Option<Instant>,
    cancel: Option<&AtomicBool>,
    mut on_wake: impl FnMut(),
) -> Option<&'static str> {
    let pidfd = pidfd_open(pid);
    loop {
        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Some("cancelled");
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Some("timeout");
        }
        let need_tick = cancel.is_some() || WINCH.load(Ordering::Relaxed) || pidfd.is_none();
        let mut ms: i32 = if need_tick { 100 } else { -1 };
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(now).as_millis().min(i32::MAX as u128) as i32;
            ms = if ms < 0 { left } else { ms.min(left) };
        }
        match &pidfd {
            Some(fd) => {
                let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
                // SAFETY: one valid pollfd.
                let r = unsafe { libc::poll(&mut p, 1, ms) };
                if r > 0 {
                    return None;
                }
            }
            None => {
                let mut st = 0;
                // SAFETY: peek at our child's state without reaping it.
                let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                let r = unsafe {
                    libc::waitid(libc::P_PID, pid as u32, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT)
                };
                // SAFETY: reading the pid field of a filled siginfo.
                if r == 0 && unsafe { info.si_pid() } == pid {
                    return None;
                }
                let _ = &mut st;
                std::thread::sleep(Duration::from_millis(ms.clamp(1, 100) as u64));
            }
        }
        on_wake();
    }
}

impl Executor for Sandbox {
    fn run(&self, spec: &RunSpec, io: RunIo) -> Result<RunOutcome> {
        if spec.args.is_empty() {
            return Err(Error::Spec("no command to run".into()));
        }
        if spec.rootfs.is_empty() {
            return Err(Error::Spec("no root filesystem mounts".into()));
        }
        // A `volatile` overlay leaves workdir/incompat/volatile behind and refuses the next
        // mount while it is there; the previous user of this upperdir is gone (its mount
        // namespace died with it), so clear it.
        for m in spec.rootfs.iter().filter(|m| m.fstype == "overlay" && m.options.iter().any(|o| o == "volatile")) {
            if let Some(w) = m.options.iter().find_map(|o| o.strip_prefix("workdir=")) {
                // overlayfs leaves `work` mode 000: rootless, nothing under it can be seen
                // until it is opened up again.
                let work = Path::new(w).join("work");
                let incompat = work.join("incompat");
                if incompat.symlink_metadata().is_err() {
                    let _ = std::fs::set_permissions(&work, std::os::unix::fs::PermissionsExt::from_mode(0o700));
                }
                let _ = crate::util::remove_tree(&incompat);
            }
        }
        let scratch = self.scratch()?;
        let r = self.run_in(spec, io, &scratch);
        let _ = crate::util::remove_tree(&scratch);
        r
    }
}

impl Sandbox {
    fn run_in(&self, spec: &RunSpec, io: RunIo, scratch: &Path) -> Result<RunOutcome> {
        let mut env = spec.env.clone();
        let (mounts, _locks) = self.resolve_mounts(spec, scratch, &mut env)?;
        let mut init = self.base_spec(scratch);
        init.rootfs = spec.rootfs.clone();
        init.network = spec.network;
        init.hostname = spec.hostname.clone().unwrap_or_else(|| "rbuild".into());
        init.mounts = mounts;
        init.args = spec.args.clone();
        init.env = env;
        init.cwd = if spec.cwd.is_empty() { "/".into() } else { spec.cwd.clone() };
        init.user = spec.user.clone().filter(|u| !u.is_empty());
        init.tty = io.tty;
        let cgroup = self.confine(spec, &mut init)?;
        let join = cgroup.as_ref().map(|c| c.procs_files()).transpose()?.unwrap_or_default();
        let join_fds: Vec<i32> = join.iter().map(|f| f.as_raw_fd()).collect();

        let mut output = io.output;
        let tail: Arc<Mutex<VecDeque<u8>>> = Arc::new(Mutex::new(VecDeque::new()));
        let mut readers = Vec::new();
        let mut pty = None;
        let mut tty_sock = None;
        let stdio: [Stdio; 3] = if io.tty {
            // The init makes the pair in the container's devpts and sends the master back.
            let (a, b) = std::os::unix::net::UnixStream::pair().map_err(Error::io("socketpair"))?;
            tty_sock = Some((a, OwnedFd::from(b)));
            [Stdio::null(), Stdio::inherit(), Stdio::inherit()]
        } else {
            let stdin = if io.stdin { Stdio::inherit() } else { Stdio::null() };
            match &output {
                Output::Inherit => [stdin, Stdio::inherit(), Stdio::inherit()],
                Output::Capture(_) => [stdin, Stdio::piped(), Stdio::piped()],
            }
        };
        let (ours, theirs) = match tty_sock {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        let (mut child, status) = self.spawn_init_with(&init, stdio, theirs, &join_fds)?;
        drop(join);
        let pid = child.id() as i32;
        let mut raw = None;
        if let Some(sock) = ours {
            // None: the init failed before making the pair; its status says why.
            if let Some(master) = tty::recv_fd(sock.as_raw_fd()).map_err(Error::io("receiving the pty"))? {
                let p = tty::Pty::from_master(master);
                p.copy_window_size();
                raw = tty::RawMode::enter();
                // Captured (a detached container): the terminal's output is its stdout.
                match std::mem::replace(&mut output, Output::Inherit) {
                    Output::Capture(mut sink) => readers.extend(p.pump_to(
                        io.stdin,
                        Box::new(move |b| {
                            sink(Stream::Stdout, b);
                            true
                        }),
                    )?),
                    Output::Inherit => readers.extend(p.pump(io.stdin)?),
                }
                pty = Some(p);
            }
        }
        if let Output::Capture(sink) = output {
            let sink = Arc::new(Mutex::new(sink));
            for (stream, r) in [
                (Stream::Stdout, child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>)),
                (Stream::Stderr, child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>)),
            ] {
                let Some(mut r) = r else { continue };
                let sink = sink.clone();
                let tail = tail.clone();
                readers.push(std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = r.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        (sink.lock().unwrap())(stream, &buf[..n]);
                        let mut t = tail.lock().unwrap();
                        t.extend(&buf[..n]);
                        let excess = t.len().saturating_sub(TAIL_BYTES);
                        t.drain(..excess);
                    }
                }));
            }
        }
        let mut on_start = io.on_start;
        let cgroup_dirs: Vec<PathBuf> = cgroup.iter().flat_map(|c| c.paths()).collect();
        let status_reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            let (mut pid1, mut ready) = (0, false);
            for l in std::io::BufReader::new(status).lines().map_while(|l| l.ok()) {
                // `I <pid>`: the outer init forked pid 1; `R`: pid 1 is set up. Two
                // processes write them: either may come first.
                if let Some(p) = l.strip_prefix("I ") {
                    pid1 = p.trim().parse().unwrap_or(0);
                } else if l.starts_with('R') {
                    ready = true;
                }
                if ready && pid1 > 0 {
                    if let Some(f) = on_start.take() {
                        f(Started { init_pid: pid, pid: pid1, cgroup: cgroup_dirs.clone() });
                    }
                }
                lines.push(l);
            }
            lines
        });
        let guard = io.forward_signals.then(|| {
            let mut sigs = vec![libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];
            if io.tty {
                sigs.push(libc::SIGWINCH);
            }
            SignalGuard::install(pid, &sigs)
        });
        let deadline = spec.timeout.map(|t| Instant::now() + t);
        let stop = wait_exit(pid, deadline, io.cancel.as_deref(), || {
            if WINCH.swap(false, Ordering::Relaxed) {
                if let Some(p) = &pty {
                    p.copy_window_size();
                }
            }
        });
        if stop.is_some() {
            // The outer init dies; pid 1 follows (PDEATHSIG), taking the namespace with it.
            let _ = child.kill();
        }
        let st = child.wait().map_err(|e| Error::Sandbox(format!("waiting for the sandbox: {e}")))?;
        drop(guard);
        let lines = status_reader.join().unwrap_or_default();
        drop(pty);
        for r in readers {
            let _ = r.join();
        }
        drop(raw);
        let mut out = RunOutcome {
            oom_killed: cgroup.as_ref().is_some_and(|c| c.oom_killed()),
            timed_out: stop == Some("timeout"),
            cancelled: stop == Some("cancelled"),
            ..Default::default()
        };
        let mut exited = None;
        for l in &lines {
            let (kind, rest) = l.split_at(1.min(l.len()));
            let rest = rest.trim_start();
            match kind {
                "C" => match rest.split_once(' ') {
                    Some(("T", p)) => out.mountpoints.push(p.to_string()),
                    Some(("P", p)) => out.created_parents.push(p.to_string()),
                    Some(("M", rest)) => {
                        let mut it = rest.splitn(4, ' ');
                        let mut num = || it.next().and_then(|s| s.parse::<u32>().ok());
                        if let (Some(m), Some(u), Some(g)) = (num(), num(), num()) {
                            if let Some(p) = it.next() {
                                out.touched_dirs.push((p.to_string(), m, u, g));
                            }
                        }
                    }
                    _ => {}
                },
                "E" => out.exec_error = Some(rest.to_string()),
                "X" => {
                    let mut it = rest.split(' ').filter_map(|s| s.parse::<i32>().ok());
                    exited = Some((it.next().unwrap_or(255), it.next().unwrap_or(0)));
                }
                "S" if stop.is_none() => return Err(Error::Sandbox(rest.to_string())),
                _ => {}
            }
        }
        if exited.is_none()
            && stop.is_none()
            && std::os::unix::process::ExitStatusExt::signal(&st).is_none()
            && lines.is_empty()
        {
            return Err(Error::Sandbox(NO_INIT.into()));
        }
        use std::os::unix::process::ExitStatusExt;
        match (exited, st.signal()) {
            (Some((code, sig)), _) => {
                out.code = code;
                out.signal = (sig != 0).then_some(sig);
            }
            (None, Some(sig)) => {
                out.code = 128 + sig;
                out.signal = Some(sig);
            }
            (None, None) => out.code = st.code().unwrap_or(255),
        }
        let t = tail.lock().unwrap();
        let text = String::from_utf8_lossy(t.make_contiguous_copy().as_slice()).into_owned();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        if t.len() >= TAIL_BYTES && !lines.is_empty() {
            lines.remove(0); // probably cut in the middle
        }
        let start = lines.len().saturating_sub(TAIL_LINES);
        out.tail = lines.split_off(start);
        Ok(out)
    }
}

trait Contiguous {
    fn make_contiguous_copy(&self) -> Vec<u8>;
}

impl Contiguous for VecDeque<u8> {
    fn make_contiguous_copy(&self) -> Vec<u8> {
        self.iter().copied().collect()
    }
}
