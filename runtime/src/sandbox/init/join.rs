//! Join mode: the init enters a running container (the namespaces and cgroups of its pid 1)
//! or a stopped one (its root filesystem mounted in a private mount namespace), and then
//! either runs a command there (`rbuild exec`) or moves files in or out as a tar stream
//! (`rbuild cp`, `rbuild export`).
//!
//! Joining: the namespace files of the target (`/proc/PID/ns/*`) are opened first, the
//! target's cgroups (`/proc/PID/cgroup`) joined while the host's `/sys/fs/cgroup` is still in
//! view, then `setns` user (rootless), cgroup, ipc, uts, net, pid and mnt, skipping those we
//! already share. `setns(mnt)` makes the container's root our root, so every path below is
//! resolved inside the container: a symlink to `/etc` is the container's `/etc`. The pid
//! namespace applies to children: the command is forked.
//!
//! A stopped container: the parent gives the snapshot's mounts; they are mounted at the
//! scratch directory in a new mount namespace (and user namespace, rootless) and pivoted
//! into, with the same effect.
//!
//! Status lines (fd 4) as in the other modes, plus `R <kind>` (copy in: what the
//! destination is: `dir`, `file`, `missing` or `noparent`) and `P ok` (done, or started
//! when detached).

use super::{decode, report, wait_code};
use crate::error::{Error, Result};
use crate::sandbox::spec::InitSpec;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// What the joined init does (internal; part of the init spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JoinSpec {
    /// The host pid of the container's pid 1 to join; `None`: mount the spec's `rootfs`.
    pub pid: Option<i32>,
    /// What to do once inside.
    pub op: JoinOp,
}

/// The operation of a joined init.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum JoinOp {
    /// Run the spec's command (args, env, cwd, user, tty, caps, seccomp).
    Exec {
        /// Report `P ok` once started and do not tie the command to the caller.
        detach: bool,
    },
    /// Write a tar of `path` to stdout: entries named `name` (and `name/...`), or the
    /// directory's contents at the top when `name` is empty.
    TarOut { path: String, name: String, dest_is_file: bool },
    /// Report what `dest` is (`R <kind>`), then apply the tar on stdin into `dest` (a
    /// directory) or into its parent.
    TarIn { dest: String },
}

/// What a path in the container is, for `cp`'s rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// A directory (symlinks followed).
    Dir,
    /// Anything else that exists.
    File,
    /// Does not exist, but its parent directory does.
    Missing,
    /// Its parent directory does not exist.
    NoParent,
}

impl PathKind {
    fn word(self) -> &'static str {
        match self {
            PathKind::Dir => "dir",
            PathKind::File => "file",
            PathKind::Missing => "missing",
            PathKind::NoParent => "noparent",
        }
    }

    fn parse(s: &str) -> Option<PathKind> {
        Some(match s {
            "dir" => PathKind::Dir,
            "file" => PathKind::File,
            "missing" => PathKind::Missing,
            "noparent" => PathKind::NoParent,
            _ => return None,
        })
    }

    /// What `path` is on this process's view of the filesystem.
    pub fn of(path: &Path) -> PathKind {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => PathKind::Dir,
            Ok(_) => PathKind::File,
            Err(_) => match path.parent() {
                Some(p) if p.as_os_str().is_empty() || p.is_dir() => PathKind::Missing,
                None => PathKind::Missing,
                Some(_) => PathKind::NoParent,
            },
        }
    }
}

/// The directory a copy goes into: the destination itself when it is a directory, else
/// its parent (the copy takes the destination's name).
pub fn copy_dir_of(dest: &str, kind: PathKind) -> String {
    if kind == PathKind::Dir {
        return dest.to_string();
    }
    let clean = dest.trim_end_matches('/');
    match clean.rfind('/') {
        Some(0) => "/".into(),
        Some(i) => clean[..i].to_string(),
        None => ".".into(),
    }
}

