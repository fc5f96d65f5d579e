//! End-to-end tests of `rbuild build`, driving the built binary on a busybox base made
//! from the host's /bin/busybox (busybox-static) and imported with `rbuild import`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;

use common::{Env, RBUILD, Registry, copy_dir, serve_file};

fn testdata(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/build").join(p)
}
/// The step lines (`#N [..] INSTR`) and which of them were CACHED.
fn step_status(stderr: &str) -> Vec<(String, bool)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for l in stderr.lines() {
        let Some(rest) = l.strip_prefix('#') else { continue };
        let (n, text) = rest.split_once(' ').unwrap_or((rest, ""));
        if text.starts_with('[') && !text.starts_with("[internal]") {
            out.push((n.to_string(), text.to_string()));
        }
    }
    out.into_iter()
        .filter(|(_, t)| !t.contains(" FROM "))
        .map(|(n, t)| {
            let cached = stderr.lines().any(|l| l == format!("#{n} CACHED"));
            (t, cached)
        })
        .collect()
}

#[test]
fn copy_only_build_then_all_cached_and_same_image() {
    let e = Env::new();
    let ctx = testdata("demo-app");
    let df = ctx.join("Dockerfile.copyonly");
    let (_, m1) = e.build(&["-f", df.to_str().unwrap(), "-t", "app", ctx.to_str().unwrap()]);
    let (err, m2) = e.build(&["-f", df.to_str().unwrap(), "-t", "app", ctx.to_str().unwrap()]);
    let steps = step_status(&err);
    assert!(!steps.is_empty());
    assert!(steps.iter().all(|(_, c)| *c), "not all cached: {steps:?}\n{err}");
    assert_eq!(m1["containerimage.config.digest"], m2["containerimage.config.digest"]);
    let c = e.config("app");
    assert_eq!(c["Config"]["WorkingDir"], "/app");
    assert_eq!(c["Config"]["Cmd"], serde_json::json!(["/bin/sh", "/app/hello.sh"]));
    assert!(c["Config"]["Env"].as_array().unwrap().iter().any(|v| v == "GREETING=hello"));
    assert_eq!(c["RootFS"]["Layers"].as_array().unwrap().len(), 3, "base + WORKDIR + COPY");
}

