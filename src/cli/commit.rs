//! `rbuild commit`: a container's changes as a new image, like `docker commit`: its
//! writable layer becomes a layer on top of its image's, the config is the image's with the
//! container's settings and each `--change`, and a running container is paused (cgroup
//! freezer) while its layer is read. Prints the new image ID.

use rbuild_runtime::container::Status;
use rbuild_runtime::container::commit::{CommitOptions, commit};
use std::path::PathBuf;

/// Flags of `rbuild commit`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image's author ("Name <email>").
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    /// Apply a Dockerfile instruction to the image's config (CMD, ENTRYPOINT, ENV, EXPOSE,
    /// LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL); repeatable.
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    pub change: Vec<String>,
    /// The commit message (the history entry's comment).
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Pause a running container while its layer is read (--pause=false to leave it running).
    #[arg(short = 'p', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
        default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub pause: bool,
    /// The container: name, ID or ID prefix.
    pub container: String,
    /// Name the image: REPOSITORY[:TAG].
    pub image: Option<String>,
}

/// The container's settings as an image config: the image's, with the container's command,
/// environment, user, working directory and labels.
fn container_config(
    base: Option<rbuild_image::config::ContainerConfig>,
    c: &rbuild_runtime::container::Config,
) -> rbuild_image::config::ContainerConfig {
    let mut cfg = base.unwrap_or_default();
    if !c.entrypoint.is_empty() {
        cfg.entrypoint = Some(c.entrypoint.clone());
    }
    if !c.cmd.is_empty() {
        cfg.cmd = Some(c.cmd.clone());
    }
    if !c.env.is_empty() {
        // The image's environment, then the container's -e; its hostname is its own.
        let own = format!("HOSTNAME={}", c.hostname);
        cfg.env = c.env.iter().filter(|e| **e != own).cloned().collect();
    }
    cfg.user = (!c.user.is_empty()).then(|| c.user.clone()).or(cfg.user);
    cfg.working_dir = (!c.workdir.is_empty()).then(|| c.workdir.clone()).or(cfg.working_dir);
    cfg.labels.extend(c.labels.clone());
    if let Some(s) = &c.stop_signal {
        cfg.stop_signal = Some(s.clone());
    }
    cfg
}

/// A container frozen for the commit (its cgroup freezer), thawed when dropped.
struct Frozen(rbuild_runtime::cgroup::Cgroup);

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Err(e) = self.0.thaw() {
            eprintln!("error: unpausing the container after the commit: {e}");
        }
    }
}

/// Freeze the container's cgroup and wait until it is frozen; `None` when it has no
/// freezer (then it is read running).
fn freeze(cgroups: &[PathBuf]) -> anyhow::Result<Option<Frozen>> {
    let Some(cg) = rbuild_runtime::cgroup::Cgroup::open(cgroups).filter(|c| c.frozen() == Some(false)) else {
        return Ok(None);
    };
    cg.freeze().map_err(|e| anyhow::anyhow!("pausing the container: {e}"))?;
    Ok(Some(Frozen(cg)))
}

/// Run `rbuild commit`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let reference = args
        .image
        .as_deref()
        .map(|s| rbuild_image::Reference::parse(s).map(|r| r.with_default_tag()))
        .transpose()
        .map_err(|e| anyhow::anyhow!("invalid reference format: {e}"))?;
    let store = g.store()?;
    let found = super::exec::Found::open(&g.root, &args.container)?;
    // The changes are checked before anything is paused or written.
    let mut probe = rbuild_image::ImageConfig::default();
    for c in &args.change {
        rbuild_image::store::import::apply_change(&mut probe, c)?;
    }
    let base = store.resolve(&found.config.image_id).or_else(|_| store.resolve(&found.config.image)).map_err(|e| {
        anyhow::anyhow!("the container's image {} is not in the store any more: {e}", found.config.image)
    })?;
    let sn = rbuild_runtime::snapshot::open(&g.root, rbuild_runtime::sandbox::store_trees(&g.root))?;
    let sandbox = rbuild_runtime::sandbox::Sandbox::new(&g.root)?;
    let mut created_by = found.config.argv().join(" ");
    if created_by.is_empty() {
        created_by = "rbuild commit".into();
    }
    let opts = CommitOptions {
        message: args.message.clone(),
        author: args.author.clone(),
        changes: args.change.clone(),
        config: Some(container_config(base.config.config.clone(), &found.config)),
        created_by,
        exclude: found.mount_targets(),
        reference,
    };
    let _frozen = if args.pause && found.state.status == Status::Running && found.pid1().is_some() {
        freeze(&found.state.cgroup)?
    } else {
        None
    };
    let done =
        commit(&store, sn.as_ref(), &found.config.snapshot, &base.config_digest.to_string(), sandbox.id_map(), &opts)?;
    println!("{}", done.image_id);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: Args,
    }

    #[test]
    fn pause_is_on_unless_turned_off() {
        let t = T::parse_from(["x", "-c", "ENV A=1", "-m", "msg", "web", "img:1"]);
        assert!(t.a.pause);
        assert_eq!((t.a.container.as_str(), t.a.image.as_deref()), ("web", Some("img:1")));
        assert!(!T::parse_from(["x", "--pause=false", "web"]).a.pause);
        assert!(T::parse_from(["x", "-p", "web"]).a.pause);
    }

    #[test]
    fn the_containers_settings_go_into_the_config() {
        let c = rbuild_runtime::container::Config {
            cmd: vec!["sh".into()],
            env: vec!["A=1".into()],
            workdir: "/srv".into(),
            ..Default::default()
        };
        let base = rbuild_image::config::ContainerConfig { user: Some("app".into()), ..Default::default() };
        let cfg = container_config(Some(base), &c);
        assert_eq!(cfg.cmd, Some(vec!["sh".to_string()]));
        assert_eq!((cfg.user.as_deref(), cfg.working_dir.as_deref()), (Some("app"), Some("/srv")));
        assert_eq!(cfg.env, ["A=1"]);
    }
}
