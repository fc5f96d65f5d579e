//! `rbuild run`'s library half: an imported busybox image run as a container (exit code,
//! volumes, kept records, names). The CLI itself is covered by tests/run_cli.rs at the
//! workspace root. Needs root.

mod common;

use common::*;
use rbuild_image::store::import::{ImportOptions, import};
use rbuild_runtime::container::{self, Containers, CreateOptions, Volume};
use rbuild_runtime::sandbox::Sandbox;

fn store_with_image(dir: &std::path::Path) -> rbuild_image::Store {
    let rootfs = dir.join("rootfs");
    busybox_tree(&rootfs);
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", &rootfs).unwrap();
    let tarball = b.into_inner().unwrap();
    let store = rbuild_image::Store::open(&dir.join("store")).unwrap();
    let opts = ImportOptions {
        changes: vec![r#"CMD ["sh", "-c", "exit 3"]"#.into(), "WORKDIR /srv".into()],
        ..Default::default()
    };
    let imported = import(&store, std::io::Cursor::new(tarball), &opts).unwrap();
    let desc = rbuild_image::Descriptor::new(
        imported.manifest.media_type().to_string(),
        imported.manifest.digest().clone(),
        imported.manifest.bytes().len() as u64,
    );
    store.tag(&rbuild_image::Reference::parse("bb:1").unwrap().with_default_tag(), &desc).unwrap();
    store
}

#[test]
fn containers_run_images_from_the_store() {
    require_root();
    let d = tempfile::tempdir().unwrap();
    let store = store_with_image(d.path());
    let sb = Sandbox::new(store.root()).unwrap();
    let run = |opts: &CreateOptions| -> rbuild_runtime::Result<i32> {
        let c = container::create(&store, opts, &sb)?;
        container::run_attached(store.root(), &c, &sb, false, false)
    };
    let mut opts = CreateOptions { image: "bb:1".into(), rm: true, ..Default::default() };
    assert_eq!(run(&opts).unwrap(), 3, "the image's CMD and its exit code");

    let host = d.path().join("vol");
    opts.volumes = vec![Volume::parse(&format!("{}:/v", host.display())).unwrap(), Volume::parse("named:/n").unwrap()];
    opts.cmd = vec!["sh".into(), "-c".into(), "pwd > /v/pwd; echo $HOSTNAME > /v/host; echo n > /n/f; exit 9".into()];
    opts.name = Some("c1".into());
    opts.rm = false;
    assert_eq!(run(&opts).unwrap(), 9);
    assert_eq!(std::fs::read_to_string(host.join("pwd")).unwrap(), "/srv\n");
    assert_eq!(std::fs::read_to_string(host.join("host")).unwrap().trim().len(), 12);
    assert_eq!(std::fs::read_to_string(store.root().join("volumes/named/_data/f")).unwrap(), "n\n");
    let recs = Containers::open(store.root()).list();
    assert_eq!(recs.len(), 1);
    let st = recs[0].state().unwrap();
    assert_eq!((st.status, st.exit_code), (container::Status::Exited, 9));
    assert_eq!(recs[0].config().unwrap().name, "c1");
    let e = run(&opts).unwrap_err().to_string();
    assert!(e.contains("already in use"), "{e}");
    // The kept container's layer survives prune; a --rm'd one left nothing.
    let r = rbuild_runtime::snapshot::prune(
        store.root(),
        rbuild_runtime::sandbox::store_trees(store.root()),
        &Default::default(),
    )
    .unwrap();
    assert!(r.removed.iter().all(|k| !k.starts_with("container-")), "{r:?}");
}
