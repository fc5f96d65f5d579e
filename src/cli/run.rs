//! `rbuild run`: run a command in a new container from an image in the local store, like
//! `docker run`. Flags become a validated [`ContainerOptions`]; rbuild-builder does the rest.

use rbuild_runtime::run::{ContainerOptions, Volume, run_container};
use rbuild_runtime::sandbox::{Device, Network, Sandbox, Seccomp, Security, seccomp::Profile};
use std::path::PathBuf;

/// Flags of `rbuild run`.
#[derive(clap::Args, Debug)]
pub struct Args {
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
    /// Bind a host path or a named volume: HOST_PATH:CTR_PATH[:ro] or NAME:CTR_PATH[:ro].
    #[arg(short = 'v', long = "volume", value_name = "SRC:DST[:ro]")]
    pub volume: Vec<String>,
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

/// `--cap-add`, `--cap-drop`, `--security-opt` and `--device` as a [`Security`].
pub fn security(args: &Args) -> anyhow::Result<Security> {
    let mut sec = Security { cap_add: args.cap_add.clone(), cap_drop: args.cap_drop.clone(), ..Default::default() };
    for o in &args.security_opt {
        // docker takes `key=value` and the old `key:value`.
        let (k, v) = o.split_once(['=', ':']).unwrap_or((o.as_str(), ""));
        match (k, v) {
            ("seccomp", "unconfined") => sec.seccomp = Seccomp::Unconfined,
            ("seccomp", "") => anyhow::bail!("--security-opt {o}: seccomp=unconfined or seccomp=PROFILE.json"),
            ("seccomp", file) => {
                let bytes = std::fs::read(file).map_err(|e| anyhow::anyhow!("--security-opt {o}: {file}: {e}"))?;
                sec.seccomp = Seccomp::Profile(Box::new(Profile::from_json(&bytes, file)?));
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
    sec.devices = args.device.iter().map(|d| Device::parse(d)).collect::<Result<_, _>>()?;
    // The capability names are checked here, before the image is unpacked.
    rbuild_runtime::sandbox::caps::effective(&sec.cap_add, &sec.cap_drop, true)?;
    Ok(sec)
}

/// Turn the flags into container options.
pub fn options(args: &Args) -> anyhow::Result<ContainerOptions> {
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
    let volumes = args.volume.iter().map(|v| Volume::parse(v)).collect::<Result<Vec<_>, _>>()?;
    Ok(ContainerOptions {
        image: args.image.clone(),
        cmd: args.cmd.clone(),
        entrypoint: args.entrypoint.clone(),
        env,
        workdir: args.workdir.clone(),
        user: args.user.clone(),
        network: if args.network == "none" { Network::None } else { Network::Host },
        name: args.name.clone(),
        hostname: args.hostname.clone(),
        volumes,
        rm: args.rm,
        stdin: args.interactive,
        tty: args.tty,
        security: security(args)?,
        limits: args.limits.limits()?,
    })
}

/// Run `rbuild run`: the container's exit code becomes ours.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let opts = options(&args)?;
    if opts.tty && !std::io::IsTerminal::is_terminal(&std::io::stdin()) && opts.stdin {
        anyhow::bail!("the input device is not a TTY (drop -t, or run from a terminal)");
    }
    let store = g.store()?;
    if let Err(rbuild_image::Error::NotFound(what)) = store.resolve(&opts.image) {
        anyhow::bail!("{what} not found in the local store: run 'rbuild pull {}' first", opts.image);
    }
    let sandbox = Sandbox::new(&g.root)?;
    Ok(run_container(&store, &opts, &sandbox)?)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        security(&Cli::try_parse_from(full)?.args)
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
