//! `rbuild tag`: give an image another name.

use rbuild_image::Reference;

/// Flags of `rbuild tag`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image: name[:tag], name@digest, digest or ID prefix.
    pub source: String,
    /// The new name: NAME[:TAG].
    pub target: String,
}

/// Run `rbuild tag`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let target = Reference::parse(&args.target)?;
    if target.digest().is_some() {
        anyhow::bail!("invalid tag {:?}: a tag cannot carry a digest", args.target);
    }
    let store = g.store()?;
    let img = store.resolve(&args.source)?;
    let mut d = img.descriptor.clone();
    d.annotations.clear();
    store.tag(&target.with_default_tag(), &d)?;
    Ok(0)
}
