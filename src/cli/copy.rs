//! `rbuild copy` (not built yet).

/// Flags of `rbuild copy`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Run `rbuild copy`.
pub fn run(_args: Args, _g: &super::global::Global) -> anyhow::Result<i32> {
    anyhow::bail!("rbuild copy is not built yet")
}
