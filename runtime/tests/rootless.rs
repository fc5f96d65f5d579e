//! Rootless: the same sandbox run by an unprivileged user (uid 65534 via setpriv), through
//! a user namespace mapping root to that user, overlayfs with `userxattr`. Started as root
//! (CI), it re-runs this test binary as nobody on a store nobody owns.

mod common;
#[path = "../../tests/common/test_user.rs"]
mod test_user;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[test]
fn runs_as_an_unprivileged_user() {
    require_root();
    assert!(std::path::Path::new("/usr/bin/setpriv").exists(), "setpriv is missing (util-linux)");
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The test binary, somewhere nobody can read and run it.
    let exe = d.path().join("test-exe");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = d.path().join("store");
    std::fs::create_dir(&root).unwrap();
    std::os::unix::fs::chown(&root, Some(65534), Some(65534)).unwrap();
    let before = host_mounts();
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&exe)
        .env("RBUILD_TEST_ROOTLESS", &root)
        .env("HOME", d.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "driver overlay", "overlayfs works rootless here (userxattr): {out}");
    assert_eq!(lines[1], "rootless true");
    assert_eq!(lines[2], "0", "root inside the user namespace: {out}");
    let procs: u32 = lines[3].parse().unwrap();
    assert!(procs < 10, "host processes visible: {out}");
    // Owned by root in the layer (the user's ids mapped back), the deletion a whiteout.
    assert_eq!(lines[4], "layer etc/ 0:0,etc/.wh.motd 0:0,made/ 0:0,made/f 0:0", "{out}");
    assert_eq!(lines[5], "one", "the cache mount kept its content: {out}");
    assert_eq!(host_mounts(), before);
    // The files a rootless run made belong to the user on the host.
    let upper = root.join("snapshots/overlay/s0/fs/made/f");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&upper).unwrap()), 65534);
}

// The test user with a subordinate range (made on first use, left for reruns).
use test_user::{UID as SUB_UID, USER as SUB_USER};

// The subuid half runs in this binary as the test user; the hook must see its variable
// before libtest's main (common's hook handles the sandbox init and the other helpers).
#[used]
#[unsafe(link_section = ".init_array")]
static SUBUID_HOOK: extern "C" fn() = subuid_hook;

extern "C" fn subuid_hook() {
    if let Some(code) = rbuild_runtime::sandbox::init_hook() {
        std::process::exit(code)
    }
    if let Some(root) = std::env::var_os("RBUILD_TEST_SUBUID") {
        std::process::exit(helper_subuid(std::path::Path::new(&root)))
    }
}

