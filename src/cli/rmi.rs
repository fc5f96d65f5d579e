//! `rbuild rmi` (not built yet).

/// Flags of `rbuild rmi`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Run `rbuild rmi`.
pub fn run(_args: Args, _g: &super::global::Global) -> anyhow::Result<i32> {
    anyhow::bail!("rbuild rmi is not built yet")
}
