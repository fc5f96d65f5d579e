//! `rbuild inspect` on a container: docker's JSON (`docker container inspect`), made from
//! the record's config and state with docker's field names: `Id`, `Created`, `Path`,
//! `Args`, `State{...}`, `Image`, `Name` (`/name`), `RestartCount`, `HostConfig{...}`,
//! `Config{...}`, `Mounts[]`, `GraphDriver`, `LogPath`.

use super::config::Config;
use super::mounts::MountType;
use super::state::State;
use crate::snapshot;
use serde_json::{Value, json};

/// Go's zero time, which docker prints for a start or an end that has not happened.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// What inspect shows beyond the record: where things are on disk.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// `<root>/containers/<id>/<id>-json.log`.
    pub log_path: String,
    /// The snapshot driver and the writable layer's mounts, when the layer exists.
    pub graph: Option<(String, Vec<snapshot::Mount>)>,
}

/// docker's `GraphDriver`: for overlay the lower/upper/work dirs, else the directory.
fn graph_driver(graph: &Option<(String, Vec<snapshot::Mount>)>) -> Value {
    let Some((name, mounts)) = graph else {
        return json!({"Name": "", "Data": null});
    };
    let mut data = serde_json::Map::new();
    for m in mounts {
        if m.fstype == "overlay" {
            for o in &m.options {
                if let Some((k, v)) = o.split_once('=') {
                    let key = match k {
                        "lowerdir" => "LowerDir",
                        "upperdir" => "UpperDir",
                        "workdir" => "WorkDir",
                        _ => continue,
                    };
                    data.insert(key.into(), json!(v));
                }
            }
        } else {
            data.insert("Dir".into(), json!(m.source.display().to_string()));
        }
    }
    json!({"Name": name, "Data": data})
}

