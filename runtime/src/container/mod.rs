//! Containers: records in the store ([`store`]: `config.json` + `state.json` under a lock),
//! run in the foreground by `rbuild run` or handed to a per-container monitor by `run -d`
//! and `start`.
//!
//! A container is `<root>/containers/<id>/`: what it is ([`Config`], fixed at create), what
//! it does ([`State`], changed only under its lock), its writable layer (the snapshot
//! `container-<id>`) and its log (docker's json-file format). There is no daemon: every
//! command reads and changes the record; a monitor owns a detached container's init.

pub mod commit;
pub mod config;
pub mod exec;
pub mod format;
pub mod fs;
pub mod inspect;
pub mod log;
pub mod logread;
pub mod monitor;
pub mod mounts;
pub mod state;
pub mod store;

pub use config::{Config, RestartPolicy, SecurityConfig, parse_signal};
pub use mounts::{ResolvedMount, Volume, VolumesFrom};
pub use state::{State, Status, now_rfc3339, process_start_time};
pub use store::{Container, Containers, Locked, new_id, valid_name};

use crate::cgroup::Limits;
use crate::error::{Error, Result};
use crate::sandbox::{Executor, Network, RunIo, RunSpec, Sandbox, Started};
use crate::snapshot::{self, Snapshotter};
use rbuild_image::Store;
use rbuild_image::config::ContainerConfig;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// What `rbuild create` / `rbuild run` ask for.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
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
    /// `-v` and `--mount`.
    pub volumes: Vec<Volume>,
    /// `--volumes-from`.
    pub volumes_from: Vec<VolumesFrom>,
    /// `--rm`: remove the container and its layer after it exits.
    pub rm: bool,
    /// `-i`.
    pub stdin: bool,
    /// `-t`.
    pub tty: bool,
    /// `--cap-add`, `--cap-drop`, `--security-opt`, `--device`.
    pub security: SecurityConfig,
    /// `--label`, after the image's.
    pub labels: BTreeMap<String, String>,
    /// `--stop-signal` (default: the image's STOPSIGNAL, else SIGTERM).
    pub stop_signal: Option<String>,
    /// `--stop-timeout` in seconds.
    pub stop_timeout: Option<i64>,
    /// `--restart`.
    pub restart: RestartPolicy,
    /// `--memory`, `--cpus`…
    pub limits: Limits,
}

/// The argv a container runs, by Docker's rules: `--entrypoint` replaces the image's
/// Entrypoint and drops its Cmd; CMD args replace the Cmd; the result is Entrypoint + Cmd.
/// Returns (entrypoint, cmd).
pub fn command_line(
    config: &ContainerConfig,
    cmd: &[String],
    entrypoint: Option<&str>,
) -> Result<(Vec<String>, Vec<String>)> {
    let (ep, default_cmd): (Vec<String>, Vec<String>) = match entrypoint {
        Some("") => (Vec::new(), Vec::new()),
        Some(e) => (vec![e.to_string()], Vec::new()),
        None => (config.entrypoint.clone().unwrap_or_default(), config.cmd.clone().unwrap_or_default()),
    };
    let cmd = if cmd.is_empty() { default_cmd } else { cmd.to_vec() };
    if ep.is_empty() && cmd.is_empty() {
        return Err(Error::Spec("no command specified: the image has no CMD or ENTRYPOINT and none was given".into()));
    }
    Ok((ep, cmd))
}

/// Removes a half-made container (record, snapshot) unless disarmed.
struct Undo<'a> {
    cs: &'a Containers,
    c: Option<Container>,
    sn: &'a dyn Snapshotter,
    key: Option<String>,
    root: &'a Path,
    resolved: Option<mounts::Resolved>,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if let Some(r) = &self.resolved {
            r.undo(self.root);
        }
        if let Some(k) = &self.key {
            let _ = self.sn.remove(k);
        }
        if let Some(c) = &self.c {
            let _ = self.cs.remove_record(c);
        }
    }
}

