//! What a container is: `config.json`, fixed at create (`update` may change the limits,
//! `rename` the name).

use crate::cgroup::Limits;
use crate::error::{Error, Result};
use crate::sandbox::{Device, Network, Seccomp, Security};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A container's configuration (`<root>/containers/<id>/config.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// 64 hex digits.
    pub id: String,
    /// The unique name (`--name`, or one made up like docker's `adjective_name`).
    pub name: String,
    /// When it was created, RFC 3339 with nanoseconds, UTC.
    pub created: String,
    /// The image as asked (`busybox`, `bb:1`, an ID prefix).
    pub image: String,
    /// The image ID (the config digest, `sha256:…`).
    pub image_id: String,
    /// The program (argv\[0\] after docker's ENTRYPOINT/CMD rules).
    pub path: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// The entrypoint used (the image's or `--entrypoint`), for inspect's Config.Entrypoint.
    pub entrypoint: Vec<String>,
    /// The cmd used (the image's or the one given), for inspect's Config.Cmd.
    pub cmd: Vec<String>,
    /// `KEY=value`: the image's, HOSTNAME, then `-e`.
    pub env: Vec<String>,
    /// `-u` or the image's USER; empty is root.
    pub user: String,
    /// `-w` or the image's WORKDIR; empty is `/`.
    pub workdir: String,
    /// The hostname (default: the first 12 hex of the ID).
    pub hostname: String,
    /// `-t`.
    pub tty: bool,
    /// `-i`.
    pub open_stdin: bool,
    /// `--label` and the image's labels.
    pub labels: BTreeMap<String, String>,
    /// `--stop-signal` or the image's STOPSIGNAL (`None`: SIGTERM).
    pub stop_signal: Option<String>,
    /// `--stop-timeout` in seconds (`None`: 10).
    pub stop_timeout: Option<i64>,
    /// `--restart`.
    pub restart: RestartPolicy,
    /// `--rm` on a detached container: removed by its monitor when it ends.
    pub auto_remove: bool,
    /// `--memory`, `--cpus`, `--pids-limit`, `--ulimit`…
    pub limits: Limits,
    /// `-v`, `--mount`, `--volumes-from` and the image's VOLUMEs, resolved at create
    /// (volumes made); turned into sandbox mounts at each start ([`super::mounts::specs`]).
    pub mounts: Vec<super::mounts::ResolvedMount>,
    /// `--network`.
    pub network: Network,
    /// `--cap-add`, `--cap-drop`, `--security-opt`, `--device`.
    pub security: SecurityConfig,
    /// The writable layer: the snapshot key `container-<id>`.
    pub snapshot: String,
    /// The snapshot the writable layer sits on (the image's top), if any.
    pub parent_snapshot: Option<String>,
    /// Names of the named and anonymous volumes it uses (for `volume rm`'s check).
    pub volumes: Vec<String>,
    /// The anonymous ones among them (removed with `rm -v`).
    pub anonymous_volumes: Vec<String>,
}

impl Config {
    /// The full argv: `path` then `args`.
    pub fn argv(&self) -> Vec<String> {
        let mut v = vec![self.path.clone()];
        v.extend(self.args.iter().cloned());
        v
    }

    /// The first 12 hex of the ID (what `ps` shows).
    pub fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(12)]
    }

    /// The stop signal's number (the configured one, else SIGTERM).
    pub fn stop_signal_number(&self) -> Result<i32> {
        match &self.stop_signal {
            Some(s) if !s.is_empty() => parse_signal(s),
            _ => Ok(libc::SIGTERM),
        }
    }

    /// Seconds `stop` waits before SIGKILL (default 10).
    pub fn stop_timeout_secs(&self) -> i64 {
        self.stop_timeout.unwrap_or(10)
    }
}

/// `--restart`: what the monitor does when the container's command exits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never restart (docker's `no`).
    #[default]
    No,
    /// Restart when the exit code is not 0, at most `max_retries` times (0: no limit).
    OnFailure {
        /// The most restarts (0: no limit).
        #[serde(default)]
        max_retries: u32,
    },
    /// Always restart, unless stopped by `stop`/`kill`.
    Always,
    /// Like always (there is no daemon to restart at boot).
    UnlessStopped,
}

impl RestartPolicy {
    /// Parse docker's `no`, `on-failure[:N]`, `always`, `unless-stopped`.
    pub fn parse(s: &str) -> Result<RestartPolicy> {
        let bad =
            || Error::Spec(format!("--restart {s:?}: expected no, on-failure[:MAX-RETRIES], always or unless-stopped"));
        Ok(match s.split_once(':') {
            None => match s {
                "" | "no" => RestartPolicy::No,
                "on-failure" => RestartPolicy::OnFailure { max_retries: 0 },
                "always" => RestartPolicy::Always,
                "unless-stopped" => RestartPolicy::UnlessStopped,
                _ => return Err(bad()),
            },
            Some(("on-failure", n)) => RestartPolicy::OnFailure { max_retries: n.parse().map_err(|_| bad())? },
            Some(("always" | "unless-stopped" | "no", _)) => {
                return Err(Error::Spec(format!("--restart {s:?}: only on-failure takes a maximum retry count")));
            }
            Some(_) => return Err(bad()),
        })
    }

