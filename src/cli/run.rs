//! `rbuild run`: run a command in a new container from an image, like `docker run`: in the
//! foreground (this process owns it; no monitor, so it is as fast as a plain sandbox run),
//! or with `-d` handed to a monitor, printing the ID. The flags shared with `rbuild create`
//! ([`ContainerFlags`]) become a validated [`CreateOptions`]; rbuild-runtime does the rest.

use rbuild_runtime::container::{self, CreateOptions, RestartPolicy, SecurityConfig};
use rbuild_runtime::sandbox::{Device, Network, Sandbox};
use std::path::PathBuf;

/// Flags of `rbuild run` and `rbuild create` (what the container is).
#[derive(clap::Args, Debug)]
pub struct ContainerFlags {
    /// Remove the container (its record and writable layer) when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Keep stdin open and pass it to the container.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Set an environment variable (KEY=VALUE, or KEY to take this process's value).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read environment variables from a file (KEY=VALUE lines; # comments).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// -v, --mount, --volumes-from.
    #[command(flatten)]
    pub mounts: super::volume::MountArgs,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// User to run as: name, uid, name:group or uid:gid.
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Network: host (default) or none.
    #[arg(long, default_value = "host", value_parser = ["host", "none"])]
    pub network: String,
    /// Override the image's ENTRYPOINT (and drop its CMD); "" clears it.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// A unique name for the container.
    #[arg(long)]
    pub name: Option<String>,
    /// The container's hostname (default: the first 12 characters of its ID).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Set a label on the container: KEY=VALUE (or KEY, empty value).
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Restart policy: no, on-failure[:MAX-RETRIES], always or unless-stopped.
    #[arg(long, default_value = "no", value_name = "POLICY")]
    pub restart: String,
    /// The signal that stops the container (default: the image's STOPSIGNAL, else SIGTERM).
    #[arg(long = "stop-signal", value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Seconds to wait after the stop signal before SIGKILL (default 10).
    #[arg(long = "stop-timeout", value_name = "SECONDS", allow_negative_numbers = true)]
    pub stop_timeout: Option<i64>,
    /// Pull the image: missing (default: when not in the store), always, never.
    #[arg(long, default_value = "missing", value_parser = ["missing", "always", "never"])]
    pub pull: String,
    /// Add a Linux capability (CAP_NET_RAW, NET_ADMIN, ALL...).
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a Linux capability (CAP_MKNOD, ALL...).
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Security options: seccomp=unconfined, seccomp=PROFILE.json (Docker's format), no-new-privileges
    /// (apparmor=unconfined and label=disable are accepted and change nothing).
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Give the container a host device: HOST[:CONTAINER][:PERMISSIONS] (permissions: some of rwm).
    #[arg(long = "device", value_name = "HOST[:CTR][:rwm]")]
    pub device: Vec<String>,
    /// Resource limits.
    #[command(flatten)]
    pub limits: super::limits::LimitArgs,
    /// The image: name[:tag], a digest or an image ID (prefix).
    pub image: String,
    /// The command and its arguments (replace the image's CMD).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

/// Flags of `rbuild run`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run the container in the background (handed to a monitor) and print its ID.
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[command(flatten)]
    pub c: ContainerFlags,
}

fn env_entry(s: &str, from: &str) -> anyhow::Result<Option<String>> {
    let s = s.trim_end_matches(['\r', '\n']);
    if s.trim().is_empty() || s.trim_start().starts_with('#') {
        return Ok(None);
    }
    match s.split_once('=') {
        Some(("", _)) => anyhow::bail!("{from}: {s:?}: a variable needs a name"),
        Some(_) => Ok(Some(s.to_string())),
        // KEY alone: this process's value, or nothing when unset (like docker).
        None => Ok(std::env::var(s.trim()).ok().map(|v| format!("{}={v}", s.trim()))),
    }
}

/// `--cap-add`, `--cap-drop`, `--security-opt` and `--device`, checked (profile read,
/// capability names and devices known) and kept as given for the container's config.
pub fn security(args: &ContainerFlags) -> anyhow::Result<SecurityConfig> {
    let mut sec = SecurityConfig {
        cap_add: args.cap_add.clone(),
        cap_drop: args.cap_drop.clone(),
        devices: args.device.clone(),
        security_opt: args.security_opt.clone(),
        ..Default::default()
    };
    for o in &args.security_opt {
        // docker takes `key=value` and the old `key:value`.
        let (k, v) = o.split_once(['=', ':']).unwrap_or((o.as_str(), ""));
        match (k, v) {
            ("seccomp", "unconfined") => sec.seccomp_unconfined = true,
            ("seccomp", "") => anyhow::bail!("--security-opt {o}: seccomp=unconfined or seccomp=PROFILE.json"),
            ("seccomp", file) => {
                let text =
                    std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("--security-opt {o}: {file}: {e}"))?;
                rbuild_runtime::sandbox::seccomp::Profile::from_json(text.as_bytes(), file)?;
                sec.seccomp_unconfined = false;
                sec.seccomp_profile = Some(text);
            }
            ("no-new-privileges", "" | "true") => sec.no_new_privileges = true,
            ("no-new-privileges", "false") => sec.no_new_privileges = false,
            // Nothing to loosen: rbuild applies neither AppArmor nor SELinux labels.
            ("apparmor", "unconfined") | ("label", "disable") => {}
            _ => anyhow::bail!(
                "--security-opt {o}: unsupported (seccomp=unconfined, seccomp=PROFILE.json, no-new-privileges)"
            ),
        }
    }
    for d in &args.device {
        Device::parse(d)?;
    }
    // The profile is compiled and the capability names are checked here, before the image
    // is unpacked.
    sec.to_security()?;
    Ok(sec)
}

