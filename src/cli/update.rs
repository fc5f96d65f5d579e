//! `rbuild update`: change the resource limits (and restart policy) of containers, as
//! docker's `update`: written into a running container's cgroup at once and into its
//! configuration for the next start. Prints each name as given.

use rbuild_runtime::cgroup::Cgroup;
use rbuild_runtime::container::{Container, Containers, RestartPolicy};

/// Flags of `rbuild update`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Resource limits to change.
    #[command(flatten)]
    pub limits: super::limits::LimitArgs,
    /// The restart policy: no, on-failure[:N], always, unless-stopped.
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<String>,
    /// The containers (ID, name or ID prefix).
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Run `rbuild update`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    if args.limits.is_empty() && args.restart.is_none() {
        anyhow::bail!("You must provide one or more flags when using this command.");
    }
    let restart = args.restart.as_deref().map(RestartPolicy::parse).transpose()?;
    let cs = Containers::open(&g.root);
    super::stop::each(&args.containers, |what| update(&cs.resolve(what)?, &args.limits, restart.as_ref()))
}

/// Merge the flags into the container's limits, write them into its cgroup when it runs
/// (the old ones back if the kernel refuses one), then into its configuration.
fn update(c: &Container, flags: &super::limits::LimitArgs, restart: Option<&RestartPolicy>) -> anyhow::Result<()> {
    c.checked_state()?;
    let l = c.lock()?;
    let mut cfg = l.config()?;
    let st = l.state()?;
    let old = cfg.limits.clone();
    flags.apply_to(&mut cfg.limits)?;
    if let Some(r) = restart {
        cfg.restart = *r;
    }
    if st.status.is_active() && cfg.limits != old {
        if let Some(cg) = Cgroup::open(&st.cgroup) {
            match cg.update(&cfg.limits) {
                Ok(Some(w)) => tracing::warn!("{}: {w}", cfg.name),
                Ok(None) => {}
                Err(e) => {
                    let _ = cg.update(&old);
                    return Err(e.into());
                }
            }
            set_ulimits(&cg, &old, &cfg.limits);
        } else if cfg.limits.needs_cgroup() {
            tracing::warn!("{}: no cgroup: the new limits apply from the next start", cfg.name);
        }
    }
    l.write_config(&cfg)?;
    Ok(())
}

/// Changed `--ulimit`s go to the running processes too.
fn set_ulimits(cg: &Cgroup, old: &rbuild_runtime::cgroup::Limits, new: &rbuild_runtime::cgroup::Limits) {
    let changed: Vec<_> = new.ulimits.iter().filter(|u| !old.ulimits.contains(u)).filter_map(|u| u.rlimit()).collect();
    if !changed.is_empty() {
        cg.set_rlimits(&changed);
    }
}