/// Create a container: the record (name reserved), its writable layer on the image's
/// snapshots, bind sources and named volumes made. A failure leaves nothing.
pub fn create(store: &Store, opts: &CreateOptions, sandbox: &Sandbox) -> Result<Container> {
    let sn = snapshot::open(store.root(), crate::sandbox::store_trees(store.root()))?;
    create_with(store, opts, sandbox, sn.as_ref())
}

/// `rbuild run` in the foreground: [`create`] then [`run_attached`], opening the
/// snapshotter once.
pub fn create_and_run(store: &Store, opts: &CreateOptions, sandbox: &Sandbox) -> Result<i32> {
    let sn = snapshot::open(store.root(), crate::sandbox::store_trees(store.root()))?;
    let c = create_with(store, opts, sandbox, sn.as_ref())?;
    run_attached_with(store.root(), &c, sandbox, sn.as_ref(), opts.stdin, opts.tty)
}

fn create_with(store: &Store, opts: &CreateOptions, sandbox: &Sandbox, sn: &dyn Snapshotter) -> Result<Container> {
    let root = store.root();
    if opts.rm && opts.restart != RestartPolicy::No {
        return Err(Error::Spec("conflicting options: --restart and --rm".into()));
    }
    opts.limits.validate()?;
    opts.security.to_security()?;
    let image = store.resolve(&opts.image)?;
    let icfg = image.config.config.clone().unwrap_or_default();
    let (entrypoint, cmd) = command_line(&icfg, &opts.cmd, opts.entrypoint.as_deref())?;
    let top = snapshot::unpack_image(sn, store, image.layers(), &image.config.rootfs.diff_ids, Some(sandbox))?;

    let id = new_id();
    let hostname = opts.hostname.clone().unwrap_or_else(|| id[..12].to_string());
    let mut env = icfg.env.clone();
    env.push(format!("HOSTNAME={hostname}"));
    env.extend(opts.env.iter().cloned());
    let mut labels = icfg.labels.clone();
    labels.extend(opts.labels.clone());
    let mut argv = entrypoint.clone();
    argv.extend(cmd.iter().cloned());
    let mut cfg = Config {
        id: id.clone(),
        name: opts.name.clone().unwrap_or_default(),
        created: now_rfc3339(),
        image: opts.image.clone(),
        image_id: image.config_digest.to_string(),
        path: argv[0].clone(),
        args: argv[1..].to_vec(),
        entrypoint,
        cmd,
        env,
        user: opts.user.clone().or(icfg.user.clone()).unwrap_or_default(),
        workdir: opts.workdir.clone().or(icfg.working_dir.clone()).unwrap_or_default(),
        hostname,
        tty: opts.tty,
        open_stdin: opts.stdin,
        labels,
        stop_signal: opts.stop_signal.clone().or(icfg.stop_signal.clone()),
        stop_timeout: opts.stop_timeout,
        restart: opts.restart,
        auto_remove: opts.rm,
        limits: opts.limits.clone(),
        mounts: Vec::new(),
        network: opts.network,
        security: opts.security.clone(),
        snapshot: format!("container-{id}"),
        parent_snapshot: top.clone(),
        volumes: Vec::new(),
        anonymous_volumes: Vec::new(),
    };
    if cfg.stop_signal.is_some() {
        cfg.stop_signal_number()?;
    }
    let cs = Containers::open(root);
    cs.cleanup_stale();
    // Volumes first (the record names them from the start), then the record with its
    // name, then the layer; a failure undoes what was made.
    let image_volumes: Vec<String> = icfg.volumes.keys().cloned().collect();
    let resolved = mounts::resolve(root, &opts.volumes, &opts.volumes_from, &image_volumes)?;
    let mut undo = Undo { cs: &cs, c: None, sn, key: None, root, resolved: None };
    cfg.mounts = resolved.mounts.clone();
    cfg.volumes = resolved.volumes.clone();
    cfg.anonymous_volumes = resolved.mounts.iter().filter(|m| m.anonymous).filter_map(|m| m.name.clone()).collect();
    undo.resolved = Some(resolved);
    let c = cs.create(&mut cfg)?;
    undo.c = Some(c.clone());
    sn.prepare(&cfg.snapshot, top.as_deref())?;
    undo.key = Some(cfg.snapshot.clone());
    undo.c = None;
    undo.key = None;
    undo.resolved = None;
    Ok(c)
}

