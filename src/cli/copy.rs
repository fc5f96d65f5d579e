//! `rbuild copy`: copy an image between registries, without the local store.

use super::pull::{TlsFlags, client, runtime};
use rbuild_image::{Platform, Reference};
use rbuild_registry_client::progress;

/// Flags of `rbuild copy`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Copy every platform of a multi-platform image (default: only --platform's).
    #[arg(long)]
    pub all: bool,
    /// The platform to copy from a multi-platform image (default: this machine's).
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Print only the copied manifest's digest.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub tls: TlsFlags,
    /// The source image (`docker://` prefix optional).
    pub src: String,
    /// The destination (`docker://` prefix optional; default tag: the source's).
    pub dest: String,
}

fn parse(s: &str) -> anyhow::Result<Reference> {
    Ok(Reference::parse(s.strip_prefix("docker://").unwrap_or(s))?)
}

/// Run `rbuild copy`.
pub fn run(args: Args, _g: &super::global::Global) -> anyhow::Result<i32> {
    let src = parse(&args.src)?;
    let dest = parse(&args.dest)?;
    let platform = match &args.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let client = client(&args.tls)?;
    let prog = progress::for_console(args.quiet);
    let copied = runtime()?.block_on(client.copy(&src, &dest, args.all, &platform, &prog))?;
    if args.quiet {
        super::pull::say(&format!("{}", copied.digest));
    }
    Ok(0)
}
