//! The per-container monitor: the rbuild binary re-executed by [`super::start`] with
//! [`super::MONITOR_ENV`] set, in its own session with stdio on /dev/null. It owns the
//! container's sandbox init (which dies with it), writes the json-file log, records each
//! exit, applies the restart policy with docker's back-off (100 ms, doubling, back to
//! 100 ms once the container ran 10 s, at most a minute), and ends with the container
//! (removing it when it was run with `--rm`).
//!
//! It tells the starter over fd 3: `ok` once the command is about to run, or
//! `err <message>`.

use super::log::LogWriter;
use super::{Container, Containers, Status, mark_exited, mark_started, run_spec};
use crate::error::Result;
use crate::sandbox::{Executor, RunIo, Sandbox};
use crate::snapshot;
use std::io::Write;
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Call first thing in `main` (after [`crate::sandbox::init_hook`]): when the process is a
/// container's monitor, runs it and returns its exit code; otherwise `None` at once.
pub fn monitor_hook() -> Option<i32> {
    let id = std::env::var(super::MONITOR_ENV).ok()?;
    let root = PathBuf::from(std::env::var_os(super::MONITOR_ROOT_ENV)?);
    // SAFETY: fd 3 is the ready pipe the starter gave us; it must not reach the container.
    let ready = unsafe {
        if libc::fcntl(3, libc::F_SETFD, libc::FD_CLOEXEC) == 0 { Some(std::fs::File::from_raw_fd(3)) } else { None }
    };
    // SAFETY: unsetting our own variables before any thread starts.
    unsafe {
        std::env::remove_var(super::MONITOR_ENV);
        std::env::remove_var(super::MONITOR_ROOT_ENV);
    }
    Some(run(&root, &id, ready))
}

type Ready = Arc<Mutex<Option<std::fs::File>>>;

fn tell(ready: &Ready, msg: &str) {
    if let Some(mut f) = ready.lock().unwrap().take() {
        let _ = f.write_all(format!("{}\n", msg.replace('\n', " ")).as_bytes());
    }
}

fn run(root: &Path, id: &str, ready: Option<std::fs::File>) -> i32 {
    let ready: Ready = Arc::new(Mutex::new(ready));
    let c = match Containers::open(root).get(id) {
        Ok(c) => c,
        Err(e) => {
            tell(&ready, &format!("err {e}"));
            return 1;
        }
    };
    match monitor(root, &c, &ready) {
        Ok(()) => 0,
        Err(e) => {
            let msg = e.to_string();
            let _ = c.update(|st| {
                if st.status.is_active() {
                    mark_exited(st, 128, Some(msg.clone()));
                    st.status = Status::Exited;
                    st.monitor_pid = 0;
                    st.monitor_start = 0;
                }
                Ok(())
            });
            tell(&ready, &format!("err {msg}"));
            1
        }
    }
}

/// The back-off before restart number `n` (0-based) of a container.
pub fn backoff(n: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1u64 << n.min(20))).min(Duration::from_secs(60))
}

fn monitor(root: &Path, c: &Container, ready: &Ready) -> Result<()> {
    let me = std::process::id() as i32;
    // The starter holds the lock until it has recorded us as the owner.
    {
        let st = c.lock()?.state()?;
        if st.monitor_pid != me {
            tell(ready, "err another process owns the container");
            return Ok(());
        }
    }
    let cfg = c.config()?;
    let sandbox = Sandbox::new(root)?;
    let sn = snapshot::open(root, crate::sandbox::store_trees(root))?;
    let log = Arc::new(Mutex::new(LogWriter::open(&c.log_path())?));
    if cfg.open_stdin {
        // `-i` detached: a stdin that stays open (and empty) for the container's life, so
        // `run -dit IMAGE sh` keeps its shell.
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(crate::Error::sys("pipe"))?;
        nix::unistd::dup2(std::os::fd::AsRawFd::as_raw_fd(&r), 0).map_err(crate::Error::sys("dup2"))?;
        std::mem::forget(w);
    }
    let mut restarts_in_row: u32 = 0;
    loop {
        let spec = run_spec(root, sn.as_ref(), &cfg)?;
        let sink_log = log.clone();
        let mut io = RunIo::capture(move |s, b| {
            let _ = sink_log.lock().unwrap().write(s, b);
        });
        // `-t`: a terminal whose output is the log's stdout.
        io.tty = cfg.tty;
        io.stdin = cfg.open_stdin;
        let record = super::record_pids(c);
        let r2 = ready.clone();
        io.on_start = Some(Box::new(move |s| {
            record(s);
            tell(&r2, "ok");
        }));
        let t0 = Instant::now();
        let out = sandbox.run(&spec, io);
        let _ = log.lock().unwrap().flush();
        let out = out?;
        let restart = c.update(|st| {
            mark_exited(st, out.code, out.exec_error.clone());
            st.oom_killed = out.oom_killed;
            let restart = cfg.restart.should_restart(out.code, st.restart_count, st.stop_requested);
            if restart {
                st.status = Status::Restarting;
            } else {
                st.status = Status::Exited;
                st.monitor_pid = 0;
                st.monitor_start = 0;
            }
            Ok(restart)
        })?;
        if !restart {
            break;
        }
        if t0.elapsed() >= Duration::from_secs(10) {
            restarts_in_row = 0;
        }
        let deadline = Instant::now() + backoff(restarts_in_row);
        restarts_in_row += 1;
        while Instant::now() < deadline {
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()).min(Duration::from_millis(20)));
            if c.state()?.stop_requested {
                break;
            }
        }
        let go = c.update(|st| {
            if st.stop_requested {
                st.status = Status::Exited;
                st.monitor_pid = 0;
                st.monitor_start = 0;
                return Ok(false);
            }
            let count = st.restart_count + 1;
            mark_started(st, me);
            st.restart_count = count;
            Ok(true)
        })?;
        if !go {
            break;
        }
    }
    if cfg.auto_remove {
        super::remove_now(root, c, sn.as_ref(), true)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_backoff() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert_eq!(backoff(30), Duration::from_secs(60));
    }
}
