//! `rbuild rmi`: remove images, by docker's rules. A name removes that tag; when it was the
//! image's last name, the image goes too, with the blobs of its own that no other image,
//! untagged image or build-cache pin still needs. An ID or digest removes the image and
//! every tag of it, refused (a conflict) without `-f` when several tags name it or a
//! container uses it. Nothing outside the image named is touched: unreachable blobs of other
//! images are `rbuild prune`'s job.

use rbuild_image::store::{GcReport, Image};
use rbuild_image::{Descriptor, Digest, Reference, Store};

/// Flags of `rbuild rmi`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Remove the image even when several tags name it or a stopped container uses it.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Images: name[:tag], digest or ID prefix.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// Run `rbuild rmi`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let store = g.store()?;
    let mut failed = false;
    let mut deferred = false;
    for name in &args.images {
        match remove_one(&store, &g.root, name, args.force) {
            Ok(report) => deferred |= report.deferred,
            Err(e) => {
                eprintln!("error: {}", super::global::render_error(&e));
                failed = true;
            }
        }
    }
    if deferred {
        eprintln!("another rbuild is writing to the store: unused blobs will be removed by the next `rbuild prune`");
    }
    Ok(if failed { 1 } else { 0 })
}

/// Every index entry (tagged or not) that is the image `img`: the same top descriptor, the
/// same manifest, or the same config.
fn entries_of(store: &Store, img: &Image) -> anyhow::Result<Vec<(Option<Reference>, Descriptor)>> {
    let mut out = Vec::new();
    for (r, d) in store.list_images()? {
        let same = d.digest == img.descriptor.digest
            || &d.digest == img.manifest.digest()
            || store.load_image(&d, None).is_ok_and(|o| o.config_digest == img.config_digest);
        if same {
            out.push((r, d));
        }
    }
    Ok(out)
}

/// Containers (their short IDs) made from the image `id`.
fn containers_using(root: &std::path::Path, id: &Digest) -> Vec<(String, String)> {
    rbuild_runtime::container::Containers::open(root)
        .list()
        .into_iter()
        .filter_map(|c| Some((c.config().ok()?, c.state().ok()?)))
        .filter(|(c, _)| c.image_id == id.to_string())
        .map(|(c, st)| (c.short_id().to_string(), st.status.to_string()))
        .collect()
}

fn remove_one(store: &Store, root: &std::path::Path, name: &str, force: bool) -> anyhow::Result<GcReport> {
    // A name that is a tag removes that tag; the image goes only with its last name.
    if let Ok(r) = Reference::parse(name) {
        if r.digest().is_none() {
            if let Some(d) = store.lookup_tag(&r)? {
                let img = store.load_image(&d, Some(r.clone())).ok();
                let others = store.list_images()?.into_iter().filter(|(o, e)| {
                    e.digest == d.digest
                        && o.as_ref().is_none_or(|o| o.clone().with_default_tag() != r.clone().with_default_tag())
                });
                if others.count() == 0 {
                    if let Some(img) = &img {
                        check_containers(root, img, force)?;
                    }
                }
                store.untag(&r)?;
                println!("Untagged: {}", r.clone().with_default_tag().familiar());
                return delete_if_unnamed(store, &d);
            }
        }
    }
    // Otherwise an ID or digest: the image, with every name it has.
    let img = store.resolve(name)?;
    let entries = entries_of(store, &img)?;
    if entries.is_empty() {
        // Found by digest, yet no entry is it: a part of another image (a platform of a
        // tagged index) or a blob nothing names.
        anyhow::bail!(
            "conflict: image {} is not an image of its own here (a platform of a multi-platform image?): remove the image that contains it",
            img.config_digest.short()
        );
    }
    let tags: Vec<&Reference> = entries.iter().filter_map(|(r, _)| r.as_ref()).collect();
    if tags.len() > 1 && !force {
        let names: Vec<String> = tags.iter().map(|r| r.familiar()).collect();
        anyhow::bail!(
            "conflict: image {} is referenced by several tags ({}): remove them by name, or use -f",
            img.config_digest.short(),
            names.join(", ")
        );
    }
    check_containers(root, &img, force)?;
    for r in &tags {
        store.untag(r)?;
        println!("Untagged: {}", r.familiar());
    }
    let mut report = GcReport::default();
    let mut done: Vec<Digest> = Vec::new();
    for (_, d) in &entries {
        if done.contains(&d.digest) {
            continue;
        }
        done.push(d.digest.clone());
        store.remove_untagged(&d.digest)?;
        let r = delete_if_unnamed(store, d)?;
        report.deferred |= r.deferred;
    }
    Ok(report)
}

/// Docker's rule: a running container's image cannot go; a stopped one's only with -f.
fn check_containers(root: &std::path::Path, img: &Image, force: bool) -> anyhow::Result<()> {
    let users = containers_using(root, &img.config_digest);
    if let Some((id, _)) = users.iter().find(|(_, s)| s == "running") {
        anyhow::bail!("conflict: image {} is used by running container {id}", img.config_digest.short());
    }
    if let (Some((id, _)), false) = (users.first(), force) {
        anyhow::bail!(
            "conflict: image {} is used by stopped container {id}: use -f to remove it anyway",
            img.config_digest.short()
        );
    }
    Ok(())
}

/// When no index entry names `d` any more, delete its blobs that nothing else needs, and
/// say which.
fn delete_if_unnamed(store: &Store, d: &Descriptor) -> anyhow::Result<GcReport> {
    if store.list_images()?.iter().any(|(_, e)| e.digest == d.digest) {
        return Ok(GcReport::default());
    }
    // Don't stall behind a long build or pull in another process: its fresh blobs are
    // protected by its lease, and what this rmi freed goes at the next prune instead.
    let report = store.remove_image(d, true)?;
    for (digest, _) in &report.removed {
        println!("Deleted: {digest}");
    }
    Ok(report)
}
