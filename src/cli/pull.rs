//! `rbuild pull`: fetch an image from a registry into the local store. Also home of what
//! the registry commands share (TLS flags, client options, the runtime).

use rbuild_image::{Platform, Reference};
use rbuild_registry_client::{Client, ClientOptions, progress};

/// Flags every registry command takes.
#[derive(clap::Args, Debug, Clone)]
pub struct TlsFlags {
    /// Verify the registry's TLS certificate (`--tls-verify=false` also allows plain HTTP).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub tls_verify: bool,
    /// Same as `--tls-verify=false`.
    #[arg(long)]
    pub insecure: bool,
}

/// Client options from the environment (registries.toml, docker config.json) and flags.
pub(super) fn client(tls: &TlsFlags) -> anyhow::Result<Client> {
    let mut opts = ClientOptions::from_environment()?;
    opts.tls_verify = tls.tls_verify && !tls.insecure;
    Ok(Client::new(opts)?)
}

/// A line on stdout; a closed pipe (`| head`) is not an error worth a panic.
pub(super) fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// A runtime for the async client.
pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// Flags of `rbuild pull`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The platform to pull from a multi-platform image (os/arch[/variant]; default: this machine's).
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Print only the image's full name.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub tls: TlsFlags,
    /// The image: `alpine`, `alpine:3.20`, `registry:5000/team/app@sha256:…`.
    pub reference: String,
}

/// Run `rbuild pull`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let parsed = Reference::parse(&args.reference)?;
    let platform = match &args.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let store = g.store()?;
    let client = client(&args.tls)?;
    let prog = progress::for_console(args.quiet);
    if parsed.tag().is_none() && parsed.digest().is_none() {
        prog.message("Using default tag: latest");
    }
    let r = parsed.clone().with_default_tag();
    let what = r.tag().map(str::to_string).unwrap_or_else(|| r.api_reference());
    prog.message(&format!("{what}: Pulling from {}", r.familiar_name()));
    let pulled = runtime()?.block_on(client.pull(&store, &r, &platform, &prog))?;
    let status = if pulled.downloaded > 0 { "Downloaded newer image for" } else { "Image is up to date for" };
    prog.message(&format!("Status: {status} {}", r.familiar()));
    super::pull::say(&format!("{r}"));
    Ok(0)
}
