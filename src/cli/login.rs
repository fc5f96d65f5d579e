//! `rbuild login` (not built yet).

/// Flags of `rbuild login`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Run `rbuild login`.
pub fn run(_args: Args, _g: &super::global::Global) -> anyhow::Result<i32> {
    anyhow::bail!("rbuild login is not built yet")
}
