//! `rbuild unpause`: thaw paused containers, as docker's `unpause`. Prints each name as
//! given.

use rbuild_runtime::container::Containers;

/// Flags of `rbuild unpause`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The containers (ID, name or ID prefix).
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Run `rbuild unpause`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let cs = Containers::open(&g.root);
    super::stop::each(&args.containers, |what| super::pause::freeze(&cs.resolve(what)?, false))
}
