//! `rbuild volume` and the mounts of `rbuild run` end to end: named and anonymous volumes,
//! seeding from the image, `--mount`, refusals and bad input. Needs root (CI runs as root)
//! and busybox-static.

mod common;

use common::Env;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output};

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Run and insist on success; returns stdout.
fn ok(e: &Env, args: &[&str]) -> String {
    let o = e.rb(args);
    assert!(o.status.success(), "rbuild {args:?}: {:?}", text(&o));
    text(&o).0
}

/// Run and insist on failure; returns stderr.
fn fails(e: &Env, args: &[&str]) -> String {
    let o = e.rb(args);
    assert!(!o.status.success(), "rbuild {args:?} should fail: {:?}", text(&o));
    text(&o).1
}

fn names(e: &Env) -> Vec<String> {
    ok(e, &["volume", "ls", "-q"]).lines().map(str::to_string).collect()
}

/// Busybox plus `/data` (owned 1000:1000, mode 0750, holding `f` and `sub/g`), imported as
/// `seeded` with `VOLUME /data`.
fn import_seeded(e: &Env) {
    e.busybox_tar();
    let rootfs = e.path("rootfs");
    std::fs::create_dir_all(rootfs.join("data/sub")).unwrap();
    std::fs::write(rootfs.join("data/f"), "from-image\n").unwrap();
    std::fs::write(rootfs.join("data/sub/g"), "deep\n").unwrap();
    std::os::unix::fs::chown(rootfs.join("data"), Some(1000), Some(1000)).unwrap();
    std::fs::set_permissions(rootfs.join("data"), std::os::unix::fs::PermissionsExt::from_mode(0o750)).unwrap();
    let tar = e.path("seeded.tar");
    let st = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .args(["bin", "etc", "data"])
        .status()
        .unwrap();
    assert!(st.success());
    ok(e, &["import", "-c", r#"VOLUME ["/data"]"#, "-c", r#"CMD ["sh"]"#, tar.to_str().unwrap(), "seeded"]);
}

#[test]
fn named_volumes_outlive_containers_and_go_with_volume_rm() {
    let e = Env::new();
    assert_eq!(ok(&e, &["volume", "create", "--label", "team=web", "data"]), "data\n");
    ok(&e, &["run", "--rm", "-v", "data:/srv", "busybox", "sh", "-c", "echo kept > /srv/f"]);
    // Made on first use by -v too.
    ok(&e, &["run", "--rm", "--mount", "source=other,target=/o", "busybox", "true"]);
    assert_eq!(names(&e), vec!["data", "other"]);
    assert_eq!(ok(&e, &["run", "--rm", "-v", "data:/srv:ro", "busybox", "cat", "/srv/f"]), "kept\n");
    let o = e.rb(&["run", "--rm", "-v", "data:/srv:ro", "busybox", "sh", "-c", "echo x > /srv/f"]);
    assert_ne!(o.status.code(), Some(0), "read-only: {:?}", text(&o));
    // The files are in <root>/volumes/<name>/_data.
    let mp = ok(&e, &["volume", "inspect", "-f", "{{.Mountpoint}}", "data"]);
    assert_eq!(std::path::Path::new(mp.trim()), e.root().join("volumes/data/_data"));
    assert_eq!(std::fs::read_to_string(e.root().join("volumes/data/_data/f")).unwrap(), "kept\n");
    let j: serde_json::Value = serde_json::from_str(&ok(&e, &["volume", "inspect", "data"])).unwrap();
    assert_eq!(j[0]["Name"], "data");
    assert_eq!(j[0]["Driver"], "local");
    assert_eq!(j[0]["Scope"], "local");
    assert_eq!(j[0]["Labels"]["team"], "web");
    assert!(j[0]["CreatedAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(ok(&e, &["volume", "ls", "-q", "--filter", "label=team=web"]), "data\n");
    assert_eq!(ok(&e, &["volume", "ls", "--filter", "name=oth"]), "DRIVER    VOLUME NAME\nlocal     other\n");
    assert_eq!(ok(&e, &["volume", "rm", "data", "other"]), "data\nother\n");
    assert!(names(&e).is_empty());
    assert!(!e.root().join("volumes/data").exists());
    let err = fails(&e, &["volume", "rm", "data"]);
    assert!(err.contains("no such volume"), "{err}");
    assert_eq!(ok(&e, &["volume", "rm", "-f", "data"]), "");
    let err = fails(&e, &["volume", "inspect", "data"]);
    assert!(err.contains("data: no such volume"), "{err}");
}

#[test]
fn image_volumes_are_anonymous_and_seeded_only_when_empty() {
    let e = Env::new();
    import_seeded(&e);
    // An anonymous volume, seeded from the image, gone with --rm.
    assert_eq!(ok(&e, &["run", "--rm", "seeded", "cat", "/data/f", "/data/sub/g"]), "from-image\ndeep\n");
    assert!(names(&e).is_empty(), "run --rm removes its anonymous volumes: {:?}", names(&e));
    // A named volume at the VOLUME path: seeded on first use, with the directory's owner and mode...
    ok(&e, &["run", "--rm", "-v", "keep:/data", "seeded", "sh", "-c", "cat /data/f; echo mine > /data/f"]);
    let m = std::fs::metadata(e.root().join("volumes/keep/_data")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1000, 1000, 0o750));
    // ...then never again: what the container wrote is what the next one sees.
    assert_eq!(ok(&e, &["run", "--rm", "-v", "keep:/data", "seeded", "cat", "/data/f"]), "mine\n");
    assert_eq!(names(&e), vec!["keep"], "the named volume outlives --rm");
    // nocopy: an empty volume stays empty.
    assert_eq!(ok(&e, &["run", "--rm", "-v", "bare:/data:nocopy", "seeded", "ls", "-A", "/data"]), "");
    // Seeding takes the image's files even where the volume is mounted elsewhere than VOLUME.
    assert_eq!(ok(&e, &["run", "--rm", "-v", "sub:/data/sub", "seeded", "cat", "/data/sub/g"]), "deep\n");
    // A kept container keeps its anonymous volume.
    ok(&e, &["run", "seeded", "true"]);
    let anon: Vec<String> = ok(&e, &["volume", "ls", "-q", "--filter", "label=com.docker.volume.anonymous"])
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(anon.len(), 1);
    assert_eq!(anon[0].len(), 64);
}

#[test]
fn mount_flag_tmpfs_and_binds() {
    let e = Env::new();
    let host = e.path("host");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("in"), "from-host").unwrap();
    let bind = format!("type=bind,src={},dst=/h,readonly", host.display());
    let out = ok(
        &e,
        &[
            "run",
            "--rm",
            "--mount",
            &bind,
            "--mount",
            "type=tmpfs,destination=/t,tmpfs-size=1m",
            "busybox",
            "sh",
            "-c",
            "cat /h/in; echo; grep ' /t ' /proc/mounts | cut -d' ' -f3; touch /h/x 2>/dev/null || echo ro",
        ],
    );
    assert_eq!(out, "from-host\ntmpfs\nro\n");
    // A volume backed by tmpfs (--opt type=tmpfs): nothing is kept between runs.
    ok(&e, &["volume", "create", "-o", "type=tmpfs", "-o", "o=size=1m", "scratch"]);
    let out =
        ok(&e, &["run", "--rm", "-v", "scratch:/s", "busybox", "sh", "-c", "grep ' /s ' /proc/mounts | cut -d' ' -f3"]);
    assert_eq!(out, "tmpfs\n");
}

#[test]
fn bad_names_and_mount_strings_are_clear_errors_that_make_nothing() {
    let e = Env::new();
    for (args, want) in [
        (&["volume", "create", "x"][..], "invalid volume name"),
        (&["volume", "create", "bad/name"][..], "invalid volume name"),
        (&["volume", "create", "-d", "nfs", "vv"][..], "only local"),
        (&["volume", "create", "-o", "type=nfs", "vv"][..], "type=nfs"),
        (&["volume", "ls", "--filter", "colour=red"][..], "colour"),
        (&["run", "--rm", "-v", "a:/x", "busybox", "true"][..], "invalid characters"),
        (&["run", "--rm", "-v", "data:relative", "busybox", "true"][..], "absolute"),
        (&["run", "--rm", "-v", "data:/x:rx", "busybox", "true"][..], "rx"),
        (&["run", "--rm", "--mount", "type=bind,dst=/x", "busybox", "true"][..], "source is required"),
        (
            &["run", "--rm", "--mount", "type=bind,src=/nonexistent/rbuild,dst=/x", "busybox", "true"][..],
            "does not exist",
        ),
        (&["run", "--rm", "--mount", "type=floppy,dst=/x", "busybox", "true"][..], "floppy"),
        (&["run", "--rm", "--mount", "src=vol1,dst=/x,tmpfs-size=1m", "busybox", "true"][..], "cannot mix"),
        (&["run", "--rm", "-v", "/x", "-v", "vol2:/x", "busybox", "true"][..], "Duplicate mount point"),
        (&["run", "--rm", "--volumes-from", "nobody", "busybox", "true"][..], "No such container"),
    ] {
        let err = fails(&e, args);
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    assert!(names(&e).is_empty(), "a failed command made volumes: {:?}", names(&e));
    let leftovers: Vec<_> = std::fs::read_dir(e.root().join("volumes"))
        .map(|rd| rd.flatten().map(|x| x.file_name()).filter(|n| n != ".lock").collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn prune_takes_unused_anonymous_volumes_or_all_with_a() {
    let e = Env::new();
    ok(&e, &["volume", "create", "named1"]);
    ok(&e, &["volume", "create", "--label", "keep=yes", "named2"]);
    ok(&e, &["volume", "create", "--label", "com.docker.volume.anonymous", "anon1"]);
    assert_eq!(names(&e).len(), 3);
    // Declined: nothing goes.
    let o = e.rb_in(&["volume", "prune"], Some(b"n\n"));
    assert!(o.status.success());
    assert!(text(&o).1.contains("anonymous local volumes"), "{:?}", text(&o));
    assert_eq!(names(&e).len(), 3);
    let out = ok(&e, &["volume", "prune", "-f"]);
    assert!(out.starts_with("Deleted Volumes:\nanon1\n") && out.contains("Total reclaimed space:"), "{out}");
    assert_eq!(names(&e), vec!["named1", "named2"]);
    let out = ok(&e, &["volume", "prune", "-a", "-f", "--filter", "label!=keep"]);
    assert!(out.contains("named1\n"), "{out}");
    assert_eq!(names(&e), vec!["named2"]);
}

#[test]
fn volumes_in_use_are_kept_and_rm_v_takes_only_anonymous_ones() {
    let e = Env::new();
    import_seeded(&e);
    let id = ok(&e, &["create", "--name", "user1", "-v", "data:/d", "-v", "/scratch", "seeded", "true"]);
    let id = id.trim();
    let vols = names(&e);
    // data, the -v /scratch one and the image's /data one.
    assert_eq!(vols.len(), 3, "{vols:?}");
    let anon: Vec<String> = ok(&e, &["volume", "ls", "-q", "--filter", "label=com.docker.volume.anonymous"])
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(anon.len(), 2);
    // In use (even by a container that never ran): refused, naming it; prune leaves it too.
    let err = fails(&e, &["volume", "rm", "data"]);
    assert!(err.contains("volume is in use") && err.contains(id), "{err}");
    let err = fails(&e, &["volume", "rm", "-f", &anon[0]]);
    assert!(err.contains("in use"), "{err}");
    ok(&e, &["volume", "prune", "-a", "-f"]);
    assert_eq!(names(&e).len(), 3);
    assert_eq!(ok(&e, &["volume", "ls", "-q", "--filter", "dangling=true"]), "");
    // The container runs with them, and the image's files are seeded into the /data one.
    ok(&e, &["start", "-a", "user1"]);
    let o = ok(&e, &["run", "--rm", "--volumes-from", "user1", "busybox", "sh", "-c", "cat /data/f; echo hi > /d/f"]);
    assert_eq!(o, "from-image\n");
    assert_eq!(std::fs::read_to_string(e.root().join("volumes/data/_data/f")).unwrap(), "hi\n");
    let o = ok(
        &e,
        &["run", "--rm", "--volumes-from", "user1:ro", "busybox", "sh", "-c", "touch /d/x 2>/dev/null || echo ro"],
    );
    assert_eq!(o, "ro\n");
    // rm without -v: every volume survives; now they are dangling.
    ok(&e, &["rm", "user1"]);
    assert_eq!(names(&e).len(), 3);
    assert_eq!(ok(&e, &["volume", "ls", "-q", "--filter", "dangling=true"]).lines().count(), 3);
    ok(&e, &["volume", "rm", &anon[0], &anon[1]]);
    // rm -v: the anonymous ones go with the container, the named one stays.
    ok(&e, &["create", "--name", "user2", "-v", "data:/d", "seeded", "true"]);
    assert_eq!(names(&e).len(), 2);
    ok(&e, &["rm", "-v", "user2"]);
    assert_eq!(names(&e), vec!["data"]);
    assert_eq!(ok(&e, &["volume", "rm", "data"]), "data\n");
    assert!(names(&e).is_empty());
}

#[path = "common/test_user.rs"]
mod test_user;

#[test]
fn rootless_volumes_are_used_and_removed_by_their_user() {
    for tool in ["/usr/sbin/runuser", "/usr/bin/newuidmap", "/usr/bin/newgidmap"] {
        assert!(std::path::Path::new(tool).exists(), "{tool} is missing (apt-get install util-linux uidmap)");
    }
    let (user, _) = test_user::ensure();
    let e = Env::bare();
    std::fs::set_permissions(e.dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    import_seeded(&e);
    let tar = e.path("seeded.tar");
    let root = e.path("rootless-store");
    std::fs::create_dir_all(&root).unwrap();
    std::os::unix::fs::chown(&root, Some(test_user::UID), None).unwrap();
    let rb = |args: &[&str]| -> Output {
        Command::new("runuser")
            .args(["-u", &user, "--"])
            .arg(common::RBUILD)
            .arg("--root")
            .arg(&root)
            .args(args)
            .env("HOME", e.dir.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let ok = |args: &[&str]| -> String {
        let o = rb(args);
        assert!(o.status.success(), "rootless rbuild {args:?}: {:?}", text(&o));
        text(&o).0
    };
    ok(&["import", "-c", r#"VOLUME ["/data"]"#, tar.to_str().unwrap(), "seeded"]);
    // A file owned by a user of the container is a subordinate id on the host...
    let out =
        ok(&["run", "--rm", "-v", "vol:/v", "seeded", "sh", "-c", "cat /data/f; echo x > /v/f; chown 1000:1000 /v/f"]);
    assert_eq!(out, "from-image\n");
    // Seeded in the user namespace: the image's owner and mode are kept.
    assert_eq!(ok(&["run", "--rm", "seeded", "stat", "-c", "%u:%g:%a", "/data"]), "1000:1000:750\n");
    let m = std::fs::metadata(root.join("volumes/vol/_data/f")).unwrap();
    assert_ne!(m.uid(), test_user::UID);
    assert_eq!(ok(&["run", "--rm", "-v", "vol:/v", "seeded", "stat", "-c", "%u", "/v/f"]), "1000\n");
    // ...and still the user removes it.
    assert_eq!(ok(&["volume", "rm", "vol"]), "vol\n");
    assert!(!root.join("volumes/vol").exists());
    assert_eq!(ok(&["volume", "ls", "-q"]), "");
}