/// Run the join mode; returns the init's exit code.
pub(crate) fn main(spec: &InitSpec, j: &JoinSpec) -> i32 {
    // Inside the container's pid namespace its processes can see ours: no ptrace, no
    // /proc/PID/{exe,fd,mem} for them (runc's precaution). exec(2) of the command resets it.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let root = match enter(spec, j) {
        Ok(r) => r,
        Err(e) => {
            report('S', &e.to_string());
            return 125;
        }
    };
    let rootless = spec.rootless.is_some();
    match &j.op {
        JoinOp::Exec { detach } => exec(spec, *detach),
        // Joined: the copy runs in a child, inside the pid namespace, where the container's
        // /proc knows it (the applier sets modes through /proc/self/fd).
        JoinOp::TarOut { path, name, dest_is_file } => {
            in_child(j.pid.is_some(), || tar_out(&root, path, name, *dest_is_file))
        }
        JoinOp::TarIn { dest } => in_child(j.pid.is_some(), || tar_in(&root, dest, rootless)),
    }
}

/// Run `f` and report how it went; in a forked child when `fork`.
fn in_child(fork: bool, f: impl FnOnce() -> Result<()>) -> i32 {
    if !fork {
        return done(f());
    }
    // SAFETY: single-threaded: fork is safe.
    match unsafe { libc::fork() } {
        -1 => {
            report('S', &not_running(std::io::Error::last_os_error()));
            125
        }
        // SAFETY: leaving the child without the parent's atexit handlers.
        0 => unsafe { libc::_exit(done(f())) },
        child => wait_code(child).0,
    }
}

/// A fork into a pid namespace whose pid 1 has exited fails with ENOMEM.
fn not_running(e: std::io::Error) -> String {
    if e.raw_os_error() == Some(libc::ENOMEM) {
        "the container is not running (its pid 1 has exited)".into()
    } else {
        format!("fork: {e}")
    }
}

/// `path` in the container whose root is `root`: as it is when we are inside (`/`), else
/// resolved under `root` as if it were `/` (the last component not followed unless
/// `follow_last`, or the path ends with `/`).
fn inside(root: &Path, path: &str, follow_last: bool) -> Result<PathBuf> {
    if root == Path::new("/") {
        return Ok(PathBuf::from(path));
    }
    let follow = follow_last || path.ends_with('/') || path.ends_with("/.");
    let clean = crate::util::clean_abs(path);
    if follow || clean == "/" {
        return crate::util::secure_join(root, &clean);
    }
    let (parent, last) = clean.rsplit_once('/').unwrap_or(("", &clean));
    Ok(crate::util::secure_join(root, if parent.is_empty() { "/" } else { parent })?.join(last))
}

fn done(r: Result<()>) -> i32 {
    match r {
        Ok(()) => {
            report('P', "ok");
            0
        }
        Err(e) => {
            report('S', &e.to_string());
            1
        }
    }
}

/// Enter the container; returns where its root is from here (`/` once joined; the
/// mounted rootfs of a stopped one, whose paths are then resolved under it: nothing runs
/// there to change them meanwhile).
fn enter(spec: &InitSpec, j: &JoinSpec) -> Result<PathBuf> {
    match j.pid {
        Some(pid) => {
            // Copies stay out of the container's cgroups (a paused container's freezer).
            let cgroups = matches!(j.op, JoinOp::Exec { .. });
            join_process(pid, cgroups, spec.rootless.is_some()).map(|()| PathBuf::from("/"))
        }
        None => {
            super::namespaces::enter(spec)?;
            super::rootfs::make_private()?;
            let dir = spec.sandbox_dir.join("rootfs");
            super::mounts::mount_all(&crate::sandbox::syscalls::Real, &spec.rootfs, &dir)?;
            Ok(dir)
        }
    }
}

/// The namespaces joined, in order: the user namespace first (it gives the capabilities
/// the others need), the mount namespace last (it changes the root).
const NAMESPACES: &[(&str, i32)] = &[
    ("user", libc::CLONE_NEWUSER),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("pid", libc::CLONE_NEWPID),
    ("mnt", libc::CLONE_NEWNS),
];

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

