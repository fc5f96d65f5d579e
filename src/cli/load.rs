//! `rbuild load` (not built yet).

/// Flags of `rbuild load`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Run `rbuild load`.
pub fn run(_args: Args, _g: &super::global::Global) -> anyhow::Result<i32> {
    anyhow::bail!("rbuild load is not built yet")
}
