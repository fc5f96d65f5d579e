//! `rbuild kill`: send a signal (default SIGKILL) to running containers (docker's `kill`);
//! the restart policy does not bring them back. Prints each name as given.

use rbuild_runtime::container::{self, Containers};

/// Flags of `rbuild kill`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The signal: a name (KILL, SIGTERM) or a number.
    #[arg(short = 's', long = "signal", default_value = "KILL", value_name = "SIGNAL")]
    pub signal: String,
    /// The containers (ID, name or ID prefix).
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Run `rbuild kill`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let sig = container::parse_signal(&args.signal)?;
    let cs = Containers::open(&g.root);
    super::stop::each(&args.containers, |what| {
        let c = cs.resolve(what)?;
        container::kill(&c, sig)?;
        Ok(())
    })
}
