//! The re-executed init: what runs when the rbuild binary starts with
//! `RBUILD_SANDBOX_INIT` set. Single-threaded (nothing else has started), it
//!
//! 1. reads its spec from fd 3 and reports over fd 4 (lines: `C T|P <path>` created,
//!    `I <pid>` pid 1 forked (its pid outside), `R` pid 1 set up, `S <message>` setup
//!    failed, `E <message>` exec failed, `X <code> <signal>` exit);
//! 2. [`namespaces`]: unshares user (rootless), mount, pid, ipc, uts (and net) namespaces;
//! 3. forks the namespace's pid 1, which [`mounts`] the rootfs, /proc, /dev, /sys, files
//!    and mounts, [`rootfs`]-pivots into it, resolves the [`user`], creates the workdir,
//!    and forks the command ([`process`]), reaping every child until the command exits.
//!
//! The outer init and pid 1 forward SIGINT/SIGTERM/SIGHUP/SIGQUIT inward; pid 1 exiting
//! kills the whole namespace, and each stage dies with its parent (PR_SET_PDEATHSIG).

pub mod join;
pub mod mounts;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod user;

use crate::error::{Error, Result};
use crate::sandbox::spec::{InitSpec, Network};
use crate::sandbox::syscalls::Real;
use std::io::Read;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicI32, Ordering};

/// The environment variable that turns the binary into the sandbox init.
pub const ENV: &str = "RBUILD_SANDBOX_INIT";
const STATUS_FD: i32 = 4;
const TTY_FD: i32 = 5;

static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = FORWARD_TO.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

fn install_forwarding(to: i32) {
    FORWARD_TO.store(to, Ordering::Relaxed);
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2, libc::SIGWINCH]
    {
        // SAFETY: installing a handler that only calls kill(2); no SA_RESTART so waits see EINTR.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Write one status line (async-signal-safe enough for forked children: one write(2)).
fn report(kind: char, msg: &str) {
    let line = format!("{kind} {}\n", msg.replace('\n', " "));
    // SAFETY: writing a valid buffer to our status fd.
    unsafe { libc::write(STATUS_FD, line.as_ptr().cast(), line.len()) };
}

fn wait_code(pid: i32) -> (i32, i32) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid on our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return decode(status);
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return (255, 0);
        }
    }
}

fn decode(status: i32) -> (i32, i32) {
    if libc::WIFEXITED(status) {
        (libc::WEXITSTATUS(status), 0)
    } else if libc::WIFSIGNALED(status) {
        (128 + libc::WTERMSIG(status), libc::WTERMSIG(status))
    } else {
        (255, 0)
    }
}

/// Run the init; returns the process's exit code.
pub fn main() -> i32 {
    // SAFETY: fd 3 and 4 were set up by the parent for us alone.
    let mut spec_pipe = unsafe { std::fs::File::from_raw_fd(3) };
    let mut text = Vec::new();
    if let Err(e) = spec_pipe.read_to_end(&mut text) {
        eprintln!("rbuild sandbox init: reading the spec: {e}");
        return 125;
    }
    drop(spec_pipe);
    // SAFETY: the status and tty fds must not reach the command: close them on exec.
    unsafe {
        libc::fcntl(STATUS_FD, libc::F_SETFD, libc::FD_CLOEXEC);
        libc::fcntl(TTY_FD, libc::F_SETFD, libc::FD_CLOEXEC);
    }
    let spec: InitSpec = match serde_json::from_slice(&text) {
        Ok(s) => s,
        Err(e) => {
            report('S', &format!("bad init spec: {e}"));
            return 125;
        }
    };
    // SAFETY: umask has no failure mode; modes we create are the ones we ask for.
    unsafe { libc::umask(0) };
    if let Some(j) = &spec.join {
        return join::main(&spec, j);
    }
    if spec.probe {
        return match probe(&spec) {
            Ok(()) => {
                report('P', "ok");
                0
            }
            Err(e) => {
                report('S', &e.to_string());
                1
            }
        };
    }
    if !spec.remove.is_empty() {
        // Root in the namespace may remove files owned by any mapped id.
        let r =
            namespaces::enter(&spec).and_then(|()| spec.remove.iter().try_for_each(|p| crate::util::remove_tree(p)));
        return match r {
            Ok(()) => {
                report('P', "ok");
                0
            }
            Err(e) => {
                report('S', &e.to_string());
                1
            }
        };
    }
    if let Some((from, to)) = &spec.copy {
        // Root in the namespace reads every mapped file and gives the copy its owner.
        return match namespaces::enter(&spec).and_then(|()| crate::util::copy_tree(from, to)) {
            Ok(()) => {
                report('P', "ok");
                0
            }
            Err(e) => {
                report('S', &e.to_string());
                1
            }
        };
    }
    if let Some(x) = &spec.extract {
        return match namespaces::enter(&spec).and_then(|()| extract(x)) {
            Ok(()) => {
                report('P', "ok");
                0
            }
            Err(e) => {
                report('S', &e.to_string());
                1
            }
        };
    }
    if let Err(e) = namespaces::enter(&spec) {
        report('S', &e.to_string());
        return 125;
    }
    // SAFETY: single-threaded process: fork is safe.
    match unsafe { libc::fork() } {
        -1 => {
            report('S', &format!("fork: {}", std::io::Error::last_os_error()));
            125
        }
        0 => {
            // Our parent is outside the new pid namespace (getppid() is 0 here), so the
            // usual getppid() re-check after PDEATHSIG cannot be done; the window between
            // fork and prctl is a few instructions.
            // SAFETY: prctl with plain arguments.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            let code = match pid1(&spec) {
                Ok((code, sig)) => {
                    report('X', &format!("{code} {sig}"));
                    code
                }
                Err(e) => {
                    report('S', &e.to_string());
                    125
                }
            };
            // SAFETY: leaving the forked child without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        child => {
            install_forwarding(child);
            // pid 1 as our (the caller's) pid namespace numbers it.
            report('I', &child.to_string());
            wait_code(child).0
        }
    }
}