/// What the sandbox runs for a container.
fn run_spec(root: &Path, sn: &dyn Snapshotter, cfg: &Config) -> Result<RunSpec> {
    let rootfs = sn.mounts(&cfg.snapshot)?;
    Ok(RunSpec {
        mounts: mounts::specs(root, &cfg.mounts)?,
        rootfs,
        args: cfg.argv(),
        env: cfg.env.clone(),
        cwd: if cfg.workdir.is_empty() { "/".into() } else { cfg.workdir.clone() },
        user: Some(cfg.user.clone()).filter(|u| !u.is_empty()),
        hostname: Some(cfg.hostname.clone()),
        network: cfg.network,
        security: cfg.security.to_security()?,
        limits: cfg.limits.clone(),
        cgroup: Some(cfg.id.clone()),
        ..Default::default()
    })
}

/// The error for starting (or removing) a container that runs.
fn busy(cfg: &Config, st: &State) -> Error {
    Error::Container { name: cfg.name.clone(), reason: format!("the container is {}", st.status) }
}

/// Record in `st` that this process owns a starting container.
fn mark_started(st: &mut State, owner: i32) {
    st.status = Status::Running;
    st.monitor_pid = owner;
    st.monitor_start = process_start_time(owner).unwrap_or(0);
    st.started_at = Some(now_rfc3339());
    st.exit_code = 0;
    st.error.clear();
    st.oom_killed = false;
    st.stop_requested = false;
    st.pid = 0;
    st.init_pid = 0;
}

/// The on_start callback: record the pids (and cgroup) of a started container.
fn record_pids(c: &Container) -> impl FnOnce(Started) + Send + 'static {
    let c = c.clone();
    move |s: Started| {
        let _ = c.update(|st| {
            st.pid = s.pid;
            st.init_pid = s.init_pid;
            st.cgroup = s.cgroup;
            Ok(())
        });
    }
}

/// Record an exit in `st`.
fn mark_exited(st: &mut State, code: i32, error: Option<String>) {
    st.exit_code = code;
    st.finished_at = Some(now_rfc3339());
    st.pid = 0;
    st.init_pid = 0;
    st.error = error.unwrap_or_default();
    st.cgroup.clear();
}

/// Run a created container in the foreground with the caller's stdio (`rbuild run`
/// without `-d`): this process is its owner; returns its exit code. With `auto_remove`
/// the container is removed after.
pub fn run_attached(root: &Path, c: &Container, sandbox: &Sandbox, stdin: bool, tty: bool) -> Result<i32> {
    let sn = snapshot::open(root, crate::sandbox::store_trees(root))?;
    run_attached_with(root, c, sandbox, sn.as_ref(), stdin, tty)
}

fn run_attached_with(
    root: &Path,
    c: &Container,
    sandbox: &Sandbox,
    sn: &dyn Snapshotter,
    stdin: bool,
    tty: bool,
) -> Result<i32> {
    let cfg = c.config()?;
    let r = (|| {
        let spec = run_spec(root, sn, &cfg)?;
        {
            let l = c.lock()?;
            let mut st = l.state()?;
            if st.status.is_active() || st.status == Status::Removing {
                return Err(busy(&cfg, &st));
            }
            mark_started(&mut st, std::process::id() as i32);
            l.write_state(&st)?;
        }
        let mut io = RunIo::inherit(stdin, tty);
        io.on_start = Some(Box::new(record_pids(c)));
        let out = sandbox.run(&spec, io);
        let code = out.as_ref().map(|o| o.code).unwrap_or(125);
        c.update(|st| {
            mark_exited(
                st,
                code,
                out.as_ref().err().map(|e| e.to_string()).or(out.as_ref().ok().and_then(|o| o.exec_error.clone())),
            );
            st.status = Status::Exited;
            st.oom_killed = out.as_ref().is_ok_and(|o| o.oom_killed);
            st.monitor_pid = 0;
            st.monitor_start = 0;
            Ok(())
        })?;
        out.map(|o| o.code)
    })();
    if cfg.auto_remove {
        remove_now(root, c, sn, true)?;
    }
    r
}

