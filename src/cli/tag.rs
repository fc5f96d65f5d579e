//! `rbuild tag` (not built yet).

/// Flags of `rbuild tag`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Run `rbuild tag`.
pub fn run(_args: Args, _g: &super::global::Global) -> anyhow::Result<i32> {
    anyhow::bail!("rbuild tag is not built yet")
}
