//! Rootless: the same sandbox run by an unprivileged user (uid 65534 via setpriv), through
//! a user namespace mapping root to that user, overlayfs with `userxattr`. Started as root
//! (CI), it re-runs this test binary as nobody on a store nobody owns.

mod common;

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
