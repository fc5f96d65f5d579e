//! A realistic tree (static busybox with its applet symlinks) through our writer, read back by
//! GNU tar; and GNU tar's own output through our applier.

mod layer_common;

use layer_common::*;
use rbuild_image::Compression;
use rbuild_image::layer::{self, ApplyOptions, LayerBlobWriter, WriterOptions};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

const BUSYBOX: &str = "/bin/busybox";

fn need(tool: &str) {
    let ok = Command::new(tool).arg("--help").output().is_ok();
    assert!(ok, "{tool} is required for this test (apt-get install busybox-static tar); CI installs it");
}

/// A busybox rootfs: /bin/busybox plus one symlink per applet, /etc files, a long path.
fn rootfs(root: &Path) -> usize {
    need(BUSYBOX);
    for d in [
        "bin",
        "etc",
        "tmp",
        "root",
        "var/log",
        "usr/share/very-long-directory-name-for-testing-pax-headers/and-another-level-that-is-long",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    let list = Command::new(BUSYBOX).arg("--list").output().unwrap();
    assert!(list.status.success());
    let applets: Vec<String> =
        String::from_utf8(list.stdout).unwrap().lines().filter(|a| *a != "busybox").map(str::to_string).collect();
    for a in &applets {
        symlink("busybox", root.join("bin").join(a)).unwrap();
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    std::fs::hard_link(root.join("etc/passwd"), root.join("etc/passwd-")).unwrap();
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::set_permissions(root.join("root"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let deep = root.join("usr/share/very-long-directory-name-for-testing-pax-headers/and-another-level-that-is-long");
    std::fs::write(deep.join("a-file-name-that-pushes-the-whole-path-well-past-one-hundred-bytes.txt"), b"deep")
        .unwrap();
    applets.len()
}

fn run(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().unwrap();
    let (o, e) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "{cmd:?} failed: {e}");
    (o, e)
}

#[test]
fn gnu_tar_reads_our_layer_and_extracts_the_same_tree() {
    need("tar");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("rootfs");
    std::fs::create_dir(&src).unwrap();
    let applets = rootfs(&src);
    assert!(applets > 100, "busybox has {applets} applets");
    for (c, ext) in [(Compression::Gzip, "tar.gz"), (Compression::None, "tar")] {
        let path = tmp.path().join(format!("layer.{ext}"));
        let w = LayerBlobWriter::new(std::fs::File::create(&path).unwrap(), c, None).unwrap();
        let (_, info) = layer::write_dir(&src, w, &WriterOptions::default()).unwrap().finish().unwrap();
        assert_eq!(info.compression, c);

        let (listing, warnings) = run(Command::new("tar").arg("-tvf").arg(&path));
        assert_eq!(warnings, "", "GNU tar has no complaints");
        assert!(listing.lines().any(|l| l.contains("bin/sh -> busybox")), "{listing}");
        assert!(listing.lines().any(|l| l.contains("etc/passwd- link to etc/passwd")), "{listing}");
        assert!(listing.lines().any(|l| l.contains("one-hundred-bytes.txt")));
        // bin/, busybox, applets, etc/ + 4, root/, tmp/, usr/ + 3 dirs + 1 file, var/ + log/
        assert_eq!(listing.lines().count(), applets + 2 + 4 + 2 + 4 + 1 + 2, "{listing}");

        let gnu = tmp.path().join(format!("gnu-{ext}"));
        let ours = tmp.path().join(format!("ours-{ext}"));
        std::fs::create_dir(&gnu).unwrap();
        std::fs::create_dir(&ours).unwrap();
        run(Command::new("tar").arg("-xpf").arg(&path).arg("--numeric-owner").arg("-C").arg(&gnu));
        layer::apply_layer(std::fs::File::open(&path).unwrap(), &ours, &ApplyOptions::default()).unwrap();
        let o = SnapOpts { owners: is_root(), dir_mtimes: true };
        assert_same(&snapshot(&src, &o), &snapshot(&gnu, &o), "source vs GNU tar extraction");
        assert_same(&snapshot(&gnu, &o), &snapshot(&ours, &o), "GNU tar vs our extraction");
    }
}

#[test]
fn we_apply_what_gnu_tar_writes() {
    need("tar");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("rootfs");
    std::fs::create_dir(&src).unwrap();
    rootfs(&src);
    for format in ["gnu", "posix", "ustar"] {
        let path = tmp.path().join(format!("{format}.tar"));
        let mut cmd = Command::new("tar");
        cmd.arg(format!("--format={format}")).arg("-cf").arg(&path).arg("-C").arg(&src).arg(".");
        let out = cmd.output().unwrap();
        if format == "ustar" && !out.status.success() {
            // ustar cannot hold the long file name; GNU tar says so and that is fine.
            continue;
        }
        assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
        let dst = tmp.path().join(format!("out-{format}"));
        std::fs::create_dir(&dst).unwrap();
        layer::apply_layer(std::fs::File::open(&path).unwrap(), &dst, &ApplyOptions::default()).unwrap();
        let o = SnapOpts { owners: is_root(), dir_mtimes: true };
        assert_same(&snapshot(&src, &o), &snapshot(&dst, &o), &format!("GNU tar --format={format}"));
    }
}
