//! Shared pieces of the CLI end-to-end tests: a store in a temp dir with a busybox base
//! made from the host's /bin/busybox (busybox-static), the rbuild binary, and Debian's
//! docker-registry on a free 127.0.0.1 port (optionally with htpasswd auth).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The rbuild binary under test.
pub const RBUILD: &str = env!("CARGO_BIN_EXE_rbuild");

/// A temp dir holding a store (`store/`), a docker config dir (`docker/`) and scratch files.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    /// A fresh store with `busybox:latest` imported.
    pub fn new() -> Env {
        let e = Env::bare();
        e.import_busybox("busybox:latest");
        e
    }

    /// An empty store.
    pub fn bare() -> Env {
        assert!(Path::new("/bin/busybox").exists(), "these tests need /bin/busybox (apt-get install busybox-static)");
        Env { dir: tempfile::tempdir().unwrap() }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// `rootfs.tar`: busybox with its applets, /etc/passwd and /etc/group (root, app 1000).
    pub fn busybox_tar(&self) -> PathBuf {
        let tar = self.path("rootfs.tar");
        if tar.exists() {
            return tar;
        }
        let rootfs = self.path("rootfs");
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
            .arg(&tar)
            .args(["bin", "etc"])
            .status()
            .unwrap();
        assert!(st.success());
        tar
    }

    /// Import the busybox rootfs as `name`.
    pub fn import_busybox(&self, name: &str) {
        let tar = self.busybox_tar();
        let out = self.rb(&["import", "--change", "CMD [\"sh\"]", tar.to_str().unwrap(), name]);
        assert!(out.status.success(), "import: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Run rbuild on this store, with this env's own docker config dir.
    pub fn rb(&self, args: &[&str]) -> Output {
        self.rb_in(args, None)
    }

    /// Run rbuild with `stdin` fed to it.
    pub fn rb_in(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        use std::io::Write;
        let mut child = Command::new(RBUILD)
            .arg("--root")
            .arg(self.root())
            .args(args)
            .env_remove("SOURCE_DATE_EPOCH")
            .env("DOCKER_CONFIG", self.path("docker"))
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(b) = stdin {
            child.stdin.take().unwrap().write_all(b).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// `rbuild build --progress plain ARGS`, returning (success, stderr).
    pub fn try_build(&self, args: &[&str]) -> (bool, String) {
        let mut a: Vec<&str> = vec!["build", "--progress", "plain"];
        a.extend_from_slice(args);
        let out = self.rb(&a);
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// Build with `--progress plain`; panics with the output on failure; returns (stderr,
    /// the `--metadata-file` JSON).
    pub fn build(&self, args: &[&str]) -> (String, serde_json::Value) {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let meta = self.path(&format!("meta-{}.json", N.fetch_add(1, Ordering::Relaxed)));
        let mut a: Vec<&str> = vec!["build", "--progress", "plain", "--metadata-file", meta.to_str().unwrap()];
        a.extend_from_slice(args);
        let out = self.rb(&a);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "build {args:?} failed:\n{err}");
        let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
        (err, m)
    }

    /// `rbuild inspect IMAGE`, the first element.
    pub fn config(&self, image: &str) -> serde_json::Value {
        let out = self.rb(&["inspect", image]);
        assert!(out.status.success(), "inspect: {}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0].clone()
    }

    /// The names `rbuild images` lists.
    pub fn image_list(&self) -> String {
        let out = self.rb(&["images"]);
        assert!(out.status.success(), "images: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Debian's docker-registry on a free port; killed on drop.
pub struct Registry {
    child: std::process::Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// Start one; with `auth = Some((user, password))` it asks for htpasswd basic auth.
    pub fn start(auth: Option<(&str, &str)>) -> Registry {
        assert!(
            Path::new("/usr/bin/docker-registry").exists(),
            "this test needs docker-registry (apt-get install docker-registry)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((user, pass)) = auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .expect("this test needs htpasswd (apt-get install apache2-utils)");
            assert!(out.status.success());
            let f = dir.path().join("htpasswd");
            std::fs::write(&f, &out.stdout).unwrap();
            cfg.push_str(&format!("auth:\n  htpasswd:\n    realm: test\n    path: {}\n", f.display()));
        }
        let file = dir.path().join("config.yml");
        std::fs::write(&file, cfg).unwrap();
        let mut child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&file)
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

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Every regular file under `dir` (recursively), for "nothing left behind" checks.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => out.extend(files_under(&p)),
            Ok(_) => out.push(p),
            Err(_) => {}
        }
    }
    out
}

/// Copy a directory tree (files and directories; what a test context needs).
pub fn copy_dir(from: &Path, to: &Path) {
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

/// A one-file HTTP server on 127.0.0.1 (every GET answers with `body`); its base URL.
pub fn serve_file(body: &'static [u8]) -> String {
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
