//! `rbuild restart`: stop (as `rbuild stop` does) then start containers (docker's
//! `restart`). Prints each name as given.

use rbuild_runtime::container::{self, Containers};

/// Flags of `rbuild restart`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds to wait for the container to exit before killing it.
    #[arg(
        short = 't',
        long = "timeout",
        visible_alias = "time",
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    pub timeout: Option<i64>,
    /// The signal to stop it with (default: the container's stop signal).
    #[arg(short = 's', long = "signal", value_name = "SIGNAL")]
    pub signal: Option<String>,
    /// The containers (ID, name or ID prefix).
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Run `rbuild restart`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let sig = args.signal.as_deref().map(container::parse_signal).transpose()?;
    let cs = Containers::open(&g.root);
    super::stop::each(&args.containers, |what| {
        let c = cs.resolve(what)?;
        container::stop(&c, args.timeout, sig)?;
        container::start(&g.root, &c, std::path::Path::new("/proc/self/exe"))?;
        Ok(())
    })
}
