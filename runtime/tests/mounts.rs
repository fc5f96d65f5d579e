//! RUN --mount types in the sandbox: bind, cache (kept between runs; sharing modes),
//! tmpfs, secret (read-only, in memory, never in the layer), ssh. Needs root.

mod common;

use common::*;
use rbuild_runtime::diff::{self, Exclude};
use rbuild_runtime::sandbox::{BindSource, CacheSharing, MountSpec, RunSpec, Sandbox, SecretSource};
use rbuild_runtime::snapshot::{self, Snapshotter};

fn setup() -> (tempfile::TempDir, Box<dyn Snapshotter>, Sandbox) {
    require_root();
    let d = tempfile::tempdir().unwrap();
    let sn = snapshot::open(d.path(), rbuild_runtime::sandbox::store_trees(d.path())).unwrap();
    sn.prepare("x", None).unwrap();
    busybox_tree(&sn.extract_dir("x").unwrap().0);
    sn.commit("base", "x").unwrap();
    let sb = Sandbox::new(d.path()).unwrap();
    (d, sn, sb)
}

fn cache(id: &str, sharing: CacheSharing) -> MountSpec {
    MountSpec::Cache {
        id: id.into(),
        target: "/cache".into(),
        sharing,
        uid: 1000,
        gid: 1000,
        mode: 0o755,
        readonly: false,
    }
}

#[test]
fn cache_mounts_keep_their_content_between_runs() {
    let (_d, sn, sb) = setup();
    let mut spec = RunSpec {
        rootfs: sn.prepare("a", Some("base")).unwrap(),
        mounts: vec![cache("go-build", CacheSharing::Shared)],
        ..Default::default()
    };
    let (o, _, e) = sh(&sb, &spec, "echo one >> /cache/log; stat -c %u:%g /cache");
    assert_eq!(o.code, 0, "{e}");
    spec.rootfs = sn.prepare("b", Some("base")).unwrap();
    let (o, out, _) = sh(&sb, &spec, "echo two >> /cache/log; cat /cache/log");
    assert_eq!(o.code, 0);
    assert_eq!(out, "one\ntwo\n");
    // The cache is not part of the layer.
    let ch = diff::changes(&sn.diff_source("b").unwrap(), &Exclude::from_outcome(&o), None).unwrap();
    assert!(ch.is_empty(), "{ch:?}");
    // locked: works the same, one at a time.
    spec.mounts = vec![cache("go-build", CacheSharing::Locked)];
    let (_, out, _) = sh(&sb, &spec, "cat /cache/log");
    assert_eq!(out, "one\ntwo\n");
}

#[test]
fn private_cache_gets_its_own_dir_when_busy() {
    let (d, sn, sb) = setup();
    let spec = RunSpec {
        rootfs: sn.prepare("a", Some("base")).unwrap(),
        mounts: vec![cache("p", CacheSharing::Private)],
        ..Default::default()
    };
    sh(&sb, &spec, "echo mine > /cache/f");
    // Hold the lock as another private user would.
    let lock = std::fs::read_dir(d.path().join("cache-mounts"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".lock"))
        .unwrap();
    let f = std::fs::File::open(lock.path()).unwrap();
    assert_eq!(unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) }, 0);
    let (_, out, _) = sh(&sb, &spec, "ls /cache | wc -l");
    assert_eq!(out.trim(), "0", "a busy private cache gives a fresh directory");
    drop(f);
    let (_, out, _) = sh(&sb, &spec, "cat /cache/f");
    assert_eq!(out, "mine\n");
}

#[test]
fn binds_tmpfs_secrets_and_ssh() {
    let (d, sn, sb) = setup();
    let ctx = d.path().join("context");
    std::fs::create_dir_all(ctx.join("src")).unwrap();
    std::fs::write(ctx.join("src/main.c"), "int main;").unwrap();
    let secret_file = d.path().join("token.txt");
    std::fs::write(&secret_file, "s3cr3t").unwrap();
    let sock_path = d.path().join("agent.sock");
    let _sock = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let mut spec = RunSpec {
        rootfs: sn.prepare("a", Some("base")).unwrap(),
        mounts: vec![
            MountSpec::Bind {
                source: BindSource::Host(ctx.clone()),
                subpath: "/src".into(),
                target: "/src".into(),
                readonly: true,
            },
            MountSpec::Bind {
                source: BindSource::Host(ctx.clone()),
                subpath: "/".into(),
                target: "/rw".into(),
                readonly: false,
            },
            MountSpec::Tmpfs { target: "/scratch".into(), size: Some(1 << 20) },
            MountSpec::Secret { id: "tok".into(), target: None, uid: 0, gid: 0, mode: 0o400, required: true },
            MountSpec::Secret {
                id: "other".into(),
                target: Some("/etc/other".into()),
                uid: 1000,
                gid: 1000,
                mode: 0o440,
                required: true,
            },
            MountSpec::Ssh { id: "default".into(), target: None, uid: 0, gid: 0, mode: 0o600, required: true },
        ],
        ..Default::default()
    };
    spec.secrets.insert("tok".into(), SecretSource::File(secret_file.clone()));
    spec.secrets.insert("other".into(), SecretSource::Bytes(b"inline".to_vec()));
    spec.ssh_agents.insert("default".into(), sock_path.clone());
    let script = "cat /src/main.c; echo; if touch /src/x 2>/dev/null; then echo src-writable; fi; echo made > /rw/made; \
        df -k /scratch | tail -1 | awk '{print $2}'; cat /run/secrets/tok; echo; stat -c '%a %u' /run/secrets/tok; \
        if echo x > /run/secrets/tok 2>/dev/null; then echo secret-writable; fi; cat /etc/other; echo; stat -c '%a %u:%g' /etc/other; \
        echo $SSH_AUTH_SOCK; test -S $SSH_AUTH_SOCK && echo sock; grep -c s3cr3t /proc/self/mountinfo || true";
    let (o, out, err) = sh(&sb, &spec, script);
    assert_eq!(o.code, 0, "{err}");
    assert_eq!(
        out, "int main;\n1024\ns3cr3t\n400 0\ninline\n440 1000:1000\n/run/buildkit/ssh_agent.0\nsock\n0\n",
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(ctx.join("made")).unwrap(), "made\n");
    // Nothing of the secrets, mount points or the scratch tmpfs reaches the layer.
    let ch = diff::changes(&sn.diff_source("a").unwrap(), &Exclude::from_outcome(&o), None).unwrap();
    assert!(ch.is_empty(), "{ch:?}");
    // A required secret that is missing is an error naming it.
    spec.secrets.clear();
    let e = rbuild_runtime::sandbox::Executor::run(
        &sb,
        &RunSpec { args: vec!["true".into()], ..spec.clone() },
        Captured::default().io(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("secret tok is required"), "{e}");
}
