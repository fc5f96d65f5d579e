//! RUN changes become layers: created, modified and deleted files and directories (with
//! whiteouts and opaque directories) that, re-applied on the base, give exactly the tree
//! the command saw; for both snapshot drivers. And a malicious layer stays contained.
//! Needs root (CI runs as root).

mod common;

use common::*;
use rbuild_image::Compression;
use rbuild_image::layer::{ApplyOptions, OverlayXattr, WhiteoutMode, WriterOptions, apply_tar};
use rbuild_runtime::diff::{self, Exclude};
use rbuild_runtime::sandbox::{RunSpec, Sandbox};
use rbuild_runtime::snapshot::{self, Snapshotter, WhiteoutStyle, copy::Copy, overlay::Overlay};
use std::io::Read;
use std::path::Path;

/// A manifest of the tree: every path (minus the sandbox's own mounts) with type, mode,
/// owner, size, mtime, link target and a content hash, as seen inside a sandbox.
const MANIFEST: &str = "cd / && find . -xdev | grep -vE '^\\./(proc|sys|dev)/|^\\./etc/(hosts|resolv.conf|hostname)$' | sort | \
    while read f; do if [ -f \"$f\" ] && [ ! -L \"$f\" ]; then h=$(md5sum < \"$f\" | cut -c1-8); else h=-; fi; \
    echo \"$f $(stat -c '%F %a %u:%g %s %Y %N' \"$f\" | sed 's/.* -> /-> /;t;s/ [^ ]*$//') $h\"; done";

