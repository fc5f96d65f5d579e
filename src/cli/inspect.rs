//! `rbuild inspect` (not built yet).

/// Flags of `rbuild inspect`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Run `rbuild inspect`.
pub fn run(_args: Args, _g: &super::global::Global) -> anyhow::Result<i32> {
    anyhow::bail!("rbuild inspect is not built yet")
}