/// Turn the flags into container options.
pub fn options(args: &ContainerFlags) -> anyhow::Result<CreateOptions> {
    let mut env = Vec::new();
    for f in &args.env_file {
        let text = std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("--env-file {}: {e}", f.display()))?;
        for (n, line) in text.lines().enumerate() {
            env.extend(env_entry(line, &format!("{}:{}", f.display(), n + 1))?);
        }
    }
    for e in &args.env {
        env.extend(env_entry(e, "-e")?);
    }
    let mut labels = std::collections::BTreeMap::new();
    for l in &args.label {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        if k.is_empty() {
            anyhow::bail!("--label {l:?}: a label needs a name");
        }
        labels.insert(k.to_string(), v.to_string());
    }
    if let Some(s) = &args.stop_signal {
        container::parse_signal(s)?;
    }
    Ok(CreateOptions {
        image: args.image.clone(),
        cmd: args.cmd.clone(),
        entrypoint: args.entrypoint.clone(),
        env,
        workdir: args.workdir.clone(),
        user: args.user.clone(),
        network: if args.network == "none" { Network::None } else { Network::Host },
        name: args.name.clone(),
        hostname: args.hostname.clone(),
        volumes: args.mounts.volumes()?,
        volumes_from: args.mounts.volumes_from()?,
        rm: args.rm,
        stdin: args.interactive,
        tty: args.tty,
        security: security(args)?,
        labels,
        stop_signal: args.stop_signal.clone(),
        stop_timeout: args.stop_timeout,
        restart: RestartPolicy::parse(&args.restart)?,
        limits: args.limits.limits()?,
    })
}

/// Make sure the image is in the store, by `--pull`: `missing` pulls it when it is not
/// (saying so first, like docker), `always` pulls it anyway, `never` says to pull it.
pub fn ensure_image(store: &rbuild_image::Store, image: &str, pull: &str) -> anyhow::Result<()> {
    let missing = match store.resolve(image) {
        Ok(_) => false,
        Err(rbuild_image::Error::NotFound(_)) => true,
        Err(e) => return Err(e.into()),
    };
    let want = match pull {
        "always" => true,
        "never" if missing => {
            anyhow::bail!(
                "No such image: {image} (not in the local store, and --pull never: run 'rbuild pull {image}')"
            )
        }
        _ => missing,
    };
    if !want {
        return Ok(());
    }
    let r = rbuild_image::Reference::parse(image)
        .map_err(|e| anyhow::anyhow!("{image}: not in the local store, and not a name to pull: {e}"))?;
    if missing {
        let shown =
            if r.tag().is_none() && r.digest().is_none() { format!("{image}:latest") } else { image.to_string() };
        eprintln!("Unable to find image '{shown}' locally");
    }
    let r = r.with_default_tag();
    let client = super::pull::client(&super::pull::TlsFlags { tls_verify: true, insecure: false })?;
    let prog: std::sync::Arc<dyn rbuild_registry_client::progress::Progress> =
        std::sync::Arc::new(rbuild_registry_client::progress::LineProgress::to_writer(Box::new(std::io::stderr())));
    let what = r.tag().map(str::to_string).unwrap_or_else(|| r.api_reference());
    prog.message(&format!("{what}: Pulling from {}", r.familiar_name()));
    let pulled = super::pull::runtime()?
        .block_on(client.pull(store, &r, &rbuild_image::Platform::host(), &prog))
        .map_err(|e| anyhow::anyhow!("pulling {image}: {e}"))?;
    let status = if pulled.downloaded > 0 { "Downloaded newer image for" } else { "Image is up to date for" };
    prog.message(&format!("Status: {status} {}", r.familiar()));
    Ok(())
}