/// The docker-inspect view of one container.
pub fn inspect(config: &Config, state: &State, extra: &Extra) -> Value {
    let status = state.status.as_str();
    let limits = &config.limits;
    let mut binds = Vec::new();
    let mut tmpfs = serde_json::Map::new();
    let mut mounts = Vec::new();
    for m in &config.mounts {
        let mode = if m.readonly { "ro" } else { "" };
        let ro = if m.readonly { ":ro" } else { "" };
        let source = m.source.display().to_string();
        match m.kind {
            MountType::Bind => {
                binds.push(format!("{source}:{}{ro}", m.destination));
                mounts.push(json!({
                    "Type": "bind", "Source": source, "Destination": m.destination, "Mode": mode,
                    "RW": !m.readonly, "Propagation": "rprivate",
                }));
            }
            MountType::Volume => {
                let name = m.name.clone().unwrap_or_default();
                if !m.anonymous && !name.is_empty() {
                    binds.push(format!("{name}:{}{ro}", m.destination));
                }
                mounts.push(json!({
                    "Type": "volume", "Name": name, "Source": source, "Destination": m.destination,
                    "Driver": "local", "Mode": mode, "RW": !m.readonly, "Propagation": "",
                }));
            }
            MountType::Tmpfs => {
                let opts = m.tmpfs_size.map(|s| format!("size={s}")).unwrap_or_default();
                tmpfs.insert(m.destination.clone(), json!(opts));
                mounts.push(json!({
                    "Type": "tmpfs", "Source": "", "Destination": m.destination, "Mode": mode,
                    "RW": !m.readonly, "Propagation": "",
                }));
            }
        }
    }
    let ulimits: Vec<Value> =
        limits.ulimits.iter().map(|u| json!({"Name": u.name, "Soft": u.soft, "Hard": u.hard})).collect();
    let none_if_empty = |v: &[String]| if v.is_empty() { Value::Null } else { json!(v) };
    let network = serde_json::to_value(config.network).unwrap_or(Value::Null);
    let mut cfg = json!({
        "Hostname": config.hostname,
        "Domainname": "",
        "User": config.user,
        "AttachStdin": config.open_stdin,
        "AttachStdout": true,
        "AttachStderr": true,
        "Tty": config.tty,
        "OpenStdin": config.open_stdin,
        "StdinOnce": false,
        "Env": config.env,
        "Cmd": none_if_empty(&config.cmd),
        "Image": config.image,
        "Volumes": null,
        "WorkingDir": config.workdir,
        "Entrypoint": none_if_empty(&config.entrypoint),
        "OnBuild": null,
        "Labels": config.labels,
    });
    if let Some(s) = config.stop_signal.as_ref().filter(|s| !s.is_empty()) {
        cfg["StopSignal"] = json!(s);
    }
    if let Some(t) = config.stop_timeout {
        cfg["StopTimeout"] = json!(t);
    }
    let state_json = json!({
        "Status": status,
        "Running": matches!(status, "running" | "paused" | "restarting"),
        "Paused": status == "paused",
        "Restarting": status == "restarting",
        "OOMKilled": state.oom_killed,
        "Dead": status == "dead",
        "Pid": if state.status.is_active() { state.pid } else { 0 },
        "ExitCode": state.exit_code,
        "Error": state.error,
        "StartedAt": state.started_at.as_deref().unwrap_or(ZERO_TIME),
        "FinishedAt": state.finished_at.as_deref().unwrap_or(ZERO_TIME),
    });
    let host_config = json!({
        "Binds": if binds.is_empty() { Value::Null } else { json!(binds) },
        "ContainerIDFile": "",
        "LogConfig": {"Type": "json-file", "Config": {}},
        "NetworkMode": network,
        "PortBindings": {},
        "RestartPolicy": {"Name": config.restart.name(), "MaximumRetryCount": config.restart.max_retries()},
        "AutoRemove": config.auto_remove,
        "VolumesFrom": null,
        "CapAdd": none_if_empty(&config.security.cap_add),
        "CapDrop": none_if_empty(&config.security.cap_drop),
        "Privileged": config.security.privileged,
        "SecurityOpt": none_if_empty(&config.security.security_opt),
        "Tmpfs": if tmpfs.is_empty() { Value::Null } else { Value::Object(tmpfs) },
        "Memory": limits.memory.unwrap_or(0),
        "MemoryReservation": limits.memory_reservation.unwrap_or(0),
        "MemorySwap": limits.memory_swap.unwrap_or(0),
        "NanoCpus": limits.nano_cpus.unwrap_or(0),
        "CpuShares": limits.cpu_shares.unwrap_or(0),
        "CpusetCpus": limits.cpuset_cpus.clone().unwrap_or_default(),
        "PidsLimit": limits.pids_limit,
        "Ulimits": if ulimits.is_empty() { Value::Null } else { json!(ulimits) },
        "Devices": config.security.devices.iter().map(|d| {
            let mut p = d.splitn(3, ':');
            let host = p.next().unwrap_or_default();
            let ctr = p.next().unwrap_or(host);
            let perms = p.next().unwrap_or("rwm");
            json!({"PathOnHost": host, "PathInContainer": ctr, "CgroupPermissions": perms})
        }).collect::<Vec<_>>(),
        "ReadonlyRootfs": false,
    });
    json!({
        "Id": config.id,
        "Created": config.created,
        "Path": config.path,
        "Args": config.args,
        "State": state_json,
        "Image": config.image_id,
        "ResolvConfPath": "",
        "HostnamePath": "",
        "HostsPath": "",
        "LogPath": extra.log_path,
        "Name": format!("/{}", config.name),
        "RestartCount": state.restart_count,
        "Driver": extra.graph.as_ref().map(|g| g.0.clone()).unwrap_or_default(),
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "HostConfig": host_config,
        "GraphDriver": graph_driver(&extra.graph),
        "Mounts": mounts,
        "Config": cfg,
        "NetworkSettings": {"Networks": {network.as_str().unwrap_or("host"): {}}},
    })
}

#[cfg(test)]
mod tests {
    use super::super::config::RestartPolicy;
    use super::super::mounts::ResolvedMount;
    use super::super::state::Status;
    use super::*;