fn join_process(pid: i32, cgroups: bool, rootless: bool) -> Result<()> {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    if !proc_dir.exists() {
        return Err(Error::Sandbox(format!("process {pid} is gone")));
    }
    let mut fds: Vec<(OwnedFd, i32, &str)> = Vec::new();
    for (name, flag) in NAMESPACES {
        let theirs = proc_dir.join("ns").join(name);
        if !theirs.exists() || same_file(&theirs, &Path::new("/proc/self/ns").join(name)) {
            continue;
        }
        let f = std::fs::File::open(&theirs).map_err(Error::io(&theirs))?;
        fds.push((OwnedFd::from(f), *flag, name));
    }
    if cgroups {
        join_cgroups(pid, rootless)?;
    }
    for (fd, flag, name) in &fds {
        // SAFETY: setns on a namespace fd we hold; single-threaded.
        if unsafe { libc::setns(fd.as_raw_fd(), *flag) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(Error::Sandbox(format!("joining the {name} namespace of process {pid}: {e}")));
        }
    }
    Ok(())
}

/// Where each cgroup hierarchy is mounted here: (fstype, super options, mount root,
/// mount point).
fn cgroup_mounts() -> Vec<(String, Vec<String>, String, PathBuf)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 5 || r.len() < 3 || !(r[0] == "cgroup" || r[0] == "cgroup2") {
            continue;
        }
        let opts = r[2].split(',').map(str::to_string).collect();
        out.push((r[0].to_string(), opts, l[3].to_string(), PathBuf::from(l[4])));
    }
    out
}

/// Move this process into every cgroup of `pid` that differs from ours (v1 per hierarchy,
/// v2 unified). As root a failure is an error; rootless, cgroups we may not write are left.
fn join_cgroups(pid: i32, rootless: bool) -> Result<()> {
    let theirs = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let ours = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mounts = cgroup_mounts();
    for line in theirs.lines() {
        if ours.lines().any(|o| o == line) {
            continue;
        }
        let mut it = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else { continue };
        let mount = if ctrls.is_empty() {
            mounts.iter().find(|m| m.0 == "cgroup2")
        } else {
            let want: Vec<&str> = ctrls.split(',').collect();
            mounts.iter().find(|m| m.0 == "cgroup" && want.iter().all(|c| m.1.iter().any(|o| o == c)))
        };
        let Some((_, _, root, point)) = mount else { continue };
        let rel = path.strip_prefix(root.as_str()).unwrap_or(path).trim_start_matches('/');
        let procs = point.join(rel).join("cgroup.procs");
        if let Err(e) = std::fs::write(&procs, b"0") {
            if !rootless {
                return Err(Error::Sandbox(format!("joining cgroup {}: {e}", procs.display())));
            }
        }
    }
    Ok(())
}

fn exec(spec: &InitSpec, detach: bool) -> i32 {
    if detach {
        // Outlive the caller: it returns once the command has started.
        // SAFETY: prctl and setsid with plain arguments.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, 0);
            libc::setsid();
        }
    }
    let prepared = (|| -> Result<_> {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
        let user = super::user::resolve(spec.user.as_deref().unwrap_or(""), &passwd, &group)?;
        let env = super::process::environment(&spec.env, &user, spec.tty);
        let cwd = if spec.cwd.is_empty() { "/".to_string() } else { crate::util::clean_abs(&spec.cwd) };
        let slave = if spec.tty {
            let (master, slave) = crate::sandbox::tty::open_pair().map_err(Error::io("/dev/ptmx"))?;
            crate::sandbox::tty::send_fd(super::TTY_FD, master.as_raw_fd()).map_err(Error::io("sending the pty"))?;
            // SAFETY: our copy of the socket is done with.
            unsafe { libc::close(super::TTY_FD) };
            Some(slave)
        } else {
            None
        };
        Ok((user, env, cwd, slave))
    })();
    let (user, env, cwd, slave) = match prepared {
        Ok(p) => p,
        Err(e) => {
            report('S', &e.to_string());
            return 125;
        }
    };
    if detach {
        // Nobody waits to hear the command's own exec error: say it now.
        let arg0 = spec.args.first().map(String::as_str).unwrap_or("");
        if super::process::find_executable(arg0, &env, &super::process::is_executable).is_none() {
            report('E', &format!("exec: \"{arg0}\": executable file not found in $PATH"));
            return 127;
        }
    }
    // SAFETY: single-threaded: fork is safe.
    let child = unsafe { libc::fork() };
    if child < 0 {
        report('S', &not_running(std::io::Error::last_os_error()));
        return 125;
    }
    if child == 0 {
        // SAFETY: restoring default dispositions; the pty slave becomes stdio.
        unsafe {
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGPIPE] {
                libc::signal(sig, libc::SIG_DFL);
            }
            if let Some(s) = &slave {
                libc::dup2(s.as_raw_fd(), 0);
                libc::dup2(s.as_raw_fd(), 1);
                libc::dup2(s.as_raw_fd(), 2);
            }
        }
        let confine = super::process::Confinement {
            caps: &spec.caps,
            seccomp: &spec.seccomp,
            no_new_privs: spec.no_new_privs,
            rlimits: &spec.rlimits,
        };
        let (msg, code) = super::process::exec(&spec.args, &env, &cwd, &user, spec.tty, &confine);
        report('E', &msg);
        let line = format!("rbuild: {msg}\n");
        // SAFETY: best-effort message on the command's stderr, then leave.
        unsafe {
            libc::write(2, line.as_ptr().cast(), line.len());
            libc::_exit(code)
        }
    }
    drop(slave);
    if detach {
        report('P', "ok");
        // SAFETY: the status pipe must not keep the caller waiting for the command's end.
        unsafe { libc::close(super::STATUS_FD) };
        return wait_code(child).0;
    }
    super::install_forwarding(child);
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(child, &mut status, 0) };
        if r == child {
            break;
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            report('S', &format!("waiting for the command: {}", std::io::Error::last_os_error()));
            return 125;
        }
    }
    let (code, sig) = decode(status);
    report('X', &format!("{code} {sig}"));
    code
}

