//! `rbuild push`: send an image from the local store to a registry.

use super::pull::{TlsFlags, client, runtime};
use anyhow::Context as _;
use rbuild_image::{Reference, media_type};
use rbuild_registry_client::progress;

/// Flags of `rbuild push`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Push every local tag of IMAGE's repository.
    #[arg(short = 'a', long)]
    pub all_tags: bool,
    /// Print only the pushed manifest's digest.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub tls: TlsFlags,
    /// The local image (name, name:tag, or ID).
    pub image: String,
    /// Where to push (default: IMAGE's own name).
    pub dest: Option<String>,
}

/// Run `rbuild push`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let store = g.store()?;
    let client = client(&args.tls)?;
    let prog = progress::for_console(args.quiet);
    // (local image, destination) pairs.
    let mut jobs = Vec::new();
    if args.all_tags {
        let name = Reference::parse(&args.image)?;
        anyhow::ensure!(
            name.tag().is_none() && name.digest().is_none(),
            "--all-tags takes a repository name without tag: {}",
            args.image
        );
        let dest_repo = match &args.dest {
            Some(d) => Reference::parse(d)?,
            None => name.clone(),
        };
        for (r, _) in store.list_tags()? {
            if r.registry() == name.registry() && r.repository() == name.repository() {
                let tag = r.tag().unwrap_or("latest");
                jobs.push((r.to_string(), dest_repo.with_tag(tag)?));
            }
        }
        anyhow::ensure!(!jobs.is_empty(), "no local tags of {}", name.familiar_name());
    } else {
        let dest = match &args.dest {
            Some(d) => Reference::parse(d)?.with_default_tag(),
            None => Reference::parse(&args.image)
                .with_context(|| format!("{}: give a destination (rbuild push IMAGE DEST)", args.image))?
                .with_default_tag(),
        };
        jobs.push((args.image.clone(), dest));
    }
    let rt = runtime()?;
    for (local, dest) in jobs {
        let img = store.resolve(&local)?;
        // A tag that points at an index is pushed whole when every platform is here;
        // otherwise the platform image that was pulled.
        let top = store.read_manifest(&img.descriptor)?;
        let manifest = match top.as_index() {
            Some(idx)
                if idx
                    .manifests
                    .iter()
                    .all(|d| media_type::is_manifest(&d.media_type) && store.has_blob(&d.digest)) =>
            {
                top
            }
            _ => img.manifest.clone(),
        };
        prog.message(&format!("The push refers to repository [{}]", dest.name()));
        let pushed = rt.block_on(client.push(&store, &manifest, &dest, &prog))?;
        if args.quiet {
            super::pull::say(&format!("{}", pushed.digest));
        }
    }
    Ok(0)
}
