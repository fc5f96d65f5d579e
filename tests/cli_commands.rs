//! The command line itself: unknown words are unknown commands (with a suggestion), never
//! build contexts; completion scripts and man pages come from the CLI's definition; `run`
//! of an image the store lacks says to pull it.

mod common;

use common::{Env, RBUILD};
use std::process::Command;

fn rb_in(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(RBUILD).current_dir(dir).args(args).env("RBUILD_ROOT", dir.join("store")).output().unwrap()
}

#[test]
fn unknown_words_are_unknown_commands_not_contexts() {
    let e = Env::bare();
    let dir = e.dir.path();
    for (word, hint) in [("xyz", "see 'rbuild --help'"), ("imags", "did you mean images?")] {
        let o = rb_in(dir, &[word]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(&format!("unknown command '{word}'")) && err.contains(hint), "{err}");
        assert!(!err.contains("Dockerfile"), "not read as a context: {err}");
    }
    // An existing directory still means build (and so does a flag first).
    std::fs::create_dir_all(dir.join("xyz")).unwrap();
    std::fs::write(dir.join("xyz/Dockerfile"), "FROM scratch\nLABEL a=b\n").unwrap();
    let o = rb_in(dir, &["--progress", "plain", "-t", "fromxyz", "xyz"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = rb_in(dir, &["xyz", "--progress", "plain"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn completion_scripts_know_every_command() {
    let help = Command::new(RBUILD).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    for shell in ["bash", "zsh", "fish"] {
        let o = Command::new(RBUILD).args(["completion", shell]).output().unwrap();
        assert!(o.status.success(), "{shell}: {}", String::from_utf8_lossy(&o.stderr));
        let script = String::from_utf8_lossy(&o.stdout);
        for cmd in ["build", "images", "rmi", "push", "completion", "man"] {
            assert!(help.contains(cmd) && script.contains(cmd), "{shell} lacks {cmd}");
        }
        assert!(script.contains("--tag") || script.contains("tag"), "{shell}: flags too");
    }
    // bash can load it.
    let o = Command::new(RBUILD).args(["completion", "bash"]).output().unwrap();
    let st = Command::new("bash")
        .arg("-c")
        .arg("source /dev/stdin && complete -p rbuild")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&o.stdout)?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(st.status.success() && String::from_utf8_lossy(&st.stdout).contains("rbuild"));
}

#[test]
fn man_pages_one_per_command() {
    let e = Env::bare();
    let dir = e.path("man");
    let o = Command::new(RBUILD).args(["man", "--dir"]).arg(&dir).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for page in ["rbuild.1", "rbuild-build.1", "rbuild-rmi.1", "rbuild-completion.1"] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page} is roff");
    }
    let build = std::fs::read_to_string(dir.join("rbuild-build.1")).unwrap();
    assert!(build.contains("no\\-cache") || build.contains("no-cache"), "flags are in the page");
    let o = Command::new(RBUILD).args(["man", "rmi"]).output().unwrap();
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("rbuild\\-rmi"));
}

#[test]
fn run_of_a_missing_image_says_to_pull_it() {
    let e = Env::bare();
    // Missing: docker's words, then a pull (which fails here: no registry is reachable).
    let o = e.rb(&["run", "--rm", "alpine:3.20", "true"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("Unable to find image 'alpine:3.20' locally") && err.contains("pulling alpine:3.20"), "{err}");
    // --pull never: says what to run instead.
    let o = e.rb(&["run", "--rm", "--pull", "never", "alpine:3.20", "true"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("not in the local store") && err.contains("run 'rbuild pull alpine:3.20'"), "{err}");
}