fn base_tree(dir: &Path) {
    busybox_tree(dir);
    for d in ["dev", "proc", "sys", "opt/old/sub", "var/lib/gone", "srv"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    for f in ["etc/hosts", "etc/resolv.conf", "etc/hostname"] {
        std::fs::write(dir.join(f), "").unwrap();
    }
    std::fs::write(dir.join("opt/old/a"), "old a").unwrap();
    std::fs::write(dir.join("opt/old/sub/b"), "old b").unwrap();
    std::fs::write(dir.join("var/lib/gone/file"), "bye").unwrap();
    std::fs::write(dir.join("srv/keep"), "keep").unwrap();
    std::fs::write(dir.join("srv/edit"), "v1").unwrap();
}

const SCRIPT: &str = "set -e
mkdir -p /new/deep/dir && echo created > /new/deep/dir/f
echo v2 >> /srv/edit
chmod 600 /srv/keep
chown 1000:1000 /srv/keep
rm -rf /var/lib/gone
rm /bin/vi
rm -rf /opt/old && mkdir -p /opt/old && echo fresh > /opt/old/only
ln -s ../srv/edit /new/link
ln /new/deep/dir/f /new/hard
mkfifo /new/fifo
touch -d @1000000000 /new/dated";

fn run_case(sn: &dyn Snapshotter, root: &Path) {
    let sb = Sandbox::new(root).unwrap();
    sn.prepare("x-base", None).unwrap();
    let (fs, _) = sn.extract_dir("x-base").unwrap();
    base_tree(&fs);
    sn.commit("base", "x-base").unwrap();

    let spec = RunSpec { rootfs: sn.prepare("step", Some("base")).unwrap(), ..Default::default() };
    let (out, _, err) = sh(&sb, &spec, SCRIPT);
    assert_eq!(out.code, 0, "{out:?} {err}");
    // What the command saw, from a second run on the same writable snapshot.
    let (o2, seen, err) = sh(&sb, &RunSpec { rootfs: sn.mounts("step").unwrap(), ..Default::default() }, MANIFEST);
    assert_eq!(o2.code, 0, "{err}");
    assert!(seen.contains("./new/deep/dir/f regular file 644 0:0 8"), "{seen}");
    assert!(!seen.contains("./var/lib/gone"));

    // The layer.
    let changes = diff::changes(&sn.diff_source("step").unwrap(), &Exclude::from_outcome(&out), None).unwrap();
    let (blob, info) = diff::write_to(Vec::new(), changes, Compression::Gzip, &WriterOptions::default()).unwrap();
    assert_eq!(info.digest, rbuild_image::Digest::sha256_of(&blob));
    let mut tar = Vec::new();
    flate2_free_gunzip(&blob, &mut tar);
    assert_eq!(info.diff_id, rbuild_image::Digest::sha256_of(&tar));
    let names: Vec<String> = tar::Archive::new(&tar[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in ["var/lib/.wh.gone", "bin/.wh.vi", "new/deep/dir/f", "srv/edit"] {
        assert!(names.iter().any(|n| n == want), "{want} missing from the layer: {names:?}");
    }
    if sn.name() == "overlay" {
        assert!(names.iter().any(|n| n == "opt/old/.wh..wh..opq"), "opaque dir missing: {names:?}");
    }
    for never in ["etc/hosts", "etc/resolv.conf", "etc/hostname", "dev", "proc"] {
        assert!(
            !names.iter().any(|n| n.trim_end_matches('/') == never || n.starts_with(&format!("{never}/"))),
            "{never} in the layer: {names:?}"
        );
    }

    // Re-applied on the base (as the next build step would see it): the same tree.
    sn.prepare("replay", Some("base")).unwrap();
    let (dir, style) = sn.extract_dir("replay").unwrap();
    let whiteouts = match style {
        WhiteoutStyle::Overlay => WhiteoutMode::Overlay { xattr: OverlayXattr::Trusted },
        WhiteoutStyle::Delete => WhiteoutMode::Apply,
    };
    apply_tar(&tar[..], &dir, &ApplyOptions { whiteouts, ..Default::default() }).unwrap();
    let (o3, replayed, err) =
        sh(&sb, &RunSpec { rootfs: sn.mounts("replay").unwrap(), ..Default::default() }, MANIFEST);
    assert_eq!(o3.code, 0, "{err}");
    let (seen, replayed) = (strip_dir_mtimes(&seen), strip_dir_mtimes(&replayed));
    assert_eq!(seen, replayed, "the re-applied layer differs from what the command saw");
}

/// Directory mtimes move when a sandbox creates or removes its mount points; files keep
/// theirs exactly (whole seconds, as tar records them).
fn strip_dir_mtimes(m: &str) -> String {
    m.lines()
        .map(
            |l| {
                if l.contains(" directory ") {
                    l.split(' ').take(5).collect::<Vec<_>>().join(" ")
                } else {
                    l.to_string()
                }
            },
        )
        .collect::<Vec<_>>()
        .join("\n")
}

fn flate2_free_gunzip(blob: &[u8], out: &mut Vec<u8>) {
    let (_, mut r) = rbuild_image::layer::decompress(std::io::Cursor::new(blob.to_vec())).unwrap();
    r.read_to_end(out).unwrap();
}

#[test]
fn overlay_layers_replay_exactly() {
    require_root();
    let d = tempfile::tempdir().unwrap();
    let sn = Overlay::new(&d.path().join("snapshots/overlay"), rbuild_runtime::sandbox::store_trees(d.path())).unwrap();
    run_case(&sn, d.path());
}

#[test]
fn copy_fallback_layers_replay_exactly() {
    require_root();
    let d = tempfile::tempdir().unwrap();
    let sn = Copy::new(&d.path().join("snapshots/copy"), rbuild_runtime::sandbox::store_trees(d.path())).unwrap();
    run_case(&sn, d.path());
}

#[test]
fn mountpoints_created_by_the_sandbox_stay_out_of_the_layer() {
    require_root();
    let d = tempfile::tempdir().unwrap();
    let sn = snapshot::open(d.path(), rbuild_runtime::sandbox::store_trees(d.path())).unwrap();
    let sb = Sandbox::new(d.path()).unwrap();
    sn.prepare("x", None).unwrap();
    busybox_tree(&sn.extract_dir("x").unwrap().0);
    std::fs::remove_dir_all(sn.extract_dir("x").unwrap().0.join("tmp")).unwrap();
    sn.commit("b", "x").unwrap();
    let mut spec = RunSpec { rootfs: sn.prepare("s", Some("b")).unwrap(), ..Default::default() };
    spec.mounts = vec![rbuild_runtime::sandbox::MountSpec::Tmpfs { target: "/tmp/scratch/t".into(), size: None }];
    let (out, _, _) = sh(&sb, &spec, "echo hi > /tmp/scratch/t/x; echo kept > /root/kept");
    assert_eq!(out.code, 0);
    let changes = diff::changes(&sn.diff_source("s").unwrap(), &Exclude::from_outcome(&out), None).unwrap();
    let mut paths: Vec<String> = changes
        .iter()
        .map(|c| match c {
            rbuild_image::layer::Change::Add(a) => a.path.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    paths.sort();
    // /etc was copied up (hosts, resolv.conf, hostname were created in it) but only its
    // mtime moved: left out. /root/kept is the only real change.
    assert_eq!(paths, ["root", "root/kept"], "{changes:?}");
}

#[test]
fn a_malicious_layer_cannot_escape_its_snapshot() {
    require_root();
    let d = tempfile::tempdir().unwrap();
    let outside = d.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let sn = Overlay::new(&d.path().join("snapshots/overlay"), rbuild_runtime::sandbox::store_trees(d.path())).unwrap();
    // Layer 1: a symlink pointing out of the rootfs, then a file written through it, and a
    // `..` path.
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    tar.append_link(&mut h, "evil", &outside).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    tar.append_data(&mut h, "evil/pwned", &b"pwnd"[..]).unwrap();
    let mut raw = tar.into_inner().unwrap();
    // A `../escape` entry written by hand (the tar crate refuses to).
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..9].copy_from_slice(b"../escape");
    h.set_size(0);
    h.set_mode(0o644);
    h.set_cksum();
    raw.truncate(raw.len() - 1024);
    raw.extend_from_slice(h.as_bytes());
    raw.extend_from_slice(&[0u8; 1024]);
    let diff_id = rbuild_image::Digest::sha256_of(&raw);
    let r = snapshot::unpack(&sn, &[diff_id], &mut |_, dir, _| {
        apply_tar(
            &raw[..],
            dir,
            &ApplyOptions { whiteouts: WhiteoutMode::Overlay { xattr: OverlayXattr::Trusted }, ..Default::default() },
        )?;
        Ok(())
    });
    assert!(std::fs::read_dir(&outside).unwrap().next().is_none(), "the layer wrote outside its snapshot");
    assert!(!d.path().join("snapshots/overlay/escape").exists() && !d.path().join("snapshots/escape").exists());
    assert!(r.is_err(), "a layer with `..` must be refused");
    assert!(sn.list().unwrap().is_empty(), "a refused layer leaves no snapshot: {:?}", sn.list().unwrap());
}

#[test]
fn prune_keeps_what_is_asked_and_its_ancestors() {
    let d = tempfile::tempdir().unwrap();
    let sn = Overlay::new(&d.path().join("snapshots/overlay"), rbuild_runtime::sandbox::store_trees(d.path())).unwrap();
    for (name, parent) in [("a", None), ("b", Some("a")), ("c", Some("b")), ("z", None)] {
        sn.prepare(&format!("k-{name}"), parent).unwrap();
        sn.commit(name, &format!("k-{name}")).unwrap();
    }
    let keep = ["b".to_string()].into_iter().collect();
    let r = snapshot::prune(d.path(), rbuild_runtime::sandbox::store_trees(d.path()), &keep).unwrap();
    let mut removed = r.removed.clone();
    removed.sort();
    assert_eq!(removed, ["c", "z"]);
    let left: Vec<String> = sn.list().unwrap().into_iter().map(|i| i.key).collect();
    assert_eq!(left, ["a", "b"]);
}
