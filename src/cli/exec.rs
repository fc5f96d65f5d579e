//! `rbuild exec`: run a command in a running container, like `docker exec`: the
//! container's namespaces, cgroups, capabilities, seccomp filter, environment (plus `-e`),
//! user (unless `-u`) and working directory (unless `-w`). The command's exit code becomes
//! ours. Also the container lookups `cp`, `diff`, `commit` and `export` share.

use rbuild_runtime::container::exec::{ContainerSide, ExecOptions, pid1_of};
use rbuild_runtime::container::{Config, Containers, State, Status};
use rbuild_runtime::sandbox::{Network, RunIo, Sandbox};
use std::path::PathBuf;

/// Flags of `rbuild exec`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Detached: start the command and return (it runs on in the container).
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep stdin open and pass it to the command.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Set an environment variable (KEY=VALUE, or KEY to take this process's value).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read environment variables from a file (KEY=VALUE lines; # comments).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// User to run as: name, uid, name:group or uid:gid (default: the container's).
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Working directory inside the container (default: the container's).
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// Every capability and no seccomp filter for this command.
    #[arg(long)]
    pub privileged: bool,
    /// The container: name, ID or ID prefix.
    pub container: String,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

/// `KEY=VALUE` kept; `KEY` alone takes this process's value (nothing when unset); blank
/// lines and `#` comments skipped.
pub fn env_entry(s: &str, from: &str) -> anyhow::Result<Option<String>> {
    let s = s.trim_end_matches(['\r', '\n']);
    if s.trim().is_empty() || s.trim_start().starts_with('#') {
        return Ok(None);
    }
    match s.split_once('=') {
        Some(("", _)) => anyhow::bail!("{from}: {s:?}: a variable needs a name"),
        Some(_) => Ok(Some(s.to_string())),
        None => Ok(std::env::var(s.trim()).ok().map(|v| format!("{}={v}", s.trim()))),
    }
}

/// A container of the store, with its config and (liveness-checked) state.
pub struct Found {
    /// What it is.
    pub config: Config,
    /// What it does.
    pub state: State,
}

impl Found {
    /// Look `what` (name, ID, ID prefix) up in the store under `root`.
    pub fn open(root: &std::path::Path, what: &str) -> anyhow::Result<Found> {
        let container = Containers::open(root).resolve(what)?;
        let config = container.config()?;
        let state = container.checked_state()?;
        Ok(Found { config, state })
    }

    /// The host pid of the container's pid 1, when it runs.
    pub fn pid1(&self) -> Option<i32> {
        if !matches!(self.state.status, Status::Running | Status::Paused | Status::Restarting) {
            return None;
        }
        let pid = if self.state.pid > 0 { Some(self.state.pid) } else { pid1_of(self.state.init_pid).ok() };
        pid.filter(|p| rbuild_runtime::sandbox::process_running(*p))
    }

    /// Where `cp` and `export` find the container's files: its pid 1 when running, its
    /// writable layer's mounts when not.
    pub fn target(&self, root: &std::path::Path) -> anyhow::Result<rbuild_runtime::sandbox::JoinTarget> {
        let sn = rbuild_runtime::snapshot::open(root, rbuild_runtime::sandbox::store_trees(root))?;
        Ok(rbuild_runtime::container::fs::target(self.pid1(), || sn.mounts(&self.config.snapshot))?)
    }

    /// The container paths its mounts cover (left out of `diff` and `commit`).
    pub fn mount_targets(&self) -> Vec<String> {
        self.config.mounts.iter().map(|m| m.destination.clone()).collect()
    }
}

/// Turn the flags into exec options.
pub fn options(args: &Args) -> anyhow::Result<ExecOptions> {
    let mut env = Vec::new();
    for f in &args.env_file {
        let text = std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("--env-file {}: {e}", f.display()))?;
        for (n, line) in text.lines().enumerate() {
            env.extend(env_entry(line, &format!("{}:{}", f.display(), n + 1))?);
        }
    }
    for e in &args.env {
        env.extend(env_entry(e, "-e")?);
    }
    Ok(ExecOptions {
        cmd: args.cmd.clone(),
        env,
        user: args.user.clone(),
        workdir: args.workdir.clone(),
        privileged: args.privileged,
        detach: args.detach,
    })
}

/// Run `rbuild exec`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let opts = options(&args)?;
    if args.tty && args.interactive && !args.detach && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        anyhow::bail!("the input device is not a TTY (drop -t, or run from a terminal)");
    }
    let found = Found::open(&g.root, &args.container)?;
    if found.state.status == Status::Paused {
        anyhow::bail!("container {} is paused, unpause the container before exec", args.container);
    }
    let Some(pid1) = found.pid1() else {
        anyhow::bail!("container {} is not running", args.container);
    };
    let side = ContainerSide {
        env: found.config.env.clone(),
        user: found.config.user.clone(),
        workdir: found.config.workdir.clone(),
        security: found.config.security.to_security()?,
        host_network: found.config.network == Network::Host,
        rlimits: found.config.limits.ulimits.iter().filter_map(|u| u.rlimit()).collect(),
    };
    let sandbox = Sandbox::new(&g.root)?;
    let io = RunIo::inherit(args.interactive && !args.detach, args.tty && !args.detach);
    let out = rbuild_runtime::container::exec::exec(&sandbox, pid1, &side, &opts, io)?;
    match out.exec_error {
        // docker's exit code when the runtime could not start the command (not found, not
        // executable); the init has said why on stderr, unless detached.
        Some(e) if args.detach => {
            eprintln!("rbuild: {e}");
            Ok(126)
        }
        Some(_) => Ok(126),
        None => Ok(out.code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: Args,
    }

    #[test]
    fn flags_before_the_container_and_the_command_after() {
        let t = T::parse_from(["x", "-e", "A=1", "-u", "app", "-w", "/tmp", "web", "sh", "-c", "id -u"]);
        let o = options(&t.a).unwrap();
        assert_eq!(t.a.container, "web");
        assert_eq!(o.cmd, ["sh", "-c", "id -u"]);
        assert_eq!(
            (o.env, o.user.as_deref(), o.workdir.as_deref()),
            (vec!["A=1".to_string()], Some("app"), Some("/tmp"))
        );
        assert!(T::try_parse_from(["x", "web"]).is_err(), "a command is required");
        let t = T::parse_from(["x", "web", "ls", "-l"]);
        assert_eq!(t.a.cmd, ["ls", "-l"], "flags after the container are the command's");
    }
}
