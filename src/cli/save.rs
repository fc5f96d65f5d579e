//! `rbuild save`: write images to an OCI layout tar or a docker archive.

use rbuild_image::store::archive::{ArchiveFormat, save, save_to_path};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

/// Flags of `rbuild save`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Write to this file (`-` for stdout; the default when stdout is not a terminal).
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// `docker` (an OCI layout plus manifest.json: docker load, skopeo and OCI tools read it)
    /// or `oci` (an OCI layout only).
    #[arg(long, default_value = "docker", value_parser = ["oci", "docker"])]
    pub format: String,
    /// Images: name[:tag], name@digest, digest or ID prefix.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// Run `rbuild save`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let format: ArchiveFormat = args.format.parse()?;
    let store = g.store()?;
    let mut images = Vec::new();
    for name in &args.images {
        images.push(store.resolve(name)?);
    }
    match args.output.as_deref() {
        Some(p) if p.as_os_str() != "-" => save_to_path(&store, &images, format, p)?,
        Some(_) => write_stdout(&store, &images, format)?,
        None => {
            if std::io::stdout().is_terminal() {
                anyhow::bail!("refusing to write an archive to a terminal: use -o FILE, or redirect stdout");
            }
            write_stdout(&store, &images, format)?;
        }
    }
    Ok(0)
}

fn write_stdout(
    store: &rbuild_image::Store,
    images: &[rbuild_image::store::Image],
    f: ArchiveFormat,
) -> anyhow::Result<()> {
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    save(store, images, f, &mut w)?;
    w.flush()?;
    Ok(())
}
