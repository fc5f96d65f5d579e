//! Rootless `rbuild build` and `rbuild run` end to end: the rbuild binary run as an
//! unprivileged user with a subordinate id range (`rbuildtest`, made when missing), on a
//! store that user owns. Layers must record the ids the commands saw in their user
//! namespace (0, 1000), never the host's subordinate ids; image files keep their owners;
//! nothing is left behind and the user can prune everything. Started as root (CI), which
//! it needs to create the user and its /etc/subuid and /etc/subgid ranges.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const RBUILD: &str = env!("CARGO_BIN_EXE_rbuild");
#[path = "common/test_user.rs"]
mod test_user;

use test_user::UID;

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn require_root() {
    // SAFETY: geteuid has no failure mode.
    assert_eq!(unsafe { libc_geteuid() }, 0, "this test needs root to set up its unprivileged user (CI runs as root)");
    for tool in ["/usr/sbin/runuser", "/usr/bin/newuidmap", "/usr/bin/newgidmap", "/bin/busybox"] {
        assert!(Path::new(tool).exists(), "{tool} is missing (apt-get install util-linux uidmap busybox-static)");
    }
}

/// `rbuild --root <root> args…` as the test user.
fn rb(name: &str, root: &Path, args: &[&str]) -> Output {
    Command::new("runuser")
        .args(["-u", name, "--", RBUILD, "--root"])
        .arg(root)
        .args(args)
        .env("HOME", root.parent().unwrap())
        .env_remove("SOURCE_DATE_EPOCH")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A busybox rootfs tar made as root, with a directory owned by 100:101 in the image.
fn busybox_tar(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "etc", "tmp", "var/spool"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for a in String::from_utf8_lossy(&list.stdout).lines().filter(|a| *a != "busybox" && !a.is_empty()) {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\n").unwrap();
    std::os::unix::fs::chown(rootfs.join("var/spool"), Some(100), Some(101)).unwrap();
    std::fs::write(rootfs.join("var/spool/job"), "queued").unwrap();
    std::os::unix::fs::chown(rootfs.join("var/spool/job"), Some(100), Some(101)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(rootfs.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let tarball = dir.join("rootfs.tar");
    let st = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    tarball
}

/// `path uid:gid` of every entry of each layer of `image`, layer by layer.
fn layer_owners(root: &Path, image: &str) -> Vec<Vec<String>> {
    let blob = |d: &str| root.join("blobs/sha256").join(d.strip_prefix("sha256:").unwrap());
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(root.join("index.json")).unwrap()).unwrap();
    let want = format!("docker.io/library/{image}");
    let m = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["io.containerd.image.name"] == want.as_str())
        .unwrap_or_else(|| panic!("{want} is not in the store: {index}"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(m["digest"].as_str().unwrap())).unwrap()).unwrap();
    let mut out = Vec::new();
    for l in manifest["layers"].as_array().unwrap() {
        let f = std::fs::File::open(blob(l["digest"].as_str().unwrap())).unwrap();
        let media = l["mediaType"].as_str().unwrap();
        let r: Box<dyn Read> = if media.ends_with("+gzip") {
            Box::new(flate2::read::MultiGzDecoder::new(f))
        } else {
            assert!(media.ends_with(".tar"), "unexpected layer media type {media}");
            Box::new(f)
        };
        let mut entries: Vec<String> = tar::Archive::new(r)
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                format!("{} {}:{}", e.path().unwrap().display(), e.header().uid().unwrap(), e.header().gid().unwrap())
            })
            .collect();
        entries.sort();
        out.push(entries);
    }
    out
}

fn mounts_under(p: &Path) -> Vec<String> {
    let p = p.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&p))
        .map(String::from)
        .collect()
}

/// Everything under `dir` not owned by `uid` (what the user could not remove itself).
fn foreign_files(dir: &Path, uid: u32) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.path().symlink_metadata().unwrap();
            if m.uid() != uid {
                out.push(format!("{} {}", e.path().display(), m.uid()));
            }
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

#[test]
fn rootless_build_records_namespace_ids_and_cleans_up() {
    scenario("overlay");
}

#[test]
fn rootless_build_on_the_copy_driver() {
    scenario("copy");
}

