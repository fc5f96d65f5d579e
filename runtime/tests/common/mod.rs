//! Shared by the sandbox tests: the init hook (the test binary is the re-executed init)
//! and a busybox root filesystem.
#![allow(dead_code)]

use rbuild_runtime::sandbox::{Executor, RunIo, RunOutcome, RunSpec, Sandbox, Stream};
use std::path::Path;
use std::sync::{Arc, Mutex};

// The sandbox re-executes this test binary; the hook must run before libtest's main.
#[used]
#[unsafe(link_section = ".init_array")]
static INIT_HOOK: extern "C" fn() = init_hook;

extern "C" fn init_hook() {
    if let Some(code) = rbuild_runtime::sandbox::init_hook() {
        std::process::exit(code)
    }
    if let Some(root) = std::env::var_os("RBUILD_TEST_PARENT") {
        std::process::exit(helper_parent(Path::new(&root)))
    }
    if let Some(root) = std::env::var_os("RBUILD_TEST_ROOTLESS") {
        std::process::exit(helper_rootless(Path::new(&root)))
    }
}

/// The rootless half of tests/rootless.rs, run as an unprivileged user: a RUN that writes,
/// deletes and uses a cache mount; prints what it saw and the layer's entries.
fn helper_rootless(root: &Path) -> i32 {
    use rbuild_runtime::sandbox::{CacheSharing, MountSpec};
    let sn = rbuild_runtime::snapshot::open(root, rbuild_runtime::sandbox::store_trees(root)).unwrap();
    println!("driver {}", sn.name());
    sn.prepare("x", None).unwrap();
    busybox_tree(&sn.extract_dir("x").unwrap().0);
    std::fs::write(sn.extract_dir("x").unwrap().0.join("etc/motd"), "bye").unwrap();
    sn.commit("base", "x").unwrap();
    let sb = Sandbox::new(root).unwrap();
    println!("rootless {}", sb.rootless());
    let mounts = vec![MountSpec::Cache {
        id: "c".into(),
        target: "/cache".into(),
        sharing: CacheSharing::Shared,
        uid: 0,
        gid: 0,
        mode: 0o755,
        readonly: false,
    }];
    for (i, script) in ["id -u; echo one >> /cache/log; mkdir -p /made && echo hi > /made/f; rm /etc/motd; ls /proc | grep -cE '^[0-9]+$'",
        "cat /cache/log"].iter().enumerate() {
        let spec = RunSpec { rootfs: sn.prepare(&format!("s{i}"), Some("base")).unwrap(), mounts: mounts.clone(), ..Default::default() };
        let (out, stdout, stderr) = sh(&sb, &spec, script);
        print!("{stdout}");
        if out.code != 0 {
            println!("code {} stderr {stderr}", out.code);
        }
        if i == 0 {
            let ch = rbuild_runtime::diff::changes(
                &sn.diff_source("s0").unwrap(),
                &rbuild_runtime::diff::Exclude::from_outcome(&out),
                Some((nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw())),
            )
            .unwrap();
            let (blob, _) = rbuild_runtime::diff::write_to(Vec::new(), ch, rbuild_image::Compression::None, &Default::default()).unwrap();
            let mut entries: Vec<String> = tar::Archive::new(&blob[..])
                .entries()
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    format!("{} {}:{}", e.path().unwrap().display(), e.header().uid().unwrap(), e.header().gid().unwrap())
                })
                .collect();
            entries.sort();
            println!("layer {}", entries.join(","));
        }
    }
    0
}

/// A parent process for interrupt tests: runs `echo ready; sleep 7223` in a sandbox on
/// `<root>` and exits with its code. `RBUILD_TEST_FORWARD=1`: forward signals like
/// `rbuild run`; else capture like a build (and die on SIGINT).
fn helper_parent(root: &Path) -> i32 {
    // A suite started in the background by a non-interactive shell (`.ci/run &`) inherits
    // SIGINT ignored; this helper plays a parent that Ctrl-C kills, so undo that.
    // SAFETY: resetting a disposition to its default, before any thread exists.
    unsafe {
        nix::sys::signal::signal(nix::sys::signal::Signal::SIGINT, nix::sys::signal::SigHandler::SigDfl).unwrap();
    }
    let sn = rbuild_runtime::snapshot::open(root, rbuild_runtime::sandbox::store_trees(root)).unwrap();
    if sn.stat("base").unwrap().is_none() {
        sn.prepare("x", None).unwrap();
        busybox_tree(&sn.extract_dir("x").unwrap().0);
        sn.commit("base", "x").unwrap();
    }
    let sb = Sandbox::new(root).unwrap();
    let spec = RunSpec {
        rootfs: sn.prepare(&format!("run-{}", std::process::id()), Some("base")).unwrap(),
        args: vec!["/bin/sh".into(), "-c".into(), "echo ready; exec sleep 7223".into()],
        ..Default::default()
    };
    let io = if std::env::var_os("RBUILD_TEST_FORWARD").is_some() {
        RunIo::inherit(false, false)
    } else {
        RunIo::capture(|_, b| {
            use std::io::Write;
            let mut o = std::io::stdout();
            let _ = o.write_all(b);
            let _ = o.flush();
        })
    };
    let out = sb.run(&spec, io).unwrap();
    println!("exit {}", out.code);
    0
}

pub fn require_root() {
    assert!(nix::unistd::geteuid().is_root(), "this test needs root (CI runs as root): run `cargo test` as root");
}

/// A busybox rootfs: bin/busybox, an applet symlink for every applet, /etc/passwd with
/// root and app (1000), /etc/group.
pub fn busybox_tree(dir: &Path) {
    let bb = Path::new("/bin/busybox");
    assert!(bb.exists(), "/bin/busybox is missing: apt-get install busybox-static");
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::copy(bb, dir.join("bin/busybox")).unwrap();
    let list = std::process::Command::new(bb).arg("--list").output().unwrap();
    for name in String::from_utf8(list.stdout).unwrap().lines() {
        if name != "busybox" {
            std::os::unix::fs::symlink("busybox", dir.join("bin").join(name)).unwrap();
        }
    }
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n").unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\napp:x:1000:\nwheel:x:10:app\nnogroup:x:65534:\n").unwrap();
    for d in ["root", "tmp", "home/app"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::os::unix::fs::chown(dir.join("home/app"), Some(1000), Some(1000)).ok();
    std::fs::set_permissions(dir.join("tmp"), std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
}

/// Output captured by a run.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<(Vec<u8>, Vec<u8>)>>);

impl Captured {
    pub fn io(&self) -> RunIo {
        let c = self.0.clone();
        RunIo::capture(move |s, b| {
            let mut g = c.lock().unwrap();
            match s {
                Stream::Stdout => g.0.extend_from_slice(b),
                Stream::Stderr => g.1.extend_from_slice(b),
            }
        })
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap().0).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap().1).into_owned()
    }
}

/// Run `sh -c script` with `spec` as a template; returns outcome and stdout.
pub fn sh(sb: &Sandbox, template: &RunSpec, script: &str) -> (RunOutcome, String, String) {
    let mut spec = template.clone();
    spec.args = vec!["/bin/sh".into(), "-c".into(), script.into()];
    let cap = Captured::default();
    let out = sb.run(&spec, cap.io()).unwrap();
    (out, cap.stdout(), cap.stderr())
}

/// The host's mount table, to check nothing leaks.
pub fn host_mounts() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap()
}
