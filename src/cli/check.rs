//! `rbuild check` (being written).

/// Flags of `rbuild check`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Run `rbuild check`.
pub fn run(_args: Args) -> anyhow::Result<i32> {
    anyhow::bail!("rbuild check is not built yet")
}