/// pid 1 of the new namespaces: set up, fork the command, reap until it exits.
fn pid1(spec: &InitSpec) -> Result<(i32, i32)> {
    if spec.network == Network::None {
        namespaces::loopback_up()?;
    }
    rootfs::make_private()?;
    let rootfs_dir = spec.sandbox_dir.join("rootfs");
    let stage_dir = spec.sandbox_dir.join("stage");
    let mut stage = mounts::Stage::new(&Real, &rootfs_dir, &stage_dir, spec.rootless.is_some());
    stage.run(&mounts::plan(spec))?;
    for t in &stage.created.targets {
        report('C', &format!("T {t}"));
    }
    for p in &stage.created.parents {
        report('C', &format!("P {p}"));
    }
    for (p, mode, uid, gid) in &stage.created.touched {
        report('C', &format!("M {mode} {uid} {gid} {p}"));
    }
    rootfs::pivot(&rootfs_dir)?;
    nix::unistd::sethostname(&spec.hostname).map_err(Error::sys("sethostname"))?;
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let mut user = user::resolve(spec.user.as_deref().unwrap_or(""), &passwd, &group)?;
    if let Some(map) = &spec.id_map {
        check_mapped(map, &mut user)?;
    }
    let env = process::environment(&spec.env, &user, spec.tty);
    let cwd = if spec.cwd.is_empty() { "/".to_string() } else { crate::util::clean_abs(&spec.cwd) };
    make_workdir(&cwd, user.uid, user.gid)?;
    let slave = if spec.tty {
        let (master, slave) = crate::sandbox::tty::open_pair().map_err(Error::io("/dev/ptmx"))?;
        crate::sandbox::tty::send_fd(TTY_FD, std::os::fd::AsRawFd::as_raw_fd(&master))
            .map_err(Error::io("sending the pty"))?;
        // SAFETY: our copy of the socket is done with.
        unsafe { libc::close(TTY_FD) };
        Some(slave)
    } else {
        None
    };
    // Set up: the caller may record us now (a container's pid, for exec).
    report('R', "");
    // SAFETY: still single-threaded.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(Error::Sandbox(format!("fork: {}", std::io::Error::last_os_error())));
    }
    if child == 0 {
        // SAFETY: restoring default signal dispositions the command expects.
        unsafe {
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGPIPE] {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        if let Some(s) = &slave {
            let fd = std::os::fd::AsRawFd::as_raw_fd(s);
            // SAFETY: the pty slave becomes the command's stdio.
            unsafe {
                libc::dup2(fd, 0);
                libc::dup2(fd, 1);
                libc::dup2(fd, 2);
            }
        }
        let confine = process::Confinement {
            caps: &spec.caps,
            seccomp: &spec.seccomp,
            no_new_privs: spec.no_new_privs,
            rlimits: &spec.rlimits,
        };
        let (msg, code) = process::exec(&spec.args, &env, &cwd, &user, spec.tty, &confine);
        report('E', &msg);
        let line = format!("rbuild: {msg}\n");
        // SAFETY: best-effort message on the command's stderr, then leave.
        unsafe {
            libc::write(2, line.as_ptr().cast(), line.len());
            libc::_exit(code)
        }
    }
    drop(slave);
    install_forwarding(child);
    loop {
        let mut status = 0;
        // SAFETY: reaping any child: pid 1 adopts every orphan of the namespace.
        let r = unsafe { libc::waitpid(-1, &mut status, 0) };
        if r == child {
            return Ok(decode(status));
        }
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(Error::Sandbox(format!("waiting for the command: {e}")));
            }
        }
    }
}

