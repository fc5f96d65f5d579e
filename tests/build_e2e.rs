//! End-to-end tests of `rbuild build`, driving the built binary on a busybox base made
//! from the host's /bin/busybox (busybox-static) and imported with `rbuild import`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const RBUILD: &str = env!("CARGO_BIN_EXE_rbuild");

fn testdata(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/build").join(p)
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    /// A fresh store with `busybox:latest` imported.
    fn new() -> Env {
        let e = Env::bare();
        e.import_busybox("busybox:latest");
        e
    }

    fn bare() -> Env {
        assert!(Path::new("/bin/busybox").exists(), "these tests need /bin/busybox (apt-get install busybox-static)");
        Env { dir: tempfile::tempdir().unwrap() }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn import_busybox(&self, name: &str) {
        let rootfs = self.path("rootfs");
        if !rootfs.exists() {
            std::fs::create_dir_all(rootfs.join("bin")).unwrap();
            std::fs::create_dir_all(rootfs.join("etc")).unwrap();
            std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
            let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
            for a in String::from_utf8_lossy(&list.stdout).lines() {
                if a != "busybox" && !a.is_empty() {
                    let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a));
                }
            }
            std::fs::write(
                rootfs.join("etc/passwd"),
                "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
            )
            .unwrap();
            std::fs::write(rootfs.join("etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
            let st = Command::new("tar")
                .args(["--sort=name", "--mtime=@1700000000", "--owner=0", "--group=0", "--numeric-owner", "-C"])
                .arg(&rootfs)
                .arg("-cf")
                .arg(self.path("rootfs.tar"))
                .args(["bin", "etc"])
                .status()
                .unwrap();
            assert!(st.success());
        }
        let out = self.rb(&["import", "--change", "CMD [\"sh\"]", self.path("rootfs.tar").to_str().unwrap(), name]);
        assert!(out.status.success(), "import: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn rb(&self, args: &[&str]) -> Output {
        Command::new(RBUILD)
            .arg("--root")
            .arg(self.root())
            .args(args)
            .env_remove("SOURCE_DATE_EPOCH")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Build; panics with the output on failure; returns (stderr, metadata JSON).
    fn build(&self, args: &[&str]) -> (String, serde_json::Value) {
        let meta = self.path(&format!("meta-{}.json", rand_suffix()));
        let mut a: Vec<&str> = vec!["build", "--progress", "plain", "--metadata-file", meta.to_str().unwrap()];
        a.extend_from_slice(args);
        let out = self.rb(&a);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "build {args:?} failed:\n{err}");
        let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
        (err, m)
    }

    fn config(&self, image: &str) -> serde_json::Value {
        let out = self.rb(&["inspect", image]);
        assert!(out.status.success(), "inspect: {}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0].clone()
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
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
    // umoci unpacks an OCI layout directory.
    let layout = e.path("layout");
    e.build(&["-t", "demo:1", "-o", &format!("type=oci,dest={},tar=false", layout.display()), ctx.to_str().unwrap()]);
    let bundle = e.path("bundle");
    let um = Command::new("umoci")
        .args(["unpack", "--rootless", "--image", &format!("{}:demo:1", layout.display())])
        .arg(&bundle)
        .output()
        .expect("umoci is installed");
    let umoci_err = String::from_utf8_lossy(&um.stderr);
    if !um.status.success() {
        // umoci names refs by the ref.name annotation; try the full name.
        let um2 = Command::new("umoci")
            .args(["unpack", "--rootless", "--image", &format!("{}:docker.io/library/demo:1", layout.display())])
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(um2.status.success(), "umoci: {umoci_err}\n{}", String::from_utf8_lossy(&um2.stderr));
    }
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

struct Registry {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_registry() -> Registry {
    assert!(
        Path::new("/usr/bin/docker-registry").exists(),
        "this test needs docker-registry (apt-get install docker-registry)"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new("/usr/bin/docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Registry { child, port, _dir: dir };
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("docker-registry did not start");
}

#[test]
fn push_to_a_registry_and_build_on_a_remote_base_without_its_layers() {
    let reg = start_registry();
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
}

#[test]
fn cache_export_and_import_registry() {
    let reg = start_registry();
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

/// A one-file HTTP server on 127.0.0.1 (every GET answers with `body`); its base URL.
fn serve_file(body: &'static [u8]) -> String {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes()).and_then(|_| s.write_all(body));
        }
    });
    format!("http://127.0.0.1:{port}")
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
