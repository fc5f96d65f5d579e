//! `rbuild start`: start created or stopped containers (docker's `start`): each is handed
//! to a monitor and its name printed; with `-a`/`-i`, one container runs attached to this
//! terminal instead and its exit code becomes ours.

use rbuild_runtime::container::{self, Containers};
use rbuild_runtime::sandbox::Sandbox;

/// Flags of `rbuild start`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Attach stdout/stderr: the container runs attached to this process, whose exit code
    /// is the container's.
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach stdin too (implies --attach).
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// The containers (ID, name or ID prefix).
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Run `rbuild start`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let cs = Containers::open(&g.root);
    if args.attach || args.interactive {
        if args.containers.len() > 1 {
            anyhow::bail!("you cannot start and attach multiple containers at once");
        }
        let c = cs.resolve(&args.containers[0])?;
        let cfg = c.config()?;
        let sandbox = Sandbox::new(&g.root)?;
        let stdin = args.interactive && cfg.open_stdin;
        return Ok(container::run_attached(&g.root, &c, &sandbox, stdin, cfg.tty && stdin)?);
    }
    super::stop::each(&args.containers, |what| {
        let c = cs.resolve(what)?;
        container::start(&g.root, &c, std::path::Path::new("/proc/self/exe"))?;
        Ok(())
    })
}
