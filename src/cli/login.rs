//! `rbuild login`: check credentials against a registry, then save them in docker's
//! config.json (or its credential helper), as `docker login` does.

use super::pull::{TlsFlags, client, runtime};
use rbuild_registry_client::{Credential, DockerConfig};
use std::io::{BufRead, IsTerminal, Write};

/// Flags of `rbuild login`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// User name.
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password or token (prefer --password-stdin: command lines are visible to others).
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from stdin.
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub tls: TlsFlags,
    /// The registry (default: docker.io).
    pub registry: Option<String>,
}

/// `https://index.docker.io/v1/`, `http://host:5000/`, `host:5000` -> the registry name
/// as references write it.
pub(super) fn registry_name(s: Option<&str>) -> String {
    let s = s.unwrap_or("docker.io");
    let s = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")).unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" | "" => "docker.io".into(),
        h => h.to_string(),
    }
}

fn api_host(registry: &str) -> &str {
    if registry == "docker.io" { "registry-1.docker.io" } else { registry }
}

fn prompt(label: &str, secret: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    if tty {
        eprint!("{label}: ");
        std::io::stderr().flush()?;
    }
    let echo_off = tty && secret && std::process::Command::new("stty").arg("-echo").status().is_ok_and(|s| s.success());
    let mut line = String::new();
    let res = stdin.lock().read_line(&mut line);
    if echo_off {
        let _ = std::process::Command::new("stty").arg("echo").status();
        eprintln!();
    }
    res?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Run `rbuild login`.
pub fn run(args: Args, _g: &super::global::Global) -> anyhow::Result<i32> {
    let registry = registry_name(args.registry.as_deref());
    anyhow::ensure!(
        !(args.password.is_some() && args.password_stdin),
        "--password and --password-stdin are mutually exclusive"
    );
    let username = match args.username {
        Some(u) => u,
        None => prompt("Username", false)?,
    };
    anyhow::ensure!(!username.is_empty(), "a user name is required");
    let password = if args.password_stdin {
        let mut s = String::new();
        std::io::stdin().lock().read_line(&mut s)?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else if let Some(p) = args.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p
    } else {
        prompt("Password", true)?
    };
    anyhow::ensure!(!password.is_empty(), "a password is required");
    let client = client(&args.tls)?;
    let basic = Credential::Basic { username, password };
    client.set_credential(&registry, Some(basic.clone()));
    let refresh = runtime()?.block_on(client.verify_login(&registry, api_host(&registry)))?;
    let cred = match refresh {
        Some(token) => Credential::IdentityToken { token },
        None => basic,
    };
    let mut cfg = DockerConfig::load_default()?;
    cfg.store(&registry, &cred)?;
    println!("Login Succeeded");
    Ok(0)
}
