//! `rbuild exec`: a command in a running container, through the sandbox's join mode
//! ([`Sandbox::exec_in`]): the namespaces and cgroups of the container's pid 1, the
//! container's capabilities, seccomp filter and no-new-privileges, its environment plus
//! `-e`, its user unless `-u`, its working directory unless `-w`.

use crate::error::{Error, Result};
use crate::sandbox::{ExecSpec, RunIo, RunOutcome, Sandbox, Security};

/// The host pid of the container's pid 1: the only child of the outer sandbox init
/// `init_pid` (`/proc/<init_pid>/task/<init_pid>/children`).
pub fn pid1_of(init_pid: i32) -> Result<i32> {
    let p = format!("/proc/{init_pid}/task/{init_pid}/children");
    let text = std::fs::read_to_string(&p).map_err(Error::io(&p))?;
    let kids: Vec<i32> = text.split_whitespace().filter_map(|s| s.parse().ok()).collect();
    match kids.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::Sandbox(format!("sandbox init {init_pid} has no pid 1 (yet, or any more)"))),
        many => Err(Error::Sandbox(format!("sandbox init {init_pid} has {} children, expected one", many.len()))),
    }
}

/// What `exec` was asked for, beyond the container's own settings.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// The command and its arguments.
    pub cmd: Vec<String>,
    /// `-e KEY=VALUE`, after the container's environment (later ones win).
    pub env: Vec<String>,
    /// `-u`: instead of the container's user.
    pub user: Option<String>,
    /// `-w`: instead of the container's working directory.
    pub workdir: Option<String>,
    /// `--privileged`: every capability, no seccomp filter.
    pub privileged: bool,
    /// `-d`.
    pub detach: bool,
}

/// The container's side of an exec: what it runs with.
#[derive(Debug, Clone, Default)]
pub struct ContainerSide {
    /// Its environment (`KEY=value`).
    pub env: Vec<String>,
    /// Its user (empty: root).
    pub user: String,
    /// Its working directory (empty: `/`).
    pub workdir: String,
    /// Its confinement.
    pub security: Security,
    /// It shares the host's network.
    pub host_network: bool,
    /// Its `--ulimit`s: (RLIMIT_*, soft, hard).
    pub rlimits: Vec<(u32, u64, u64)>,
}

/// The [`ExecSpec`] for `opts` in a container set up as `c`.
pub fn spec(c: &ContainerSide, opts: &ExecOptions) -> Result<ExecSpec> {
    if opts.cmd.is_empty() {
        return Err(Error::Spec("exec needs a command to run".into()));
    }
    let mut env = c.env.clone();
    env.extend(opts.env.iter().cloned());
    let mut security = c.security.clone();
    if opts.privileged {
        security.privileged = true;
    }
    Ok(ExecSpec {
        args: opts.cmd.clone(),
        env,
        cwd: opts.workdir.clone().filter(|w| !w.is_empty()).unwrap_or_else(|| c.workdir.clone()),
        user: opts.user.clone().or_else(|| Some(c.user.clone())).filter(|u| !u.is_empty()),
        security,
        host_network: c.host_network,
        detach: opts.detach,
        rlimits: c.rlimits.clone(),
    })
}

/// Run `opts` in the running container whose pid 1 is `pid1` (host pid).
pub fn exec(sandbox: &Sandbox, pid1: i32, c: &ContainerSide, opts: &ExecOptions, io: RunIo) -> Result<RunOutcome> {
    sandbox.exec_in(pid1, &spec(c, opts)?, io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_takes_the_containers_settings_unless_overridden() {
        let c = ContainerSide {
            env: vec!["A=1".into(), "PATH=/bin".into()],
            user: "app".into(),
            workdir: "/srv".into(),
            ..Default::default()
        };
        let o = ExecOptions { cmd: vec!["id".into()], env: vec!["A=2".into()], ..Default::default() };
        let s = spec(&c, &o).unwrap();
        assert_eq!(s.env, ["A=1", "PATH=/bin", "A=2"]);
        assert_eq!((s.user.as_deref(), s.cwd.as_str()), (Some("app"), "/srv"));
        let o = ExecOptions {
            cmd: vec!["id".into()],
            user: Some("0".into()),
            workdir: Some("/tmp".into()),
            privileged: true,
            ..Default::default()
        };
        let s = spec(&c, &o).unwrap();
        assert_eq!((s.user.as_deref(), s.cwd.as_str(), s.security.privileged), (Some("0"), "/tmp", true));
        assert!(spec(&c, &ExecOptions::default()).is_err());
    }
}