/// The environment variables that turn the binary into a container's monitor.
pub const MONITOR_ENV: &str = "RBUILD_CONTAINER_MONITOR";
/// The store root the monitor works in.
pub const MONITOR_ROOT_ENV: &str = "RBUILD_CONTAINER_MONITOR_ROOT";

/// Start a created or exited container detached: hand it to a new monitor (`exe`
/// re-executed with [`MONITOR_ENV`], in its own session, stdio on /dev/null) and return
/// once its command is about to run. Of two starts at once, one wins; the other gets an
/// error saying the container is running.
pub fn start(root: &Path, c: &Container, exe: &Path) -> Result<()> {
    use std::io::BufRead;
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let cfg = c.config()?;
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(Error::sys("pipe"))?;
    {
        let l = c.lock()?;
        let mut st = l.state()?;
        if st.status.is_active() && !st.monitor_alive() {
            store::mark_monitor_dead(&mut st);
        }
        if st.status.is_active() || st.status == Status::Removing {
            return Err(busy(&cfg, &st));
        }
        let w = ready_w.as_raw_fd();
        // The monitor lives in `/`, holding no directory of ours busy: the root must be
        // absolute.
        let root = std::path::absolute(root).map_err(Error::io(root))?;
        let mut cmd = std::process::Command::new(exe);
        cmd.env(MONITOR_ENV, &c.id)
            .env(MONITOR_ROOT_ENV, &root)
            .current_dir("/")
            .env_remove(crate::sandbox::init_env())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // SAFETY: only async-signal-safe calls (setsid, dup2, fcntl) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::setsid();
                let r = if w == 3 { libc::fcntl(3, libc::F_SETFD, 0) } else { libc::dup2(w, 3) };
                if r < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| Error::Sandbox(format!("starting the monitor {}: {e}", exe.display())))?;
        mark_started(&mut st, child.id() as i32);
        if let Err(e) = l.write_state(&st) {
            // SAFETY: killing the monitor we just started.
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            return Err(e);
        }
        // Not waited for: the monitor outlives us (reparented when we exit).
        drop(child);
    }
    drop(ready_w);
    let mut line = String::new();
    let _ = std::io::BufReader::new(std::fs::File::from(ready_r)).read_line(&mut line);
    match line.trim_end() {
        "ok" => Ok(()),
        l => {
            // A monitor that died without a word is found out now, not by the next command.
            let _ = c.checked_state();
            let why = match l.strip_prefix("err ") {
                Some(m) => m.to_string(),
                None => {
                    let st = c.state().unwrap_or_default();
                    if st.error.is_empty() {
                        "its monitor exited before the container started".into()
                    } else {
                        st.error
                    }
                }
            };
            Err(Error::Container { name: cfg.name.clone(), reason: format!("cannot start: {why}") })
        }
    }
}

/// Wait until `pid` is gone (not reaping it: it is not ours), at most until `deadline`.
/// True when it is gone.
pub fn wait_pid_gone(pid: i32, deadline: Instant) -> bool {
    if pid <= 0 {
        return true;
    }
    // SAFETY: pidfd_open returns a new fd we own, or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if fd >= 0 {
        // SAFETY: fd is ours.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        loop {
            let left = deadline.saturating_duration_since(Instant::now()).as_millis().min(i32::MAX as u128) as i32;
            let mut p = libc::pollfd { fd: std::os::fd::AsRawFd::as_raw_fd(&fd), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut p, 1, left) };
            if r > 0 {
                return true;
            }
            if r == 0 || Instant::now() >= deadline {
                return false;
            }
        }
    }
    while crate::util::pid_alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Poll the state until `done` says so or `deadline` passes; the last state read.
