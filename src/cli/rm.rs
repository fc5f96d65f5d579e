//! `rbuild rm`: remove containers (docker's `rm`): the record, the name and the writable
//! layer; a running one only with `-f` (killed first); `-v` takes its anonymous volumes
//! too. Prints each name as given.

use rbuild_runtime::container::{self, Containers};

/// Flags of `rbuild rm`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Kill a running container first.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove the container's anonymous volumes too.
    #[arg(short = 'v', long = "volumes")]
    pub volumes: bool,
    /// The containers (ID, name or ID prefix).
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Run `rbuild rm`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let cs = Containers::open(&g.root);
    super::stop::each(&args.containers, |what| {
        let c = match cs.resolve(what) {
            Ok(c) => c,
            // docker: `rm -f` of a missing container is not an error.
            Err(rbuild_runtime::Error::NoSuchContainer(_)) if args.force => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        container::remove(&g.root, &c, args.force, args.volumes)?;
        Ok(())
    })
}
