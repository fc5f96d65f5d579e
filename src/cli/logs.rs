//! `rbuild logs`: what a container printed, from its json-file log, like `docker logs`.
//! stdout lines go to stdout and stderr lines to stderr.

use rbuild_runtime::container::Containers;
use rbuild_runtime::container::logread::{self, Options};
use std::io::Write;

/// Flags of `rbuild logs`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Keep printing what the container writes until it stops.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only lines since this time: RFC 3339 (2026-12-02T13:23:37Z), unix seconds, or a
    /// duration before now (42m, 1h30m).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only lines before this time (the same forms as --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only the last N lines ("all": every line).
    #[arg(short = 'n', long, value_name = "N", default_value = "all", allow_negative_numbers = true)]
    pub tail: String,
    /// Put each line after its RFC 3339 timestamp (nanoseconds, as docker's).
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Show extra attributes given to the log driver (there are none: accepted for docker
    /// compatibility).
    #[arg(long)]
    pub details: bool,
    /// The container: name, ID or ID prefix.
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// Run `rbuild logs`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let now = chrono::Utc::now();
    let opts = Options {
        tail: logread::parse_tail(&args.tail)?,
        since: args.since.as_deref().map(|s| logread::parse_time("--since", s, now)).transpose()?,
        until: args.until.as_deref().map(|s| logread::parse_time("--until", s, now)).transpose()?,
        timestamps: args.timestamps,
    };
    let c = Containers::open(&g.root).resolve(&args.container)?;
    let path = c.log_path();
    let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
    let (mut out, mut err) = (stdout.lock(), stderr.lock());
    let mut print = |e: &logread::Entry| {
        logread::print_entry(e, opts.timestamps, &mut out, &mut err)?;
        if args.follow {
            out.flush()?;
        }
        Ok(())
    };
    let r = if args.follow {
        let mut running = || c.checked_state().map(|s| s.status.is_active()).unwrap_or(false);
        logread::follow(&path, &opts, &mut running, std::time::Duration::from_millis(50), &mut print)
    } else {
        logread::read(&path, &opts, &mut print)
    };
    match r {
        // `rbuild logs web | head`: the reader went away; that is not an error.
        Err(rbuild_runtime::Error::Stream(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(0),
        r => r?,
    }
    let _ = std::io::stdout().flush();
    Ok(0)
}