fn poll_state(c: &Container, deadline: Instant, done: impl Fn(&State) -> bool) -> Result<State> {
    loop {
        let st = c.checked_state()?;
        if done(&st) || Instant::now() >= deadline {
            return Ok(st);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The pid to signal: pid 1 of the container, else (not yet recorded) the outer init,
/// which forwards.
fn target_pid(c: &Container) -> Result<Option<i32>> {
    let st = poll_state(c, Instant::now() + Duration::from_secs(5), |st| {
        !st.status.is_active() || st.pid > 0 || st.status == Status::Restarting
    })?;
    Ok(if !st.status.is_active() || st.status == Status::Restarting {
        None
    } else if st.pid > 0 {
        Some(st.pid)
    } else if st.init_pid > 0 {
        Some(st.init_pid)
    } else {
        None
    })
}

/// A paused container's processes cannot act on a signal until thawed (cgroup v1 freezer):
/// thaw it, after the signal is sent, so the signal is what they see first.
fn thaw_if_paused(c: &Container) {
    let Ok(st) = c.state() else { return };
    if st.status != Status::Paused {
        return;
    }
    if let Some(cg) = crate::cgroup::Cgroup::open(&st.cgroup).or_else(|| crate::cgroup::Cgroup::find(&c.id)) {
        let _ = cg.thaw();
    }
    let _ = c.update(|st| {
        if st.status == Status::Paused {
            st.status = Status::Running;
        }
        Ok(())
    });
}

/// Ask the monitor not to restart the container; true when it is active.
fn request_stop(c: &Container) -> Result<bool> {
    c.update(|st| {
        if st.status.is_active() && !st.monitor_alive() {
            store::mark_monitor_dead(st);
        }
        if st.status.is_active() {
            st.stop_requested = true;
        }
        Ok(st.status.is_active())
    })
}

/// Wait (up to 10 s more) for the owner to record the exit.
fn wait_recorded(c: &Container) -> Result<State> {
    poll_state(c, Instant::now() + Duration::from_secs(10), |st| {
        !st.status.is_active() || st.status == Status::Restarting && st.stop_requested && !st.monitor_alive()
    })
}

/// `stop`: the stop signal (`signal`, else the container's, else SIGTERM), then SIGKILL
/// after `timeout` seconds (else the container's, else 10); the restart policy does not
/// apply. Returns once the exit is recorded. A container that is not running is fine.
pub fn stop(c: &Container, timeout: Option<i64>, signal: Option<i32>) -> Result<()> {
    let cfg = c.config()?;
    let sig = match signal {
        Some(s) => s,
        None => cfg.stop_signal_number()?,
    };
    if !request_stop(c)? {
        return Ok(());
    }
    if let Some(pid) = target_pid(c)? {
        // SAFETY: signalling the container's pid 1 (it forwards to the command).
        unsafe { libc::kill(pid, sig) };
        thaw_if_paused(c);
        let t = timeout.unwrap_or(cfg.stop_timeout_secs());
        let gone = t >= 0 && wait_pid_gone(pid, Instant::now() + Duration::from_secs(t as u64));
        if !gone {
            // SAFETY: SIGKILL to pid 1 of the namespace kills every process in it.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            wait_pid_gone(pid, Instant::now() + Duration::from_secs(10));
        }
    }
    wait_recorded(c)?;
    Ok(())
}

/// `kill`: send `signal` to the container's command (through its pid 1); the restart
/// policy does not apply afterwards. SIGKILL waits for the exit to be recorded.
pub fn kill(c: &Container, signal: i32) -> Result<()> {
    let cfg = c.config()?;
    let st = c.checked_state()?;
    if !st.status.is_active() {
        return Err(Error::Container { name: cfg.name, reason: "the container is not running".into() });
    }
    request_stop(c)?;
    let Some(pid) = target_pid(c)? else { return Ok(()) };
    // SAFETY: signalling the container's pid 1.
    if unsafe { libc::kill(pid, signal) } != 0 {
        return Err(Error::Sys { what: format!("kill {pid}"), source: nix::Error::last() });
    }
    if signal == libc::SIGKILL {
        thaw_if_paused(c);
    }
    if signal == libc::SIGKILL {
        wait_pid_gone(pid, Instant::now() + Duration::from_secs(10));
        wait_recorded(c)?;
    }
    Ok(())
}

/// `wait`: block until the container is not running (a restart counts as an exit); its
/// exit code.
pub fn wait(c: &Container) -> Result<i32> {
    let st = c.checked_state()?;
    if !st.status.is_active() {
        return Ok(st.exit_code);
    }
    let started = st.started_at.clone();
    loop {
        let st = c.checked_state()?;
        if !st.status.is_active() || st.started_at != started || st.status == Status::Restarting {
            return Ok(st.exit_code);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `rm`: remove a container, its writable layer and (with `volumes`) its anonymous
/// volumes. A running container is refused unless `force`, which kills it first.
pub fn remove(root: &Path, c: &Container, force: bool, volumes: bool) -> Result<()> {
    let cfg = c.config()?;
    let st = c.checked_state()?;
    if st.status.is_active() {
        if !force {
            return Err(Error::Container {
                name: cfg.name.clone(),
                reason: format!(
                    "cannot remove a {} container: stop the container before removing or force remove (rm -f)",
                    st.status
                ),
            });
        }
        request_stop(c)?;
        if let Some(pid) = target_pid(c)? {
            // SAFETY: SIGKILL to the container's pid 1.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            thaw_if_paused(c);
            wait_pid_gone(pid, Instant::now() + Duration::from_secs(10));
        }
        let st = wait_recorded(c)?;
        if st.status.is_active() && st.monitor_alive() {
            // SAFETY: the monitor did not let go (in a back-off): it goes too.
            unsafe { libc::kill(st.monitor_pid, libc::SIGKILL) };
            wait_pid_gone(st.monitor_pid, Instant::now() + Duration::from_secs(10));
        }
    }
    let sn = snapshot::open(root, crate::sandbox::store_trees(root))?;
    remove_now(root, c, sn.as_ref(), volumes)
}

/// Remove the record and its layer (the container does not run).
fn remove_now(root: &Path, c: &Container, sn: &dyn Snapshotter, volumes: bool) -> Result<()> {
    let cfg = {
        let l = match c.lock() {
            Ok(l) => l,
            Err(Error::NoSuchContainer(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut st = l.state()?;
        if st.status.is_active() && st.monitor_alive() && st.monitor_pid != std::process::id() as i32 {
            return Err(busy(&l.config()?, &st));
        }
        st.status = Status::Removing;
        l.write_state(&st)?;
        let cfg = l.config()?;
        // A container whose owner was killed leaves its cgroup behind (paused: with its
        // frozen processes): they go now.
        if let Some(cg) = crate::cgroup::Cgroup::open(&st.cgroup).or_else(|| crate::cgroup::Cgroup::find(&cfg.id)) {
            cg.destroy();
        }
        cfg
    };
    if sn.stat(&cfg.snapshot)?.is_some() {
        sn.remove(&cfg.snapshot)?;
    }
    if volumes {
        remove_anonymous_volumes(root, &cfg);
    }
    Containers::open(root).remove_record(c)
}

/// `rm -v`: the anonymous volumes go with the container (those no other container uses).
fn remove_anonymous_volumes(root: &Path, cfg: &Config) {
    if let Err(e) = mounts::remove_anonymous(root, &cfg.id, &cfg.mounts) {
        tracing::warn!("removing the anonymous volumes of {}: {e}", cfg.name);
    }
}
