//! `rbuild stop`: stop running containers (docker's `stop`): the stop signal (`-s`, the
//! container's `--stop-signal`, the image's STOPSIGNAL, else SIGTERM), then SIGKILL after
//! the timeout; the restart policy does not bring them back. Prints each name as given.

use rbuild_runtime::container::{self, Containers};

/// Flags of `rbuild stop`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds to wait for the container to exit before killing it (default: the
    /// container's --stop-timeout, else 10).
    #[arg(
        short = 't',
        long = "timeout",
        visible_alias = "time",
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    pub timeout: Option<i64>,
    /// The signal to send first (default: the container's stop signal).
    #[arg(short = 's', long = "signal", value_name = "SIGNAL")]
    pub signal: Option<String>,
    /// The containers (ID, name or ID prefix).
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Do `f` for each container named, printing the name when it worked and the error
/// when not; exit code 1 when any failed (docker's habit).
pub fn each(names: &[String], mut f: impl FnMut(&str) -> anyhow::Result<()>) -> anyhow::Result<i32> {
    let mut code = 0;
    for n in names {
        match f(n) {
            Ok(()) => super::pull::say(n),
            Err(e) => {
                eprintln!("Error response from daemon: {}", super::global::render_error(&e));
                code = 1;
            }
        }
    }
    Ok(code)
}

/// Run `rbuild stop`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let sig = args.signal.as_deref().map(container::parse_signal).transpose()?;
    let cs = Containers::open(&g.root);
    each(&args.containers, |what| {
        let c = cs.resolve(what)?;
        container::stop(&c, args.timeout, sig)?;
        Ok(())
    })
}