/// Copy out: a tar of `path` (its own last component not followed) on stdout.
fn tar_out(root: &Path, path: &str, name: &str, dest_is_file: bool) -> Result<()> {
    use rbuild_image::layer::{AddEntry, Change, MetaOverride, WriterOptions, changes_from_dir, write_layer};
    let resolved = inside(root, path, name.is_empty())?;
    let p = resolved.as_path();
    let m = std::fs::symlink_metadata(p).map_err(|e| Error::Copy(format!("{path}: {e}")))?;
    // A symlink to a directory, named with a trailing slash or `/.`, means the directory.
    let m = if m.file_type().is_symlink() && (path.ends_with('/') || name.is_empty()) {
        std::fs::metadata(p).map_err(|e| Error::Copy(format!("{path}: {e}")))?
    } else {
        m
    };
    if m.is_dir() && dest_is_file {
        return Err(Error::Copy(format!("cannot copy directory {path} onto a file")));
    }
    let mut changes = Vec::new();
    if name.is_empty() {
        if !m.is_dir() {
            return Err(Error::Copy(format!(
                "{path}: not a directory (a path ending in /. names a directory's contents)"
            )));
        }
    } else {
        changes.push(Change::Add(AddEntry {
            path: name.to_string(),
            source: p.to_path_buf(),
            meta: MetaOverride::default(),
        }));
    }
    if m.is_dir() && p == root {
        // The whole root: the kernel's filesystems of a running container (/proc, /sys,
        // /dev) are not its files; their mount points are copied, not what is mounted there.
        let mut top: Vec<_> = std::fs::read_dir(p).map_err(Error::io(p))?.flatten().collect();
        top.sort_by_key(|e| e.file_name());
        for e in top {
            let file = e.file_name();
            let Some(fname) = file.to_str() else {
                return Err(Error::Copy(format!("/{}: file name is not UTF-8", file.to_string_lossy())));
            };
            let rel = if name.is_empty() { fname.to_string() } else { format!("{name}/{fname}") };
            let child = e.path();
            changes.push(Change::Add(AddEntry {
                path: rel.clone(),
                source: child.clone(),
                meta: MetaOverride::default(),
            }));
            let dir = std::fs::symlink_metadata(&child).is_ok_and(|m| m.is_dir());
            if dir && !["proc", "sys", "dev"].contains(&fname) {
                changes.extend(changes_from_dir(&child, &rel, &MetaOverride::default())?);
            }
        }
    } else if m.is_dir() {
        changes.extend(changes_from_dir(p, name, &MetaOverride::default())?);
    }
    // SAFETY: fd 1 is the pipe the parent reads; ours alone.
    let out = unsafe { std::fs::File::from_raw_fd(1) };
    let mut out = std::io::BufWriter::with_capacity(256 << 10, out);
    let opts = WriterOptions { source_date_epoch: None, xattrs: false };
    write_layer(changes, &mut out, &opts)?;
    out.flush().map_err(Error::io("stdout"))?;
    Ok(())
}

