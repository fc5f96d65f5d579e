//! `rbuild rename`: give a container another name, like `docker rename`. The new name is
//! reserved first (of two renames to one name, one wins), then the record changed under
//! its lock, then the old name given up.

use rbuild_runtime::container::{Containers, valid_name};

/// Flags of `rbuild rename`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The container: name, ID or ID prefix.
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Its new name ([a-zA-Z0-9][a-zA-Z0-9_.-]+).
    #[arg(value_name = "NEW_NAME")]
    pub new_name: String,
}

/// Run `rbuild rename`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let new = args.new_name.strip_prefix('/').unwrap_or(&args.new_name);
    if !valid_name(new) {
        anyhow::bail!("Invalid container name ({}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", args.new_name);
    }
    let records = Containers::open(&g.root);
    let c = records.resolve(&args.container)?;
    records.rename(&c, new)?;
    Ok(0)
}
