//! `rbuild build` (not built yet).

/// Flags of `rbuild build`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Run `rbuild build`.
pub fn run(_args: Args, _g: &super::global::Global) -> anyhow::Result<i32> {
    anyhow::bail!("rbuild build is not built yet")
}
