//! Reading trees: COPY/ADD sources, `COPY --from`, exporters and `cp` never resolve outside their root.
//!
//! A stage, a base image or the build context can hold symlinks to anything (`/hostroot ->
//! /`, `up -> ../../..`, `etc -> /etc`): a COPY source that goes through one resolves it
//! inside that tree, as BuildKit does, never on the host. Each case reads back what the
//! image got and checks it is the tree's own file (or a clear not-found error), never the
//! host's.

use crate::common::{self, Env};
use std::path::{Path, PathBuf};

/// A host file the trees under test do not have: its content must never show up.
const HOST_ONLY: &str = "/etc/os-release";

fn host_marker() -> String {
    std::fs::read_to_string(HOST_ONLY).expect("the host has /etc/os-release")
}

fn ctx(e: &Env, name: &str, dockerfile: &str) -> PathBuf {
    let c = e.path(name);
    std::fs::create_dir_all(&c).unwrap();
    std::fs::write(c.join("Dockerfile"), dockerfile).unwrap();
    c
}

/// Build `ctx` exporting the rootfs; the export dir.
fn build_out(e: &Env, ctx: &Path) -> PathBuf {
    let out = ctx.with_extension("out");
    e.build(&["-o", &format!("type=local,dest={}", out.display()), ctx.to_str().unwrap()]);
    out
}

/// No file under `dir` holds the host-only file's content.
fn assert_no_host_file(dir: &Path) {
    let marker = host_marker();
    for f in common::files_under(dir) {
        // A link is a link in the image; reading it here would follow it on the host.
        if std::fs::symlink_metadata(&f).is_ok_and(|m| m.file_type().is_symlink()) {
            continue;
        }
        if let Ok(s) = std::fs::read_to_string(&f) {
            assert_ne!(s, marker, "{} is the host's {HOST_ONLY}", f.display());
        }
    }
}

#[test]
fn copy_from_a_stage_resolves_its_symlinks_inside_the_stage() {
    let e = Env::new();
    // The stage's own os-release and a directory of its own behind every kind of link.
    let c = ctx(
        &e,
        "stage",
        "FROM busybox AS s\n\
         RUN echo stage-release > /etc/os-release && mkdir -p /a/b /d && ln -s / /hostroot \
             && ln -s ../../../../../../.. /a/b/up && ln -s /etc /d/link\n\
         FROM busybox\n\
         COPY --from=s /hostroot/etc/os-release /abs\n\
         COPY --from=s /a/b/up/etc/os-release /rel\n\
         COPY --from=s /d/link/os-release /mid\n\
         COPY --from=s /hostroot/etc/ /whole/\n\
         COPY --from=s /hostroot/etc/os-rel* /wild/\n",
    );
    let out = build_out(&e, &c);
    for f in ["abs", "rel", "mid", "whole/os-release", "wild/os-release"] {
        let got = std::fs::read_to_string(out.join(f)).unwrap_or_else(|err| panic!("/{f}: {err}"));
        assert_eq!(got, "stage-release\n", "/{f} is the stage's file");
    }
    // The directory copied is the stage's /etc (busybox's passwd), not the host's.
    assert!(out.join("whole/passwd").is_file());
    assert!(!out.join("whole/shadow").exists(), "the host's /etc/shadow came along");
    assert_no_host_file(&out);
}

#[test]
fn copy_from_a_stage_never_reads_a_host_file_the_stage_lacks() {
    let e = Env::new();
    let c = ctx(
        &e,
        "missing",
        "FROM busybox AS s\nRUN ln -s / /hostroot\nFROM busybox\nCOPY --from=s /hostroot/etc/shadow /shadow\n",
    );
    let (ok, err) = e.try_build(&[c.to_str().unwrap()]);
    assert!(!ok, "the stage has no /etc/shadow: the build must fail\n{err}");
    assert!(err.contains("not found"), "a clear not-found error:\n{err}");
    assert!(err.contains("Dockerfile:4"), "{err}");
}

