//! `rbuild pause`: freeze every process of running containers (the cgroup freezer: v1
//! `freezer.state`, v2 `cgroup.freeze`), as docker's `pause`. Prints each name as given.

use anyhow::{anyhow, bail};
use rbuild_runtime::cgroup::Cgroup;
use rbuild_runtime::container::{Container, Containers, Status};

/// Flags of `rbuild pause`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The containers (ID, name or ID prefix).
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Run `rbuild pause`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let cs = Containers::open(&g.root);
    super::stop::each(&args.containers, |what| freeze(&cs.resolve(what)?, true))
}

/// Freeze (`true`) or thaw a container's cgroup and record it paused or running, under
/// the container's lock.
pub(super) fn freeze(c: &Container, frozen: bool) -> anyhow::Result<()> {
    // Finds out a container whose monitor died (then not running).
    c.checked_state()?;
    let r: anyhow::Result<()> = c
        .update(|st| {
            match (st.status, frozen) {
                (Status::Running, true) | (Status::Paused, false) => {}
                (Status::Paused, true) => return Ok(Err(anyhow!("Container {} is already paused", c.id))),
                (_, true) => return Ok(Err(anyhow!("Container {} is not running", c.id))),
                (_, false) => return Ok(Err(anyhow!("Container {} is not paused", c.id))),
            }
            let Some(cg) = Cgroup::open(&st.cgroup) else {
                return Ok(Err(anyhow!(
                    "Cannot {} container {}: it has no cgroup (rootless without a delegated cgroup?)",
                    if frozen { "pause" } else { "unpause" },
                    c.id
                )));
            };
            if frozen {
                cg.freeze()?
            } else {
                cg.thaw()?
            }
            st.status = if frozen { Status::Paused } else { Status::Running };
            Ok(Ok(()))
        })
        .map_err(anyhow::Error::from)?;
    if let Err(e) = r {
        bail!(e)
    }
    Ok(())
}
