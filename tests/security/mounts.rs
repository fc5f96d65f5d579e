//! `RUN --mount`: bind mounts of the context and of stages never write back, and hide what .dockerignore excludes.

use crate::common::Env;
use std::path::Path;

/// Every file under `dir` with its bytes, for "nothing changed" checks.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = crate::common::files_under(dir)
        .into_iter()
        .map(|p| (p.strip_prefix(dir).unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap_or_default()))
        .collect();
    v.sort();
    v
}

/// A context with a secret, a backup file and a .git directory; and its Dockerfile.
fn context(e: &Env, dockerfile: &str, ignore: Option<&str>) -> std::path::PathBuf {
    let ctx = e.path("context");
    std::fs::create_dir_all(ctx.join(".git/hooks")).unwrap();
    std::fs::write(ctx.join("secret.txt"), "original\n").unwrap();
    std::fs::write(ctx.join("Dockerfile.bak"), "old\n").unwrap();
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    if let Some(i) = ignore {
        std::fs::write(ctx.join(".dockerignore"), i).unwrap();
    }
    ctx
}

/// #12.2: writes through an rw bind of the context land in a throwaway layer; the
/// checkout on the host stays as it was (no planted .git hooks).
#[test]
fn rw_bind_of_the_context_never_writes_to_the_host() {
    for ignore in [None, Some("Dockerfile.bak.never\n")] {
        let e = Env::new();
        let ctx = context(
            &e,
            "FROM busybox\nRUN --mount=type=bind,target=/ctx,rw echo x > /ctx/secret.txt && touch /ctx/WRITTEN && rm /ctx/Dockerfile.bak && printf '#!/bin/sh\\n' > /ctx/.git/hooks/pre-commit && cat /ctx/secret.txt > /seen && ls /ctx > /listed\nRUN --mount=type=bind,target=/ctx cat /ctx/secret.txt > /again\n",
            ignore,
        );
        let before = snapshot(&ctx);
        let out = e.path("out");
        e.build(&["-o", &format!("type=local,dest={}", out.display()), ctx.to_str().unwrap()]);
        assert_eq!(snapshot(&ctx), before, "the context changed on the host (ignore file {ignore:?})");
        assert!(!ctx.join("WRITTEN").exists());
        assert!(!ctx.join(".git/hooks/pre-commit").exists());
        // The command saw its own writes; the next mount saw the context again.
        assert_eq!(std::fs::read_to_string(out.join("seen")).unwrap(), "x\n");
        assert!(std::fs::read_to_string(out.join("listed")).unwrap().contains("WRITTEN"));
        assert_eq!(std::fs::read_to_string(out.join("again")).unwrap(), "original\n");
    }
}

/// #12.2: a read-only bind stays read-only, also against a remount from inside.
#[test]
fn ro_bind_of_the_context_cannot_be_written_or_remounted() {
    let e = Env::new();
    let ctx = context(
        &e,
        "FROM busybox\nRUN --mount=type=bind,target=/ctx sh -c 'echo x > /ctx/secret.txt; touch /ctx/WRITTEN; mount -o remount,rw /ctx; mount -o remount,rw,bind /ctx; echo y > /ctx/secret.txt; touch /ctx/WRITTEN2; rm -f /ctx/Dockerfile.bak; true'\n",
        None,
    );
    let before = snapshot(&ctx);
    e.build(&[ctx.to_str().unwrap()]);
    assert_eq!(snapshot(&ctx), before, "a read-only context mount was written through");
}

/// #13.5: writes through an rw bind of a stage do not show in later mounts of it.
#[test]
fn rw_bind_of_a_stage_does_not_leak_into_later_mounts() {
    let e = Env::new();
    let ctx = e.path("context");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox AS base\nRUN mkdir -p /d && echo one > /d/1.txt\nFROM busybox\nRUN --mount=type=bind,from=base,target=/base,rw touch /base/2.txt && rm /base/d/1.txt\nRUN --mount=type=bind,from=base,target=/base ls /base > /root-list && ls /base/d > /d-list\n",
    )
    .unwrap();
    let out = e.path("out");
    e.build(&["-o", &format!("type=local,dest={}", out.display()), ctx.to_str().unwrap()]);
    assert!(!std::fs::read_to_string(out.join("root-list")).unwrap().contains("2.txt"));
    assert_eq!(std::fs::read_to_string(out.join("d-list")).unwrap(), "1.txt\n");
}

/// #12.3: what .dockerignore excludes (and COPY refuses) is not readable through a bind
/// of the context either.
#[test]
fn context_bind_hides_what_dockerignore_excludes() {
    let e = Env::new();
    let ctx = context(
        &e,
        "FROM busybox\nRUN --mount=type=bind,target=/ctx ls -a /ctx > /listed; cat /ctx/secret.txt > /leak 2>/dev/null; cat /ctx/keep/secret.txt > /leak2 2>/dev/null; cat /ctx/keep/ok.txt > /ok; true\nRUN --mount=type=bind,target=/ctx,rw cat /ctx/secret.txt > /leak3 2>/dev/null; true\n",
        Some("secret.txt\n**/secret.txt\n.git\n"),
    );
    std::fs::create_dir_all(ctx.join("keep")).unwrap();
    std::fs::write(ctx.join("keep/secret.txt"), "nested secret\n").unwrap();
    std::fs::write(ctx.join("keep/ok.txt"), "fine\n").unwrap();
    let out = e.path("out");
    e.build(&["-o", &format!("type=local,dest={}", out.display()), ctx.to_str().unwrap()]);
    let listed = std::fs::read_to_string(out.join("listed")).unwrap();
    assert!(!listed.contains("secret.txt") && !listed.contains(".git"), "{listed}");
    assert!(listed.contains("Dockerfile.bak"), "{listed}");
    for f in ["leak", "leak2", "leak3"] {
        assert_eq!(std::fs::read_to_string(out.join(f)).unwrap(), "", "{f}");
    }
    assert_eq!(std::fs::read_to_string(out.join("ok")).unwrap(), "fine\n");
    // A mount naming an excluded file is an error, as COPY's is.
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN --mount=type=bind,source=secret.txt,target=/s cat /s\n")
        .unwrap();
    let (ok, err) = e.try_build(&[ctx.to_str().unwrap()]);
    assert!(!ok, "{err}");
    assert!(!err.contains("original"), "{err}");
}

/// #12.2 with the store kept inside the context directory (`--root ./.store`): the rw
/// mount's scratch layer is made outside the context, and the checkout is left alone.
#[test]
fn rw_bind_of_a_context_that_holds_the_store() {
    let e = Env::bare();
    let ctx = context(
        &e,
        "FROM busybox\nRUN --mount=type=bind,target=/ctx,rw echo x > /ctx/secret.txt && touch /ctx/WRITTEN && ls /ctx/.store > /dev/null\n",
        None,
    );
    let root = ctx.join(".store");
    let rb = |args: &[&str]| {
        std::process::Command::new(crate::common::RBUILD)
            .arg("--root")
            .arg(&root)
            .args(args)
            .env_remove("SOURCE_DATE_EPOCH")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let tar = e.busybox_tar();
    let o = rb(&["import", "--change", "CMD [\"sh\"]", tar.to_str().unwrap(), "busybox:latest"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = rb(&["build", "--progress", "plain", ctx.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(ctx.join("secret.txt")).unwrap(), "original\n");
    assert!(!ctx.join("WRITTEN").exists());
}
