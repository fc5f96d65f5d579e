//! The `rbuild-registry` binary as operators meet it: start-up errors that name the setting
//! and the file or address once, the start-up and per-request log lines, and help text that
//! agrees with the manual.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn registry() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rbuild-registry"));
    // The test's own environment must not configure the registry under test.
    for (k, _) in std::env::vars() {
        if k.starts_with("RBUILD_REGISTRY_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c
}

fn stderr_of(cmd: &mut Command) -> (Option<i32>, String) {
    let out = cmd.stdout(Stdio::null()).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn missing_htpasswd_names_the_setting_and_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = stderr_of(
        registry()
            .args(["serve", "--addr", "127.0.0.1:0", "--root"])
            .arg(dir.path())
            .env("RBUILD_REGISTRY_AUTH", "basic")
            .env("RBUILD_REGISTRY_HTPASSWD", "/nope"),
    );
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.lines().last().unwrap(), "rbuild-registry: auth.htpasswd = \"/nope\": no such file", "{err}");
    assert_eq!(err.matches("no such file").count(), 1, "{err}");
}

#[test]
fn taken_port_names_the_address_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = stderr_of(registry().args(["serve", "--addr", &addr, "--root"]).arg(dir.path()));
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.lines().last().unwrap(), format!("rbuild-registry: listening on {addr}: address already in use"));
    assert_eq!(err.matches("already in use").count(), 1, "{err}");
}

#[test]
fn a_missing_config_file_is_named() {
    let (code, err) = stderr_of(registry().args(["serve", "--config", "/nope.toml"]));
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.trim_end(), "rbuild-registry: config file \"/nope.toml\": no such file");
}

#[test]
fn logs_the_auth_mode_and_one_line_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let hp = common::htpasswd(dir.path(), "alice", "apw");
    let child = registry()
        .args(["serve", "--addr", "127.0.0.1:0", "--root"])
        .arg(dir.path().join("data"))
        .env("RBUILD_REGISTRY_AUTH", "basic")
        .env("RBUILD_REGISTRY_HTPASSWD", &hp)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let next = || rx.recv_timeout(Duration::from_secs(60)).expect("a log line");
    let mut seen = Vec::new();
    let addr = loop {
        let l = next();
        seen.push(l.clone());
        if let Some(rest) = l.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let auth_line = loop {
        let l = next();
        seen.push(l.clone());
        if l.contains("auth: ") {
            break l;
        }
    };
    assert!(auth_line.contains("auth: basic") && auth_line.contains("1 users"), "{auth_line}");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let c = reqwest::Client::new();
        let r = c.get(format!("http://{addr}/v2/")).basic_auth("alice", Some("apw")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let r = c.get(format!("http://{addr}/v2/app/manifests/v1")).basic_auth("alice", Some("apw")).send().await;
        assert_eq!(r.unwrap().status(), 404);
    });
    let mut access = Vec::new();
    while access.len() < 2 {
        let l = next();
        if l.contains("rbuild_registry::access") {
            access.push(l);
        }
    }
    // client, method, path, status, bytes, time
    assert!(access[0].contains(" GET /v2/ 200 2 ") && access[0].contains("ms"), "{access:?}");
    assert!(access[0].contains("127.0.0.1:"), "{access:?}");
    assert!(access[0].contains(" INFO "), "{access:?}");
    assert!(access[1].contains(" GET /v2/app/manifests/v1 404 "), "{access:?}");
    let st = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap();
    assert!(st.success());
    assert!(child.0.wait().unwrap().success());
}

/// A failed test does not leave its registry running.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn help_and_the_manual_agree() {
    let manual_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/registry-server.md");
    let manual = std::fs::read_to_string(manual_path).expect("docs/registry-server.md");
    let help = |args: &[&str]| String::from_utf8(registry().args(args).output().unwrap().stdout).unwrap();
    let top = help(&["--help"]);
    assert!(top.trim_end().ends_with("See docs/registry-server.md for the config file keys."), "{top}");
    assert!(!top.contains("README-registry"), "{top}");
    // Every environment variable --help lists is in the manual.
    for var in top.split_whitespace().filter(|w| w.starts_with("RBUILD_REGISTRY_")) {
        let var = var.trim_end_matches([',', '.']);
        assert!(manual.contains(var), "{var} is in --help but not in docs/registry-server.md");
    }
    // gc: safe while serving (gc.rs's argument), one at a time, --wait documented.
    let gc = help(&["gc", "--help"]);
    assert!(gc.contains("Safe while the registry") && gc.contains("--wait"), "{gc}");
    assert!(manual.contains("--wait"), "gc --wait is not in the manual");
    assert!(!manual.contains("Best run with the server stopped"), "the manual contradicts gc --help");
    for flag in ["--dry-run", "--delete-untagged", "--grace", "--read-only", "--addr", "--root", "--config"] {
        assert!(manual.contains(flag), "{flag} is not in the manual");
    }
}