/// Copy in: say what `dest` is, then apply the tar on stdin into it (a directory) or its
/// parent.
fn tar_in(root: &Path, dest: &str, rootless: bool) -> Result<()> {
    use rbuild_image::layer::{ApplyOptions, WhiteoutMode, apply_tar};
    let kind = PathKind::of(&inside(root, dest, true)?);
    report('R', kind.word());
    if kind == PathKind::NoParent {
        return Err(Error::Copy(format!("{dest}: no such directory")));
    }
    let dir = inside(root, &copy_dir_of(dest, kind), true)?;
    // SAFETY: fd 0 is the tar the parent writes; ours alone.
    let input = unsafe { std::fs::File::from_raw_fd(0) };
    let opts = ApplyOptions {
        whiteouts: WhiteoutMode::Apply,
        privileged: true,
        userns: rootless,
        xattrs: false,
        ..Default::default()
    };
    apply_tar(std::io::BufReader::with_capacity(256 << 10, input), &dir, &opts)?;
    Ok(())
}

pub(crate) fn parse_kind(line: &str) -> Option<PathKind> {
    PathKind::parse(line.strip_prefix("R ")?.trim())
}

// ---- The caller's side ----

use crate::sandbox::{Output, RunIo, RunOutcome, Sandbox, Security, Stream, tty};
use crate::snapshot::Mount;
use std::io::{BufRead, Read};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

/// Where a joined init goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinTarget {
    /// A running container: the host pid of its pid 1 (its namespaces and cgroups).
    Process(i32),
    /// A stopped container: its root filesystem's mounts (a snapshot's), mounted privately.
    Rootfs(Vec<Mount>),
}

/// A command to run in a running container (`rbuild exec`).
#[derive(Debug, Clone, Default)]
pub struct ExecSpec {
    /// argv; `args[0]` is looked up in the container's PATH when it has no `/`.
    pub args: Vec<String>,
    /// `KEY=value`: the container's environment, then `-e`; PATH and HOME added when missing.
    pub env: Vec<String>,
    /// Working directory (must exist); empty means `/`.
    pub cwd: String,
    /// `name`, `uid`, `name:group`, `uid:gid`; `None` is root.
    pub user: Option<String>,
    /// The container's confinement (capabilities, seccomp, no-new-privileges), or
    /// `privileged` for `exec --privileged`.
    pub security: Security,
    /// The container shares the host's network (keeps NET_RAW as a run would).
    pub host_network: bool,
    /// `-d`: return once the command has started; it runs on, tied to the container.
    pub detach: bool,
    /// The container's `--ulimit`s: (RLIMIT_*, soft, hard).
    pub rlimits: Vec<(u32, u64, u64)>,
}

fn status_error(lines: &[String]) -> Option<Error> {
    lines.iter().find_map(|l| l.strip_prefix("S ")).map(|m| Error::Copy(m.to_string()))
}

/// Is `pid` a live process (not a zombie: a container's pid 1 that has exited but is not
/// yet reaped)?
pub fn process_running(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    match stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next()) {
        Some(state) => !matches!(state, 'Z' | 'X' | 'x'),
        None => false,
    }
}

impl Sandbox {
    fn join_spec(&self, target: &JoinTarget, op: JoinOp, scratch: &Path) -> InitSpec {
        let mut init = self.base_spec(scratch);
        match target {
            JoinTarget::Process(pid) => {
                // setns into the container's user namespace: no new maps to write.
                init.id_map = None;
                init.join = Some(JoinSpec { pid: Some(*pid), op });
            }
            JoinTarget::Rootfs(mounts) => {
                init.rootfs = mounts.clone();
                init.join = Some(JoinSpec { pid: None, op });
            }
        }
        init
    }

