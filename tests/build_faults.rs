//! `rbuild build` when things go wrong outside the Dockerfile: the disk fills up, the
//! registry refuses us. Each failure must be a clean error, leave no tag, no temp file and
//! no half-made snapshot, and the next build must work.

mod common;

use common::{Env, Registry, files_under};
use std::path::Path;
use std::process::Command;

/// A small tmpfs mounted over the store; unmounted on drop.
struct SmallDisk {
    at: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> SmallDisk {
        assert!(unsafe { libc::geteuid() } == 0, "the full-disk test mounts a tmpfs: run the tests as root");
        std::fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs on {}", at.display());
        SmallDisk { at: at.to_path_buf() }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

/// No temp files, and only committed snapshots (named by chain ID) in the store.
fn assert_clean(e: &Env, after: &str) {
    let tmp = files_under(&e.root().join("tmp"));
    assert!(tmp.is_empty(), "{after}: temp files left: {tmp:?}");
    let snaps = e.root().join("snapshots");
    for driver in ["overlay", "copy"] {
        let Ok(rd) = std::fs::read_dir(snaps.join(driver)) else { continue };
        for s in rd.flatten() {
            let name = s.file_name().to_string_lossy().into_owned();
            assert!(name.starts_with("sha256_"), "{after}: a snapshot that is not committed was left: {name}");
        }
    }
}

#[test]
fn a_full_disk_fails_the_build_cleanly_and_the_next_build_works() {
    let e = Env::bare();
    let _disk = SmallDisk::mount(&e.root(), "40m");
    e.import_busybox("busybox:latest");
    let ctx = e.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    // 64 MiB that do not compress: more than the store's disk holds.
    let st = Command::new("dd")
        .args(["if=/dev/urandom", "bs=1M", "count=64", "status=none"])
        .arg(format!("of={}", ctx.join("big").display()))
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(ctx.join("small.txt"), "small\n").unwrap();
    let df = |name: &str, body: &str| {
        let p = e.path(name);
        std::fs::write(&p, body).unwrap();
        p.to_str().unwrap().to_string()
    };

    // A COPY that does not fit.
    let copy_big = df("Dockerfile.copy", "FROM busybox\nCOPY big /big\n");
    let (ok, err) = e.try_build(&["-f", &copy_big, "-t", "full-copy", ctx.to_str().unwrap()]);
    assert!(!ok, "the COPY cannot fit in 40 MiB");
    assert!(err.to_lowercase().contains("no space left on device"), "{err}");
    assert!(err.contains("Dockerfile.copy:2"), "the error names the step: {err}");
    assert!(!e.image_list().contains("full-copy"), "no tag for a failed build");
    assert_clean(&e, "the failed COPY");

    // A RUN that fills the disk fails with the command's own error and exit code.
    let run_fill = df("Dockerfile.run", "FROM busybox\nRUN dd if=/dev/zero of=/fill bs=1M count=64\n");
    let (ok, err) = e.try_build(&["-f", &run_fill, "-t", "full-run", ctx.to_str().unwrap()]);
    assert!(!ok, "the RUN cannot write 64 MiB into 40");
    assert!(err.to_lowercase().contains("no space left on device"), "{err}");
    assert!(err.contains("Dockerfile.run:2"), "{err}");
    assert!(!e.image_list().contains("full-run"));
    assert_clean(&e, "the failed RUN");

    // The store still works: a build that fits succeeds, runs, and is cached next time.
    let small = df("Dockerfile.small", "FROM busybox\nCOPY small.txt /small.txt\nRUN cat /small.txt > /copy.txt\n");
    let (ok, err) = e.try_build(&["-f", &small, "-t", "fits", ctx.to_str().unwrap()]);
    assert!(ok, "a build that fits: {err}");
    let out = e.rb(&["run", "--rm", "fits", "cat", "/copy.txt"]);
    assert!(out.status.success(), "run: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "small\n");
    let (ok, err) = e.try_build(&["-f", &small, "-t", "fits", ctx.to_str().unwrap()]);
    assert!(ok && err.matches("CACHED").count() >= 2, "the second build is cached: {err}");
    assert_clean(&e, "the good builds");
}

#[test]
fn an_unauthorized_registry_gives_a_clear_error_until_login() {
    let reg = Registry::start(Some(("alice", "s3cret")));
    let host = reg.host();
    let e = Env::new();
    let ctx = e.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nCOPY hello.txt /hello.txt\n").unwrap();
    std::fs::write(ctx.join("hello.txt"), "hi\n").unwrap();
    let app = format!("{host}/team/app:1");

    // Pushing without credentials.
    let (ok, err) = e.try_build(&["--push", "-t", &app, ctx.to_str().unwrap()]);
    assert!(!ok, "the push must be refused");
    assert!(err.contains("unauthorized"), "{err}");
    assert!(err.contains(&host), "the error names the registry: {err}");
    assert!(err.contains("rbuild login"), "the error says what to do: {err}");
    assert!(!err.contains("panicked"), "{err}");

    // A base image on that registry, without credentials.
    let bctx = e.path("bctx");
    std::fs::create_dir_all(&bctx).unwrap();
    std::fs::write(bctx.join("Dockerfile"), format!("FROM {host}/base/busybox:1\nRUN true\n")).unwrap();
    let (ok, err) = e.try_build(&["-t", "onremote", bctx.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("unauthorized") && err.contains(&host), "{err}");
    assert!(err.contains("Dockerfile:1"), "the error names the FROM line: {err}");
    assert!(!e.image_list().contains("onremote"));

    // Wrong password: login refuses and saves nothing.
    let out = e.rb_in(&["login", "-u", "alice", "--password-stdin", &host], Some(b"wrong\n"));
    assert!(!out.status.success());
    assert!(
        !e.path("docker/config.json").exists()
            || !std::fs::read_to_string(e.path("docker/config.json")).unwrap().contains(&host)
    );

    // After login both work.
    let out = e.rb_in(&["login", "-u", "alice", "--password-stdin", &host], Some(b"s3cret\n"));
    assert!(out.status.success(), "login: {}", String::from_utf8_lossy(&out.stderr));
    let (ok, err) = e.try_build(&["--push", "-t", &app, ctx.to_str().unwrap()]);
    assert!(ok, "push after login: {err}");
    let out = e.rb(&["tag", "busybox:latest", &format!("{host}/base/busybox:1")]);
    assert!(out.status.success());
    let out = e.rb(&["push", &format!("{host}/base/busybox:1")]);
    assert!(out.status.success(), "push base: {}", String::from_utf8_lossy(&out.stderr));
    let f = Env::bare();
    let out = f.rb_in(&["login", "-u", "alice", "--password-stdin", &host], Some(b"s3cret\n"));
    assert!(out.status.success());
    let (ok, err) = f.try_build(&["-t", "onremote", bctx.to_str().unwrap()]);
    assert!(ok, "build on the remote base after login: {err}");
}
