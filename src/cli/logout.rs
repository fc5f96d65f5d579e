//! `rbuild logout`: forget a registry's credentials (in config.json and its helper).

use super::login::registry_name;
use rbuild_registry_client::DockerConfig;

/// Flags of `rbuild logout`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The registry (default: docker.io).
    pub registry: Option<String>,
}

/// Run `rbuild logout`.
pub fn run(args: Args, _g: &super::global::Global) -> anyhow::Result<i32> {
    let registry = registry_name(args.registry.as_deref());
    let mut cfg = DockerConfig::load_default()?;
    if cfg.erase(&registry)? {
        println!("Removing login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(0)
}
