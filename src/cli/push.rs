//! `rbuild push` (not built yet).

/// Flags of `rbuild push`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Run `rbuild push`.
pub fn run(_args: Args, _g: &super::global::Global) -> anyhow::Result<i32> {
    anyhow::bail!("rbuild push is not built yet")
}
