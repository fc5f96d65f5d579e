//! `rbuild diff`: what a container changed in its filesystem, like `docker diff`: one line
//! per path, `A` added, `C` changed, `D` deleted, from its writable layer.

/// Flags of `rbuild diff`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The container: name, ID or ID prefix.
    pub container: String,
}

/// Run `rbuild diff`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let found = super::exec::Found::open(&g.root, &args.container)?;
    let sn = rbuild_runtime::snapshot::open(&g.root, rbuild_runtime::sandbox::store_trees(&g.root))?;
    let changes = rbuild_runtime::container::fs::diff(sn.as_ref(), &found.config.snapshot, &found.mount_targets())?;
    let mut out = String::new();
    for (kind, path) in changes {
        out.push_str(&format!("{} {path}\n", kind.letter()));
    }
    print!("{out}");
    Ok(0)
}
