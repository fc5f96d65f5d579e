//! `rbuild save --format oci` / `rbuild load` against real umoci and skopeo: archives name
//! images the way docker, buildah and skopeo do (the tag in
//! `org.opencontainers.image.ref.name`, the full name in `io.containerd.image.name`), and an
//! image an archive does not name fully is loaded untagged, listed and addressable.

mod common;

use common::Env;
use std::path::Path;
use std::process::Command;

fn ok(e: &Env, args: &[&str]) -> String {
    let o = e.rb(args);
    assert!(
        o.status.success(),
        "rbuild {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn peer(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e} (apt-get install skopeo umoci)"));
    assert!(o.status.success(), "{cmd:?}:\n{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn unpack(tar: &Path, dir: &Path) {
    tar::Archive::new(std::fs::File::open(tar).unwrap()).unpack(dir).unwrap();
}

fn index_of(layout: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap()
}

/// A tar of the OCI layout directory `dir` (what `oci-archive:` is).
fn tar_dir(dir: &Path, dest: &Path) {
    let st = Command::new("tar").arg("-C").arg(dir).arg("-cf").arg(dest).arg(".").status().unwrap();
    assert!(st.success());
}

#[test]
fn save_oci_names_the_tag_as_docker_does_and_peers_find_it() {
    let e = Env::new();
    ok(&e, &["tag", "busybox", "bar/busybox:1"]);
    let id = e.config("bar/busybox:1")["Id"].as_str().unwrap().to_string();
    let digest = e.config("bar/busybox:1")["ManifestDigest"].as_str().unwrap().to_string();
    let archive = e.path("bb.tar");
    ok(&e, &["save", "--format", "oci", "-o", archive.to_str().unwrap(), "bar/busybox:1"]);

    let layout = e.path("layout");
    unpack(&archive, &layout);
    let idx = index_of(&layout);
    let ann = &idx["manifests"][0]["annotations"];
    assert_eq!(ann["org.opencontainers.image.ref.name"], "1", "{idx}");
    assert_eq!(ann["io.containerd.image.name"], "docker.io/bar/busybox:1", "{idx}");

    // skopeo and umoci find the image by its tag.
    let out = peer(Command::new("skopeo").arg("inspect").arg(format!("oci-archive:{}:1", archive.display())));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Digest"], digest.as_str());
    let bundle = e.path("bundle");
    peer(
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:1", layout.display()))
            .arg(&bundle),
    );
    assert_eq!(std::fs::read(bundle.join("rootfs/bin/busybox")).unwrap(), std::fs::read("/bin/busybox").unwrap());

    // And rbuild reads its own archive back under the full name.
    let other = Env::bare();
    let out = ok(&other, &["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(out.trim(), "Loaded image: bar/busybox:1");
    assert_eq!(other.config("docker.io/bar/busybox:1")["Id"], id.as_str());
}

#[test]
fn load_reads_the_older_full_name_convention() {
    let e = Env::new();
    let archive = e.path("bb.tar");
    ok(&e, &["save", "--format", "oci", "-o", archive.to_str().unwrap(), "busybox"]);
    // Rewrite index.json as older rbuild wrote it: the full name in ref.name alone.
    let layout = e.path("layout");
    unpack(&archive, &layout);
    let mut idx = index_of(&layout);
    let ann = idx["manifests"][0]["annotations"].as_object_mut().unwrap();
    ann.remove("io.containerd.image.name");
    ann.insert("org.opencontainers.image.ref.name".into(), "localhost:5000/old/name:7".into());
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();
    let old = e.path("old.tar");
    tar_dir(&layout, &old);
    let other = Env::bare();
    let out = ok(&other, &["load", "-i", old.to_str().unwrap()]);
    assert_eq!(out.trim(), "Loaded image: localhost:5000/old/name:7");
}

#[test]
fn images_an_archive_does_not_name_are_kept_untagged_and_addressable() {
    let e = Env::new();
    let id = e.config("busybox")["Id"].as_str().unwrap().to_string();
    let saved = e.path("bb.tar");
    ok(&e, &["save", "--format", "oci", "-o", saved.to_str().unwrap(), "busybox"]);

    // skopeo's archive names the image `img`: a bare tag, no repository.
    let bare = e.path("img.tar");
    peer(
        Command::new("skopeo")
            .arg("copy")
            .arg(format!("oci-archive:{}:latest", saved.display()))
            .arg(format!("oci-archive:{}:img", bare.display())),
    );
    // And a layout with no name at all.
    let unnamed_dir = e.path("unnamed");
    peer(
        Command::new("skopeo")
            .arg("copy")
            .arg(format!("oci-archive:{}:latest", saved.display()))
            .arg(format!("oci:{}", unnamed_dir.display())),
    );
    let idx = index_of(&unnamed_dir);
    assert!(idx["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"].is_null(), "{idx}");
    let unnamed = e.path("unnamed.tar");
    tar_dir(&unnamed_dir, &unnamed);

    for archive in [&bare, &unnamed] {
        let other = Env::bare();
        let out = ok(&other, &["load", "-i", archive.to_str().unwrap()]);
        assert_eq!(out.trim(), format!("Loaded image ID: {id}"), "{}", archive.display());
        // Listed as <none>, and by the dangling filter; addressable by the ID it printed.
        let list = ok(&other, &["images"]);
        let row = list.lines().nth(1).unwrap_or_default().to_string();
        assert!(row.starts_with("<none>") && row.contains(&id[7..19]), "{list}");
        assert_eq!(ok(&other, &["images", "-a", "-q"]).trim(), &id[7..19]);
        assert_eq!(ok(&other, &["images", "--filter", "dangling=true", "-q"]).trim(), &id[7..19]);
        assert_eq!(ok(&other, &["images", "--filter", "dangling=false", "-q"]).trim(), "");
        assert_eq!(other.config(&id)["Id"], id.as_str());
        assert_eq!(other.config(&id[7..19])["Id"], id.as_str());
        // Still whole after rmi of another image that shares its layer.
        let tar = other.busybox_tar();
        ok(&other, &["import", "--change", "CMD [\"true\"]", tar.to_str().unwrap(), "x:1"]);
        ok(&other, &["rmi", "x:1"]);
        assert!(other.config(&id)["Id"].is_string());
        let bundle = other.path("check");
        let out = other.path("check.tar");
        ok(&other, &["save", "--format", "oci", "-o", out.to_str().unwrap(), &id]);
        unpack(&out, &bundle);
        // prune is where untagged images go, as with docker image prune.
        let out = ok(&other, &["prune"]);
        assert!(out.contains("untagged image"), "{out}");
        assert!(!ok(&other, &["images"]).contains("<none>"));
    }
}
