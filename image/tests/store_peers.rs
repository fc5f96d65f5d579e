//! What the store writes, read by real peers (skopeo, umoci), at the library level.

use rbuild_image::store::archive::{ArchiveFormat, save_to_path};
use rbuild_image::store::import::{ImportOptions, import};
use rbuild_image::{Reference, Store};
use std::path::Path;
use std::process::Command;

fn need(tool: &str) {
    let found = std::env::var("PATH").unwrap_or_default().split(':').any(|d| Path::new(d).join(tool).is_file());
    assert!(found, "{tool} is required for this test and is not installed (apt-get install {tool})");
}

fn peer(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_store_itself_is_an_oci_layout_umoci_and_skopeo_read() {
    need("skopeo");
    need("umoci");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_path("etc/motd").unwrap();
    h.set_size(6);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &b"hello\n"[..]).unwrap();
    let tar = b.into_inner().unwrap();
    let i = import(&store, std::io::Cursor::new(tar), &ImportOptions::default()).unwrap();
    let r = Reference::parse("motd").unwrap().with_default_tag();
    store.tag(&r, &i.manifest.descriptor()).unwrap();
    let name = "docker.io/library/motd:latest";

    // The store directory itself.
    let out = peer(Command::new("skopeo").arg("inspect").arg(format!("oci:{}:{name}", store.root().display())));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Digest"], i.manifest.digest().to_string());

    // And a saved archive, unpacked by umoci: archives name the tag, as docker's do.
    let archive = dir.path().join("motd.tar");
    save_to_path(&store, &[store.resolve("motd").unwrap()], ArchiveFormat::Oci, &archive).unwrap();
    let layout = dir.path().join("layout");
    tar::Archive::new(std::fs::File::open(&archive).unwrap()).unpack(&layout).unwrap();
    let bundle = dir.path().join("bundle");
    peer(
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:latest", layout.display()))
            .arg(&bundle),
    );
    assert_eq!(std::fs::read(bundle.join("rootfs/etc/motd")).unwrap(), b"hello\n");
}