    /// A scratch directory for a [`JoinTarget::Rootfs`] (its mount point), else none.
    fn join_scratch(&self, target: &JoinTarget) -> Result<Option<PathBuf>> {
        let JoinTarget::Rootfs(mounts) = target else { return Ok(None) };
        // A `volatile` overlay refuses to mount while its previous user's marker is there.
        for m in mounts.iter().filter(|m| m.fstype == "overlay" && m.options.iter().any(|o| o == "volatile")) {
            if let Some(w) = m.options.iter().find_map(|o| o.strip_prefix("workdir=")) {
                // overlayfs leaves `work/work` mode 000: rootless, nothing under it can be
                // removed until it is ours to enter again.
                let inner = Path::new(w).join("work");
                if inner.join("incompat").symlink_metadata().is_err() {
                    use std::os::unix::fs::PermissionsExt;
                    let _ = std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o700));
                }
                let _ = crate::util::remove_tree(&inner.join("incompat"));
            }
        }
        Ok(Some(self.scratch()?))
    }

    /// Run a command in the running container whose pid 1 is `pid` (host pid): its user
    /// (rootless), mount, pid, ipc, uts, net and cgroup namespaces and its cgroups, with the
    /// container's capabilities, seccomp filter and no-new-privileges (`spec.security`).
    /// Ok with the command's exit code (127 not found, 126 not executable); Err when the
    /// container could not be joined. Detached, Ok as soon as the command started.
    pub fn exec_in(&self, pid: i32, spec: &ExecSpec, io: RunIo) -> Result<RunOutcome> {
        if spec.args.is_empty() {
            return Err(Error::Spec("no command to run".into()));
        }
        if !process_running(pid) {
            return Err(Error::Sandbox(format!("the container is not running (process {pid} has exited)")));
        }
        let tmp = self.root.join("tmp");
        let mut init = self.join_spec(&JoinTarget::Process(pid), JoinOp::Exec { detach: spec.detach }, &tmp);
        init.args = spec.args.clone();
        init.env = spec.env.clone();
        init.cwd = if spec.cwd.is_empty() { "/".into() } else { spec.cwd.clone() };
        init.user = spec.user.clone().filter(|u| !u.is_empty());
        init.tty = io.tty && !spec.detach;
        let sec = &spec.security;
        let mut caps = if sec.privileged {
            crate::sandbox::caps::all()
        } else {
            crate::sandbox::caps::effective(&sec.cap_add, &sec.cap_drop, spec.host_network)?
        };
        if !sec.privileged {
            // Device nodes made by an exec'd process are not worth the risk of one the
            // device cgroup does not cover.
            caps.retain(|c| *c != crate::sandbox::caps::MKNOD);
        }
        init.seccomp = match (&sec.seccomp, sec.privileged) {
            (_, true) | (crate::sandbox::Seccomp::Unconfined, _) => Vec::new(),
            (crate::sandbox::Seccomp::Default, _) => crate::sandbox::seccomp::default_programs(&caps)?,
            (crate::sandbox::Seccomp::Profile(p), _) => crate::sandbox::seccomp::compile(p, &caps)?,
        };
        init.caps = caps;
        init.no_new_privs = sec.no_new_privileges;
        init.rlimits = spec.rlimits.clone();
        if spec.detach {
            return self.exec_detached(&init);
        }
        self.exec_attached(&init, io)
    }

    fn exec_detached(&self, init: &InitSpec) -> Result<RunOutcome> {
        let (mut child, status) =
            self.spawn_init_with(init, [Stdio::null(), Stdio::null(), Stdio::null()], None, &[])?;
        let mut first = String::new();
        let _ = std::io::BufReader::new(status).read_line(&mut first);
        // The init goes on with the command: reap it whenever it ends.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        let first = first.trim();
        match first.split_at(first.len().min(1)) {
            ("P", _) => Ok(RunOutcome::default()),
            ("E", m) => Ok(RunOutcome { code: 127, exec_error: Some(m.trim().to_string()), ..Default::default() }),
            ("S", m) => Err(Error::Sandbox(m.trim().to_string())),
            _ => Err(Error::Sandbox(super::super::NO_INIT.into())),
        }
    }

    fn exec_attached(&self, init: &InitSpec, io: RunIo) -> Result<RunOutcome> {
        let mut readers = Vec::new();
        let (ours, theirs) = if io.tty {
            let (a, b) = std::os::unix::net::UnixStream::pair().map_err(Error::io("socketpair"))?;
            (Some(a), Some(OwnedFd::from(b)))
        } else {
            (None, None)
        };
        let stdio: [Stdio; 3] = if io.tty {
            [Stdio::null(), Stdio::inherit(), Stdio::inherit()]
        } else {
            let stdin = if io.stdin { Stdio::inherit() } else { Stdio::null() };
            match &io.output {
                Output::Inherit => [stdin, Stdio::inherit(), Stdio::inherit()],
                Output::Capture(_) => [stdin, Stdio::piped(), Stdio::piped()],
            }
        };
        let (mut child, status) = self.spawn_init_with(init, stdio, theirs, &[])?;
        let pid = child.id() as i32;
        let mut pty = None;
        let mut raw = None;
        if let Some(sock) = ours {
            if let Some(master) = tty::recv_fd(sock.as_raw_fd()).map_err(Error::io("receiving the pty"))? {
                let p = tty::Pty::from_master(master);
                p.copy_window_size();
                raw = tty::RawMode::enter();
                readers.extend(p.pump(io.stdin)?);
                pty = Some(p);
            }
        }
        if let Output::Capture(sink) = io.output {
            let sink = Arc::new(Mutex::new(sink));
            for (stream, r) in [
                (Stream::Stdout, child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>)),
                (Stream::Stderr, child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>)),
            ] {
                let Some(mut r) = r else { continue };
                let sink = sink.clone();
                readers.push(std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = r.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        (sink.lock().unwrap())(stream, &buf[..n]);
                    }
                }));
            }
        }
        let status_reader = std::thread::spawn(move || {
            std::io::BufReader::new(status).lines().map_while(|l| l.ok()).collect::<Vec<String>>()
        });
        let guard = io.forward_signals.then(|| {
            let mut sigs = vec![libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];
            if io.tty {
                sigs.push(libc::SIGWINCH);
            }
            super::super::SignalGuard::install(pid, &sigs)
        });
        let stop = super::super::wait_exit(pid, None, io.cancel.as_deref(), || {
            if super::super::WINCH.swap(false, std::sync::atomic::Ordering::Relaxed) {
                if let Some(p) = &pty {
                    p.copy_window_size();
                }
            }
        });
        if stop.is_some() {
            let _ = child.kill();
        }
        let st = child.wait().map_err(|e| Error::Sandbox(format!("waiting for the exec'd process: {e}")))?;
        drop(guard);
        let lines = status_reader.join().unwrap_or_default();
        drop(pty);
        for r in readers {
            let _ = r.join();
        }
        drop(raw);
        let mut out = RunOutcome { cancelled: stop.is_some(), ..Default::default() };
        let mut exited = None;
        for l in &lines {
            let (kind, rest) = l.split_at(1.min(l.len()));
            let rest = rest.trim_start();
            match kind {
                "E" => out.exec_error = Some(rest.to_string()),
                "X" => {
                    let mut it = rest.split(' ').filter_map(|s| s.parse::<i32>().ok());
                    exited = Some((it.next().unwrap_or(255), it.next().unwrap_or(0)));
                }
                "S" if stop.is_none() => return Err(Error::Sandbox(rest.to_string())),
                _ => {}
            }
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
            (None, None) if lines.is_empty() && stop.is_none() => {
                return Err(Error::Sandbox(super::super::NO_INIT.into()));
            }
            (None, None) => out.code = st.code().unwrap_or(255),
        }
        Ok(out)
    }

    /// Write a tar of `path` in the container to `out`: its entries named `name` (and
    /// `name/...`), or, with `name` empty, the directory's contents at the top. The last
    /// component of `path` is not followed (a symlink is copied as a symlink) unless `path`
    /// ends with `/`. `dest_is_file`: refuse a directory (it would go onto a file). Every
    /// path is resolved inside the container, so no symlink leads out of it.
    pub fn tar_from(
        &self,
        target: &JoinTarget,
        path: &str,
        name: &str,
        dest_is_file: bool,
        out: &mut dyn std::io::Write,
    ) -> Result<()> {
        let scratch = self.join_scratch(target)?;
        let tmp = self.root.join("tmp");
        let op = JoinOp::TarOut { path: path.to_string(), name: name.to_string(), dest_is_file };
        let init = self.join_spec(target, op, scratch.as_deref().unwrap_or(&tmp));
        let r = (|| {
            let (mut child, mut status) =
                self.spawn_init_with(&init, [Stdio::null(), Stdio::piped(), Stdio::inherit()], None, &[])?;
            let mut stdout = child.stdout.take().expect("piped");
            let copied = std::io::copy(&mut stdout, out);
            drop(stdout);
            let mut msg = String::new();
            let _ = status.read_to_string(&mut msg);
            let _ = child.wait();
            let lines: Vec<String> = msg.lines().map(str::to_string).collect();
            if let Some(e) = status_error(&lines) {
                return Err(e);
            }
            copied.map_err(Error::io(format!("copying {path} out")))?;
            if !lines.iter().any(|l| l == "P ok") {
                return Err(Error::Sandbox(super::super::NO_INIT.into()));
            }
            Ok(())
        })();
        if let Some(d) = scratch {
            let _ = crate::util::remove_tree(&d);
        }
        r
    }

    /// Apply a tar into the container at `dest`: `write` is told what `dest` is in the
    /// container and writes the tar (entries relative to `dest` when it is a directory, else
    /// to its parent: see [`copy_dir_of`]). Paths are resolved inside the container and the
    /// applier never follows a symlink out of the directory it writes into.
    pub fn tar_into(
        &self,
        target: &JoinTarget,
        dest: &str,
        write: &mut dyn FnMut(PathKind, &mut dyn std::io::Write) -> Result<()>,
    ) -> Result<()> {
        let scratch = self.join_scratch(target)?;
        let tmp = self.root.join("tmp");
        let init = self.join_spec(target, JoinOp::TarIn { dest: dest.to_string() }, scratch.as_deref().unwrap_or(&tmp));
        let r = (|| {
            let (mut child, status) =
                self.spawn_init_with(&init, [Stdio::piped(), Stdio::null(), Stdio::inherit()], None, &[])?;
            let mut status = std::io::BufReader::new(status);
            let mut first = String::new();
            let _ = status.read_line(&mut first);
            let stdin = child.stdin.take().expect("piped");
            let wrote = match parse_kind(first.trim()) {
                Some(kind) if kind != PathKind::NoParent => {
                    let mut w = std::io::BufWriter::with_capacity(256 << 10, stdin);
                    let r = write(kind, &mut w);
                    let r = r.and_then(|()| w.flush().map_err(Error::io(format!("copying into {dest}"))));
                    drop(w);
                    r
                }
                _ => {
                    drop(stdin);
                    Ok(())
                }
            };
            if wrote.is_err() {
                let _ = child.kill();
            }
            let mut msg = String::new();
            let _ = status.read_to_string(&mut msg);
            let _ = child.wait();
            let mut lines: Vec<String> = vec![first.trim().to_string()];
            lines.extend(msg.lines().map(str::to_string));
            wrote?;
            if let Some(e) = status_error(&lines) {
                return Err(e);
            }
            if !lines.iter().any(|l| l == "P ok") {
                return Err(Error::Sandbox(super::super::NO_INIT.into()));
            }
            Ok(())
        })();
        if let Some(d) = scratch {
            let _ = crate::util::remove_tree(&d);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_go_into_the_destination_directory_or_its_parent() {
        assert_eq!(copy_dir_of("/tmp", PathKind::Dir), "/tmp");
        assert_eq!(copy_dir_of("/tmp/new", PathKind::Missing), "/tmp");
        assert_eq!(copy_dir_of("/etc/hosts", PathKind::File), "/etc");
        assert_eq!(copy_dir_of("/top", PathKind::Missing), "/");
        assert_eq!(copy_dir_of("/tmp/new/", PathKind::Missing), "/tmp");
        assert_eq!(copy_dir_of("rel", PathKind::Missing), ".");
        for k in [PathKind::Dir, PathKind::File, PathKind::Missing, PathKind::NoParent] {
            assert_eq!(parse_kind(&format!("R {}", k.word())), Some(k));
        }
    }
}