/// Build, run and prune as the test user with snapshot driver `driver`.
fn scenario(driver: &str) {
    require_root();
    let (name, gid) = test_user::ensure();
    let d = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let tarball = busybox_tar(d.path());
    let root = d.path().join("store");
    let ctx = d.path().join("ctx");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&ctx).unwrap();
    // busybox-static has no adduser: the user is written into the image's files.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM bb\n\
         RUN echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1000:' >> /etc/group \
         && mkdir /data && chown app /data && echo hi > /data/f\n\
         COPY --chown=1000:1000 hello /copied\n\
         USER app\n\
         RUN id -u > /tmp/uid && echo made > /data/g && stat -c %u:%g /copied > /tmp/copied\n",
    )
    .unwrap();
    std::fs::write(ctx.join("hello"), "hello").unwrap();
    // The driver a store uses is recorded on first use: choose it.
    std::fs::create_dir_all(root.join("snapshots")).unwrap();
    std::fs::write(root.join("snapshots/driver"), driver).unwrap();
    for p in [
        &root,
        &root.join("snapshots"),
        &root.join("snapshots/driver"),
        &ctx,
        &ctx.join("Dockerfile"),
        &ctx.join("hello"),
    ] {
        std::os::unix::fs::chown(p, Some(UID), Some(gid)).unwrap();
    }
    let tar_s = tarball.to_str().unwrap();
    let o = rb(&name, &root, &["import", tar_s, "bb"]);
    assert!(o.status.success(), "import: {}", text(&o));

    let o = rb(&name, &root, &["build", "--progress", "plain", "-t", "app", ctx.to_str().unwrap()]);
    assert!(o.status.success(), "rootless build: {}", text(&o));
    let layers = layer_owners(&root, "app:latest");
    assert_eq!(layers.len(), 4, "{layers:?}");
    // Root's RUN: root's files as 0, the chown to app as 1000 (not 200000+).
    assert_eq!(layers[1], ["data/ 1000:0", "data/f 0:0", "etc/ 0:0", "etc/group 0:0", "etc/passwd 0:0"], "{layers:?}");
    assert_eq!(layers[2], ["copied 1000:1000"], "{layers:?}");
    // app's RUN: app's files as 1000:1000; /tmp (root's, copied up) stays 0:0. The COPY's
    // file reached the RUN with its owner (the COPY's snapshot is made in the namespace).
    assert_eq!(
        layers[3],
        ["data/ 1000:0", "data/g 1000:1000", "tmp/ 0:0", "tmp/copied 1000:1000", "tmp/uid 1000:1000"],
        "{layers:?}"
    );

    // Run it rootless: USER app, the image's owners as the image says (100:101 too).
    let o = rb(
        &name,
        &root,
        &[
            "run",
            "--rm",
            "app",
            "sh",
            "-c",
            "id -u; cat /tmp/uid /tmp/copied; stat -c %u:%g /var/spool/job /data /data/g; echo more > /data/h; mkdir /tmp/x && echo y > /tmp/x/y",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "1000\n1000\n1000:1000\n100:101\n1000:0\n1000:1000\n",
        "{}",
        text(&o)
    );
    let o = rb(&name, &root, &["run", "--rm", "-u", "0", "app", "sh", "-c", "id -u; touch /var/spool/job && echo ok"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "0\nok\n", "{}", text(&o));

    // Nothing left: no mount, no scratch, no writable snapshot of the runs.
    assert!(mounts_under(d.path()).is_empty(), "{:?}", mounts_under(d.path()));
    let tmp: Vec<_> = std::fs::read_dir(root.join("tmp")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(tmp.is_empty(), "left in the store's tmp/: {tmp:?}");
    let snaps: Vec<String> = std::fs::read_dir(root.join("snapshots").join(driver))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(snaps.iter().all(|s| s.starts_with("sha256_")), "only committed snapshots stay: {snaps:?}");

    // The user can remove everything, subordinate-id files included.
    let o = rb(&name, &root, &["rmi", "app", "bb"]);
    assert!(o.status.success(), "rmi: {}", text(&o));
    let o = rb(&name, &root, &["prune", "--all"]);
    assert!(o.status.success(), "prune: {}", text(&o));
    let snaps = std::fs::read_dir(root.join("snapshots").join(driver)).unwrap().count();
    assert_eq!(snaps, 0, "prune removed every snapshot");
    assert_eq!(foreign_files(&root, UID), Vec::<String>::new(), "files the user could not remove");
}

#[test]
fn rootless_build_interrupted_leaves_nothing() {
    require_root();
    let (_, gid) = test_user::ensure();
    let d = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let tarball = busybox_tar(d.path());
    let root = d.path().join("store");
    let ctx = d.path().join("ctx");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&ctx).unwrap();
    // app's files in the RUN's writable layer are subordinate ids on the host: removing
    // that layer after the interrupt takes the user namespace.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM bb\nRUN echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd\nUSER app\n\
         RUN mkdir /tmp/m && echo x > /tmp/m/f && echo started-rootless && sleep 6311\n",
    )
    .unwrap();
    for p in [&root, &ctx, &ctx.join("Dockerfile")] {
        std::os::unix::fs::chown(p, Some(UID), Some(gid)).unwrap();
    }
    // setpriv execs rbuild itself (runuser would stay in between): the signal reaches it.
    let as_user = |args: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args([&format!("--reuid={UID}"), &format!("--regid={gid}"), "--clear-groups", "--", RBUILD, "--root"])
            .arg(&root)
            .args(args)
            .env("HOME", d.path())
            .stdin(Stdio::null());
        c
    };
    let o = as_user(&["import", tarball.to_str().unwrap(), "bb"]).output().unwrap();
    assert!(o.status.success(), "import: {}", text(&o));
    let mut child = as_user(&["build", "--progress", "plain", ctx.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut all = String::new();
    loop {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut err, &mut line).unwrap();
        all.push_str(&line);
        assert!(n > 0, "the RUN did not start: {all}");
        if line.contains("started-rootless") && !line.contains("RUN") {
            break;
        }
    }
    let st = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(st.success());
    let code = child.wait().unwrap().code();
    let _ = err.read_to_string(&mut all);
    assert_eq!(code, Some(130), "{all}");
    let t = std::time::Instant::now();
    while Command::new("pgrep").args(["-f", "^sleep 6311$"]).status().unwrap().success() {
        assert!(t.elapsed() < std::time::Duration::from_secs(30), "the RUN outlived the build");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(mounts_under(d.path()).is_empty(), "{:?}", mounts_under(d.path()));
    let tmp: Vec<_> = std::fs::read_dir(root.join("tmp")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(tmp.is_empty(), "left in the store's tmp/: {tmp:?}");
    let snaps: Vec<String> = std::fs::read_dir(root.join("snapshots/overlay"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(snaps.iter().all(|s| s.starts_with("sha256_")), "the RUN's writable snapshot was removed: {snaps:?}");
}
