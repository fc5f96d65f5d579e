//! `rbuild pull` (not built yet).

/// Flags of `rbuild pull`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Run `rbuild pull`.
pub fn run(_args: Args, _g: &super::global::Global) -> anyhow::Result<i32> {
    anyhow::bail!("rbuild pull is not built yet")
}
