//! `rbuild container`: docker's management-command spellings. `rbuild container ls`
//! (or `list`, `ps`) is `rbuild ps`, and `rbuild container CMD ...` is `rbuild CMD ...` for
//! every container command (create, run, start, stop, restart, kill, rm, wait, inspect,
//! logs, exec, ...); `rbuild container prune` removes every stopped container.

use rbuild_runtime::container::{self, Containers};

/// Flags of `rbuild container`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The container command (ls, create, run, start, stop, restart, kill, rm, wait,
    /// inspect, logs, exec, prune...) and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true, value_name = "COMMAND")]
    pub args: Vec<String>,
}

/// Flags of `rbuild container prune`.
#[derive(clap::Parser, Debug)]
#[command(name = "rbuild container prune", about = "Remove all stopped containers")]
struct PruneArgs {
    /// Do not ask for confirmation.
    #[arg(short = 'f', long)]
    force: bool,
    /// Only containers matching: label=KEY[=VALUE], label!=KEY[=VALUE], until=TIMESTAMP.
    #[arg(long, value_name = "FILTER")]
    filter: Vec<String>,
}

/// Run `rbuild container ...`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let (first, rest) = args.args.split_first().expect("clap requires one");
    let mapped = match first.as_str() {
        "ls" | "list" | "ps" => "ps",
        "remove" => "rm",
        "prune" => return prune(rest, g),
        "container" => anyhow::bail!("rbuild container container: say what to do with containers"),
        other => other,
    };
    let mut argv: Vec<String> = vec!["rbuild".into(), "--root".into(), g.root.display().to_string()];
    argv.push(mapped.into());
    argv.extend(rest.iter().cloned());
    let cli = match <super::Cli as clap::Parser>::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) if e.kind() == clap::error::ErrorKind::InvalidSubcommand => {
            anyhow::bail!("unknown container command '{first}': see 'rbuild container --help'")
        }
        Err(e) => e.exit(),
    };
    super::dispatch(cli.command, g)
}

/// The `label=`/`label!=`/`until=` filters of prune: does the container pass them?
fn passes(filters: &[(String, String, bool)], cfg: &container::Config) -> anyhow::Result<bool> {
    for (key, value, negate) in filters {
        let hit = match key.as_str() {
            "label" => {
                let (k, v) = value.split_once('=').map(|(k, v)| (k, Some(v))).unwrap_or((value.as_str(), None));
                cfg.labels.get(k).is_some_and(|have| v.is_none_or(|v| v == have))
            }
            "until" => {
                let created = chrono::DateTime::parse_from_rfc3339(&cfg.created).map(|t| t.timestamp()).unwrap_or(0);
                let until = match chrono::DateTime::parse_from_rfc3339(value) {
                    Ok(t) => t.timestamp(),
                    Err(_) => value
                        .parse::<i64>()
                        .map_err(|_| anyhow::anyhow!("--filter until={value}: expected RFC 3339 or unix seconds"))?,
                };
                created < until
            }
            k => anyhow::bail!("--filter {k}: unsupported (label=, label!=, until=)"),
        };
        if hit == *negate {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Remove every stopped container passing `filters` (`dry_run`: only say which); their
/// IDs, and 1 when one could not be removed (the error on stderr).
pub fn remove_stopped(
    root: &std::path::Path,
    filters: &[(String, String, bool)],
    dry_run: bool,
) -> anyhow::Result<(Vec<String>, i32)> {
    let mut deleted = Vec::new();
    let mut code = 0;
    for c in Containers::open(root).list() {
        let (Ok(cfg), Ok(st)) = (c.config(), c.checked_state()) else { continue };
        if st.status.is_active() || !passes(filters, &cfg)? {
            continue;
        }
        if dry_run {
            deleted.push(c.id.clone());
            continue;
        }
        match container::remove(root, &c, false, false) {
            Ok(()) => deleted.push(c.id.clone()),
            Err(rbuild_runtime::Error::NoSuchContainer(_)) => {}
            Err(e) => {
                eprintln!("error: {}: {e}", cfg.name);
                code = 1;
            }
        }
    }
    Ok((deleted, code))
}

fn prune(rest: &[String], g: &super::global::Global) -> anyhow::Result<i32> {
    let mut argv = vec!["rbuild container prune".to_string()];
    argv.extend(rest.iter().cloned());
    let args = <PruneArgs as clap::Parser>::try_parse_from(argv).unwrap_or_else(|e| e.exit());
    let mut filters = Vec::new();
    for f in &args.filter {
        let Some((k, v)) = f.split_once('=') else { anyhow::bail!("--filter {f}: expected KEY=VALUE") };
        match k.strip_suffix('!') {
            Some(k) => filters.push((k.to_string(), v.to_string(), true)),
            None => filters.push((k.to_string(), v.to_string(), false)),
        }
    }
    if !args.force {
        eprint!("WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ");
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let (deleted, code) = remove_stopped(&g.root, &filters, false)?;
    if !deleted.is_empty() {
        super::pull::say("Deleted Containers:");
        for id in &deleted {
            super::pull::say(id);
        }
        super::pull::say("");
    }
    super::pull::say("Total reclaimed space: 0B");
    Ok(code)
}
