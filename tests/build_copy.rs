//! COPY and ADD read their sources as BuildKit does: each case of `testdata/fidelity/copy-*`
//! (a Dockerfile, its context and the tree BuildKit gives under /out, `expected`) is built
//! and its /out compared; `bench/fidelity/compare.sh` checks the same cases against buildah.
//! Then what needs a peer started here: ADD of a URL into `dir/.` (a tiny HTTP server), a git
//! reference that looks like an option (a fake ssh that records what git asked it to run),
//! and SIGTERM during a long COPY.

mod common;

use common::{Env, serve_file};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn fidelity_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/fidelity")
}

/// Copy a case into `to` keeping symlinks, with files 0644 and directories 0755 (the
/// checkout's umask must not matter).
fn copy_case(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ty = e.file_type().unwrap();
        if ty.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if ty.is_dir() {
            copy_case(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

/// What a tree holds under `out/`, in the format of the `expected` files (and of
/// compare.sh's `list_tree`): `TYPE MODE PATH` plus `-> TARGET` for links and the first 16
/// hex digits of the content's sha256 for files; sorted by path.
fn list_tree(root: &Path) -> String {
    use sha2::Digest as _;
    use std::os::unix::fs::PermissionsExt;
    let mut paths = Vec::new();
    fn walk(root: &Path, rel: &str, out: &mut Vec<String>) {
        out.push(rel.to_string());
        let p = root.join(rel);
        if std::fs::symlink_metadata(&p).map(|m| m.is_dir()).unwrap_or(false) {
            for e in std::fs::read_dir(&p).unwrap() {
                let n = e.unwrap().file_name().to_string_lossy().into_owned();
                walk(root, &format!("{rel}/{n}"), out);
            }
        }
    }
    if std::fs::symlink_metadata(root.join("out")).is_err() {
        return String::new();
    }
    walk(root, "out", &mut paths);
    paths.sort();
    let mut s = String::new();
    for rel in paths {
        let p = root.join(&rel);
        let m = std::fs::symlink_metadata(&p).unwrap();
        let mode = m.permissions().mode() & 0o7777;
        let line = if m.file_type().is_symlink() {
            format!("l {mode:o} {rel} -> {}", std::fs::read_link(&p).unwrap().display())
        } else if m.is_dir() {
            format!("d {mode:o} {rel}")
        } else if m.is_file() {
            let h = hex::encode(sha2::Sha256::digest(std::fs::read(&p).unwrap()));
            format!("f {mode:o} {rel} {}", &h[..16])
        } else {
            format!("o {mode:o} {rel}")
        };
        s.push_str(&line);
        s.push('\n');
    }
    s
}

#[test]
fn copy_fidelity_cases_match_buildkit() {
    let e = Env::new();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(fidelity_dir())
        .unwrap()
        .map(|d| d.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("copy-"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 7, "the copy- cases are there: {cases:?}");
    let mut failures = Vec::new();
    for case in cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let ctx = e.path(&format!("ctx-{name}"));
        copy_case(&case, &ctx);
        let out = e.path(&format!("out-{name}"));
        let (ok, err) = e.try_build(&["-o", &format!("type=local,dest={}", out.display()), ctx.to_str().unwrap()]);
        let got = if ok { list_tree(&out) } else { format!("build failed:\n{err}") };
        // RBUILD_FIDELITY_WRITE=1 writes what rbuild gives (to review against BuildKit).
        if std::env::var_os("RBUILD_FIDELITY_WRITE").is_some() {
            std::fs::write(case.join("expected"), &got).unwrap();
        }
        let want = std::fs::read_to_string(case.join("expected")).unwrap_or_default();
        if got != want {
            failures.push(format!("{name}:\n--- expected\n{want}--- got\n{got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_missing_plain_source_is_still_an_error() {
    let e = Env::new();
    let ctx = e.path("missing");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("a.txt"), "a").unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nCOPY a.txt missing.txt /d/\n").unwrap();
    let (ok, err) = e.try_build(&[ctx.to_str().unwrap()]);
    assert!(!ok, "{err}");
    assert!(err.contains("\"missing.txt\" not found in the build context") && err.contains("Dockerfile:2"), "{err}");
}

#[test]
fn add_url_into_a_directory_keeps_the_url_name() {
    const BODY: &[u8] = b"license text\n";
    let url = format!("{}/files/LICENSE", serve_file(BODY));
    let e = Env::new();
    let ctx = e.path("addurl");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM busybox\nWORKDIR /b\nADD {url} /b/.\nADD {url} /newdir/.\nWORKDIR /c\nADD {url} /c\n"),
    )
    .unwrap();
    let out = e.path("addurl-out");
    e.build(&["-o", &format!("type=local,dest={}", out.display()), ctx.to_str().unwrap()]);
    for f in ["b/LICENSE", "newdir/LICENSE", "c/LICENSE"] {
        assert_eq!(std::fs::read(out.join(f)).unwrap_or_default(), BODY, "/{f}");
    }
    assert!(!out.join("b/b").exists() && out.join("newdir").is_dir());
}

#[test]
fn a_git_reference_that_looks_like_an_option_is_refused() {
    let e = Env::new();
    let d = e.path("git");
    std::fs::create_dir_all(&d).unwrap();
    // An "ssh" that runs what git asks on the remote side locally (so a normal fetch
    // works) and records it.
    let log = d.join("ssh.log");
    let ssh = d.join("fake-ssh");
    std::fs::write(
        &ssh,
        format!("#!/bin/sh\nfor last; do :; done\necho \"$last\" >> {}\nexec sh -c \"$last\"\n", log.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o755)).unwrap();
    let repo = d.join("repo.git");
    let work = d.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let git = |dir: &Path, args: &[&str]| {
        let o = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "init.defaultBranch=main"])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    };
    git(&work, &["init", "-q"]);
    std::fs::write(work.join("f"), "from git\n").unwrap();
    git(&work, &["add", "f"]);
    git(&work, &["commit", "-qm", "one"]);
    git(&d, &["clone", "-q", "--bare", work.to_str().unwrap(), repo.to_str().unwrap()]);
    let url = format!("ssh://fake{}", repo.display());
    let ctx = e.path("gitctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let build = |frag: &str| {
        std::fs::write(ctx.join("Dockerfile"), format!("FROM busybox\nADD {url}#{frag} /src/\n")).unwrap();
        let o = Command::new(common::RBUILD)
            .arg("--root")
            .arg(e.root())
            .args(["build", "--progress", "plain", "-o"])
            .arg(format!("type=local,dest={}", e.path(&format!("gitout-{}", frag.len())).display()))
            .arg(&ctx)
            .env("GIT_SSH_COMMAND", &ssh)
            .env("GIT_SSH_VARIANT", "simple")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    // The fake ssh works: a real branch is fetched through it.
    let (ok, err) = build("main");
    assert!(ok, "{err}");
    assert_eq!(std::fs::read_to_string(e.path("gitout-4/src/f")).unwrap(), "from git\n");
    std::fs::remove_file(&log).unwrap();
    let (ok, err) = build("--upload-pack=touch${IFS}pwned;git-upload-pack");
    assert!(!ok, "{err}");
    assert!(err.contains("starts with \"-\""), "a clear error naming the reference:\n{err}");
    let asked = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!asked.contains("touch"), "git ran the reference as a command: {asked}");
}

/// The store's blobs (a COPY's layer lands here when it completes).
fn blobs(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("blobs/sha256"))
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn sigterm_stops_a_copy_in_progress() {
    use std::io::{BufRead, BufReader};
    let e = Env::new();
    let ctx = e.path("bigctx");
    std::fs::create_dir_all(ctx.join("data")).unwrap();
    // 3 GB of sparse files: quick to make and to hash, slow enough to write as a layer.
    for i in 0..48 {
        let f = std::fs::File::create(ctx.join(format!("data/f{i:02}"))).unwrap();
        f.set_len(64 << 20).unwrap();
    }
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nCOPY data /data/\n").unwrap();
    let before = blobs(&e.root());
    let mut child = Command::new(common::RBUILD)
        .arg("--root")
        .arg(e.root())
        .args(["build", "--progress", "plain", "-t", "big"])
        .arg(&ctx)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        let mut line = String::new();
        let mut told = false;
        while err.read_line(&mut line).unwrap_or(0) > 0 {
            // The step's header: its inputs are hashed, the layer is being written.
            if !told && line.contains("COPY data /data/") {
                let _ = tx.send(());
                told = true;
            }
            all.push_str(&line);
            line.clear();
        }
        all
    });
    if rx.recv_timeout(std::time::Duration::from_secs(120)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the COPY did not start: {}", reader.join().unwrap());
    }
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let st = child.wait().unwrap();
    let err = reader.join().unwrap();
    assert_eq!(st.code(), Some(143), "{err}");
    assert!(err.contains("cancelled"), "{err}");
    assert_eq!(blobs(&e.root()), before, "the interrupted COPY committed no layer");
    let tmp: Vec<_> = std::fs::read_dir(e.root().join("tmp")).map(|rd| rd.flatten().collect()).unwrap_or_default();
    assert!(tmp.is_empty(), "left in the store's tmp/: {tmp:?}");
    assert!(!e.image_list().contains("big"), "an interrupted build tagged nothing");
}
