//! `rbuild import` (not built yet).

/// Flags of `rbuild import`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Run `rbuild import`.
pub fn run(_args: Args, _g: &super::global::Global) -> anyhow::Result<i32> {
    anyhow::bail!("rbuild import is not built yet")
}
