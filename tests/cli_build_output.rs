//! What `rbuild build --progress plain` prints: the FROM line names the image as resolved,
//! step counters count what is shown, each line comes once, build reports the same lints as
//! `rbuild check` and honours `# check=error=true`; logs carry no colour into a pipe.

mod common;

use common::Env;

fn context(e: &Env, name: &str, dockerfile: &str) -> String {
    let ctx = e.path(name);
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    ctx.to_str().unwrap().to_string()
}

#[test]
fn from_lines_show_the_resolved_image_and_counters_never_skip() {
    let e = Env::new();
    let digest = e.config("busybox")["ManifestDigest"].as_str().unwrap().to_string();
    let ctx = context(
        &e,
        "ctx",
        "ARG BASE=busybox\nFROM ${BASE} AS build\nRUN echo one\n\
         FROM build AS runtime\nENV A=1\nRUN echo two\nLABEL x=y\nWORKDIR /w\nRUN echo three\nCMD [\"sh\"]\n",
    );
    let (err, _) = e.build(&["-t", "out:1", &ctx]);
    assert!(err.contains(&format!("[build 1/2] FROM docker.io/library/busybox:latest@{digest}")), "{err}");
    assert!(!err.contains("${BASE}"), "{err}");
    for want in [
        "[build 2/2] RUN echo one",
        "[runtime 1/3] RUN echo two",
        "[runtime 2/3] WORKDIR /w",
        "[runtime 3/3] RUN echo three",
    ] {
        assert!(err.contains(want), "{want:?} missing:\n{err}");
    }
    // Each line once.
    assert_eq!(err.matches("writing image sha256:").count(), 1, "{err}");
    assert_eq!(err.matches("naming to docker.io/library/out:1").count(), 1, "{err}");
}

#[test]
fn build_reports_what_check_reports_once() {
    let e = Env::new();
    let ctx = context(&e, "ctx", "FROM busybox\nCMD echo hi\n");
    let check = e.rb(&["check", &ctx]);
    assert!(String::from_utf8_lossy(&check.stderr).contains("JSONArgsRecommended"));
    let (err, _) = e.build(&["-t", "lint:1", "--build-arg", "NOT_USED=1", &ctx]);
    assert_eq!(err.matches("JSONArgsRecommended").count(), 1, "{err}");
    assert!(err.contains("WARNING: Dockerfile:2:1: "), "{err}");
    let unused: Vec<&str> = err.lines().filter(|l| l.contains("NOT_USED")).collect();
    assert_eq!(unused.len(), 1, "{err}");
    assert!(!unused[0].contains("warning:"), "the label is said once: {unused:?}");
}

#[test]
fn check_error_true_fails_the_build_as_check_does() {
    let e = Env::new();
    let ctx = context(&e, "ctx", "# check=error=true\nFROM busybox\nCMD echo hi\n");
    let check = e.rb(&["check", &ctx]);
    assert_eq!(check.status.code(), Some(1));
    let (ok, err) = e.try_build(&["-t", "strict:1", &ctx]);
    assert!(!ok, "{err}");
    assert!(err.contains("JSONArgsRecommended") && err.contains("Dockerfile:3"), "{err}");
    assert!(!e.image_list().contains("strict"), "nothing tagged");
}

#[test]
fn logs_into_a_pipe_have_no_colour() {
    let e = Env::bare();
    // A closed port: the client logs a warning per retry.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let o = std::process::Command::new(common::RBUILD)
        .arg("--root")
        .arg(e.root())
        .args(["pull", &format!("127.0.0.1:{port}/x:1")])
        .env("RBUILD_MAX_TRIES", "2")
        .env("DOCKER_CONFIG", e.path("docker"))
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("WARN"), "a log line: {err}");
    assert!(!err.contains('\x1b'), "no escape codes in a pipe: {err:?}");
}
