//! `rbuild create`: make a container from an image without starting it (docker's
//! `create`): the record, its name and its writable layer; prints the ID.

use rbuild_runtime::container;
use rbuild_runtime::sandbox::Sandbox;

/// Flags of `rbuild create`: those of `rbuild run` but `-d`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub c: super::run::ContainerFlags,
}

/// Run `rbuild create`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let opts = super::run::options(&args.c)?;
    let store = g.store()?;
    super::run::ensure_image(&store, &opts.image, &args.c.pull)?;
    let sandbox = Sandbox::new(&g.root)?;
    let c = container::create(&store, &opts, &sandbox)?;
    super::pull::say(&c.id);
    Ok(0)
}