    /// docker's name: `no`, `on-failure`, `always`, `unless-stopped`.
    pub fn name(&self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure { .. } => "on-failure",
            RestartPolicy::Always => "always",
            RestartPolicy::UnlessStopped => "unless-stopped",
        }
    }

    /// The maximum retry count (on-failure only; else 0).
    pub fn max_retries(&self) -> u32 {
        match self {
            RestartPolicy::OnFailure { max_retries } => *max_retries,
            _ => 0,
        }
    }

    /// Should the monitor restart after an exit with `code`, having restarted
    /// `restart_count` times already, when the user did (`stopped`) or did not stop it?
    pub fn should_restart(&self, code: i32, restart_count: u32, stopped: bool) -> bool {
        if stopped {
            return false;
        }
        match self {
            RestartPolicy::No => false,
            RestartPolicy::OnFailure { max_retries } => {
                code != 0 && (*max_retries == 0 || restart_count < *max_retries)
            }
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        }
    }
}

/// The security settings of a container, serializable ([`Security`] is not: it holds a
/// compiled seccomp profile).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecurityConfig {
    /// `--privileged`.
    pub privileged: bool,
    /// `--cap-add`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// `--security-opt seccomp=unconfined`.
    pub seccomp_unconfined: bool,
    /// `--security-opt seccomp=FILE`: the profile's JSON, read at create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<String>,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
    /// `--device` as given (`HOST[:CTR][:rwm]`).
    pub devices: Vec<String>,
    /// `--security-opt` as given (for inspect's HostConfig.SecurityOpt).
    pub security_opt: Vec<String>,
}

impl SecurityConfig {
    /// The sandbox's [`Security`] (compiles the seccomp profile, checks capability names).
    pub fn to_security(&self) -> Result<Security> {
        let seccomp = match (&self.seccomp_profile, self.seccomp_unconfined) {
            (_, true) => Seccomp::Unconfined,
            (Some(json), false) => Seccomp::Profile(Box::new(crate::sandbox::seccomp::Profile::from_json(
                json.as_bytes(),
                "the container's seccomp profile",
            )?)),
            (None, false) => Seccomp::Default,
        };
        let sec = Security {
            privileged: self.privileged,
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
            seccomp,
            no_new_privileges: self.no_new_privileges,
            devices: self.devices.iter().map(|d| Device::parse(d)).collect::<Result<_>>()?,
        };
        crate::sandbox::caps::effective(&sec.cap_add, &sec.cap_drop, true)?;
        Ok(sec)
    }
}

/// A signal by docker's spellings: `SIGTERM`, `TERM`, `term`, `15`.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(Error::Spec(format!("invalid signal: {s}")));
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => {
            let rt = name
                .strip_prefix("RTMIN")
                .map(|r| (libc::SIGRTMIN(), r))
                .or_else(|| name.strip_prefix("RTMAX").map(|r| (libc::SIGRTMAX(), r)));
            match rt {
                Some((base, "")) => base,
                Some((base, off)) => match off.parse::<i32>() {
                    Ok(o) if (-15..=15).contains(&o) => base + o,
                    _ => return Err(Error::Spec(format!("invalid signal: {s}"))),
                },
                None => return Err(Error::Spec(format!("invalid signal: {s}"))),
            }
        }
    };
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies() {
        assert_eq!(RestartPolicy::parse("no").unwrap(), RestartPolicy::No);
        assert_eq!(RestartPolicy::parse("on-failure:3").unwrap(), RestartPolicy::OnFailure { max_retries: 3 });
        assert_eq!(RestartPolicy::parse("on-failure").unwrap(), RestartPolicy::OnFailure { max_retries: 0 });
        assert_eq!(RestartPolicy::parse("always").unwrap(), RestartPolicy::Always);
        assert_eq!(RestartPolicy::parse("unless-stopped").unwrap(), RestartPolicy::UnlessStopped);
        for bad in ["sometimes", "on-failure:x", "always:3", "on-failure:-1"] {
            assert!(RestartPolicy::parse(bad).unwrap_err().to_string().contains(bad), "{bad}");
        }
        let p = RestartPolicy::OnFailure { max_retries: 3 };
        assert!(p.should_restart(1, 2, false));
        assert!(!p.should_restart(1, 3, false));
        assert!(!p.should_restart(0, 0, false));
        assert!(!RestartPolicy::Always.should_restart(0, 100, true));
        assert!(RestartPolicy::Always.should_restart(0, 100, false));
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, r#"{"name":"on-failure","max_retries":3}"#);
        assert_eq!(serde_json::from_str::<RestartPolicy>(&json).unwrap(), p);
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("term").unwrap(), 15);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("SIGRTMIN+1").unwrap(), libc::SIGRTMIN() + 1);
        assert!(parse_signal("SIGFOO").is_err());
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("99").is_err());
    }

    #[test]
    fn config_reads_with_missing_fields() {
        let c: Config = serde_json::from_str(r#"{"id":"ab","name":"x"}"#).unwrap();
        assert_eq!(c.restart, RestartPolicy::No);
        assert_eq!(c.stop_timeout_secs(), 10);
        assert_eq!(c.stop_signal_number().unwrap(), libc::SIGTERM);
    }
}
