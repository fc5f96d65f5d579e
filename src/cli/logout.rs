//! `rbuild logout` (not built yet).

/// Flags of `rbuild logout`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Run `rbuild logout`.
pub fn run(_args: Args, _g: &super::global::Global) -> anyhow::Result<i32> {
    anyhow::bail!("rbuild logout is not built yet")
}