/// Rootless: the user's uid and primary gid must be mapped (else setuid fails with a bare
/// EINVAL; say what to do instead); supplementary groups that are not are dropped.
fn check_mapped(map: &crate::sandbox::idmap::IdMap, user: &mut user::ExecUser) -> Result<()> {
    if !map.maps_uid(user.uid) {
        return Err(map.unmapped_error("uid", user.uid));
    }
    if !map.maps_gid(user.gid) {
        return Err(map.unmapped_error("gid", user.gid));
    }
    user.groups.retain(|g| map.maps_gid(*g));
    Ok(())
}

/// Create the working directory when missing, each new level owned by the user (BuildKit).
fn make_workdir(cwd: &str, uid: u32, gid: u32) -> Result<()> {
    let mut p = std::path::PathBuf::from("/");
    for part in cwd.split('/').filter(|s| !s.is_empty()) {
        p.push(part);
        match std::fs::symlink_metadata(&p) {
            Ok(_) => continue,
            Err(_) => {
                std::fs::create_dir(&p).map_err(Error::io(&p))?;
                std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                    .map_err(Error::io(&p))?;
                let _ = std::os::unix::fs::lchown(&p, Some(uid), Some(gid));
            }
        }
    }
    Ok(())
}

/// Extract mode: apply the layer on stdin into `x.dir` as root of the user namespace, so
/// chown gives each file its image owner (a host subordinate id).
fn extract(x: &crate::sandbox::spec::ExtractSpec) -> Result<()> {
    use rbuild_image::digest::VerifyingReader;
    use rbuild_image::layer::{ApplyOptions, OverlayXattr, WhiteoutMode, apply_tar, decompress};
    // SAFETY: fd 0 is the layer the parent gave us, ours alone.
    let input = unsafe { std::fs::File::from_raw_fd(0) };
    let input: Box<dyn Read + Send> = match &x.digest {
        Some((d, size)) => Box::new(VerifyingReader::new(input, d.clone(), Some(*size))),
        None => Box::new(input),
    };
    let (_, tar) = decompress(input)?;
    let mut tar: Box<dyn Read> = match &x.diff_id {
        Some(d) => Box::new(VerifyingReader::new(tar, d.clone(), None)),
        None => Box::new(tar),
    };
    let whiteouts = if x.overlay { WhiteoutMode::Overlay { xattr: OverlayXattr::User } } else { WhiteoutMode::Apply };
    let opts = ApplyOptions { whiteouts, privileged: true, userns: true, ..Default::default() };
    apply_tar(&mut tar, &x.dir, &opts)?;
    // Read to the end: the digests are checked there, and the writer must not block.
    std::io::copy(&mut tar, &mut std::io::sink()).map_err(Error::io(&x.dir))?;
    Ok(())
}

/// Probe mode: can overlayfs mount here (in a user namespace when rootless), with working
/// whiteouts?
fn probe(spec: &InitSpec) -> Result<()> {
    namespaces::enter(spec)?;
    rootfs::make_private()?;
    let d = &spec.sandbox_dir;
    let mut opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        d.join("l").display(),
        d.join("u").display(),
        d.join("w").display()
    );
    if spec.rootless.is_some() {
        opts.push_str(",userxattr");
    }
    let m = d.join("m");
    nix::mount::mount(Some("overlay"), &m, Some("overlay"), nix::mount::MsFlags::empty(), Some(opts.as_str()))
        .map_err(Error::sys(format!("mount overlay ({opts})")))?;
    std::fs::remove_file(m.join("a")).map_err(Error::io(m.join("a")))?;
    std::fs::create_dir(m.join("d")).map_err(Error::io(m.join("d")))?;
    let w = std::fs::symlink_metadata(d.join("u/a")).map_err(Error::io(d.join("u/a")))?;
    if !crate::util::is_whiteout(&w) {
        return Err(Error::Sandbox("overlayfs did not write a whiteout".into()));
    }
    Ok(())
}
