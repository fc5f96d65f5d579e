//! `rbuild export`: a container's root filesystem as a tar, like `docker export` (its
//! writable layer over its image's layers; volumes, /proc and /dev left out).

use std::path::PathBuf;

/// Flags of `rbuild export`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Write to this file instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The container: name, ID or ID prefix.
    pub container: String,
}

/// Run `rbuild export`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let found = super::exec::Found::open(&g.root, &args.container)?;
    if args.output.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        anyhow::bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let sn = rbuild_runtime::snapshot::open(&g.root, rbuild_runtime::sandbox::store_trees(&g.root))?;
    let mounts = sn.mounts(&found.config.snapshot)?;
    let sandbox = rbuild_runtime::sandbox::Sandbox::new(&g.root)?;
    match &args.output {
        Some(path) => {
            // Written beside the destination and renamed: never a half-written file.
            let name = path.file_name().ok_or_else(|| anyhow::anyhow!("{}: not a file name", path.display()))?;
            let tmp = path.with_file_name(format!(".{}.rbuild-{}", name.to_string_lossy(), std::process::id()));
            let r = (|| -> anyhow::Result<()> {
                let f = std::fs::File::create(&tmp).map_err(|e| anyhow::anyhow!("{}: {e}", tmp.display()))?;
                let mut w = std::io::BufWriter::new(f);
                rbuild_runtime::container::fs::export(&sandbox, &mounts, &mut w)?;
                w.into_inner().map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.error()))?.sync_all()?;
                std::fs::rename(&tmp, path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                Ok(())
            })();
            if r.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            r?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            rbuild_runtime::container::fs::export(&sandbox, &mounts, &mut w)?;
            std::io::Write::flush(&mut w)?;
        }
    }
    Ok(0)
}