/// Run `rbuild run`: in the foreground the container's exit code becomes ours; with `-d`
/// the ID is printed.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let opts = options(&args.c)?;
    if opts.tty && !std::io::IsTerminal::is_terminal(&std::io::stdin()) && opts.stdin && !args.detach {
        anyhow::bail!("the input device is not a TTY (drop -t, or run from a terminal)");
    }
    let store = g.store()?;
    ensure_image(&store, &opts.image, &args.c.pull)?;
    let sandbox = Sandbox::new(&g.root)?;
    if !args.detach {
        return Ok(container::create_and_run(&store, &opts, &sandbox)?);
    }
    let c = container::create(&store, &opts, &sandbox)?;
    if let Err(e) = container::start(&g.root, &c, std::path::Path::new("/proc/self/exe")) {
        // docker keeps the created container; --rm ones go.
        if opts.rm {
            let _ = container::remove(&g.root, &c, true, true);
        }
        return Err(e.into());
    }
    super::pull::say(&c.id);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rbuild_runtime::sandbox::{Seccomp, Security};

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> anyhow::Result<Security> {
        use clap::Parser;
        let mut full = vec!["run"];
        full.extend_from_slice(argv);
        full.push("img");
        Ok(security(&Cli::try_parse_from(full)?.args.c)?.to_security()?)
    }

    #[test]
    fn security_flags() {
        let s = parse(&["--cap-add", "NET_RAW", "--cap-drop=MKNOD", "--security-opt", "no-new-privileges"]).unwrap();
        assert_eq!((s.cap_add, s.cap_drop, s.no_new_privileges), (vec!["NET_RAW".into()], vec!["MKNOD".into()], true));
        assert_eq!(parse(&["--security-opt", "seccomp=unconfined"]).unwrap().seccomp, Seccomp::Unconfined);
        assert_eq!(parse(&["--security-opt", "seccomp:unconfined"]).unwrap().seccomp, Seccomp::Unconfined);
        assert_eq!(parse(&["--security-opt", "apparmor=unconfined"]).unwrap(), Security::default());
        let d = parse(&["--device", "/dev/fuse", "--device", "/dev/sda:/dev/xvda:r"]).unwrap().devices;
        assert_eq!(d[0], Device { host: "/dev/fuse".into(), container: "/dev/fuse".into(), access: "rwm".into() });
        assert_eq!(d[1], Device { host: "/dev/sda".into(), container: "/dev/xvda".into(), access: "r".into() });
        for (bad, want) in [
            (&["--security-opt", "seccomp=/nonexistent.json"][..], "/nonexistent.json"),
            (&["--security-opt", "bogus"][..], "bogus"),
            (&["--cap-add", "FLY"][..], "FLY"),
            (&["--device", "dev/x"][..], "absolute"),
            (&["--device", "/a:/b:rwx"][..], "permissions"),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
    }

    #[test]
    fn env_lines() {
        assert_eq!(env_entry("A=1", "x").unwrap(), Some("A=1".into()));
        assert_eq!(env_entry("# c", "x").unwrap(), None);
        assert_eq!(env_entry("", "x").unwrap(), None);
        assert!(env_entry("=1", "x").is_err());
        assert_eq!(env_entry("RBUILD_SURELY_UNSET_VAR", "x").unwrap(), None);
    }
}
