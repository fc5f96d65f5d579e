//! `rbuild cp`: copy files between a container and the host, like `docker cp`
//! (`CONTAINER:SRC DEST`, `SRC CONTAINER:DEST`; `-` is a tar on stdout or stdin). Works on
//! running containers (their mount namespace) and stopped ones (their writable layer); a
//! symlink in the container never leads out of it.

use rbuild_runtime::container::fs::{self, CopyInOptions, CpArg};
use rbuild_runtime::sandbox::{PathKind, Sandbox};

/// Flags of `rbuild cp`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Archive mode: copy files into the container with their uid and gid (else root's).
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// Print nothing but errors (rbuild prints nothing else anyway).
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// CONTAINER:SRC_PATH or a host path (`-`: a tar on stdin).
    pub src: String,
    /// CONTAINER:DEST_PATH or a host path (`-`: a tar on stdout).
    pub dest: String,
}

/// Run `rbuild cp`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let src = CpArg::parse(&args.src)?;
    let dest = CpArg::parse(&args.dest)?;
    let sandbox = Sandbox::new(&g.root)?;
    match (src, dest) {
        (CpArg::Container { container, path }, CpArg::Host(h)) => {
            let found = super::exec::Found::open(&g.root, &container)?;
            let target = found.target(&g.root)?;
            if h.as_os_str() == "-" {
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::new(stdout.lock());
                fs::tar_out(&sandbox, &target, &path, &mut out)?;
                std::io::Write::flush(&mut out)?;
            } else {
                fs::copy_out(&sandbox, &target, &path, &h)?;
            }
        }
        (CpArg::Host(h), CpArg::Container { container, path }) => {
            let found = super::exec::Found::open(&g.root, &container)?;
            let target = found.target(&g.root)?;
            if h.as_os_str() == "-" {
                sandbox.tar_into(&target, &path, &mut |kind, w| {
                    if kind != PathKind::Dir {
                        return Err(rbuild_runtime::Error::Copy(format!(
                            "{path}: a tar from stdin is extracted into a directory, and this is none"
                        )));
                    }
                    std::io::copy(&mut std::io::stdin().lock(), w).map_err(rbuild_runtime::Error::io("stdin"))?;
                    Ok(())
                })?;
            } else {
                fs::copy_in(&sandbox, &target, &h, &path, CopyInOptions { archive: args.archive })?;
            }
        }
        (CpArg::Container { .. }, CpArg::Container { .. }) => {
            anyhow::bail!("copying between containers is not supported")
        }
        (CpArg::Host(_), CpArg::Host(_)) => {
            anyhow::bail!("must specify at least one container source (CONTAINER:PATH)")
        }
    }
    Ok(0)
}
