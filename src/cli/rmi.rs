//! `rbuild rmi`: remove image names; an image whose last name goes is deleted (its blobs
//! that nothing else reaches are collected).

use rbuild_image::Reference;

/// Flags of `rbuild rmi`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Remove every tag of an image given by ID or digest, even when there are several.
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
    let mut untagged = Vec::new();
    for name in &args.images {
        match untag_one(&store, name, args.force) {
            Ok(refs) => {
                for r in refs {
                    println!("Untagged: {}", r.familiar());
                    untagged.push(r);
                }
            }
            Err(e) => {
                eprintln!("error: {}", super::global::render_error(&e));
                failed = true;
            }
        }
    }
    if !untagged.is_empty() {
        // Don't stall behind a long build or pull in another process: its fresh blobs are
        // protected by its lease, and what this rmi freed goes at the next prune instead.
        let report = store.gc_with(rbuild_image::store::GcOptions { no_wait: true, ..Default::default() })?;
        if report.deferred {
            eprintln!(
                "another rbuild is writing to the store: unused blobs will be removed by the next `rbuild prune`"
            );
        }
        for (d, _) in &report.removed {
            println!("Deleted: {d}");
        }
    }
    Ok(if failed { 1 } else { 0 })
}

fn untag_one(store: &rbuild_image::Store, name: &str, force: bool) -> anyhow::Result<Vec<Reference>> {
    // A name that is a tag removes that tag alone.
    if let Ok(r) = Reference::parse(name) {
        if r.digest().is_none() && store.untag(&r)? {
            return Ok(vec![r.with_default_tag()]);
        }
    }
    // Otherwise an ID or digest: every tag that leads to it.
    let img = store.resolve(name)?;
    let mut tags: Vec<Reference> = Vec::new();
    for (r, d) in store.list_tags()? {
        if d.digest == img.descriptor.digest || d.digest == *img.manifest.digest() {
            tags.push(r);
        } else if let Ok(other) = store.load_image(&d, None) {
            if other.config_digest == img.config_digest {
                tags.push(r);
            }
        }
    }
    if tags.len() > 1 && !force {
        let names: Vec<String> = tags.iter().map(|r| r.familiar()).collect();
        anyhow::bail!(
            "image {} is referenced by several tags ({}): remove them by name, or use -f",
            img.config_digest.short(),
            names.join(", ")
        );
    }
    let mut out = Vec::new();
    for r in tags {
        if store.untag(&r)? {
            out.push(r);
        }
    }
    Ok(out)
}