#[test]
fn run_step_output_and_local_export() {
    let e = Env::new();
    let ctx = testdata("demo-app");
    let out = e.path("out");
    let (err, _) = e.build(&["-t", "demo", "-o", &format!("type=local,dest={}", out.display()), ctx.to_str().unwrap()]);
    assert!(err.contains("RUN chmod +x /app/hello.sh"), "{err}");
    assert_eq!(std::fs::read_to_string(out.join("app/built.txt")).unwrap(), "built on Linux\n");
    let script = std::fs::metadata(out.join("app/hello.sh")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(script.permissions().mode() & 0o111, 0o111, "RUN chmod +x is in the layer");
    // History: BuildKit style, config-only steps marked empty.
    let out = e.rb(&["inspect", "--format", "json", "demo"]);
    let _ = out;
}

#[test]
fn changing_one_file_reruns_from_the_copy_that_reads_it() {
    let e = Env::new();
    let ctx = e.path("ctx");
    copy_dir(&testdata("demo-app"), &ctx);
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nWORKDIR /app\nCOPY Dockerfile /app/df\nCOPY src/ ./\nRUN cat /app/hello.sh > /app/copy.sh\nENV A=1\n").unwrap();
    e.build(&["-t", "one", ctx.to_str().unwrap()]);
    std::fs::write(ctx.join("src/hello.sh"), "#!/bin/sh\necho changed\n").unwrap();
    let (err, _) = e.build(&["-t", "one", ctx.to_str().unwrap()]);
    let st = step_status(&err);
    let cached: Vec<bool> = st.iter().map(|(_, c)| *c).collect();
    // WORKDIR, COPY Dockerfile cached; COPY src/ and RUN re-run (ENV makes no vertex).
    assert_eq!(cached, [true, true, false, false], "{st:?}\n{err}");
    let out = e.path("o");
    e.build(&["-t", "one", "-o", &format!("type=local,dest={}", out.display()), ctx.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(out.join("app/copy.sh")).unwrap(), "#!/bin/sh\necho changed\n");
}

#[test]
fn source_date_epoch_gives_identical_digests_across_stores() {
    let mut digests = Vec::new();
    for _ in 0..2 {
        let e = Env::new();
        let ctx = testdata("demo-app");
        let (_, m) = e.build(&["--source-date-epoch", "1700000000", "-t", "repro", ctx.to_str().unwrap()]);
        digests.push(m["containerimage.digest"].as_str().unwrap().to_string());
        let c = e.config("repro");
        assert_eq!(c["Created"], "2023-11-14T22:13:20Z");
    }
    assert_eq!(digests[0], digests[1]);
}

#[test]
fn multistage_project_with_mounts_heredocs_args_onbuild() {
    let e = Env::new();
    let ctx = testdata("multistage");
    let out = e.path("out");
    let (err, _) = e.build(&[
        "--build-arg",
        "GREETING=bonjour",
        "-t",
        "multi",
        "--label",
        "extra=1",
        "-o",
        &format!("type=local,dest={}", out.display()),
        "-o",
        "type=image",
        ctx.to_str().unwrap(),
    ]);
    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap_or_else(|e| panic!("{p}: {e}\n{err}"));
    assert_eq!(read("app/out.txt"), "app v1\n");
    assert_eq!(read("app/heredoc.txt"), "heredoc-one\nheredoc-two\n");
    assert_eq!(read("app/inline.txt"), "inline bonjour\n");
    assert_eq!(read("app/onbuild.txt"), "onbuild-ran\n");
    assert_eq!(read("app/other.txt"), "other\n");
    assert_eq!(read("app/cache-lines"), "1\n");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(out.join("home/app/app.txt")).unwrap().uid(),
        1000,
        "--chown=app resolved from /etc/passwd"
    );
    let c = e.config("multi");
    assert_eq!(c["Config"]["User"], "app");
    assert_eq!(c["Config"]["Labels"]["org.example.stage"], "final");
    assert_eq!(c["Config"]["Labels"]["extra"], "1");
    assert!(c["Config"]["ExposedPorts"].get("8080/tcp").is_some());
    // The cache mount persists: a no-cache rebuild sees the earlier line.
    let out2 = e.path("out2");
    e.build(&[
        "--no-cache",
        "--build-arg",
        "GREETING=bonjour",
        "-o",
        &format!("type=local,dest={}", out2.display()),
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(out2.join("app/cache-lines")).unwrap(), "2\n");
}

#[test]
fn oci_and_docker_outputs_are_read_by_skopeo_and_umoci() {
    let e = Env::new();
    let ctx = testdata("demo-app");
    let oci = e.path("img-oci.tar");
    let docker = e.path("img-docker.tar");
    e.build(&[
        "-t",
        "demo:1",
        "-o",
        &format!("type=oci,dest={}", oci.display()),
        "-o",
        &format!("type=docker,dest={}", docker.display()),
        ctx.to_str().unwrap(),
    ]);
    let sk = Command::new("skopeo")
        .args(["inspect", "--config", &format!("oci-archive:{}", oci.display())])
        .output()
        .expect("skopeo is installed");
    assert!(sk.status.success(), "skopeo oci-archive: {}", String::from_utf8_lossy(&sk.stderr));
    let cfg: serde_json::Value = serde_json::from_slice(&sk.stdout).unwrap();
    assert_eq!(cfg["config"]["WorkingDir"], "/app");
    let sk =
        Command::new("skopeo").args(["inspect", &format!("docker-archive:{}", docker.display())]).output().unwrap();
    assert!(sk.status.success(), "skopeo docker-archive: {}", String::from_utf8_lossy(&sk.stderr));
    // umoci and skopeo find an OCI layout directory's image by its tag, as in a layout
    // BuildKit writes: the tag in ref.name, the full name in io.containerd.image.name.
    let layout = e.path("layout");
    e.build(&["-t", "demo:1", "-o", &format!("type=oci,dest={},tar=false", layout.display()), ctx.to_str().unwrap()]);
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(layout.join("index.json")).unwrap()).unwrap();
    let ann = &index["manifests"][0]["annotations"];
    assert_eq!(ann["org.opencontainers.image.ref.name"], "1", "{index}");
    assert_eq!(ann["io.containerd.image.name"], "docker.io/library/demo:1", "{index}");
    let sk = Command::new("skopeo").arg("inspect").arg(format!("oci:{}:1", layout.display())).output().unwrap();
    assert!(sk.status.success(), "skopeo oci:DIR:1: {}", String::from_utf8_lossy(&sk.stderr));
    let bundle = e.path("bundle");
    let um = Command::new("umoci")
        .args(["unpack", "--rootless", "--image", &format!("{}:1", layout.display())])
        .arg(&bundle)
        .output()
        .expect("umoci is installed");
    assert!(um.status.success(), "umoci: {}", String::from_utf8_lossy(&um.stderr));
    assert_eq!(std::fs::read_to_string(bundle.join("rootfs/app/built.txt")).unwrap(), "built on Linux\n");
}

#[test]
fn bad_input_gives_clean_errors_and_no_tag() {
    let e = Env::new();
    let ctx = testdata("errors");
    let run = |df: &str, tag: &str| {
        let out = e.rb(&[
            "build",
            "--progress",
            "plain",
            "-f",
            ctx.join(df).to_str().unwrap(),
            "-t",
            tag,
            ctx.to_str().unwrap(),
        ]);
        assert!(!out.status.success(), "{df} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run("Dockerfile.missing", "bad1");
    assert!(err.contains("\"missing.txt\" not found in the build context"), "{err}");
    assert!(err.contains("Dockerfile.missing:2"), "{err}");
    let err = run("Dockerfile.ignored", "bad2");
    assert!(err.contains("excluded by .dockerignore"), "{err}");
    // A wildcard that matches nothing adds nothing, as in BuildKit; the step warns when
    // .dockerignore kept the match out.
    let (ok, err) = e.try_build(&["-f", ctx.join("Dockerfile.ignoredglob").to_str().unwrap(), ctx.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(err.contains("warning: \"*.key\" matches nothing in the build context"), "{err}");
    assert!(err.contains("secret.key matches but is excluded by .dockerignore"), "{err}");
    let err = run("Dockerfile.failrun", "bad3");
    assert!(err.contains("exit code: 3"), "{err}");
    assert!(err.contains("failing-now"), "last output lines: {err}");
    assert!(err.contains("Dockerfile.failrun:3"), "{err}");
    let err = run("Dockerfile.unknownbase", "bad4");
    assert!(err.contains("127.0.0.1:1/nope/never:1"), "{err}");
    let images = e.rb(&["images"]);
    let list = String::from_utf8_lossy(&images.stdout);
    assert!(!list.contains("bad"), "no tag for failed builds: {list}");
    // The next build works (the failed RUN left nothing behind that breaks it).
    e.build(&["-t", "good", testdata("demo-app").to_str().unwrap()]);
}

#[test]
fn dry_run_prints_the_graph_and_platform_is_checked() {
    let e = Env::new();
    let ctx = testdata("demo-app");
    let out = e.rb(&["build", "--dry-run", ctx.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let g: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(g["stages"][0]["steps"].as_array().unwrap().len(), 6);
    let out = e.rb(&["build", "--platform", "linux/s390x", ctx.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only this machine's platform"));
    // Compression levels: checked before anything runs; zstd's negative levels parse.
    for (args, want) in [
        (&["--compression-level", "12"][..], "--compression-level 12: gzip levels are 0 to 9"),
        (&["--compression", "zstd", "--compression-level", "23"][..], "zstd levels are -131072 to 22"),
        (&["--compression", "none", "--compression-level", "3"][..], "--compression none has no levels"),
    ] {
        let out = e.rb(&[&["build", "--dry-run"][..], args, &[ctx.to_str().unwrap()]].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{args:?}: {err}");
    }
    let out =
        e.rb(&["build", "--dry-run", "--compression", "zstd", "--compression-level", "-5", ctx.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn dockerfile_and_context_from_stdin() {
    let e = Env::new();
    let ctx = testdata("demo-app");
    // Context as a tar on stdin.
    let tar = Command::new("tar").arg("-C").arg(&ctx).args(["-cf", "-", "."]).output().unwrap();
    let mut child = Command::new(RBUILD)
        .arg("--root")
        .arg(e.root())
        .args(["build", "-q", "-t", "fromstdin", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).trim().starts_with("sha256:"));
    // Dockerfile on stdin.
    let mut child = Command::new(RBUILD)
        .arg("--root")
        .arg(e.root())
        .args(["build", "-q", "-t", "dfstdin", "-f", "-"])
        .arg(&ctx)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"FROM busybox\nCOPY src/hello.sh /h.sh\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn cache_export_and_import_local() {
    let a = Env::new();
    let ctx = testdata("demo-app");
    let cache = a.path("cache");
    a.build(&["-t", "x", "--cache-to", &format!("type=local,dest={}", cache.display()), ctx.to_str().unwrap()]);
    let b = Env::new();
    let (err, _) =
        b.build(&["-t", "x", "--cache-from", &format!("type=local,src={}", cache.display()), ctx.to_str().unwrap()]);
    let st = step_status(&err);
    assert!(st.iter().all(|(_, c)| *c), "{st:?}\n{err}");
}

#[test]
fn push_to_a_registry_and_build_on_a_remote_base_without_its_layers() {
    let reg = Registry::start(None);
    let host = format!("127.0.0.1:{}", reg.port);
    let e = Env::new();
    let ctx = testdata("demo-app");
    // Push the base and the app.
    let base = format!("{host}/base/busybox:1");
    let bctx = e.path("basectx");
    std::fs::create_dir_all(&bctx).unwrap();
    std::fs::write(bctx.join("Dockerfile"), "FROM busybox\n").unwrap();
    e.build(&["--push", "-t", &base, bctx.to_str().unwrap()]);
    let app = format!("{host}/team/app:1");
    let (_, m) = e.build(&["--push", "-t", &app, ctx.to_str().unwrap()]);
    let sk = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &format!("docker://{app}")])
        .output()
        .expect("skopeo");
    assert!(sk.status.success(), "{}", String::from_utf8_lossy(&sk.stderr));
    let v: serde_json::Value = serde_json::from_slice(&sk.stdout).unwrap();
    assert_eq!(v["Digest"], m["containerimage.digest"]);
    // What was pushed is a whole image: a fresh store pulls it, runs it, and reads the same config.
    let p = Env::bare();
    let out = p.rb(&["pull", &app]);
    assert!(out.status.success(), "pull: {}", String::from_utf8_lossy(&out.stderr));
    let out = p.rb(&["run", "--rm", &app]);
    assert!(out.status.success(), "run: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from demo-app\nbuilt on Linux\n");
    let pc = p.config(&app);
    assert_eq!(pc["Id"], m["containerimage.config.digest"], "{pc}");
    assert_eq!(pc["Config"]["WorkingDir"], "/app");
    assert_eq!(pc["Config"]["Cmd"], serde_json::json!(["/bin/sh", "/app/hello.sh"]));
    assert!(pc["Config"]["Env"].as_array().unwrap().iter().any(|v| v == "GREETING=hello"), "{pc}");
    assert_eq!(pc["RootFS"]["Layers"].as_array().unwrap().len(), 4, "base + WORKDIR + COPY + RUN: {pc}");
    // A fresh store: a COPY --link build on the remote base fetches config and manifest
    // only, and the push mounts the base layers.
    let f = Env::bare();
    let dctx = f.path("ctx");
    std::fs::create_dir_all(&dctx).unwrap();
    std::fs::write(
        dctx.join("Dockerfile"),
        format!("FROM {base}\nCOPY --link hello.txt /hello.txt\nCMD [\"cat\", \"/hello.txt\"]\n"),
    )
    .unwrap();
    std::fs::write(dctx.join("hello.txt"), "hi\n").unwrap();
    let app2 = format!("{host}/team/app2:1");
    f.build(&["--push", "-t", &app2, dctx.to_str().unwrap()]);
    let img = f.config(&app2);
    let base_layer = img["Manifest"]["layers"][0]["digest"].as_str().unwrap().to_string();
    let blob = f.root().join("blobs/sha256").join(base_layer.trim_start_matches("sha256:"));
    assert!(!blob.exists(), "the base layer was downloaded");
    let sk =
        Command::new("skopeo").args(["inspect", "--tls-verify=false", &format!("docker://{app2}")]).output().unwrap();
    assert!(sk.status.success(), "{}", String::from_utf8_lossy(&sk.stderr));
    // A RUN on the 4-layer remote base: the layers are fetched (in parallel), each noted
    // under the RUN's step, and the RUN sees all of them.
    let g = Env::bare();
    let rctx = g.path("ctx");
    std::fs::create_dir_all(&rctx).unwrap();
    std::fs::write(rctx.join("Dockerfile"), format!("FROM {app}\nRUN cat /app/hello.sh > /copy\n")).unwrap();
    let out = g.path("out");
    let (err, _) = g.build(&["-o", &format!("type=local,dest={}", out.display()), rctx.to_str().unwrap()]);
    let run_step = err.lines().find(|l| l.contains("RUN cat")).and_then(|l| l.split_whitespace().next()).unwrap();
    for l in pc["Manifest"]["layers"].as_array().unwrap() {
        let d = l["digest"].as_str().unwrap();
        for what in ["pulling", "pulled"] {
            let note = format!(" {what} {d}");
            let found = err.lines().any(|l| l.starts_with(&format!("{run_step} ")) && l.contains(&note));
            assert!(found, "no {note:?} under {run_step} in:\n{err}");
        }
    }
    assert_eq!(std::fs::read(out.join("copy")).unwrap(), std::fs::read(out.join("app/hello.sh")).unwrap());
}

#[test]
fn cache_export_and_import_registry() {
    let reg = Registry::start(None);
    let cache = format!("127.0.0.1:{}/cache/demo:buildcache", reg.port);
    let ctx = testdata("demo-app");
    let a = Env::new();
    let (_, m1) = a.build(&["-t", "x", "--cache-to", &format!("type=registry,ref={cache}"), ctx.to_str().unwrap()]);
    let b = Env::new();
    let (err, m2) = b.build(&["-t", "x", "--cache-from", &format!("type=registry,ref={cache}"), ctx.to_str().unwrap()]);
    let st = step_status(&err);
    assert!(!st.is_empty() && st.iter().all(|(_, c)| *c), "{st:?}\n{err}");
    assert_eq!(m1["containerimage.config.digest"], m2["containerimage.config.digest"], "{err}");
    let out = b.rb(&["run", "--rm", "x"]);
    assert!(out.status.success(), "run: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from demo-app\nbuilt on Linux\n");
}

#[test]
fn add_url_with_checksum() {
    const BODY: &[u8] = b"fetched over http\n";
    let url = format!("{}/files/notes.txt?x=1", serve_file(BODY));
    let right = format!("sha256:{}", hex_sha256(BODY));
    let wrong = format!("sha256:{}", hex_sha256(b"something else"));
    let e = Env::new();
    let ctx = e.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), format!("FROM busybox\nADD --checksum={right} {url} /data/\n")).unwrap();
    let out = e.path("out");
    e.build(&[
        "-t",
        "fetched",
        "-o",
        &format!("type=local,dest={}", out.display()),
        "-o",
        "type=image",
        ctx.to_str().unwrap(),
    ]);
    let f = out.join("data/notes.txt");
    assert_eq!(std::fs::read(&f).unwrap(), BODY, "named after the URL path");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o7777, 0o600, "ADD of a URL is 0600");
    // A wrong checksum: a clear error naming both digests, and no tag.
    std::fs::write(ctx.join("Dockerfile"), format!("FROM busybox\nADD --checksum={wrong} {url} /data/\n")).unwrap();
    let o = e.rb(&["build", "--progress", "plain", "-t", "badsum", ctx.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a wrong checksum must fail:\n{err}");
    assert!(err.contains(&wrong) && err.contains(&right) && err.contains("checksum"), "{err}");
    assert!(err.contains("Dockerfile:2"), "{err}");
    let images = e.rb(&["images"]);
    let list = String::from_utf8_lossy(&images.stdout);
    assert!(!list.contains("badsum"), "no tag for a failed build: {list}");
    assert!(list.contains("fetched"), "{list}");
}

fn hex_sha256(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// A small context: `Dockerfile` with `text`, nothing else.
fn dockerfile_ctx(e: &Env, name: &str, text: &str) -> PathBuf {
    let ctx = e.path(name);
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), text).unwrap();
    ctx
}

#[test]
fn progress_tty_live_view_in_a_pty_and_plain_when_not_a_terminal() {
    let e = Env::new();
    let ctx = dockerfile_ctx(&e, "ctx", "FROM busybox\nRUN echo tty-output-line\nCOPY Dockerfile /df\n");
    // --progress tty on a pipe: plain lines, no escape sequences, still builds.
    let out = e.rb(&["build", "--progress", "tty", "-t", "ttyapp", ctx.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("#1 [internal] load build definition from Dockerfile"), "{err}");
    assert!(err.contains(" tty-output-line"), "{err}");
    assert!(!err.contains('\x1b'), "no escape sequences on a pipe: {err:?}");
    // In a pseudo-terminal (script(1)) of 60x12, auto is the live view: stages running in
    // parallel, every line cut to the width, and the final frame lists every step.
    assert!(Path::new("/usr/bin/script").exists(), "this test needs script (apt-get install util-linux)");
    let par = dockerfile_ctx(
        &e,
        "par",
        "FROM busybox AS a\nRUN echo a-out && sleep 0.5\nFROM busybox AS b\nRUN echo b-out && sleep 0.5\n\
         FROM busybox\nCOPY --from=a /bin/busybox /a\nCOPY --from=b /bin/busybox /b\nRUN echo tty-output-line\n",
    );
    let cmd =
        format!("stty cols 60 rows 12; exec {RBUILD} --root {} build -t ttyapp2 {}", e.root().display(), par.display());
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("TERM", "xterm")
        .env_remove("NO_COLOR")
        .env_remove("COLUMNS")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("\x1b[2K") && text.contains("[+] Building"), "a live view: {text:?}");
    // Escape sequences off, for matching.
    let plain: String = {
        let mut s = String::new();
        let mut it = text.chars();
        while let Some(c) = it.next() {
            if c == '\x1b' {
                for d in it.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                s.push(c);
            }
        }
        s
    };
    let long: Vec<&str> = plain.split(['\r', '\n']).filter(|l| l.chars().count() > 59).collect();
    assert!(long.is_empty(), "lines wider than the terminal: {long:?}");
    let last = &plain[plain.rfind("[+] Building").unwrap()..];
    assert!(last.lines().next().unwrap().trim_end().ends_with("FINISHED"), "{last}");
    for want in [
        "=> [internal] load build definition from Dockerfile",
        "=> [a 2/2] RUN echo a-out && sleep 0.5",
        "=> [b 2/2] RUN echo b-out && sleep 0.5",
        "=> [stage-2 2/4] COPY --from=a /bin/busybox /a",
        "=> [stage-2 4/4] RUN echo tty-output-line",
        "=> exporting to image",
        "=> => naming to docker.io/library/ttyapp2:latest",
    ] {
        assert!(last.contains(want), "final frame lacks {want:?}:\n{last}");
    }
    assert!(!last.contains("# tty-output-line"), "no RUN output in the summary:\n{last}");
    assert!(e.rb(&["inspect", "ttyapp2"]).status.success());
}

/// Start a build of `ctx` whose RUN prints `sleep-started` and sleeps; send `sig` once it
/// runs; the exit code and everything the build printed.
fn build_and_signal(e: &Env, ctx: &Path, tag: &str, sig: &str) -> (i32, String) {
    use std::io::BufRead;
    let mut child = Command::new(RBUILD)
        .arg("--root")
        .arg(e.root())
        .args(["build", "--progress", "plain", "-t", tag])
        .arg(ctx)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut seen = String::new();
    loop {
        match rx.recv_timeout(std::time::Duration::from_secs(180)) {
            Ok(l) => {
                seen.push_str(&l);
                seen.push('\n');
                if l.ends_with(" sleep-started") && !l.contains("RUN") {
                    break;
                }
            }
            Err(_) => {
                let _ = child.kill();
                panic!("the RUN step never started:\n{seen}");
            }
        }
    }
    let st = Command::new("kill").arg(format!("-{sig}")).arg(child.id().to_string()).status().unwrap();
    assert!(st.success());
    // Generous: the sandbox is polled every 100 ms; a slow machine still ends in seconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the build did not stop after SIG{sig}:\n{seen}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    while let Ok(l) = rx.recv_timeout(std::time::Duration::from_secs(10)) {
        seen.push_str(&l);
        seen.push('\n');
    }
    (status.code().unwrap_or(-1), seen)
}

/// Processes running `sleep 3517` (the cancelled RUN's), anywhere on the machine.
fn sleepers() -> Vec<String> {
    let mut out = Vec::new();
    for d in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(c) = std::fs::read(d.path().join("cmdline")) {
            if c.ends_with(b"sleep\x003517\x00") {
                out.push(d.file_name().to_string_lossy().into_owned());
            }
        }
    }
    out
}

#[test]
fn sigint_and_sigterm_cancel_a_running_build_cleanly() {
    let e = Env::new();
    let ctx = dockerfile_ctx(&e, "ctx", "FROM busybox\nRUN echo sleep-started && sleep 3517\nRUN echo never\n");
    for (sig, code) in [("INT", 130), ("TERM", 143)] {
        let tag = format!("cancelled-{}", sig.to_lowercase());
        let (got, out) = build_and_signal(&e, &ctx, &tag, sig);
        assert_eq!(got, code, "SIG{sig}:\n{out}");
        assert!(out.contains("build cancelled"), "{out}");
        assert!(!out.contains("never"), "no step after the cancelled one: {out}");
        // The RUN's whole pid namespace is gone.
        let mut left = sleepers();
        for _ in 0..100 {
            if left.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            left = sleepers();
        }
        assert!(left.is_empty(), "the sandbox's processes survived: {left:?}");
        // No tag, no temp dirs of the build, no mounts under the store.
        let images = e.rb(&["images"]);
        assert!(
            !String::from_utf8_lossy(&images.stdout).contains("cancelled"),
            "{}",
            String::from_utf8_lossy(&images.stdout)
        );
        let tmp: Vec<_> = std::fs::read_dir(e.root().join("tmp"))
            .map(|d| d.flatten().map(|x| x.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        assert!(tmp.iter().all(|n| !n.starts_with("build-")), "temp dirs left: {tmp:?}");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(e.root().to_str().unwrap()), "mounts left under the store:\n{mounts}");
    }
    // The second build printed "sleep-started" again: the cancelled RUN wrote no cache
    // record. And the next build works.
    let ok = dockerfile_ctx(&e, "ok", "FROM busybox\nRUN echo fine > /fine\n");
    e.build(&["-t", "after-cancel", ok.to_str().unwrap()]);
    assert!(e.rb(&["inspect", "after-cancel"]).status.success());
}

#[test]
fn copy_chmod_symbolic_and_octal_modes_land_in_the_layer() {
    use std::os::unix::fs::PermissionsExt;
    let e = Env::new();
    let ctx = dockerfile_ctx(
        &e,
        "ctx",
        "FROM busybox\n\
         COPY --chmod=u=rwx,g=rx,o= a.sh /m/a.sh\n\
         COPY --chmod=+x data /m/data\n\
         COPY --chmod=a+rX,go-w dir /m/dir/\n\
         COPY --chmod=640 data /m/octal\n",
    );
    let set = |p: &str, m: u32| std::fs::set_permissions(ctx.join(p), std::fs::Permissions::from_mode(m)).unwrap();
    std::fs::write(ctx.join("a.sh"), "#!/bin/sh\n").unwrap();
    std::fs::write(ctx.join("data"), "d\n").unwrap();
    std::fs::create_dir_all(ctx.join("dir/sub")).unwrap();
    std::fs::write(ctx.join("dir/sub/tool"), "t\n").unwrap();
    std::fs::write(ctx.join("dir/readme"), "r\n").unwrap();
    set("a.sh", 0o644);
    set("data", 0o600);
    set("dir/sub", 0o700);
    set("dir/sub/tool", 0o764);
    set("dir/readme", 0o666);
    let tar = e.path("rootfs.tar");
    e.build(&[
        "-t",
        "modes",
        "-o",
        &format!("type=tar,dest={}", tar.display()),
        "-o",
        "type=image",
        ctx.to_str().unwrap(),
    ]);
    let mut modes = std::collections::BTreeMap::new();
    let mut a = tar::Archive::new(std::fs::File::open(&tar).unwrap());
    for en in a.entries().unwrap() {
        let en = en.unwrap();
        let p = en.path().unwrap().to_string_lossy().trim_start_matches("./").trim_end_matches('/').to_string();
        if p.starts_with("m/") {
            modes.insert(p, format!("{:o}", en.header().mode().unwrap() & 0o7777));
        }
    }
    let want: std::collections::BTreeMap<String, String> = [
        ("m/a.sh", 0o750),
        ("m/data", 0o711),
        ("m/dir/readme", 0o644),
        ("m/dir/sub", 0o755),
        ("m/dir/sub/tool", 0o755),
        ("m/octal", 0o640),
    ]
    .into_iter()
    .map(|(p, m)| (p.to_string(), format!("{m:o}")))
    .collect();
    let got: std::collections::BTreeMap<String, String> =
        modes.into_iter().filter(|(p, _)| want.contains_key(p)).collect();
    assert_eq!(got, want);
    // A bad mode: the Dockerfile line and the mode are named, no tag.
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nCOPY --chmod=go data /x\n").unwrap();
    let out = e.rb(&["build", "--progress", "plain", "-t", "badmode", ctx.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("Dockerfile:2") && err.contains("--chmod=go"), "{err}");
    assert!(!String::from_utf8_lossy(&e.rb(&["images"]).stdout).contains("badmode"));
}

struct GitDaemon {
    child: std::process::Child,
    port: u16,
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=rbuild", "-c", "user.email=rbuild@example.invalid", "-c", "init.defaultBranch=main"])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("these tests need git (apt-get install git)");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn start_git_daemon(base: &Path) -> GitDaemon {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // `git daemon` runs git-daemon as its child, which a kill of `git` would orphan: start
    // git-daemon itself.
    let exec_path = git(base, &["--exec-path"]);
    let mut child = Command::new(Path::new(&exec_path).join("git-daemon"))
        .arg("--export-all")
        .arg("--reuseaddr")
        .arg("--listen=127.0.0.1")
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", base.display()))
        .arg(base)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("these tests need git daemon (apt-get install git)");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return GitDaemon { child, port };
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("git daemon did not start");
}

#[test]
fn add_git_repository_by_branch_tag_and_commit_cached_by_commit() {
    let e = Env::new();
    let base = e.path("git");
    let work = e.path("work");
    std::fs::create_dir_all(base.join("repo.git")).unwrap();
    std::fs::create_dir_all(work.join("sub")).unwrap();
    git(&base.join("repo.git"), &["init", "-q", "--bare"]);
    git(&work, &["init", "-q"]);
    std::fs::write(work.join("hello.txt"), "v1\n").unwrap();
    std::fs::write(work.join("sub/inner.txt"), "inner v1\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "one"]);
    git(&work, &["tag", "-a", "v1", "-m", "first"]);
    let first = git(&work, &["rev-parse", "HEAD"]);
    git(&work, &["push", "-q", base.join("repo.git").to_str().unwrap(), "main", "v1"]);
    let d = start_git_daemon(&base);
    let repo = format!("git://127.0.0.1:{}/repo.git", d.port);
    let ctx = dockerfile_ctx(
        &e,
        "ctx",
        &format!(
            "FROM busybox\nADD {repo}#v1:sub /tagged\nADD --keep-git-dir {repo}#{first} /kept\nADD {repo}?tag=v1&subdir=sub /q\nADD {repo}#main /src\n"
        ),
    );
    let out = e.path("out1");
    let dest = format!("type=local,dest={}", out.display());
    e.build(&["-t", "gitapp", "-o", &dest, "-o", "type=image", ctx.to_str().unwrap()]);
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|err| panic!("{}: {err}", p.display()));
    assert_eq!(read(&out.join("src/hello.txt")), "v1\n");
    assert_eq!(read(&out.join("src/sub/inner.txt")), "inner v1\n");
    assert!(!out.join("src/.git").exists(), "no .git without --keep-git-dir");
    assert_eq!(read(&out.join("tagged/inner.txt")), "inner v1\n", "#v1:sub adds the subdirectory");
    assert!(!out.join("tagged/hello.txt").exists());
    assert_eq!(read(&out.join("kept/hello.txt")), "v1\n");
    assert!(out.join("kept/.git").is_dir(), "--keep-git-dir keeps .git");
    assert_eq!(read(&out.join("q/inner.txt")), "inner v1\n", "Dockerfile 1.18 query form");
    // Same commits: every ADD is CACHED.
    let (err, _) = e.build(&["-t", "gitapp", ctx.to_str().unwrap()]);
    let st = step_status(&err);
    assert_eq!(st.len(), 4, "{err}");
    assert!(st.iter().all(|(_, c)| *c), "{st:?}\n{err}");
    // A new commit on main: that ADD (the last step) runs again, the tag and the commit
    // stay cached.
    std::fs::write(work.join("hello.txt"), "v2\n").unwrap();
    git(&work, &["commit", "-q", "-am", "two"]);
    git(&work, &["push", "-q", base.join("repo.git").to_str().unwrap(), "main"]);
    let out2 = e.path("out2");
    let (err, _) =
        e.build(&["-t", "gitapp", "-o", &format!("type=local,dest={}", out2.display()), ctx.to_str().unwrap()]);
    let cached: Vec<bool> = step_status(&err).iter().map(|(_, c)| *c).collect();
    assert_eq!(cached, [true, true, true, false], "{err}");
    assert_eq!(read(&out2.join("src/hello.txt")), "v2\n");
    assert_eq!(read(&out2.join("kept/hello.txt")), "v1\n");
    // A reference that does not exist: a clear error.
    std::fs::write(ctx.join("Dockerfile"), format!("FROM busybox\nADD {repo}#nope /x\n")).unwrap();
    let o = e.rb(&["build", "--progress", "plain", ctx.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("\"nope\"") && err.contains("Dockerfile:2"), "{err}");
}

#[test]
fn add_git_repository_fetches_submodules_unless_told_not_to() {
    let e = Env::new();
    let base = e.path("git");
    let lib = e.path("lib");
    let work = e.path("work");
    for d in [base.join("repo.git"), base.join("lib.git"), lib.clone(), work.clone()] {
        std::fs::create_dir_all(d).unwrap();
    }
    git(&base.join("repo.git"), &["init", "-q", "--bare"]);
    git(&base.join("lib.git"), &["init", "-q", "--bare"]);
    git(&lib, &["init", "-q"]);
    std::fs::write(lib.join("lib.txt"), "lib v1\n").unwrap();
    git(&lib, &["add", "."]);
    git(&lib, &["commit", "-q", "-m", "lib"]);
    git(&lib, &["push", "-q", base.join("lib.git").to_str().unwrap(), "main"]);
    git(&work, &["init", "-q"]);
    std::fs::write(work.join("app.txt"), "app\n").unwrap();
    let lib_url = base.join("lib.git");
    git(
        &work,
        &["-c", "protocol.file.allow=always", "submodule", "add", "-q", lib_url.to_str().unwrap(), "vendor/lib"],
    );
    // Relative to the superproject's URL, so the builder fetches it from the daemon.
    git(&work, &["config", "-f", ".gitmodules", "submodule.vendor/lib.url", "../lib.git"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "app with lib"]);
    git(&work, &["push", "-q", base.join("repo.git").to_str().unwrap(), "main"]);
    let d = start_git_daemon(&base);
    let repo = format!("git://127.0.0.1:{}/repo.git", d.port);
    let ctx = dockerfile_ctx(
        &e,
        "ctx",
        &format!("FROM busybox\nADD {repo}#main /src\nADD {repo}?branch=main&submodules=false /bare\n"),
    );
    let out = e.path("out");
    e.build(&["-o", &format!("type=local,dest={}", out.display()), ctx.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(out.join("src/vendor/lib/lib.txt")).unwrap(), "lib v1\n");
    assert_eq!(std::fs::read_to_string(out.join("src/app.txt")).unwrap(), "app\n");
    assert!(!out.join("src/.git").exists() && !out.join("src/vendor/lib/.git").exists(), "no .git anywhere");
    assert!(out.join("bare/app.txt").exists());
    let bare: Vec<_> = std::fs::read_dir(out.join("bare/vendor/lib")).unwrap().collect();
    assert!(bare.is_empty(), "submodules=false leaves the submodule's directory empty: {bare:?}");
}