/// A base image whose rootfs holds `/rootlink -> /`, imported into the store as `evil`.
fn import_evil(e: &Env) {
    let rootfs = e.path("evil-rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/motd"), "image motd\n").unwrap();
    std::os::unix::fs::symlink("/", rootfs.join("rootlink")).unwrap();
    let tar = e.path("evil.tar");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .args(["etc", "rootlink"])
        .status()
        .unwrap();
    assert!(st.success());
    let o = e.rb(&["import", tar.to_str().unwrap(), "evil:latest"]);
    assert!(o.status.success(), "import: {}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn copy_from_an_image_resolves_its_symlinks_inside_the_image() {
    let e = Env::new();
    import_evil(&e);
    let c = ctx(
        &e,
        "image",
        "FROM busybox\nCOPY --from=evil:latest /rootlink/etc/ /e/\nCOPY --from=evil:latest /rootlink/etc/motd /motd\n",
    );
    let out = build_out(&e, &c);
    assert_eq!(std::fs::read_to_string(out.join("motd")).unwrap(), "image motd\n");
    let names: Vec<String> = std::fs::read_dir(out.join("e"))
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["motd"], "only the image's /etc");
    assert_no_host_file(&out);
    let c = ctx(&e, "image2", "FROM busybox\nCOPY --from=evil:latest /rootlink/etc/os-release /x\n");
    let (ok, err) = e.try_build(&[c.to_str().unwrap()]);
    assert!(!ok && err.contains("not found"), "{err}");
}

#[test]
fn context_symlinks_pointing_outside_stay_inside_the_context() {
    let e = Env::new();
    let c = ctx(&e, "ctxlinks", "FROM busybox\nCOPY etc/os-release /x\n");
    std::os::unix::fs::symlink("/etc", c.join("etc")).unwrap();
    let (ok, err) = e.try_build(&[c.to_str().unwrap()]);
    assert!(!ok, "ctx/etc -> /etc is the context's own etc, a loop:\n{err}");
    assert!(!err.contains(host_marker().lines().next().unwrap()), "{err}");

    let c = ctx(&e, "ctxup", "FROM busybox\nCOPY up/os-release /x\n");
    std::os::unix::fs::symlink("../../../../../../../etc", c.join("up")).unwrap();
    let (ok, err) = e.try_build(&[c.to_str().unwrap()]);
    assert!(!ok && err.contains("not found in the build context"), "{err}");

    // A link to a file of the context is followed; one to a host file is not.
    let c = ctx(&e, "ctxok", "FROM busybox\nCOPY inside /in\nCOPY host* /h/\n");
    std::fs::write(c.join("real"), "context file\n").unwrap();
    std::os::unix::fs::symlink("/real", c.join("inside")).unwrap();
    std::os::unix::fs::symlink(HOST_ONLY, c.join("hostlink")).unwrap();
    let out = build_out(&e, &c);
    assert_eq!(std::fs::read_to_string(out.join("in")).unwrap(), "context file\n");
    assert!(!out.join("h/hostlink").exists(), "a link to a host file matched by a wildcard is skipped");
    assert_no_host_file(&out);
}

#[test]
fn exporters_write_links_as_links() {
    let e = Env::new();
    let c = ctx(&e, "export", "FROM busybox\nRUN ln -s / /hostroot && ln -s /etc/os-release /rel\n");
    let out = build_out(&e, &c);
    for (link, target) in [("hostroot", "/"), ("rel", "/etc/os-release")] {
        let m = std::fs::symlink_metadata(out.join(link)).unwrap();
        assert!(m.file_type().is_symlink(), "/{link} is exported as a link");
        assert_eq!(std::fs::read_link(out.join(link)).unwrap(), Path::new(target));
    }
    assert_no_host_file(&out);
    let tar = e.path("export.tar");
    e.build(&["-o", &format!("type=tar,dest={}", tar.display()), c.to_str().unwrap()]);
    let o = std::process::Command::new("tar").arg("-tvf").arg(&tar).output().unwrap();
    let list = String::from_utf8_lossy(&o.stdout);
    let line = |name: &str| list.lines().find(|l| l.contains(&format!(" {name} ->"))).unwrap_or_default().to_string();
    assert!(line("hostroot").starts_with('l') && line("rel").starts_with('l'), "{list}");
    assert!(!list.lines().any(|l| l.ends_with(" etc/os-release") || l.ends_with(" usr/lib/os-release")), "{list}");
}