    #[test]
    fn docker_field_names_and_values() {
        let mut config = Config {
            id: "ab".repeat(32),
            name: "web".into(),
            created: "2026-12-02T13:45:25.123456789Z".into(),
            image: "busybox".into(),
            image_id: format!("sha256:{}", "cd".repeat(32)),
            path: "httpd".into(),
            args: vec!["-f".into()],
            cmd: vec!["httpd".into(), "-f".into()],
            env: vec!["PATH=/bin".into()],
            hostname: "abababababab".into(),
            labels: [("a".to_string(), "1".to_string())].into(),
            stop_signal: Some("SIGQUIT".into()),
            restart: RestartPolicy::OnFailure { max_retries: 3 },
            mounts: vec![
                ResolvedMount {
                    kind: MountType::Bind,
                    name: None,
                    source: "/h".into(),
                    destination: "/c".into(),
                    readonly: true,
                    anonymous: false,
                    nocopy: false,
                    tmpfs_size: None,
                },
                ResolvedMount {
                    kind: MountType::Volume,
                    name: Some("data".into()),
                    source: "/r/volumes/data/_data".into(),
                    destination: "/data".into(),
                    readonly: false,
                    anonymous: false,
                    nocopy: false,
                    tmpfs_size: None,
                },
            ],
            ..Default::default()
        };
        config.limits.memory = Some(16 << 20);
        config.limits.pids_limit = Some(64);
        let state = State {
            status: Status::Running,
            pid: 4242,
            started_at: Some("2026-12-02T13:45:26Z".into()),
            restart_count: 2,
            ..Default::default()
        };
        let extra = Extra {
            log_path: "/r/containers/x/x-json.log".into(),
            graph: Some((
                "overlay".into(),
                vec![snapshot::Mount {
                    fstype: "overlay".into(),
                    source: "overlay".into(),
                    options: vec!["lowerdir=/l1:/l2".into(), "upperdir=/u".into(), "workdir=/w".into()],
                }],
            )),
        };
        let v = inspect(&config, &state, &extra);
        assert_eq!(v["Id"], config.id);
        assert_eq!(v["Name"], "/web");
        assert_eq!(v["Path"], "httpd");
        assert_eq!(v["Args"], json!(["-f"]));
        assert_eq!(v["Image"], config.image_id);
        assert_eq!(v["RestartCount"], 2);
        assert_eq!(v["State"]["Status"], "running");
        assert_eq!(v["State"]["Running"], true);
        assert_eq!(v["State"]["Pid"], 4242);
        assert_eq!(v["State"]["OOMKilled"], false);
        assert_eq!(v["State"]["FinishedAt"], ZERO_TIME);
        assert_eq!(v["HostConfig"]["Memory"], 16 << 20);
        assert_eq!(v["HostConfig"]["PidsLimit"], 64);
        assert_eq!(v["HostConfig"]["NanoCpus"], 0);
        assert_eq!(v["HostConfig"]["RestartPolicy"], json!({"Name": "on-failure", "MaximumRetryCount": 3}));
        assert_eq!(v["HostConfig"]["Binds"], json!(["/h:/c:ro", "data:/data"]));
        assert_eq!(v["HostConfig"]["NetworkMode"], "host");
        assert_eq!(v["Config"]["Cmd"], json!(["httpd", "-f"]));
        assert_eq!(v["Config"]["Entrypoint"], Value::Null);
        assert_eq!(v["Config"]["Image"], "busybox");
        assert_eq!(v["Config"]["StopSignal"], "SIGQUIT");
        assert_eq!(v["Config"]["Labels"]["a"], "1");
        assert_eq!(v["Mounts"][1]["Source"], "/r/volumes/data/_data");
        assert_eq!(v["Mounts"][1]["Name"], "data");
        assert_eq!(v["Mounts"][0]["RW"], false);
        assert_eq!(v["GraphDriver"]["Name"], "overlay");
        assert_eq!(v["GraphDriver"]["Data"]["UpperDir"], "/u");
        assert_eq!(v["GraphDriver"]["Data"]["LowerDir"], "/l1:/l2");
        assert_eq!(v["LogPath"], "/r/containers/x/x-json.log");

        let exited = State { status: Status::Exited, pid: 4242, exit_code: 137, oom_killed: true, ..state };
        let v = inspect(&config, &exited, &Extra::default());
        assert_eq!(v["State"]["Running"], false);
        assert_eq!(v["State"]["Pid"], 0, "no pid once it has exited");
        assert_eq!(v["State"]["ExitCode"], 137);
        assert_eq!(v["State"]["OOMKilled"], true);
        assert_eq!(v["GraphDriver"]["Name"], "");
    }
}
