//! `rbuild save` (not built yet).

/// Flags of `rbuild save`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Run `rbuild save`.
pub fn run(_args: Args, _g: &super::global::Global) -> anyhow::Result<i32> {
    anyhow::bail!("rbuild save is not built yet")
}
