//! `rbuild images` (not built yet).

/// Flags of `rbuild images`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Run `rbuild images`.
pub fn run(_args: Args, _g: &super::global::Global) -> anyhow::Result<i32> {
    anyhow::bail!("rbuild images is not built yet")
}
