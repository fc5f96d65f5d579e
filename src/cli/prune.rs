//! `rbuild prune` (not built yet).

/// Flags of `rbuild prune`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Run `rbuild prune`.
pub fn run(_args: Args, _g: &super::global::Global) -> anyhow::Result<i32> {
    anyhow::bail!("rbuild prune is not built yet")
}
