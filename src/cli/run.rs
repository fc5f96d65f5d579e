//! `rbuild run` (not built yet).

/// Flags of `rbuild run`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Run `rbuild run`.
pub fn run(_args: Args, _g: &super::global::Global) -> anyhow::Result<i32> {
    anyhow::bail!("rbuild run is not built yet")
}