/// Run as the test user: USER app (1000) with subordinate ids mapped, then as root, then
/// USER app with only one id mapped; prints what each saw and the layer's owners.
fn helper_subuid(root: &std::path::Path) -> i32 {
    use rbuild_runtime::sandbox::{Executor, IdMap, RunSpec, Sandbox};
    let sn = rbuild_runtime::snapshot::open(root, rbuild_runtime::sandbox::store_trees(root)).unwrap();
    println!("driver {}", sn.name());
    sn.prepare("x", None).unwrap();
    busybox_tree(&sn.extract_dir("x").unwrap().0);
    sn.commit("base", "x").unwrap();
    let sb = Sandbox::new(root).unwrap();
    let map = sb.id_map().expect("rootless").clone();
    println!("multi {}", map.is_multi());
    for (key, user, script) in
        [("app", "app", "id -u; id -g; mkdir /tmp/d && echo hi > /tmp/d/f"), ("root", "", "id -u; echo r > /rootfile")]
    {
        let spec = RunSpec {
            rootfs: sn.prepare(key, Some("base")).unwrap(),
            user: Some(user.into()).filter(|u: &String| !u.is_empty()),
            ..Default::default()
        };
        let (out, stdout, stderr) = sh(&sb, &spec, script);
        print!("{stdout}");
        if out.code != 0 {
            println!("code {} stderr {stderr}", out.code);
            continue;
        }
        let ch = rbuild_runtime::diff::changes_mapped(
            &sn.diff_source(key).unwrap(),
            &rbuild_runtime::diff::Exclude::from_outcome(&out),
            sb.id_map(),
        )
        .unwrap();
        let (blob, _) =
            rbuild_runtime::diff::write_to(Vec::new(), ch, rbuild_image::Compression::None, &Default::default())
                .unwrap();
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
    // app's files are subordinate ids on the host, which the caller cannot remove itself.
    let d = root.join("snapshots/overlay/app/fs/tmp/d");
    let m = std::fs::metadata(d.join("f")).unwrap();
    println!("host {}:{}", std::os::unix::fs::MetadataExt::uid(&m), std::os::unix::fs::MetadataExt::gid(&m));
    println!("plain removal fails {}", std::fs::remove_dir_all(&d).is_err());
    sb.remove_tree(&d).unwrap();
    println!("removed {}", !d.exists());
    // Without the ranges: a clear error naming what to do, not "setuid: EINVAL".
    let (uid, gid) = map.caller();
    let single = Sandbox::new(root).unwrap().with_id_map(IdMap::single(uid, gid, SUB_USER, "test"));
    let spec = RunSpec {
        rootfs: sn.prepare("single", Some("base")).unwrap(),
        user: Some("app".into()),
        args: vec!["/bin/true".into()],
        ..Default::default()
    };
    match single.run(&spec, Captured::default().io()) {
        Ok(o) => println!("single ran: code {}", o.code),
        Err(e) => println!("single error {e}"),
    }
    0
}

#[test]
fn runs_a_non_root_user_with_subordinate_ids() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED runs_a_non_root_user_with_subordinate_ids: needs root to add a test user to /etc/subuid");
        return;
    }
    for tool in ["/usr/bin/setpriv", "/usr/bin/newuidmap", "/usr/bin/newgidmap"] {
        assert!(std::path::Path::new(tool).exists(), "{tool} is missing (apt-get install util-linux uidmap)");
    }
    let (name, gid) = test_user::ensure();
    let sub = |f: &str| {
        let t = std::fs::read_to_string(f).unwrap();
        rbuild_runtime::sandbox::idmap::subordinate_ranges(&t, &name, SUB_UID)[0].0
    };
    let (su, sg) = (sub("/etc/subuid"), sub("/etc/subgid"));

    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = d.path().join("test-exe");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = d.path().join("store");
    std::fs::create_dir(&root).unwrap();
    std::os::unix::fs::chown(&root, Some(SUB_UID), Some(gid)).unwrap();
    let before = host_mounts();
    let o = Command::new("setpriv")
        .args([&format!("--reuid={SUB_UID}"), &format!("--regid={gid}"), "--clear-groups", "--"])
        .arg(&exe)
        .env("RBUILD_TEST_SUBUID", &root)
        .env("HOME", d.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "driver overlay", "{out}\n{err}");
    assert_eq!(lines[1], "multi true", "{name} has a range and uidmap is installed: {out}");
    assert_eq!(lines[2..4], ["1000", "1000"], "USER app runs as 1000:1000 inside: {out}\n{err}");
    // What app made is app's in the layer; /tmp (copied up, root's) stays root's.
    assert_eq!(lines[4], "layer tmp/ 0:0,tmp/d/ 1000:1000,tmp/d/f 1000:1000", "{out}");
    assert_eq!(lines[5], "0", "{out}");
    assert_eq!(lines[6], "layer rootfile 0:0", "{out}");
    assert_eq!(lines[7], format!("host {}:{}", su + 999, sg + 999), "app's uid 1000 is start + 999 on the host");
    assert_eq!(lines[8..10], ["plain removal fails true", "removed true"], "{out}");
    assert!(
        lines[10].starts_with("single error ")
            && lines[10].contains("uid 1000 is not mapped")
            && lines[10].contains(&format!("add a range for {SUB_USER} to /etc/subuid and /etc/subgid"))
            && lines[10].contains("install uidmap"),
        "{out}"
    );
    assert_eq!(host_mounts(), before);
    // Root's files belong to the user on the host.
    let m = std::fs::metadata(root.join("snapshots/overlay/root/fs/rootfile")).unwrap();
    assert_eq!((std::os::unix::fs::MetadataExt::uid(&m), std::os::unix::fs::MetadataExt::gid(&m)), (SUB_UID, gid));
}
