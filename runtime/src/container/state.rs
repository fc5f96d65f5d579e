//! What a container is doing: `state.json`, changed only under the container's lock.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// docker's container statuses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Made, never started.
    #[default]
    Created,
    /// Its command runs (or is being set up by its monitor).
    Running,
    /// Frozen (cgroup freezer).
    Paused,
    /// Exited; its monitor waits out the back-off before starting it again.
    Restarting,
    /// Being removed.
    Removing,
    /// Its command exited.
    Exited,
    /// Its monitor died, or it could not be cleaned up.
    Dead,
}

impl Status {
    /// docker's word (`running`, `exited`…).
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// Does a monitor own the container (running, paused or restarting)?
    pub fn is_active(&self) -> bool {
        matches!(self, Status::Running | Status::Paused | Status::Restarting)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A container's state (`<root>/containers/<id>/state.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// created, running, paused, restarting, removing, exited, dead.
    pub status: Status,
    /// The HOST pid of the container's pid 1 (what `exec` joins); 0 when not running.
    pub pid: i32,
    /// The outer sandbox init (the monitor's child, in the host pid namespace); 0 when not
    /// running.
    pub init_pid: i32,
    /// The process that owns the container: the monitor (`run -d`, `start`) or the
    /// foreground `rbuild run`; 0 when none.
    pub monitor_pid: i32,
    /// The monitor's start time (field 22 of /proc/PID/stat), so a reused pid is not
    /// taken for it.
    pub monitor_start: u64,
    /// When it last started, RFC 3339 with nanoseconds.
    pub started_at: Option<String>,
    /// When it last exited, RFC 3339 with nanoseconds.
    pub finished_at: Option<String>,
    /// The last exit code (128 + signal when killed).
    pub exit_code: i32,
    /// Killed by the OOM killer.
    pub oom_killed: bool,
    /// How many times the monitor restarted it.
    pub restart_count: u32,
    /// Why it failed to start, or why it is dead.
    pub error: String,
    /// Set by `stop`/`kill`: the monitor must not restart it.
    pub stop_requested: bool,
    /// Its cgroup directories (one per v1 hierarchy, or the v2 one), for pause/stats/update.
    pub cgroup: Vec<PathBuf>,
}

impl State {
    /// Is its owner (monitor or foreground `run`) still the process recorded?
    pub fn monitor_alive(&self) -> bool {
        self.monitor_pid > 0 && process_start_time(self.monitor_pid) == Some(self.monitor_start)
    }
}

/// Field 22 of /proc/PID/stat (start time in clock ticks since boot), `None` when the
/// process is gone (or a zombie).
pub fn process_start_time(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state).
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(22 - 3)?.parse().ok()
}

/// Now, RFC 3339 with nanoseconds, UTC (docker's timestamps).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_of_self() {
        let me = std::process::id() as i32;
        let t = process_start_time(me).unwrap();
        assert_eq!(process_start_time(me), Some(t));
        let st = State { monitor_pid: me, monitor_start: t, ..Default::default() };
        assert!(st.monitor_alive());
        assert!(!State { monitor_pid: me, monitor_start: t + 1, ..Default::default() }.monitor_alive());
        assert!(!State::default().monitor_alive());
    }

    #[test]
    fn state_json() {
        let s = State { status: Status::Running, pid: 5, ..Default::default() };
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["status"], "running");
        let back: State = serde_json::from_value(j).unwrap();
        assert_eq!(back, s);
        assert_eq!(serde_json::from_str::<State>("{}").unwrap().status, Status::Created);
        assert!(now_rfc3339().ends_with('Z'));
    }
}
