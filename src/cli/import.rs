//! `rbuild import`: make an image from a root filesystem tarball, like `docker import`.

use rbuild_image::store::import::{ImportOptions, import};
use rbuild_image::{Platform, Reference};
use std::path::PathBuf;

/// Flags of `rbuild import`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Apply a Dockerfile instruction to the config (CMD, ENTRYPOINT, ENV, WORKDIR, USER,
    /// EXPOSE, LABEL, VOLUME, STOPSIGNAL); repeatable.
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    pub change: Vec<String>,
    /// Comment for the history entry.
    #[arg(short = 'm', long = "message")]
    pub message: Option<String>,
    /// Platform of the image (os/arch[/variant]); default: this host's.
    #[arg(long)]
    pub platform: Option<String>,
    /// The root filesystem tar (plain, .gz or .zst), or `-` for stdin.
    pub file: PathBuf,
    /// The name to give the image: NAME[:TAG].
    pub name: String,
}

/// Run `rbuild import`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    // Check everything a person typed before reading a byte of a possibly huge tar.
    let reference = Reference::parse(&args.name)?.with_default_tag();
    if reference.digest().is_some() {
        anyhow::bail!("invalid name {:?}: an image name for import cannot carry a digest", args.name);
    }
    let platform = args.platform.as_deref().map(Platform::parse).transpose()?;
    let mut probe = rbuild_image::ImageConfig::for_host();
    for c in &args.change {
        rbuild_image::store::import::apply_change(&mut probe, c)?;
    }
    let opts = ImportOptions { changes: args.change, message: args.message, platform, created: None };
    let store = g.store()?;
    let input: Box<dyn std::io::Read + Send> = if args.file.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        let f =
            std::fs::File::open(&args.file).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", args.file.display()))?;
        Box::new(f)
    };
    let imported =
        import(&store, input, &opts).map_err(|e| anyhow::anyhow!("importing {}: {e}", args.file.display()))?;
    store.tag(&reference, &imported.manifest.descriptor())?;
    println!("{}", imported.config_digest);
    Ok(0)
}
