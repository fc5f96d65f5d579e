//! `rbuild rmi` removes what the user named and nothing else, by docker's rules: a tag
//! moved away leaves its old image as `<none>`; rmi of a tag never deletes blobs of other
//! (untagged) images; an ID named by several tags, or used by a container, is a conflict
//! without -f; prune is where unreachable content goes.

mod common;

use common::Env;

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

fn fails(e: &Env, args: &[&str]) -> String {
    let o = e.rb(args);
    assert!(!o.status.success(), "rbuild {args:?} should fail:\n{}", String::from_utf8_lossy(&o.stdout));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Import the busybox rootfs as `name` with its own CMD (so its own config and ID).
fn import(e: &Env, name: &str, cmd: &str) -> String {
    let tar = e.busybox_tar();
    ok(e, &["import", "--change", &format!("CMD [\"{cmd}\"]"), tar.to_str().unwrap(), name]);
    e.config(name)["Id"].as_str().unwrap().to_string()
}

fn blobs(e: &Env) -> Vec<String> {
    let mut v: Vec<String> = common::files_under(&e.root().join("blobs"))
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn rmi_of_a_tag_leaves_older_untagged_builds_alone() {
    let e = Env::bare();
    let old = import(&e, "app:3", "old");
    // app:3 moves on: the old image stays, untagged, as docker keeps it.
    let new = import(&e, "app:3", "new");
    assert_ne!(old, new);
    let list = ok(&e, &["images", "--filter", "dangling=true", "-q"]);
    assert_eq!(list.trim(), &old[7..19]);
    let before = blobs(&e);

    let out = ok(&e, &["rmi", "app:3"]);
    assert!(out.contains("Untagged: app:3"), "{out}");
    assert!(out.contains(&format!("Deleted: {new}")), "{out}");
    // The old build is whole: its config, its manifest, the shared layer.
    assert_eq!(e.config(&old)["Id"], old.as_str());
    let after = blobs(&e);
    assert_eq!(after.len(), before.len() - 2, "only app:3's manifest and config went: {before:?} -> {after:?}");
    assert!(after.contains(&old[7..].to_string()));

    // Removing the untagged image by ID takes the rest; prune then has nothing to do.
    let out = ok(&e, &["rmi", &old[7..19]]);
    assert!(out.contains(&format!("Deleted: {old}")), "{out}");
    assert!(blobs(&e).is_empty(), "{:?}", blobs(&e));
}

#[test]
fn rmi_by_id_is_a_conflict_while_tags_or_containers_use_it() {
    let e = Env::new();
    let id = e.config("busybox")["Id"].as_str().unwrap().to_string();
    ok(&e, &["tag", "busybox", "also:1"]);
    let err = fails(&e, &["rmi", &id[7..19]]);
    assert!(err.contains("conflict") && err.contains("busybox:latest") && err.contains("also:1"), "{err}");
    assert_eq!(e.config("also:1")["Id"], id.as_str());
    ok(&e, &["rmi", "also:1"]);

    // A stopped container made from it: a conflict without -f, as in docker.
    let o = e.rb(&["run", "busybox", "true"]);
    assert!(o.status.success(), "run: {}", String::from_utf8_lossy(&o.stderr));
    let err = fails(&e, &["rmi", "busybox"]);
    assert!(err.contains("conflict") && err.contains("container"), "{err}");
    assert_eq!(e.config("busybox")["Id"], id.as_str(), "the refused rmi removed nothing");
    let err = fails(&e, &["rmi", &id[7..19]]);
    assert!(err.contains("container"), "{err}");
    let out = ok(&e, &["rmi", "-f", &id[7..19]]);
    assert!(out.contains("Untagged: busybox:latest") && out.contains(&format!("Deleted: {id}")), "{out}");
}

#[test]
fn rmi_keeps_what_another_image_built_on_it_needs() {
    let e = Env::new();
    let ctx = e.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN echo hi > /hi\n").unwrap();
    e.build(&["-t", "child:1", ctx.to_str().unwrap()]);
    let base_layer = e.config("busybox")["Manifest"]["layers"][0]["digest"].as_str().unwrap().to_string();
    ok(&e, &["rmi", "busybox"]);
    assert!(blobs(&e).contains(&base_layer[7..].to_string()), "the child's base layer stays");
    let o = e.rb(&["run", "--rm", "child:1", "cat", "/hi"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hi\n", "{}", String::from_utf8_lossy(&o.stderr));
}
