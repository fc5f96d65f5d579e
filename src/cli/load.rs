//! `rbuild load`: read images from an OCI layout tar or a docker archive.

use rbuild_image::store::archive::load;
use std::path::PathBuf;

/// Flags of `rbuild load`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Read from this file instead of stdin (plain, gzip or zstd).
    #[arg(short = 'i', long)]
    pub input: Option<PathBuf>,
    /// Don't print what was loaded.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// Run `rbuild load`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let store = g.store()?;
    let (what, input): (String, Box<dyn std::io::Read + Send>) = match &args.input {
        Some(p) if p.as_os_str() != "-" => {
            let f = std::fs::File::open(p).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", p.display()))?;
            (p.display().to_string(), Box::new(f))
        }
        _ => ("stdin".to_string(), Box::new(std::io::stdin())),
    };
    let loaded = load(&store, input).map_err(|e| anyhow::anyhow!("loading {what}: {e}"))?;
    if !args.quiet {
        for l in &loaded {
            match (&l.reference, &l.config_digest) {
                (Some(r), _) => println!("Loaded image: {}", r.familiar()),
                (None, Some(id)) => println!("Loaded image ID: {id}"),
                (None, None) => println!("Loaded image ID: {}", l.descriptor.digest),
            }
        }
    }
    Ok(0)
}
